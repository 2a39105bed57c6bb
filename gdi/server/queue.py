"""Upload jobs on procrastinate, the PostgreSQL job queue, when the store is PostGIS.

Several `gdi serve` on several machines share one PostGIS; each runs a procrastinate worker,
so any server takes the next job (the job rows and files are in PostgreSQL too:
gdi.server.service_pg), and a job whose server dies is recovered by another one.
The embedded GeoPackage setup keeps its own runner (``gdi.server.jobs.Runner``).

- A job's row (``gdi.server.jobs``) and its procrastinate job (``defer``) are written in one
  transaction. The task only names the row (``jid``); everything else stays in the row.
- ``uploads.per_member_jobs`` holds across servers through procrastinate's ``lock``: no two
  jobs with the same lock run at once, so each member has that many lock slots.
  ``uploads.max_parallel_jobs`` is each server's worker concurrency.
- The task forks the job from the warm forkserver (``gdi.server.jobs``), exactly as the
  runner does, and awaits its end: a big ingest never blocks the worker's event loop, and the
  job dies the moment its `gdi serve` dies.
- The job process holds a PostgreSQL advisory lock named after its job for its whole life and
  claims the row only while holding it. So "the lock is free and the row says running" proves
  the job process is gone, on whichever machine it ran; a server's sweep (``sweep``, every few
  seconds and at start-up) then fails the row. A procrastinate job left 'doing' by a worker
  whose heartbeat is older than ``uploads.stalled_after_seconds`` is finished (failed), or put
  back in the queue when its job had not started yet. A job that is still alive somewhere is
  never touched, and publishing is one transaction, so nothing is ever half-published.

The worker runs in a thread of `gdi serve` with its own asyncio loop (``QueueWorker``), not in a
child process: the job processes already watch `gdi serve`'s pid to die with it, and a worker
in the same process stops sending heartbeats exactly when that process dies.
"""
from __future__ import annotations

import asyncio
import os
import socket
import sys
import threading

import procrastinate
import psycopg
from procrastinate.jobs import Status

from gdi import settings
from gdi.files import now_iso
from gdi.messages import t
from gdi.server import jobs

TASK = "gdi.upload"
QUEUE = "gdi-uploads"        # procrastinate's queue of every server on the database
NOT_CLAIMED = 75            # the job process found its row taken or ended already: nothing to report
LOCK_SPACE = "gdi-job"      # advisory locks (hashtext(LOCK_SPACE), hashtext(job id)): a job process is alive
SCHEMA_LOCK = "gdi-queue-schema"
SWEEP_SECONDS = 2.0         # how often each server looks for jobs of dead servers (bounded by stalled_after/3)
POLL_SECONDS = 1.0          # procrastinate's fallback poll; new jobs arrive through LISTEN/NOTIFY at once
RESTART_SECONDS = 5.0       # a failed worker (the database unreachable) is started again after this


def enabled() -> bool:
    """Jobs are queued in PostgreSQL exactly when the store is PostGIS."""
    return settings.is_postgres(settings.store_url())


def _url() -> str:
    url = settings.store_url()
    assert url, "the queue needs the PostGIS store"
    return url


def make_app(url: str) -> procrastinate.App:
    """procrastinate on the store's database, with the one task: run a gdi job."""
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(
        conninfo=url, min_size=1, max_size=4, kwargs={"connect_timeout": 10}))
    app.task(name=TASK, pass_context=True)(_run_upload)
    return app


def ensure_schema(url: str | None = None) -> bool:
    """procrastinate's schema, applied once per database, however many servers start at once.

    procrastinate's schema script is not idempotent (plain CREATE TABLE): under a session advisory
    lock, the first server applies it (one implicit transaction) and every other sees its tables.
    Returns whether this call applied it."""
    url = url or _url()
    app = make_app(url)
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (SCHEMA_LOCK,))
        try:
            if conn.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()[0] is not None:
                return False
            conn.execute(app.schema_manager.get_schema())
            return True
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (SCHEMA_LOCK,))


def member_lock(member: str, conn: psycopg.Connection) -> str:
    """The procrastinate lock of a member's next job: one of ``per_member_jobs`` slots, the least used.

    With one slot (the default) the limit is exact. With more, a job waits for its own slot even
    when another is free; the limit itself always holds, since a slot runs one job at a time."""
    slots = settings.get().uploads.per_member_jobs
    if slots == 1:
        return f"gdi-member/{member}"
    names = [f"gdi-member/{member}/{i}" for i in range(slots)]
    used = dict(conn.execute("SELECT lock, count(*) FROM procrastinate_jobs WHERE lock = ANY(%s) "
                             "AND status IN ('todo', 'doing') GROUP BY lock", (names,)).fetchall())
    return min(names, key=lambda n: used.get(n, 0))


