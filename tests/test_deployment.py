"""The whole multi-machine deployment, end to end: a PostgreSQL primary and a streaming replica, three
`gdi serve` with GDI_HOMEs of their own (GDI_STORE the primary, GDI_STORE_READ the replica) and Debian's
nginx with the shipped site in front of all three. The tests run in this order, on one cluster: a token
made on one machine, an upload followed through every server, kill -9 of the server running a large
upload, new data read through the replica, a machine's GDI_HOME lost, and every link through nginx."""
from __future__ import annotations

import os
import shutil
import signal
import time
from urllib.parse import urljoin

import pytest
import requests
import yaml

from cluster import psql
from conftest import DATA, REPO, Server, free_port, fresh_store, run_gdi, state_rows, store_text
from nginx_proxy import Crawl, Nginx
from test_queue_pg import FARM, MEMBERS, SWEEP, _server_of, queue_jobs, status, wait
from test_uploads import _alive, _big_upload

STALLED_AFTER = 6               # uploads.stalled_after_seconds of these servers
MEMBER = "06534014"             # the member uploading; FARM has MEMBERS[MEMBER] of its points in its territory
FAILED_WITHIN = 60              # seconds: the bound for the killed server's job to end
STARTED = time.monotonic()


def bearer(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}


def elapsed(what: str) -> None:
    print(f"{what}: {time.monotonic() - STARTED:.1f} s since the module started")


