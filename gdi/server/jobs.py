"""Background upload jobs.

Each job runs the same normaliser as ``gdi ingest`` in its own process, so a
large file never blocks the server and a worker reload never cuts a job. Job
processes die with ``gdi serve`` (PR_SET_PDEATHSIG): a killed server leaves the
store exactly as before (every publish is one transaction), and on the next
start jobs found 'running' are marked failed, never resumed half-way.

The job processes are forked from a warm process (multiprocessing's forkserver)
that has imported the ingest and publish modules once: a fresh interpreter spends
about a second importing pandas, GDAL, pygeometa and the rest before it reads the
first byte of a file, far more than a member's upload of a handful of features
takes. The forkserver is started with the runner and ends with ``gdi serve``; a job
is killed the moment the server ends (``_die_with_server``).

With the PostGIS store the jobs are scheduled by procrastinate instead of ``Runner``
(``gdi.server.queue``): ``submit`` queues each job there, and ``recover_interrupted``
fails only the jobs whose process is gone, not those of other live servers.
"""
from __future__ import annotations

import ctypes
import json
import multiprocessing
import os
import re
import shutil
import signal
import sys
import threading
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

from gdi import settings
from gdi.files import now_iso
from gdi.messages import Text, as_text, t
from gdi.server import service_db

STATUSES = ("queued", "running", "accepted", "rejected", "failed")
FINAL = {"accepted", "rejected", "failed"}


def _safe_filename(name: str) -> str:
    name = Path(name.replace("\\", "/")).name
    name = re.sub(r"[^\w.\-]+", "_", name, flags=re.UNICODE).strip("._") or "upload"
    return name[:150]


class QueueFull(Exception):
    """The member already has as many uploads waiting or running as it may (the message is a Text)."""


INTERRUPTED = t("abgebrochen: der Server wurde während dieses Auftrags beendet; nichts davon wurde veröffentlicht",
                "interrupted: the server stopped during this job; nothing of it was published")


def ended_unexpectedly(code: int | None) -> Text:
    """Why a job whose process ended without a final status failed."""
    return t(f"der Auftrag endete unerwartet (Exit-Code {code}); nichts wurde veröffentlicht",
             f"the job process ended unexpectedly (exit {code}); nothing was published")


def encode_message(text: Text | str | None) -> str | None:
    """A job's message as the ``message`` column keeps it: both languages, as the upload page names
    the options (surface "web"), in one JSON object ``{"de": …, "en": …}``."""
    if text is None:
        return None
    text = as_text(text)
    return json.dumps({"de": text.render("de", "web"), "en": text.render("en", "web")}, ensure_ascii=False)


def message_of(job: dict) -> Text | None:
    """A job's message in both languages; a row written before messages were kept in both holds
    plain text, which then stands for both."""
    raw = job.get("message")
    if not raw:
        return None
    if raw.startswith("{"):
        try:
            both = json.loads(raw)
        except ValueError:
            both = None
        if isinstance(both, dict) and isinstance(both.get("de"), str) and isinstance(both.get("en"), str):
            return Text(both["de"], both["en"])
    return as_text(raw)


def submit(*, token_id: str, member: str, uploader: str, collection: str, file_name: str, save, options: dict,
           limit: int) -> str:
    """Queue an upload; ``save(path)`` writes the uploaded bytes.

    The member's queue limit is checked and the job inserted in one write transaction
    (BEGIN IMMEDIATE in SQLite, a per-member advisory lock in PostgreSQL), so a burst of
    simultaneous uploads, on any worker of any server, never queues more than ``limit``: a
    separate count-then-insert let every request of a burst pass the count. With PostgreSQL the
    file goes into the database in the same transaction, for whichever server runs the job."""
    jid = uuid.uuid4().hex[:16]
    folder = settings.paths().home / "uploads" / jid
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / _safe_filename(file_name)
    save(target)
    conn = service_db.connect()
    try:
        conn.begin_queue(member)
        active = conn.execute("SELECT count(*) FROM jobs WHERE member = ? AND status IN ('queued','running')",
                              (member,)).fetchone()[0]
        if active >= limit:
            conn.execute("ROLLBACK")
            raise QueueFull(t(f"Mitglied {member} hat bereits {limit} wartende oder laufende Uploads; bitte später "
                              "erneut versuchen",
                              f"member {member} already has {limit} uploads waiting or running; try again later"))
        conn.execute(
            "INSERT INTO jobs (id, member, token_id, uploader, collection, dataset, file, path, options, status, "
            "created) VALUES (?,?,?,?,?,?,?,?,?,'queued',?)",
            (jid, member, token_id, uploader, collection, options.get("dataset"), file_name, str(target),
             json.dumps(options), now_iso()))
        conn.keep_upload(jid, target)
        conn.queue_job(jid, member)
        conn.execute("COMMIT")
        if conn.files_shared:
            shutil.rmtree(folder, ignore_errors=True)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)      # nothing was queued: the saved file goes too
        raise
    finally:
        conn.close()
    return jid


