"""With PostGIS, the upload service's state lives in PostgreSQL: two `gdi serve` with two different
GDI_HOMEs on one database know the same tokens, jobs, reports and versions, a job queued on one is
run by the other (its file comes from the database), and a server started on an empty GDI_HOME has
lost nothing."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import geopandas as gpd
import psycopg
import pytest
import requests

from conftest import DATA, REPO, Server, at_once, free_port, fresh_store, homes_on, run_gdi, state_rows
from test_uploads import FARM, LIDL, bearer, token, upload, wait

MARBURG = "06534014"


@pytest.fixture(scope="module")
def cluster(request, tmp_path_factory):
    """Servers A and B, each with its own GDI_HOME, on one PostGIS with Marburg-Biedenkopf's boundaries."""
    root = tmp_path_factory.mktemp("state-pg")
    store = fresh_store("postgis", request)
    homes = homes_on(store, root / "a", root / "b")
    run_gdi("ingest", str(DATA / "boundaries" / "vg250ew_gemeinden_marburg-biedenkopf.geojson"),
            "--collection", "municipalities", "--member", "06534", "--admin", home=homes[0], store=store, check=True)
    a, b = Server(homes[0], free_port()), Server(homes[1], free_port())
    c = type("Cluster", (), {})()
    c.a, c.b, c.store, c.jobs = a, b, store, {}
    yield c
    for srv in (c.a, c.b):
        for pid in _runner_pids(srv):
            os.kill(pid, signal.SIGCONT)
        srv.stop()


def _runner_pids(srv: Server) -> list[int]:
    """The `gdi serve` process itself: its job runner is a thread of it (gunicorn is its child)."""
    return [srv.proc.pid] if srv.proc.poll() is None else []


def _runner(srv: Server) -> str:
    return f"{socket.gethostname()}:{srv.home.resolve()}"


def _sql(store: str, sql: str, args: tuple = ()) -> list[tuple]:
    with psycopg.connect(store) as conn:
        return conn.execute(sql, args).fetchall()


def test_a_token_made_through_one_server_works_on_the_other(cluster):
    secret = token(cluster.a.home, MARBURG, "--name", "Stadt Marburg")
    tid = secret.split("_")[1]
    cluster.secret = secret
    assert requests.get(f"{cluster.b.url}/uploads", headers=bearer(secret), timeout=30).json() == {"uploads": []}
    assert requests.get(f"{cluster.a.url}/uploads", headers=bearer(secret), timeout=30).json() == {"uploads": []}
    listed = run_gdi("token", "list", home=cluster.b.home, check=True).stdout.splitlines()
    assert [line.split()[:3] for line in listed] == [[tid, "member", MARBURG]]
    # only the hash is kept, in the database, and no server wrote a service.sqlite
    rows = _sql(cluster.store, "SELECT id, hash, member, name, admin, revoked FROM gdi_service.tokens")
    assert rows == [(tid, hashlib.sha256(secret.encode()).hexdigest(), MARBURG, "Stadt Marburg", 0, None)]
    assert not (cluster.a.home / "service.sqlite").exists() and not (cluster.b.home / "service.sqlite").exists()
    # revoked through B's home: refused by A at once
    other = token(cluster.b.home, "06534004")
    assert requests.get(f"{cluster.a.url}/uploads", headers=bearer(other), timeout=30).status_code == 200
    run_gdi("token", "revoke", other.split("_")[1], home=cluster.b.home, check=True)
    [(cluster.revoked,)] = _sql(cluster.store, "SELECT revoked FROM gdi_service.tokens WHERE id = %s",
                                (other.split("_")[1],))
    assert requests.get(f"{cluster.a.url}/uploads", headers=bearer(other), timeout=30).status_code == 401
    assert requests.get(f"{cluster.b.url}/uploads", headers=bearer(other), timeout=30).status_code == 401