@pytest.fixture(scope="module")
def deployment(request, tmp_path_factory, postgis, postgis_replica):
    from gdi import devdb

    root = tmp_path_factory.mktemp("deployment")
    store = fresh_store("postgis", request)
    database = store.rsplit("/", 1)[1]
    read = f"postgresql://postgres@127.0.0.1:{postgis_replica.port}/{database}"
    config = yaml.safe_load((REPO / "config" / "gdi.yml").read_text(encoding="utf-8"))
    config["uploads"].update(stalled_after_seconds=STALLED_AFTER)
    (root / "gdi.yml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    homes = []
    for name in ("a", "b", "c"):
        home = root / name
        home.mkdir()
        (home / "store-url").write_text(store)
        homes.append(home)
    saved = {k: os.environ.get(k) for k in ("GDI_CONFIG", "GDI_STORE", "GDI_HOME", "GDI_STORE_READ")}
    os.environ.update(GDI_CONFIG=str(root / "gdi.yml"), GDI_STORE=store, GDI_HOME=str(homes[0]))
    servers: list[Server] = []
    nginx = None
    try:
        for f, m in (("vg250ew_gemeinden_marburg-biedenkopf.geojson", "06534"),
                     ("vg250ew_gemeinden_hoexter.geojson", "05762")):
            run_gdi("ingest", str(DATA / "boundaries" / f), "--collection", "municipalities", "--member", m,
                    "--admin", home=homes[0], check=True)
        devdb.wait_for_replay(postgis, postgis_replica)
        os.environ["GDI_STORE_READ"] = read
        servers += [Server(home, free_port()) for home in homes]
        nginx = Nginx([s.port for s in servers])
        elapsed("cluster up")
        yield {"servers": servers, "nginx": nginx, "store": store, "database": database, "homes": homes,
               "primary": postgis, "replica": postgis_replica, "secrets": {}, "jobs": {}}
    finally:
        if nginx is not None:
            nginx.stop()
        for srv in servers:
            srv.stop()
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def post(url: str, secret: str, path, dataset: str) -> requests.Response:
    with open(path, "rb") as fh:
        return requests.post(url + "/uploads", headers=bearer(secret),
                             data={"collection": "supply_points", "dataset": dataset},
                             files={"file": (path.name, fh)}, timeout=120)


def test_a_token_made_on_one_machine(deployment):
    a = deployment["homes"][0]
    for member in (MEMBER, "05762004"):
        out = run_gdi("token", "create", "--member", member, home=a, check=True).stdout
        deployment["secrets"][member] = out.strip().splitlines()[-1]
    for srv in deployment["servers"]:
        for secret in deployment["secrets"].values():
            r = requests.get(srv.url + "/uploads", headers=bearer(secret), timeout=30)
            assert (r.status_code, r.json()["uploads"]) == (200, [])


def test_an_upload_through_nginx_answers_the_same_on_every_server(deployment):
    nginx, secret = deployment["nginx"], deployment["secrets"][MEMBER]
    r = post(nginx.url, secret, FARM, "hofladen")
    assert r.status_code == 202, r.text
    jid = r.json()["id"]
    assert r.headers["Location"] == f"/gdi/uploads/{jid}"
    job = wait(deployment["servers"][0], secret, jid)
    assert job["status"] == "accepted"
    assert job["counts"] == {"read": 391, "accepted": MEMBERS[MEMBER], "repaired": 0,
                             "rejected": 391 - MEMBERS[MEMBER]}
    answers = [status(srv, secret, jid) for srv in deployment["servers"]]
    assert [(j["status"], j["counts"]) for j in answers] == [(job["status"], job["counts"])] * 3
    reports = []
    for srv in deployment["servers"]:
        rj = requests.get(f"{srv.url}/uploads/{jid}/report.json", headers=bearer(secret), timeout=30)
        rh = requests.get(f"{srv.url}/uploads/{jid}/report.html?lang=en", headers=bearer(secret), timeout=30)
        assert (rj.status_code, rh.status_code) == (200, 200)
        assert rh.headers["Content-Type"].startswith("text/html")
        reports.append((rj.json(), rh.text))
    assert reports[0] == reports[1] == reports[2]
    deployment["jobs"]["hofladen"] = jid
    elapsed("first upload")


def test_kill_9_of_the_server_running_a_large_upload(deployment, tmp_path):
    nginx, secret, servers = deployment["nginx"], deployment["secrets"][MEMBER], deployment["servers"]
    big = _big_upload(tmp_path / "gross.gpkg", DATA, n=300_000)
    before = store_text()
    r = post(nginx.url, secret, big, "gross")
    assert r.status_code == 202, r.text
    jid = r.json()["id"]
    deadline = time.time() + 120
    while (job := status(servers[0], secret, jid))["status"] != "running":
        assert job["status"] == "queued" and time.time() < deadline, job
        time.sleep(0.1)
    pid = state_rows(deployment["homes"][0], "SELECT pid FROM jobs WHERE id = ?", (jid,))[0][0]
    assert _alive(pid)
    victim = next(s for s in servers if s.proc.pid == _server_of(pid))
    os.kill(victim.proc.pid, signal.SIGKILL)
    killed = time.monotonic()
    victim.proc.wait(10)
    survivor = next(s for s in servers if s is not victim)
    while (job := status(survivor, secret, jid))["status"] == "running":
        assert time.monotonic() - killed < FAILED_WITHIN, job
        time.sleep(0.2)
    ended_after = time.monotonic() - killed
    assert job["status"] == "failed", job
    assert "interrupted" in job["message_en"] and "abgebrochen" in job["message"], job
    assert not _alive(pid)
    assert store_text() == before
    versions = requests.get(f"{survivor.url}/datasets/supply_points/{MEMBER}/gross/versions",
                            headers=bearer(secret), timeout=30).json()["versions"]
    assert versions == []
    while (mine := next(j for j in queue_jobs(deployment["store"]) if j["jid"] == jid))["status"] == "doing":
        assert time.monotonic() - killed < STALLED_AFTER + 10 / 3 + SWEEP + 10, mine
        time.sleep(0.2)
    assert mine["status"] == "failed"
    assert [j for j in queue_jobs(deployment["store"]) if j["status"] == "doing"] == []
    print(f"job failed {ended_after:.1f} s after the kill")
    # the machine comes back (same address, as nginx's upstream names it)
    servers[servers.index(victim)] = Server(victim.home, victim.port)
    deployment["jobs"]["gross"] = jid
    elapsed("kill -9")


def test_new_data_is_read_through_the_replica(deployment):
    from gdi import devdb

    nginx, secret, servers = deployment["nginx"], deployment["secrets"]["05762004"], deployment["servers"]
    r = post(nginx.url, secret, FARM, "hoexter")
    assert r.status_code == 202, r.text
    jid = r.json()["id"]
    job = wait(servers[1], secret, jid)
    assert job["status"] == "accepted" and job["counts"]["accepted"] == MEMBERS["05762004"], job
    deployment["jobs"]["hoexter"] = jid
    devdb.wait_for_replay(deployment["primary"], deployment["replica"])
    on_replica = int(psql(deployment["replica"].port, deployment["database"], "SELECT count(*) FROM gdi.supply_points"))
    on_primary = int(psql(deployment["primary"].port, deployment["database"], "SELECT count(*) FROM gdi.supply_points"))
    assert on_replica == on_primary == MEMBERS[MEMBER] + MEMBERS["05762004"]
    for base in [nginx.url] + [s.url for s in servers]:
        page = requests.get(base + "/collections/supply_points/items", params={"f": "json", "limit": 1}, timeout=30)
        assert page.status_code == 200 and page.json()["numberMatched"] == on_replica, base
        mine = requests.get(base + "/collections/supply_points/items",
                            params={"f": "json", "limit": 100, "member": "05762004"}, timeout=30)
        assert mine.status_code == 200 and mine.json()["numberMatched"] == MEMBERS["05762004"], base
    assert psql(deployment["replica"].port, "postgres", "SELECT pg_is_in_recovery()") == "t"
    elapsed("replica")


def answers_of(srv: Server, deployment) -> dict:
    """Everything a member asks about its uploads and datasets, as srv answers it."""
    out = {}
    for member, secret in deployment["secrets"].items():
        h = bearer(secret)
        listed = requests.get(srv.url + "/uploads", headers=h, timeout=30)
        assert listed.status_code == 200
        out[member, "list"] = listed.json()
        for u in listed.json()["uploads"]:
            jid = u["id"]
            for path in ("", "/report.json", "/report.html?lang=de", "/report.html?lang=en"):
                r = requests.get(f"{srv.url}/uploads/{jid}{path}", headers=h, timeout=30)
                out[member, jid, path] = (r.status_code, r.json() if "html" not in path else r.text)
        for dataset in ("hofladen", "gross", "hoexter"):
            r = requests.get(f"{srv.url}/datasets/supply_points/{member}/{dataset}/versions", headers=h, timeout=30)
            out[member, dataset] = (r.status_code, r.json())
    return out


def test_a_machine_that_lost_its_gdi_home_answers_the_same(deployment):
    servers = deployment["servers"]
    srv = servers[2]
    before = answers_of(srv, deployment)
    listed = before[MEMBER, "list"]["uploads"]
    assert sorted(u["id"] for u in listed) == sorted([deployment["jobs"]["hofladen"], deployment["jobs"]["gross"]])
    assert before[MEMBER, "hofladen"][0] == 200 and len(before[MEMBER, "hofladen"][1]["versions"]) == 1
    srv.stop()
    shutil.rmtree(srv.home)
    srv.home.mkdir()
    (srv.home / "store-url").write_text(deployment["store"])       # what a fresh machine is given
    servers[2] = Server(srv.home, srv.port)
    after = answers_of(servers[2], deployment)
    assert after == before
    assert answers_of(servers[0], deployment) == before
    elapsed("lost GDI_HOME")


def test_every_link_through_nginx_carries_the_public_url(deployment):
    nginx, servers = deployment["nginx"], deployment["servers"]
    secret = deployment["secrets"][MEMBER]
    public = nginx.url
    assert public == f"http://127.0.0.1:{nginx.port}/gdi"
    crawl = Crawl(public, [s.port for s in servers])
    r = post(public, secret, FARM, "nochmal")
    assert r.status_code == 202, r.text
    crawl.check(r)
    jid = r.json()["id"]
    assert r.headers["Location"] == f"/gdi/uploads/{jid}"
    job = wait(servers[0], secret, jid)
    assert job["status"] == "accepted"
    answer = crawl.get(urljoin(public, r.headers["Location"]), headers=bearer(secret))
    links = [link["href"] for link in answer.json()["links"]]
    assert links == [f"/gdi/uploads/{jid}", f"/gdi/uploads/{jid}/report.json",
                     f"/gdi/uploads/{jid}/report.html?lang=de", f"/gdi/uploads/{jid}/report.html?lang=en"]
    for href in links:
        assert crawl.get(urljoin(public, href), headers=bearer(secret)).status_code == 200
    crawl.get("/uploads", headers=bearer(secret))
    items = crawl.get("/collections/supply_points/items?f=json&limit=2").json()
    pages = [items]
    while len(pages) < 3:
        nxt = next(link["href"] for link in pages[-1]["links"] if link["rel"] == "next")
        assert nxt.startswith(public + "/collections/supply_points/items?")
        pages.append(crawl.get(nxt).json())
    assert len({f["id"] for p in pages for f in p["features"]}) == 6
    fid = items["features"][0]["id"]
    for path in ("/", "/?f=json", "/?f=html", "/collections?f=json", "/collections?f=html",
                 "/collections/supply_points?f=json", "/collections/supply_points/items?f=html&limit=3",
                 f"/collections/supply_points/items/{fid}?f=json", f"/collections/supply_points/items/{fid}?f=html",
                 "/viewer", "/viewer?lang=en", "/upload"):
        assert crawl.get(path).status_code == 200, path
    assert len(crawl.seen) >= 20 and crawl.links, crawl.seen
    assert nginx.error_log().count("[error]") == 0, nginx.error_log()
    elapsed("links")