def get(jid: str) -> dict | None:
    conn = service_db.connect()
    try:
        row = conn.execute("SELECT * FROM jobs WHERE id = ?", (jid,)).fetchone()
    finally:
        conn.close()
    return dict(row) if row else None


def list_jobs(member: str | None = None, limit: int = 200) -> list[dict]:
    conn = service_db.connect()
    try:
        if member is None:
            rows = conn.execute("SELECT * FROM jobs ORDER BY created DESC LIMIT ?", (limit,)).fetchall()
        else:
            rows = conn.execute("SELECT * FROM jobs WHERE member = ? ORDER BY created DESC LIMIT ?",
                                (member, limit)).fetchall()
    finally:
        conn.close()
    return [dict(r) for r in rows]


def _update(jid: str, **fields) -> None:
    conn = service_db.connect()
    try:
        cols = ", ".join(f"{k} = ?" for k in fields)
        conn.execute(f"UPDATE jobs SET {cols} WHERE id = ?", (*fields.values(), jid))
        if fields.get("status") in FINAL:
            conn.drop_upload(jid)
    finally:
        conn.close()


def recover_interrupted() -> int:
    """Jobs left 'running' by a stopped server: failed, with the reason. With the PostGIS store
    only the jobs whose job process is gone (gdi.server.queue): other servers' jobs run on."""
    from gdi.server import queue

    if queue.enabled():
        return queue.recover_interrupted()
    conn = service_db.connect()
    try:
        return conn.fail_interrupted(now_iso(), encode_message(INTERRUPTED))
    finally:
        conn.close()


# -- the job process ----------------------------------------------------------
def run_job(jid: str) -> int:
    """Run one queued job (in its own process); returns the exit code."""
    from gdi.ingest.pipeline import Options
    from gdi.upload import ingest_and_publish

    job = get(jid)
    if job is None:
        return 2
    opts = json.loads(job["options"])
    # running, with this process's pid, before the file is fetched: a large file takes a while to come
    _update(jid, status="running", started=now_iso(), pid=os.getpid(), stage="starting", progress=0.0)
    last = [0.0]

    def progress(stage: str, fraction: float) -> None:
        now = time.monotonic()
        if fraction >= 1.0 or now - last[0] > 0.2:
            last[0] = now
            _update(jid, stage=stage, progress=round(fraction, 3))

    try:
        conn = service_db.connect()
        try:
            path = conn.upload_file(job)    # with PostgreSQL fetched from there when another server received it
        finally:
            conn.close()
        report = ingest_and_publish(path, Options(
            collection=job["collection"], member=job["member"], dataset=opts.get("dataset") or None,
            crs=opts.get("crs") or None, encoding=opts.get("encoding") or None, layer=opts.get("layer") or None,
            dry_run=bool(opts.get("dry_run")), uploader=job["uploader"], admin=opts.get("admin") is True,
            progress=progress, surface="web"))       # the report names the upload form's fields, never a flag
    except Exception as exc:  # noqa: BLE001 — a job must always end with a status
        name = type(exc).__name__
        _update(jid, status="failed", finished=now_iso(),
                message=encode_message(t(f"interner Fehler: {name}", f"internal error: {name}")))
        return 1
    status = "accepted" if report.status == "accepted" else ("rejected" if report.status == "refused" else "failed")
    _update(jid, status=status, finished=now_iso(), report=report.id, counts=json.dumps(report.counts),
            message=encode_message(report.refusal_text()), dataset=report.dataset, version=report.version, stage="done", progress=1.0)
    return 0


