"""Upload jobs on procrastinate with the PostGIS store: two `gdi serve` share one queue.

Each server has its own GDI_HOME: the jobs' rows, the queue, its per-member locks, the workers'
heartbeats and the job processes' liveness locks are all in the store's PostgreSQL.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest
import requests
import yaml

from conftest import DATA, REPO, Server, free_port, fresh_store, run_gdi, state_rows, store_text
from test_uploads import _alive, _big_upload

FARM = DATA / "poi" / "farmshops_marburg-biedenkopf_hoexter_umland.geojson"
# members with farm shops in FARM, and how many of its 391 points lie in each one's territory
MEMBERS = {"06534014": 11, "05762004": 6, "06534009": 5, "05762036": 5}
STALLED_AFTER = 6           # uploads.stalled_after_seconds of these servers
MAX_PARALLEL = 2            # uploads.max_parallel_jobs, per server
SWEEP = 2                   # gdi.server.queue.SWEEP_SECONDS


def bearer(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture(scope="module")
def cluster(request, tmp_path_factory):
    """Two servers on one PostGIS (both counties' boundaries), a token per member and an admin's."""
    root = tmp_path_factory.mktemp("queue")
    home = root / "home"
    home.mkdir()
    store = fresh_store("postgis", request)
    (home / "store-url").write_text(store)
    config = yaml.safe_load((REPO / "config" / "gdi.yml").read_text(encoding="utf-8"))
    config["uploads"].update(stalled_after_seconds=STALLED_AFTER, max_parallel_jobs=MAX_PARALLEL, per_member_jobs=1,
                             max_queued_per_member=5)
    (root / "gdi.yml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    saved = {k: os.environ.get(k) for k in ("GDI_CONFIG", "GDI_STORE", "GDI_HOME")}
    os.environ.update(GDI_CONFIG=str(root / "gdi.yml"), GDI_STORE=store, GDI_HOME=str(home))
    servers = []
    try:
        for f, m in (("vg250ew_gemeinden_marburg-biedenkopf.geojson", "06534"),
                     ("vg250ew_gemeinden_hoexter.geojson", "05762")):
            run_gdi("ingest", str(DATA / "boundaries" / f), "--collection", "municipalities", "--member", m,
                    "--admin", home=home, check=True)
        secrets = {m: run_gdi("token", "create", "--member", m, home=home, check=True).stdout.strip().splitlines()[-1]
                   for m in [*MEMBERS, "06534"]}
        other = root / "home-b"             # the second server's own GDI_HOME: it shares only the database
        other.mkdir()
        (other / "store-url").write_text(store)
        servers += [Server(home, free_port()), Server(other, free_port())]
        yield {"home": home, "store": store, "servers": servers, "secrets": secrets, "root": root}
    finally:
        for srv in servers:
            srv.stop()
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def live_pair(cluster) -> list:
    """The cluster's two servers, a new one started in place of any that a test stopped."""
    servers = cluster["servers"]
    for i, srv in enumerate(servers):
        if srv.proc.poll() is not None:
            srv.stop()
            servers[i] = Server(srv.home, free_port())
    return servers


def upload(srv, secret, path: Path, **form) -> requests.Response:
    form.setdefault("collection", "supply_points")
    with open(path, "rb") as fh:
        return requests.post(f"{srv.url}/uploads", headers=bearer(secret), data=form,
                             files={"file": (path.name, fh)}, timeout=120)


def status(srv, secret, jid: str) -> dict:
    r = requests.get(f"{srv.url}/uploads/{jid}", headers=bearer(secret), timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def wait(srv, secret, jid: str, timeout: float = 300) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = status(srv, secret, jid)
        if job["status"] not in {"queued", "running"}:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {jid} did not finish: {job}")


def queue_jobs(store: str) -> list[dict]:
    """procrastinate's jobs of the store, with when each started and ended (its events)."""
    with psycopg.connect(store) as db:
        rows = db.execute("""
            SELECT j.id, j.args->>'jid', j.lock, j.worker_id, j.status::text,
                   (SELECT max(at) FROM procrastinate_events e WHERE e.job_id = j.id AND e.type = 'started'),
                   (SELECT max(at) FROM procrastinate_events e WHERE e.job_id = j.id
                     AND e.type IN ('succeeded', 'failed', 'aborted'))
              FROM procrastinate_jobs j ORDER BY j.id""").fetchall()
    keys = ("id", "jid", "lock", "worker", "status", "started", "ended")
    return [dict(zip(keys, row)) for row in rows]


def most_at_once(jobs: list[dict], key: str) -> dict:
    """For each value of ``key``, the most of its jobs that ran at one moment."""
    most: dict = {}
    for job in jobs:
        at = job["started"]
        running = [j for j in jobs if j[key] == job[key] and j["started"] <= at < j["ended"]]
        most[job[key]] = max(most.get(job[key], 0), len(running))
    return most


def ran_here(srv) -> set[str]:
    return set(re.findall(r"gdi: upload job (\w+) runs on this server", srv.log_path.read_text()))


def test_both_servers_take_jobs_within_the_limits(cluster):
    a, b = cluster["servers"]
    secrets = cluster["secrets"]
    before = {j["jid"] for j in queue_jobs(cluster["store"])}
    sent: list[tuple[str, str]] = []
    lock = threading.Lock()

    def send(member: str, i: int) -> None:
        srv = (a, b)[i % 2]                 # every member uploads through both servers
        # a dry run: the whole ingest, nothing published (each publish reloads every server's workers)
        r = upload(srv, secrets[member], FARM, dataset=f"welle{i}", dry_run="true")
        assert r.status_code == 202, r.text
        with lock:
            sent.append((member, r.json()["id"]))

    threads = [threading.Thread(target=send, args=(m, i)) for i in range(3) for m in MEMBERS]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(sent) == 12
    for member, jid in sent:
        job = wait((a, b)[hash(jid) % 2], secrets[member], jid)
        assert job["status"] == "accepted", job
        assert job["counts"] == {"read": 391, "accepted": MEMBERS[member], "repaired": 0,
                                 "rejected": 391 - MEMBERS[member]}
    deadline = time.time() + 30      # the task notices its job process's end a moment after the row says so
    while time.time() < deadline:
        queued = [j for j in queue_jobs(cluster["store"]) if j["jid"] not in before]
        if all(j["status"] == "succeeded" for j in queued):
            break
        time.sleep(0.2)
    assert sorted(j["jid"] for j in queued) == sorted(jid for _, jid in sent)
    assert {j["status"] for j in queued} == {"succeeded"}
    assert {j["lock"] for j in queued} == {f"gdi-member/{m}" for m in MEMBERS}
    # taken by either server: two workers, and each server's log names the jobs it ran
    assert len({j["worker"] for j in queued}) == 2, queued
    on_a, on_b = ran_here(a), ran_here(b)
    assert on_a and on_b and not on_a & on_b and {jid for _, jid in sent} <= on_a | on_b
    # one job per member at a time across both servers, at most max_parallel_jobs per server
    assert set(most_at_once(queued, "lock").values()) == {1}
    assert max(most_at_once(queued, "worker").values()) <= MAX_PARALLEL


def test_a_burst_through_both_servers_never_queues_more_than_the_limit(cluster):
    a, b = cluster["servers"]
    secret = cluster["secrets"]["05762036"]
    barrier = threading.Barrier(10)
    answers: list = [None] * 10

    def send(i: int) -> None:
        barrier.wait()
        answers[i] = upload((a, b)[i % 2], secret, FARM, dataset=f"stoss{i}", dry_run="true")

    threads = [threading.Thread(target=send, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(r.status_code for r in answers) == [202] * 5 + [429] * 5
    for r in answers:
        if r.status_code == 202:
            assert wait(a, secret, r.json()["id"])["status"] == "accepted"


def _server_of(job_pid: int) -> int:
    """The `gdi serve` whose forkserver forked a job process."""
    def parent(pid: int) -> int:
        return int(next(line.split()[1] for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                        if line.startswith("PPid:")))
    forkserver = parent(job_pid)
    assert "multiprocessing.forkserver" in Path(f"/proc/{forkserver}/cmdline").read_bytes().decode(errors="replace")
    return parent(forkserver)


def running_big_job(cluster, srv, secret: str, path: Path, dataset: str, fraction: float = 0.0) -> tuple[str, int]:
    """A large upload through srv, once it runs (and has done ``fraction``): its id and its job process."""
    jid = upload(srv, secret, path, dataset=dataset).json()["id"]
    deadline = time.time() + 120
    while time.time() < deadline:
        job = status(srv, secret, jid)
        if job["status"] == "running" and (job["progress"]["fraction"] or 0) >= fraction:
            break
        assert job["status"] in {"queued", "running"}, job
        time.sleep(0.1)
    pid = state_rows(cluster["home"], "SELECT pid FROM jobs WHERE id = ?", (jid,))[0][0]
    assert _alive(pid)
    return jid, pid


def test_kill_9_of_the_server_running_a_large_upload(cluster, tmp_path):
    """A server starting meanwhile leaves the running job alone; kill -9 of the job's server: the job is
    failed by the other server within the bound, the store is as before, no queue job 'doing'."""
    a, b = live_pair(cluster)
    secret = cluster["secrets"]["06534014"]
    big = _big_upload(tmp_path / "gross.gpkg", DATA)
    before = store_text()
    jid, pid = running_big_job(cluster, a, secret, big, "gross", fraction=0.05)
    # what a server starting now does first (gdi serve's start-up): not this job, which runs on a live server
    recovered = subprocess.run([sys.executable, "-c", "from gdi.server import jobs; print(jobs.recover_interrupted())"],
                               capture_output=True, text=True, timeout=60, check=True).stdout
    assert recovered == "0\n"
    job = status(b, secret, jid)
    assert job["status"] == "running" and _alive(pid), job
    victim = next(s for s in (a, b) if s.proc.pid == _server_of(pid))
    os.kill(victim.proc.pid, signal.SIGKILL)
    killed = time.monotonic()
    victim.proc.wait(10)
    survivor = b if victim is a else a
    while True:
        job = status(survivor, secret, jid)
        if job["status"] != "running":
            break
        assert time.monotonic() - killed < STALLED_AFTER + SWEEP + 5, job
        time.sleep(0.1)
    failed_after = time.monotonic() - killed
    assert not _alive(pid), "the job process must die with its server"
    assert job["status"] == "failed" and "interrupted" in job["message_en"] and "abgebrochen" in job["message"], job
    # procrastinate's job of the dead worker is finished once its heartbeat is older than the bound
    while True:
        mine = next(j for j in queue_jobs(cluster["store"]) if j["jid"] == jid)
        if mine["status"] != "doing":
            break
        assert time.monotonic() - killed < STALLED_AFTER + 10 / 3 + SWEEP + 5, mine     # + one heartbeat interval
        time.sleep(0.2)
    finished_after = time.monotonic() - killed
    assert mine["status"] == "failed"
    assert [j for j in queue_jobs(cluster["store"]) if j["status"] == "doing"] == []
    assert store_text() == before              # nothing of the 300,000 points was published
    hist = requests.get(f"{survivor.url}/datasets/supply_points/06534014/gross/versions", headers=bearer(secret),
                        timeout=30).json()["versions"]
    assert hist == []
    # the queue goes on: the next upload lands
    again = upload(survivor, secret, FARM, dataset="danach").json()["id"]
    assert wait(survivor, secret, again)["counts"]["accepted"] == MEMBERS["06534014"]
    print(f"job failed {failed_after:.1f} s and its queue job finished {finished_after:.1f} s after the kill")


def test_the_queue_schema_is_applied_once_when_servers_start_together(request):
    """procrastinate's schema script is not idempotent: eight servers starting at once apply it once."""
    from gdi.server import queue

    store = fresh_store("postgis", request)
    applied: list = [None] * 8
    barrier = threading.Barrier(8)

    def start(i: int) -> None:
        barrier.wait()
        applied[i] = queue.ensure_schema(store)

    threads = [threading.Thread(target=start, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(applied) == [False] * 7 + [True]
    assert queue.ensure_schema(store) is False
    with psycopg.connect(store) as db:
        assert db.execute("SELECT count(*) FROM procrastinate_jobs").fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                          "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())").fetchone()[0] == 0


def test_a_stopped_server_fails_its_running_job_at_once(cluster, tmp_path):
    """SIGTERM (a deployment's restart): the job process is killed, its row failed as interrupted, the
    queue job aborted and the worker unregistered — nothing waits for the stall bound."""
    a, b = live_pair(cluster)
    secret = cluster["secrets"]["06534014"]
    big = _big_upload(tmp_path / "gross.gpkg", DATA, n=150_000)
    before = store_text()
    jid, pid = running_big_job(cluster, b, secret, big, "gestoppt")
    victim = next(s for s in (a, b) if s.proc.poll() is None and s.proc.pid == _server_of(pid))
    stopped = time.monotonic()
    victim.stop()
    took = time.monotonic() - stopped
    assert victim.proc.returncode is not None and not _alive(pid)
    other = b if victim is a else a
    job = status(other, secret, jid)
    assert job["status"] == "failed" and "interrupted" in job["message_en"], job
    mine = next(j for j in queue_jobs(cluster["store"]) if j["jid"] == jid)
    assert mine["status"] == "aborted" and mine["worker"] is None
    assert store_text() == before
    print(f"stopped in {took:.1f} s")


def test_a_killed_job_process_fails_its_job_and_the_server_goes_on(cluster, tmp_path):
    """The job process killed (out of memory, say), its server alive: the row is failed at once — by its
    own server's task (exit -9) or another server's sweep (interrupted), whichever sees it first."""
    a, b = live_pair(cluster)
    secret = cluster["secrets"]["06534014"]
    big = _big_upload(tmp_path / "gross.gpkg", DATA, n=150_000)
    before = store_text()
    jid, pid = running_big_job(cluster, a, secret, big, "abgeschossen")
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    while (job := status(b, secret, jid))["status"] == "running":
        assert time.monotonic() - killed < SWEEP + 3, job
        time.sleep(0.1)
    assert job["status"] == "failed", job
    assert job["message_en"] in {"the job process ended unexpectedly (exit -9); nothing was published",
                                 "interrupted: the server stopped during this job; nothing of it was published"}
    deadline = time.time() + 10
    while next(j for j in queue_jobs(cluster["store"]) if j["jid"] == jid)["status"] == "doing":
        assert time.time() < deadline
        time.sleep(0.1)
    assert next(j for j in queue_jobs(cluster["store"]) if j["jid"] == jid)["status"] == "failed"
    assert store_text() == before
    assert a.proc.poll() is None and b.proc.poll() is None
    again = upload(a, secret, FARM, dataset="danach", dry_run="true").json()["id"]
    assert wait(b, secret, again)["status"] == "accepted"


def test_a_server_with_its_own_gdi_home_shares_the_one_queue(cluster, tmp_path):
    """A third server with an empty GDI_HOME of its own on the same store: the jobs sent to it are taken by
    whichever server's worker is free (each runs exactly once), and it answers for all of them."""
    a, b = live_pair(cluster)
    home = tmp_path / "home"
    home.mkdir()
    (home / "store-url").write_text(cluster["store"])
    secret = run_gdi("token", "create", "--member", "06534009", home=home, check=True,
                     store=cluster["store"]).stdout.strip().splitlines()[-1]
    own = Server(home, free_port())
    try:
        ids = [upload(own, secret, FARM, dataset=f"eigen{i}", dry_run="true").json()["id"] for i in range(3)]
        for jid in ids:
            job = wait(own, secret, jid, timeout=120)
            assert job["status"] == "accepted" and job["counts"]["accepted"] == MEMBERS["06534009"], job
        ran = [ran_here(srv) & set(ids) for srv in (own, a, b)]
        assert sorted(jid for where in ran for jid in where) == sorted(ids)      # each once, somewhere
        queues = {j["jid"]: j for j in queue_jobs(cluster["store"])}
        assert {queues[jid]["status"] for jid in ids} == {"succeeded"}
    finally:
        own.stop()


@pytest.fixture
def queue_home(request, tmp_path, monkeypatch):
    """An empty GDI_HOME on a fresh PostGIS with procrastinate's schema, for the queue's own functions."""
    from gdi.server import queue

    store = fresh_store("postgis", request)
    monkeypatch.setenv("GDI_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GDI_STORE", store)
    config = yaml.safe_load((REPO / "config" / "gdi.yml").read_text(encoding="utf-8"))
    config["uploads"].update(per_member_jobs=2)
    (tmp_path / "gdi.yml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("GDI_CONFIG", str(tmp_path / "gdi.yml"))
    queue.ensure_schema()
    return store


def _submit(member: str) -> str:
    from gdi.server import jobs

    return jobs.submit(token_id="t", member=member, uploader="token:t", collection="supply_points",
                       file_name="x.geojson", save=lambda p: p.write_text("{}"), options={}, limit=5)


def test_submit_queues_the_row_and_its_job_with_a_member_slot(queue_home):
    """per_member_jobs: 2 — a member's jobs take turns on two locks, the least used first."""
    from gdi.server import jobs

    ids = [_submit("06534014") for _ in range(3)] + [_submit("05762020")]
    assert [jobs.get(j)["status"] for j in ids] == ["queued"] * 4
    queued = queue_jobs(queue_home)
    assert [(j["jid"], j["status"], j["lock"]) for j in queued] == [
        (ids[0], "todo", "gdi-member/06534014/0"), (ids[1], "todo", "gdi-member/06534014/1"),
        (ids[2], "todo", "gdi-member/06534014/0"), (ids[3], "todo", "gdi-member/05762020/0")]


def test_the_sweep_touches_only_jobs_whose_process_is_gone(queue_home):
    """Three jobs taken by a worker that stopped sending heartbeats: one not started yet (queued again),
    one whose job process is gone (failed, as interrupted), one whose job process still holds its lock
    (a live process on a machine whose worker stalled: left alone)."""
    import asyncio

    from gdi.server import jobs, queue

    not_started, gone, alive = _submit("06534014"), _submit("05762020"), _submit("06534009")
    for jid in (gone, alive):
        assert jobs.Runner._claim(jid)
    holder = psycopg.connect(queue_home, autocommit=True)      # what the live job process holds
    holder.execute("SELECT pg_advisory_lock(hashtext(%s), hashtext(%s))", queue._liveness_key(alive))

    async def scenario() -> tuple[int, int]:
        app = queue.make_app(queue_home)
        async with app.open_async():
            worker = await app.job_manager.register_worker()
            for _ in range(3):
                await app.job_manager.fetch_job(queues=None, worker_id=worker)
            async with await psycopg.AsyncConnection.connect(queue_home, autocommit=True) as conn:
                fresh = await queue.sweep(app, conn, STALLED_AFTER)      # the worker's heartbeat is fresh
                await conn.execute("UPDATE procrastinate_workers SET last_heartbeat = now() - interval '1 minute'")
                stale = await queue.sweep(app, conn, STALLED_AFTER)
        return fresh, stale

    try:
        fresh, stale = asyncio.run(scenario())
        by_jid = {j["jid"]: j for j in queue_jobs(queue_home)}
        assert (fresh, stale) == (1, 0)     # the gone one is failed at once, heartbeat or not
        assert [jobs.get(j)["status"] for j in (not_started, gone, alive)] == ["queued", "failed", "running"]
        assert "interrupted" in jobs.message_of(jobs.get(gone)).en
        assert [by_jid[j]["status"] for j in (not_started, gone, alive)] == ["todo", "failed", "doing"]
    finally:
        holder.close()
    # the live process ends (its lock with it): the next sweep fails it too, and its worker was pruned
    assert asyncio.run(queue._sweep_once(queue_home)) == 1
    assert jobs.get(alive)["status"] == "failed"
    assert {j["jid"]: j["status"] for j in queue_jobs(queue_home)}[alive] == "failed"
    with psycopg.connect(queue_home) as db:
        assert db.execute("SELECT count(*) FROM procrastinate_workers").fetchone()[0] == 0