_schema_seen: set[str] = set()     # the databases whose procrastinate schema this process has seen


def defer(jid: str, member: str, connection: psycopg.Connection) -> int:
    """Queue the job ``jid`` in procrastinate, in ``connection``'s open transaction (the one that writes
    the job's row); returns procrastinate's id. The queueing lock (the job id) keeps one job from being
    queued twice. procrastinate's schema is made sure of once per process first: a job may be submitted
    (``gdi.server.jobs.submit``) before any server of the database has started its worker."""
    if _url() not in _schema_seen:
        ensure_schema(_url())
        _schema_seen.add(_url())
    return make_app(_url()).tasks[TASK].configure(lock=member_lock(member, connection), queueing_lock=jid,
                                                  queue=QUEUE, connection=connection).defer(jid=jid)


# -- the task, in the worker's event loop ------------------------------------------------------------
async def _run_upload(context: procrastinate.JobContext, jid: str) -> None:
    """Fork the job from the warm forkserver and await its end; a job process that ended without a
    final status fails its row (as the runner's reaping does). Cancelled (the server stops): the job
    process is killed and its row failed as interrupted."""
    worker: QueueWorker = context.additional_context["gdi"]
    proc = worker.context.Process(target=_job_process, args=(jid, worker.env, os.getpid(), worker.url),
                                  name=f"gdi-job-{jid}")
    try:
        proc.start()
    except Exception as exc:        # the forkserver is gone: the row must not wait for ever
        name = type(exc).__name__
        await asyncio.to_thread(_fail_unless_final, jid, t(f"interner Fehler: {name}", f"internal error: {name}"))
        raise
    print(f"gdi: upload job {jid} runs on this server (queue job {context.job.id}, process {proc.pid})", flush=True)
    ended = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_reader(proc.sentinel, ended.set)
    try:
        await ended.wait()
    except asyncio.CancelledError:
        proc.kill()
        await asyncio.to_thread(proc.join, 10)
        await asyncio.to_thread(_fail_unless_final, jid, jobs.INTERRUPTED)
        raise
    finally:
        loop.remove_reader(proc.sentinel)
    proc.join()
    code = proc.exitcode
    if code in (0, NOT_CLAIMED):
        return
    await asyncio.to_thread(_fail_unless_final, jid, jobs.ended_unexpectedly(code))
    raise RuntimeError(f"gdi job {jid}: the job process ended with exit code {code}")


def _fail_unless_final(jid: str, message) -> bool:
    job = jobs.get(jid)
    if job is None or job["status"] in jobs.FINAL:
        return False
    jobs._update(jid, status="failed", finished=now_iso(), message=jobs.encode_message(message))
    return True


def _liveness_key(jid: str) -> tuple[str, str]:
    return LOCK_SPACE, jid


def _job_process(jid: str, env: dict[str, str], server_pid: int, url: str) -> None:
    """One job, in a process forked from the forkserver: takes the job's advisory lock (held until
    this process ends, however it ends), claims the row, runs it."""
    jobs._die_with_server(server_pid)
    os.environ.clear()
    os.environ.update(env)
    stalled = settings.get().uploads.stalled_after_seconds
    conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
    # a machine that vanishes closes no connection: PostgreSQL's keepalives drop this session (and
    # its lock) within about stalled_after_seconds
    idle = max(1, int(stalled / 3))
    conn.execute(f"SET tcp_keepalives_idle = {idle}; SET tcp_keepalives_interval = {idle}; "
                 "SET tcp_keepalives_count = 2")
    conn.execute("SELECT pg_advisory_lock(hashtext(%s), hashtext(%s))", _liveness_key(jid))
    if not jobs.Runner._claim(jid):
        sys.exit(NOT_CLAIMED)
    sys.exit(jobs.run_job(jid))