# -- the runner in `gdi serve` ------------------------------------------------------
_PR_SET_PDEATHSIG = 1
POLL_SECONDS = 0.1           # how often the runner looks for queued jobs (an SQLite read)
# imported once by the forkserver, before any job: what every upload's ingest and publish need
WARM_MODULES = ["gdi.upload", "gdi.ingest.pipeline", "gdi.ingest.read", "gdi.store.gpkg", "gdi.publish",
                "gdi.publish.config", "gdi.publish.catalogue", "gdi.publish.openapi", "gdi.publish.translations",
                "pygeometa.core", "pygeometa.schemas.ogcapi_records", "jinja2"]


def _die_with_parent() -> None:
    """Child processes get SIGKILL when `gdi serve` dies, however it dies."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


def _job_context(extra: Iterable[str] = ()) -> multiprocessing.context.BaseContext:
    """Processes forked from the warm forkserver, which is started now (not at the first job);
    ``extra`` modules are imported by it besides WARM_MODULES (the module of the job's function)."""
    from multiprocessing import forkserver

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([*WARM_MODULES, *extra])
    forkserver.ensure_running()
    return context


def _job_process(jid: str, env: dict[str, str], server_pid: int) -> None:
    """One job, in a process forked from the forkserver, with the server's environment for jobs."""
    _die_with_server(server_pid)
    os.environ.clear()
    os.environ.update(env)
    sys.exit(run_job(jid))


def _die_with_server(pid: int) -> None:
    """SIGKILL for this job the moment `gdi serve` (``pid``) ends, however it ends.

    The job's parent is the forkserver, not the server, so PR_SET_PDEATHSIG cannot say it; and the
    forkserver itself outlives a killed server while a job runs (every process it forks holds the
    write end of the pipe whose EOF would end it). A pidfd of the server becomes readable when it
    exits, zombie or not; a thread waits on it."""
    import select

    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        os.kill(os.getpid(), signal.SIGKILL)
        return

    def watch() -> None:
        select.select([fd], [], [])
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="gdi-job-watch", daemon=True).start()


class Runner(threading.Thread):
    """Starts queued jobs as child processes, within the configured concurrency."""

    def __init__(self, env: dict[str, str]) -> None:
        super().__init__(name="gdi-jobs", daemon=True)
        self.env = env
        self.stop_event = threading.Event()
        self.children: dict[str, multiprocessing.process.BaseProcess] = {}
        self.max_jobs = settings.get().uploads.max_parallel_jobs
        self.per_member = settings.get().uploads.per_member_jobs
        self.context: multiprocessing.context.BaseContext | None = None

    def run(self) -> None:
        self.context = _job_context()
        while not self.stop_event.is_set():
            try:
                self._reap()
                self._start_queued()
            except Exception as exc:  # noqa: BLE001 — the runner must keep going
                print(f"gdi: job runner: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            self.stop_event.wait(POLL_SECONDS)

    def _reap(self) -> None:
        for jid, proc in list(self.children.items()):
            if proc.exitcode is None:
                continue
            del self.children[jid]
            job = get(jid)
            if job and job["status"] not in FINAL:
                _update(jid, status="failed", finished=now_iso(),
                        message=encode_message(ended_unexpectedly(proc.exitcode)))

    def _start_queued(self) -> None:
        if len(self.children) >= self.max_jobs:
            return
        conn = service_db.connect()
        try:
            queued = conn.execute("SELECT id, member FROM jobs WHERE status = 'queued' ORDER BY created").fetchall()
            running = [r[0] for r in conn.execute("SELECT member FROM jobs WHERE status = 'running'")]
        finally:
            conn.close()
        for row in queued:
            if len(self.children) >= self.max_jobs:
                return
            if running.count(row["member"]) >= self.per_member:
                continue
            if not self._claim(row["id"]):
                continue
            running.append(row["member"])
            proc = self.context.Process(target=_job_process, args=(row["id"], self.env, os.getpid()),
                                        name=f"gdi-job-{row['id']}")
            proc.start()
            self.children[row["id"]] = proc

    @staticmethod
    def _claim(jid: str) -> bool:
        """Atomically take a queued job (several servers may share GDI_HOME or the PostgreSQL state)."""
        conn = service_db.connect()
        try:
            return conn.claim(jid, now_iso())
        finally:
            conn.close()

    def stop(self) -> None:
        self.stop_event.set()
        for proc in self.children.values():
            if proc.exitcode is None:
                proc.terminate()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "run":
        sys.exit(run_job(sys.argv[2]))
    print("usage: python -m gdi.server.jobs run JOB_ID", file=sys.stderr)
    sys.exit(2)