def test_an_upload_sent_to_a_is_followed_reported_and_listed_on_b(cluster):
    m = cluster.secret
    r = upload(cluster.a, m, DATA / LIDL, dataset="discounter")
    assert r.status_code == 202
    jid = r.json()["id"]
    assert not (cluster.a.home / "uploads" / jid).exists()        # the file is in the database, not on A
    job = wait(cluster.b, m, jid)
    inside = int((gpd.read_file(DATA / LIDL)["ags"] == MARBURG).sum())
    assert (job["status"], job["member"], job["dataset"], job["version"]) == ("accepted", MARBURG, "discounter", 1)
    assert job["counts"] == {"read": 100, "accepted": inside, "repaired": 0, "rejected": 100 - inside}
    assert requests.get(f"{cluster.a.url}/uploads/{jid}", headers=bearer(m), timeout=30).json() == job
    cluster.jobs["discounter"] = job
    hrefs = {(link["type"], link.get("hreflang")): link["href"] for link in job["links"] if link["rel"] == "report"}
    reports = {}
    for srv in (cluster.a, cluster.b):
        got = [requests.get(srv.url + hrefs[key], headers=bearer(m), timeout=30)
               for key in (("application/json", None), ("text/html", "de"), ("text/html", "en"))]
        assert [g.status_code for g in got] == [200, 200, 200]
        assert [g.headers["Content-Type"].split(";")[0] for g in got] == ["application/json", "text/html", "text/html"]
        reports[srv.url] = [got[0].json(), got[1].text, got[2].text]
    assert reports[cluster.a.url] == reports[cluster.b.url]
    rep, html_de, html_en = reports[cluster.b.url]
    assert (rep["status"], rep["version"], rep["member"], rep["dataset"], rep["counts"]) == (
        "accepted", 1, MARBURG, "discounter", job["counts"])
    assert "<h1>Prüfbericht: lidl_marburg-biedenkopf_hoexter_umland.geojson</h1>" in html_de
    assert "<h1>Ingest report: lidl_marburg-biedenkopf_hoexter_umland.geojson</h1>" in html_en
    stored = _sql(cluster.store, "SELECT json FROM gdi.reports WHERE id = %s", (rep["id"],))
    assert [json.loads(s[0]) for s in stored] == [rep]
    hist = {srv.url: requests.get(f"{srv.url}/datasets/supply_points/{MARBURG}/discounter/versions",
                                  headers=bearer(m), timeout=30).json()["versions"] for srv in (cluster.a, cluster.b)}
    assert hist[cluster.a.url] == hist[cluster.b.url]
    [v] = hist[cluster.b.url]
    sha = hashlib.sha256((DATA / LIDL).read_bytes()).hexdigest()
    assert (v["version"], v["action"], v["live"], v["count"], v["report"], v["sha256"]) == (
        1, "upload", True, inside, rep["id"], sha)
    assert v["original"] == f"originals/supply_points/{MARBURG}/discounter/{rep['id']}-{LIDL.split('/')[-1]}"
    # the original is kept in the database, byte for byte; the job's uploaded file is gone
    chunks = _sql(cluster.store, "SELECT data FROM gdi.originals WHERE key = %s ORDER BY seq", (v["original"],))
    assert b"".join(bytes(c[0]) for c in chunks) == (DATA / LIDL).read_bytes()
    assert _sql(cluster.store, "SELECT count(*) FROM gdi_service.upload_chunks") == [(0,)]
    cli = run_gdi("history", "--collection", "supply_points", "--member", MARBURG, "--json", home=cluster.b.home,
                  check=True)
    assert json.loads(cli.stdout) == hist[cluster.b.url]


def test_a_job_queued_on_a_while_its_runner_is_stopped_is_run_by_b(cluster):
    m = cluster.secret
    os.kill(cluster.a.proc.pid, signal.SIGSTOP)       # A's job runner (gunicorn, its child, still answers)
    try:
        r = upload(cluster.a, m, DATA / FARM, dataset="hoflaeden")
        assert r.status_code == 202
        jid = r.json()["id"]
        assert not (cluster.a.home / "uploads" / jid).exists()
        job = wait(cluster.b, m, jid)
    finally:
        os.kill(cluster.a.proc.pid, signal.SIGCONT)
    inside = int((gpd.read_file(DATA / FARM)["ags"] == MARBURG).sum())
    assert (job["status"], job["dataset"], job["version"], job["counts"]["accepted"]) == (
        "accepted", "hoflaeden", 1, inside)
    assert state_rows(cluster.a.home, "SELECT runner FROM jobs WHERE id = ?", (jid,)) == [(_runner(cluster.b),)]
    assert not (cluster.b.home / "uploads" / jid).exists()      # B's copy went when the job ended
    cluster.jobs["hoflaeden"] = job