# -- recovering the jobs of dead servers ------------------------------------------------------------
async def sweep(app: procrastinate.App, conn: psycopg.AsyncConnection, stalled_after: float) -> int:
    """One look at every procrastinate job of ours in 'doing'; returns how many rows it failed.

    A job whose advisory lock is held has a live job process: never touched. Otherwise (holding
    the lock meanwhile, so no job process can start claiming): a row still 'running' lost its job
    process and is failed; a procrastinate job whose worker stalled (heartbeat older than
    ``stalled_after``, or pruned) is finished — failed, or back to 'todo' when its row was still
    queued (it never started: another server runs it from the start)."""
    manager = app.job_manager
    queue = QUEUE
    stalled = {job.id for job in await manager.get_stalled_jobs(queue=queue, task_name=TASK,
                                                                seconds_since_heartbeat=stalled_after)}
    failed = 0
    for job in await manager.list_jobs_async(queue=queue, task=TASK, status="doing"):
        jid = str(job.task_kwargs.get("jid"))
        got = (await (await conn.execute("SELECT pg_try_advisory_lock(hashtext(%s), hashtext(%s))",
                                         _liveness_key(jid))).fetchone())[0]
        if not got:
            continue
        try:
            row = await asyncio.to_thread(jobs.get, jid)
            if row is not None and row["status"] == "running":
                if await asyncio.to_thread(_fail_unless_final, jid, jobs.INTERRUPTED):
                    failed += 1
                row = await asyncio.to_thread(jobs.get, jid)
            if job.id not in stalled:
                continue            # its worker lives and finishes it itself
            if row is not None and row["status"] == "queued":
                await manager.retry_job(job)
            else:
                await manager.finish_job(job, status=Status.FAILED, delete_job=False)
        finally:
            await conn.execute("SELECT pg_advisory_unlock(hashtext(%s), hashtext(%s))", _liveness_key(jid))
    await manager.prune_stalled_workers(stalled_after)
    return failed


async def _sweep_once(url: str) -> int:
    app = make_app(url)
    async with app.open_async():
        async with await psycopg.AsyncConnection.connect(url, autocommit=True, connect_timeout=10) as conn:
            return await sweep(app, conn, settings.get().uploads.stalled_after_seconds)


def recover_interrupted() -> int:
    """At start-up: fail the jobs whose job process is gone (this server's own, killed with it, and
    any other dead server's) — never a job still running on another server."""
    return asyncio.run(_sweep_once(_url()))


# -- the worker in `gdi serve` ----------------------------------------------------------------------
class QueueWorker(threading.Thread):
    """procrastinate's worker and the sweep, in their own event loop in a thread of `gdi serve`;
    same interface as ``jobs.Runner`` (start, stop)."""

    def __init__(self, env: dict[str, str]) -> None:
        super().__init__(name="gdi-queue", daemon=True)
        self.env = env
        self.url = _url()
        uploads = settings.get().uploads
        self.concurrency = uploads.max_parallel_jobs
        self.stalled_after = uploads.stalled_after_seconds
        self.context = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.main: asyncio.Task | None = None
        self.stopping = threading.Event()

    def run(self) -> None:
        self.context = jobs._job_context(extra=[__name__])
        asyncio.run(self._main())

    async def _main(self) -> None:
        """The worker, started again a few seconds after it failed (the database unreachable, say),
        as the runner keeps polling through errors."""
        self.loop = asyncio.get_running_loop()
        self.main = asyncio.current_task()
        while not self.stopping.is_set():
            try:
                await self._work()      # returns when procrastinate's worker stopped itself (a lost connection)
            except asyncio.CancelledError:
                return
            except Exception as exc:  # noqa: BLE001 — the worker must keep going
                print(f"gdi: job queue: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            try:
                await asyncio.sleep(RESTART_SECONDS)
            except asyncio.CancelledError:
                return

    async def _work(self) -> None:
        app = make_app(self.url)
        async with app.open_async():
            sweeper = asyncio.create_task(self._sweep_forever(app), name="gdi-sweep")
            try:
                await app.run_worker_async(
                    queues=[QUEUE], name=f"gdi@{socket.gethostname()}:{os.getpid()}", concurrency=self.concurrency,
                    install_signal_handlers=False, additional_context={"gdi": self},
                    update_heartbeat_interval=self.stalled_after / 3, stalled_worker_timeout=self.stalled_after,
                    fetch_job_polling_interval=POLL_SECONDS, abort_job_polling_interval=POLL_SECONDS,
                    shutdown_graceful_timeout=0, delete_jobs="never")     # the queue keeps each job's history
            finally:
                sweeper.cancel()

    async def _sweep_forever(self, app: procrastinate.App) -> None:
        every = min(SWEEP_SECONDS, self.stalled_after / 3)
        conn = None
        try:
            while True:
                try:
                    if conn is None or conn.closed:
                        conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True, connect_timeout=10)
                    await sweep(app, conn, self.stalled_after)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 — the sweep must keep going
                    print(f"gdi: job queue sweep: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
                    conn = None
                await asyncio.sleep(every)
        finally:
            if conn is not None:
                await conn.close()

    def stop(self) -> None:
        """Stop taking jobs (returns at once; join to wait): running job processes are killed and their
        rows failed as interrupted, procrastinate's worker unregisters."""
        self.stopping.set()
        if self.loop is not None and self.main is not None and not self.loop.is_closed():
            try:
                self.loop.call_soon_threadsafe(self.main.cancel)
            except RuntimeError:        # the loop closed meanwhile
                pass