def test_the_queue_limit_holds_across_servers(cluster):
    """12 uploads of one member at once, half to A and half to B; 5 may wait or run (config/gdi.yml)."""
    m = cluster.secret
    for srv in (cluster.a, cluster.b):
        os.kill(srv.proc.pid, signal.SIGSTOP)         # no job ends during the burst
    try:
        answers = at_once(12, lambda i: upload((cluster.a, cluster.b)[i % 2], m, DATA / FARM, dataset=f"welle{i}",
                                               dry_run="true"))
        codes = sorted(r.status_code for r in answers)
        assert codes == [202] * 5 + [429] * 7, codes
        assert {r.json()["description"] for r in answers if r.status_code == 429} == {
            f"member {MARBURG} already has 5 uploads waiting or running; try again later"}
        queued = sorted(r.json()["id"] for r in answers if r.status_code == 202)
        assert sorted(j for (j,) in _sql(cluster.store, "SELECT DISTINCT key FROM gdi_service.upload_chunks")) == queued
    finally:
        for srv in (cluster.a, cluster.b):
            os.kill(srv.proc.pid, signal.SIGCONT)
    for jid in queued:
        assert wait(cluster.b, m, jid, timeout=300)["status"] == "accepted"
    assert _sql(cluster.store, "SELECT count(*) FROM gdi_service.upload_chunks") == [(0,)]


def test_a_server_started_on_an_empty_home_knows_every_token_job_and_report(cluster):
    m = cluster.secret
    before = requests.get(f"{cluster.b.url}/uploads", headers=bearer(m), timeout=30).json()
    assert len(before["uploads"]) == 7
    home, port = cluster.a.home, cluster.a.port
    cluster.a.stop()
    shutil.rmtree(home)
    home.mkdir()
    (home / "store-url").write_text(cluster.store)
    cluster.a = Server(home, port)
    assert not (home / "reports").exists() and not (home / "service.sqlite").exists()
    after = requests.get(f"{cluster.a.url}/uploads", headers=bearer(m), timeout=30).json()
    assert sorted(after["uploads"], key=lambda j: j["id"]) == sorted(before["uploads"], key=lambda j: j["id"])
    for name, job in cluster.jobs.items():
        again = requests.get(f"{cluster.a.url}/uploads/{job['id']}", headers=bearer(m), timeout=30).json()
        assert again == job
        for link in (link for link in job["links"] if link["rel"] == "report"):
            a = requests.get(cluster.a.url + link["href"], headers=bearer(m), timeout=30)
            b = requests.get(cluster.b.url + link["href"], headers=bearer(m), timeout=30)
            assert (a.status_code, a.content) == (200, b.content)
        hist = [requests.get(f"{srv.url}/datasets/supply_points/{MARBURG}/{name}/versions", headers=bearer(m),
                             timeout=30).json()["versions"] for srv in (cluster.a, cluster.b)]
        assert hist[0] == hist[1] and [v["version"] for v in hist[0]] == [1]
    # the command line reads reports and originals from the database as well
    rep = cluster.jobs["discounter"]
    rid = next(link["href"] for link in rep["links"] if link["rel"] == "report" and link["type"] == "application/json")
    served = requests.get(cluster.b.url + rid, headers=bearer(m), timeout=30).json()
    cli = run_gdi("report", served["id"], home=home, check=True)
    assert json.loads(cli.stdout) == served
    html_en = requests.get(f"{cluster.b.url}/uploads/{rep['id']}/report.html?lang=en", headers=bearer(m), timeout=30)
    run_gdi("report", served["id"], "--format", "html", "--lang", "en", "--out", str(home / "r.html"), home=home,
            check=True)
    assert (home / "r.html").read_text(encoding="utf-8") == html_en.text
    out = home / "original.geojson"
    cli = run_gdi("original", "--collection", "supply_points", "--member", MARBURG, "--dataset", "discounter",
                  "--version", "1", "--out", str(out), home=home, check=True)
    assert out.read_bytes() == (DATA / LIDL).read_bytes()
    assert cli.stdout == (f"gdi: wrote {out} (lidl_marburg-biedenkopf_hoexter_umland.geojson, sha256 "
                          f"{hashlib.sha256(out.read_bytes()).hexdigest()})\n")
    assert not (home / "reports").exists() and not (home / "originals").exists()
    listed = sorted(run_gdi("token", "list", home=home, check=True).stdout.splitlines(), key=lambda s: s.split()[2])
    assert [(line.split()[2], line.split()[-1]) for line in listed] == [("06534004", cluster.revoked), (MARBURG, "active")]
    assert listed[1].split()[0] == m.split("_")[1]


# -- the state's own guarantees, without servers ------------------------------------------------
def _gdi_python(code: str, store: str, home: Path) -> subprocess.Popen:
    env = dict(os.environ, GDI_STORE=store, GDI_HOME=str(home), PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_servers_starting_at_once_create_the_schema_once(request, tmp_path):
    store = fresh_store("postgis", request)
    procs = [_gdi_python("from gdi.server import tokens; print(len(tokens.list_tokens()))", store, tmp_path)
             for _ in range(6)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [(p.returncode, out) for p, (out, _err) in zip(procs, results)] == [(0, "0\n")] * 6, results
    tables = _sql(store, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'gdi_service' "
                         "ORDER BY 1")
    assert tables == [("jobs",), ("tokens",), ("upload_chunks",)]


def test_claims_and_the_queue_limit_are_atomic(request, tmp_path, monkeypatch):
    from gdi.server import jobs

    store = fresh_store("postgis", request)
    monkeypatch.setenv("GDI_STORE", store)
    monkeypatch.setenv("GDI_HOME", str(tmp_path))
    src = tmp_path / "punkte.geojson"
    src.write_bytes(b"x" * (3 * 2**20 + 17))           # four chunks, the last of 17 bytes

    def submit(i: int) -> str:
        try:
            return jobs.submit(token_id="t", member=MARBURG, uploader="u", collection="supply_points",
                               file_name="punkte.geojson", save=lambda p: shutil.copy(src, p), options={}, limit=3)
        except jobs.QueueFull:
            return "full"

    results = at_once(8, submit)
    ids = sorted(r for r in results if r != "full")
    assert (len(ids), results.count("full")) == (3, 5)
    assert _sql(store, "SELECT key, count(*), sum(length(data)) FROM gdi_service.upload_chunks GROUP BY key "
                       "ORDER BY key") == [(jid, 4, 3 * 2**20 + 17) for jid in ids]
    assert sorted(p.name for p in (tmp_path / "uploads").iterdir()) == []    # every local copy went
    claims = at_once(8, lambda i: jobs.Runner._claim(ids[0]))
    assert claims.count(True) == 1 and claims.count(False) == 7
    # the job process of another server fetches the file from the database
    other = tmp_path / "other"
    monkeypatch.setenv("GDI_HOME", str(other))
    from gdi.server import service_db

    conn = service_db.connect()
    try:
        local = conn.upload_file(jobs.get(ids[0]))
    finally:
        conn.close()
    assert local == other.resolve() / "uploads" / ids[0] / "punkte.geojson"
    assert local.read_bytes() == src.read_bytes()
    jobs._update(ids[0], status="failed")                  # an ended job's file goes, here and in the database
    assert not local.parent.exists()
    assert [r[0] for r in _sql(store, "SELECT DISTINCT key FROM gdi_service.upload_chunks ORDER BY 1")] == ids[1:]
    # a row left running by a dead server is failed by another server's sweep: tests/test_queue_pg.py
    assert [(j["id"], j["status"]) for j in sorted(jobs.list_jobs(), key=lambda j: j["id"])] == sorted(
        [(ids[0], "failed"), (ids[1], "queued"), (ids[2], "queued")])


def test_a_rolled_back_version_leaves_no_original_and_no_report(request, tmp_path, monkeypatch):
    from shapely.geometry import LineString, Point

    from gdi.collections import get_collection
    from gdi.store.base import VersionMeta
    from gdi.store.postgis import PostgisStore

    store = fresh_store("postgis", request)
    monkeypatch.setenv("GDI_HOME", str(tmp_path))
    src = tmp_path / "a.geojson"
    src.write_bytes(b"{}")
    points = get_collection("supply_points")
    bad = gpd.GeoDataFrame({"name": ["x"]}, geometry=[LineString([(0, 0), (1, 1)])], crs=points.storage_crs)
    pg = PostgisStore(store)
    pg.ensure(points)
    asked: list[int] = []

    def documents(number: int) -> dict[str, str]:
        asked.append(number)
        return {"json": json.dumps({"version": number}), "html": f"<p>{number}</p>", "html_en": f"<p>{number}</p>"}

    with pytest.raises(psycopg.errors.InvalidParameterValue):
        pg.replace(points, MARBURG, "kaputt", bad, updated="2026-12-02T00:00:00Z",
                   meta=VersionMeta(original="originals/x/a.geojson", original_source=src, report="r1",
                                    report_documents=documents))
    assert _sql(store, "SELECT count(*) FROM gdi.originals") == [(0,)]
    assert _sql(store, "SELECT count(*) FROM gdi.versions") == [(0,)]
    assert _sql(store, "SELECT count(*) FROM gdi.reports") == [(0,)]
    assert asked == [1]                      # the report was written in the transaction, then rolled back
    good = gpd.GeoDataFrame({"name": ["x"]}, geometry=[Point(484000, 5628000)], crs=points.storage_crs)
    pg.replace(points, MARBURG, "gut", good, updated="2026-12-02T00:00:00Z",
               meta=VersionMeta(original="originals/x/a.geojson", original_source=src, report="r1",
                                report_documents=documents))
    assert _sql(store, "SELECT json, html, html_en FROM gdi.reports") == [('{"version": 1}', "<p>1</p>", "<p>1</p>")]
    assert _sql(store, "SELECT key, seq, data FROM gdi.originals") == [("originals/x/a.geojson", 0, b"{}")]


def test_territory_uploads_wait_for_each_other_on_every_server(request, tmp_path):
    """The boundaries' key checks and their write run one at a time across servers: an advisory lock."""
    from conftest import GDI

    store = fresh_store("postgis", request)
    home = tmp_path / "home"
    home.mkdir()
    boundaries = DATA / "boundaries" / "vg250ew_gemeinden_marburg-biedenkopf.geojson"
    env = dict(os.environ, GDI_HOME=str(home), GDI_STORE=store)
    with psycopg.connect(store, autocommit=True) as other_server:
        other_server.execute("SELECT pg_advisory_lock(hashtext('gdi-lock/territory/municipalities'))")
        proc = subprocess.Popen([GDI, "ingest", str(boundaries), "--collection", "municipalities", "--member", "06534",
                                 "--admin"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.time() + 120
        while not other_server.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                                       ).fetchone()[0]:
            assert proc.poll() is None and time.time() < deadline, proc.stdout.read() if proc.poll() else "no wait"
            time.sleep(0.2)
        assert other_server.execute("SELECT to_regclass('gdi.datasets')").fetchone()[0] is None   # nothing written
        other_server.execute("SELECT pg_advisory_unlock(hashtext('gdi-lock/territory/municipalities'))")
        out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert _sql(store, "SELECT collection, member, dataset, count FROM gdi.datasets") == [
        ("municipalities", "06534", "vg250ew_gemeinden_marburg-biedenkopf", 22)]
