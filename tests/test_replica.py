"""`gdi serve` on a PostgreSQL primary with a real streaming replica (GDI_STORE_READ): the reads go to the
replica, writes and the data-version check to the primary, and no answer — 200, 304, a cached page, a
tile, a download — ever shows data older than the version the primary has published, even while the
replica's replay is paused."""
from __future__ import annotations

import csv
import io
import json
import math
import time

import mapbox_vector_tile
import pytest
import requests

from cluster import psql as psql_port
from cluster import upload
from conftest import Server, free_port, fresh_store, run_gdi

LIDL = "poi/lidl_marburg-biedenkopf_hoexter_umland.geojson"
LIDL_IN_MARBURG = 10            # of the file's points, those inside Marburg-Biedenkopf (the member 06534)
TOP_ZOOM = 14                   # supply_points' highest tile level: unthinned, every feature of the box


def psql(db, database: str, sql: str) -> str:
    return psql_port(db.port, database, sql)


def scans(db, database: str, table: str) -> int:
    """Sequential and index scans of gdi.<table> counted by this server (a standby counts its own)."""
    return int(psql(db, database, "SELECT coalesce(sum(coalesce(seq_scan, 0) + coalesce(idx_scan, 0)), 0) "
                                  f"FROM pg_stat_user_tables WHERE schemaname = 'gdi' AND relname = '{table}'"))


def wait_for_scans(db, database: str, table: str, at_least: int, timeout: float = 30) -> int:
    """A backend reports its counts when it goes idle (at most once a second): wait for them."""
    deadline = time.time() + timeout
    while (n := scans(db, database, table)) < at_least and time.time() < deadline:
        time.sleep(0.2)
    return n


def items(srv: Server, collection: str = "supply_points", etag: str | None = None, **params) -> requests.Response:
    headers = {"If-None-Match": etag} if etag else {}
    return requests.get(f"{srv.url}/collections/{collection}/items", params={"f": "json", "limit": 1000, **params},
                        headers=headers, timeout=30)


def tile_ids(srv: Server, feature: dict) -> set[int]:
    """The fids in the top-level WebMercatorQuad tile holding feature's point."""
    lon, lat = feature["geometry"]["coordinates"]
    n = 2 ** TOP_ZOOM
    col = int((lon + 180) / 360 * n)
    row = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    r = requests.get(f"{srv.url}/collections/supply_points/tiles/WebMercatorQuad/{TOP_ZOOM}/{row}/{col}?f=mvt",
                     timeout=30)
    assert r.status_code == 200
    return {f["id"] for f in mapbox_vector_tile.decode(r.content).get("supply_points", {}).get("features", [])}


def download_rows(srv: Server) -> int:
    r = requests.get(f"{srv.url}/collections/supply_points/download", params={"f": "csv"}, timeout=60)
    assert r.status_code == 200
    return len(list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))) - 1


def wait_for_map(srv: Server, version: int, timeout: float = 120) -> bytes:
    """The served map once it shows data version ``version``."""
    deadline = time.time() + timeout
    while requests.get(f"{srv.url}/viewer/data-version", timeout=30).text.strip() != str(version):
        assert time.time() < deadline, f"the map does not show data version {version}"
        time.sleep(0.2)
    return requests.get(f"{srv.url}/viewer", timeout=30).content


def serve_replicated(home, real_data, request, primary, replica) -> tuple[Server, str, str]:
    """A `gdi serve` with GDI_STORE on a new database of the primary and GDI_STORE_READ on the replica,
    the boundaries ingested; (server, database name, upload token). GDI_STORE_READ must be set by the
    caller's monkeypatch, so it is returned as the database's URL on the replica is known only here."""
    from gdi import devdb

    home.mkdir()
    store = fresh_store("postgis", request)
    database = store.rsplit("/", 1)[1]
    (home / "store-url").write_text(store)
    run_gdi("ingest", str(real_data / "boundaries" / "vg250ew_gemeinden_marburg-biedenkopf.geojson"),
            "--collection", "municipalities", "--member", "06534", "--admin", home=home, store=store, check=True)
    secret = run_gdi("token", "create", "--member", "06534", home=home, store=store,
                     check=True).stdout.strip().splitlines()[-1]
    devdb.wait_for_replay(primary, replica)
    request.getfixturevalue("monkeypatch").setenv(
        "GDI_STORE_READ", f"postgresql://postgres@127.0.0.1:{replica.port}/{database}")
    return Server(home, free_port()), database, secret


@pytest.fixture
def replicated(tmp_path, real_data, request, postgis, postgis_replica):
    """serve_replicated on the session's primary and replica; yields (server, primary, replica, database, token)."""
    srv, database, secret = serve_replicated(tmp_path / "home", real_data, request, postgis, postgis_replica)
    try:
        yield srv, postgis, postgis_replica, database, secret
    finally:
        psql(postgis_replica, "postgres", "SELECT pg_wal_replay_resume()")
        srv.stop()


def test_reads_go_to_the_replica(replicated):
    srv, primary, replica, database, _ = replicated
    assert psql(replica, "postgres", "SELECT pg_is_in_recovery()") == "t"
    on_replica, on_primary = scans(replica, database, "municipalities"), scans(primary, database, "municipalities")
    for offset in range(20):      # 20 different pages: none of them in the response cache
        r = items(srv, "municipalities", offset=offset, limit=1)
        assert r.status_code == 200 and r.json()["numberMatched"] == 22
    assert requests.get(f"{srv.url}/collections/municipalities/items/3?f=json", timeout=30).status_code == 200
    assert wait_for_scans(replica, database, "municipalities", on_replica + 21) >= on_replica + 21
    time.sleep(1.5)                                         # what the primary would have counted by now
    assert scans(primary, database, "municipalities") == on_primary
    names = psql(replica, "postgres", f"SELECT string_agg(DISTINCT application_name, ',') FROM pg_stat_activity "
                                      f"WHERE datname = '{database}'")
    assert names == "gdi-read"
    # the data version is checked on the primary, by connections of their own name
    assert "gdi" in psql(primary, "postgres", "SELECT string_agg(DISTINCT application_name, ',') FROM "
                                              f"pg_stat_activity WHERE datname = '{database}'").split(",")


def test_no_answer_is_older_than_the_published_version(replicated, real_data):
    from gdi import devdb

    srv, primary, replica, database, secret = replicated
    r0 = items(srv)
    assert r0.status_code == 200 and r0.json()["numberMatched"] == 0
    e0 = r0.headers["ETag"]
    again = items(srv, etag=e0)
    assert again.status_code == 304, (e0, again.headers.get("ETag"))

    # an upload is on the very next answer, although the replica replays it a moment later
    job = upload(srv, secret, real_data / LIDL, "lidl")
    assert job["status"] == "accepted" and job["counts"]["accepted"] == LIDL_IN_MARBURG
    r1 = items(srv, etag=e0)
    assert r1.status_code == 200 and r1.json()["numberMatched"] == LIDL_IN_MARBURG
    e1 = r1.headers["ETag"]
    assert e1 != e0
    for _ in range(20):     # revalidating: never the old tag, never old data
        r = items(srv, etag=e0)
        assert r.status_code == 200 and r.headers["ETag"] == e1 and r.json()["numberMatched"] == LIDL_IN_MARBURG
        assert items(srv, etag=e1).status_code == 304
    version = int(psql(primary, database, "SELECT value FROM gdi.state WHERE key = 'data_version'"))
    map_before = wait_for_map(srv, version)
    first = {f["id"] for f in r1.json()["features"]}
    assert len(first) == LIDL_IN_MARBURG
    shop = min(r1.json()["features"], key=lambda f: f["id"])
    assert shop["id"] in tile_ids(srv, shop)
    assert download_rows(srv) == LIDL_IN_MARBURG

    # the replica stops replaying: what the primary publishes now is not on the replica
    devdb.wait_for_replay(primary, replica)
    psql(replica, "postgres", "SELECT pg_wal_replay_pause()")
    deadline = time.time() + 10
    while psql(replica, "postgres", "SELECT pg_get_wal_replay_pause_state()") != "paused":
        assert time.time() < deadline, "replay did not pause"
        time.sleep(0.05)
    job = upload(srv, secret, real_data / LIDL, "lidl-zwei")
    assert job["status"] == "accepted" and job["counts"]["accepted"] == LIDL_IN_MARBURG
    assert psql(replica, database, "SELECT count(*) FROM gdi.supply_points") == str(LIDL_IN_MARBURG)   # behind
    assert psql(primary, database, "SELECT count(*) FROM gdi.supply_points") == str(2 * LIDL_IN_MARBURG)
    r2 = items(srv, etag=e1)
    assert r2.status_code == 200 and r2.json()["numberMatched"] == 2 * LIDL_IN_MARBURG
    e2 = r2.headers["ETag"]
    assert e2 not in {e0, e1}
    both = {f["id"] for f in r2.json()["features"]}
    assert len(both) == 2 * LIDL_IN_MARBURG and first < both
    for _ in range(20):
        for old in (e0, e1):
            r = items(srv, etag=old)
            assert r.status_code == 200 and r.headers["ETag"] == e2
            assert r.json()["numberMatched"] == 2 * LIDL_IN_MARBURG
        assert items(srv, etag=e2).status_code == 304
        page = items(srv, limit=5, offset=15)           # a page of its own: not cached yet, read afresh
        assert page.status_code == 200 and page.json()["numberMatched"] == 2 * LIDL_IN_MARBURG
        assert len(page.json()["features"]) == 5
    # the same shop again, in the second dataset: its new fid is in the item route and in the tile
    twin = next(f for f in r2.json()["features"] if f["id"] not in first
                and f["geometry"]["coordinates"] == shop["geometry"]["coordinates"])
    one = requests.get(f"{srv.url}/collections/supply_points/items/{twin['id']}?f=json", timeout=30)
    assert one.status_code == 200 and one.json()["id"] == twin["id"]       # not the replica's 404
    assert {shop["id"], twin["id"]} <= tile_ids(srv, shop)
    assert download_rows(srv) == 2 * LIDL_IN_MARBURG
    # a CQL2 JSON search is a POST: not cached, and not older either
    search = requests.post(f"{srv.url}/collections/supply_points/items?f=json&limit=100&filter-lang=cql2-json",
                           data=json.dumps({"op": "=", "args": [{"property": "dataset"}, "lidl-zwei"]}),
                           headers={"Content-Type": "application/query-cql-json"}, timeout=30)
    assert search.status_code == 200 and search.json()["numberMatched"] == LIDL_IN_MARBURG
    assert {f["id"] for f in search.json()["features"]} == both - first
    # the map is rebuilt from the primary too: its points are the new ones (the replica's would be the old page)
    assert wait_for_map(srv, version + 1) != map_before
    assert psql(replica, database, "SELECT count(*) FROM gdi.supply_points") == str(LIDL_IN_MARBURG)   # still

    # replay resumes: the same version, the same tag; the replica answers again
    psql(replica, "postgres", "SELECT pg_wal_replay_resume()")
    devdb.wait_for_replay(primary, replica)
    assert items(srv, etag=e2).status_code == 304
    before = scans(replica, database, "supply_points")
    page = items(srv, limit=3, offset=4)
    assert page.status_code == 200 and page.json()["numberMatched"] == 2 * LIDL_IN_MARBURG
    assert wait_for_scans(replica, database, "supply_points", before + 1) >= before + 1


def test_a_replica_that_stops_leaves_the_reads_to_the_primary(tmp_path, real_data, request, postgis):
    from gdi import devdb

    replica = devdb.start_replica(postgis)
    srv = None
    try:
        srv, database, _ = serve_replicated(tmp_path / "home", real_data, request, postgis, replica)
        assert items(srv, "municipalities", limit=1).json()["numberMatched"] == 22
        replica.stop(remove=False)
        slowest, started = 0.0, time.time()
        offset = 0
        while time.time() - started < 16:       # past the 10 s the failed replica is left alone, and its retry
            t0 = time.time()
            r = items(srv, "municipalities", limit=1, offset=offset)      # a page the cache has not seen
            slowest = max(slowest, time.time() - t0)
            assert r.status_code == 200 and r.json()["numberMatched"] == 22
            assert len(r.json()["features"]) == (1 if offset < 22 else 0)
            offset += 1
        print(f"replica down: {offset} answers in 16 s, the slowest {slowest:.2f} s")
        assert slowest < 4, f"an answer took {slowest:.1f} s with the replica down"
    finally:
        if srv is not None:
            srv.stop()
        replica.stop()


def test_readers_during_uploads_never_go_back(replicated, real_data):
    """Four readers revalidate the items while three uploads land on a replica that applies every commit a
    second late (recovery_min_apply_delay): every answer (200 or 304) shows at least what the primary
    held when it was asked, and one ETag always stands for one count."""
    import threading

    import psycopg

    srv, _, replica, _, secret = replicated
    counts: dict[str, int] = {}         # ETag → numberMatched seen under it
    problems: list[str] = []
    answers = [0]
    stop = threading.Event()
    lock = threading.Lock()

    def reader() -> None:
        session = requests.Session()
        held: str | None = None
        with psycopg.connect(srv.store, autocommit=True) as primary:
            while not stop.is_set():
                floor = primary.execute("SELECT CASE WHEN to_regclass('gdi.supply_points') IS NULL THEN 0 ELSE "
                                        "(SELECT count(*) FROM gdi.supply_points) END").fetchone()[0]
                r = session.get(f"{srv.url}/collections/supply_points/items", params={"f": "json", "limit": 1},
                                headers={"If-None-Match": held} if held else {}, timeout=30)
                tag = r.headers.get("ETag", "")
                with lock:
                    answers[0] += 1
                    if r.status_code == 200:
                        n = r.json()["numberMatched"]
                        if counts.setdefault(tag, n) != n:
                            problems.append(f"{tag} stood for {counts[tag]} and {n}")
                    elif r.status_code != 304:
                        problems.append(f"status {r.status_code}")
                        continue
                    seen = counts.get(tag)
                    if seen is None or seen < floor:
                        problems.append(f"{r.status_code} showed {seen} when the primary held {floor}")
                held = tag

    readers = [threading.Thread(target=reader) for _ in range(4)]
    psql(replica, "postgres", "ALTER SYSTEM SET recovery_min_apply_delay = '1s'")
    psql(replica, "postgres", "SELECT pg_reload_conf()")
    for t in readers:
        t.start()
    try:
        for i in range(1, 4):
            assert upload(srv, secret, real_data / LIDL, f"lidl-{i}")["status"] == "accepted"
            time.sleep(1.5)
    finally:
        stop.set()
        for t in readers:
            t.join(60)
        psql(replica, "postgres", "ALTER SYSTEM RESET recovery_min_apply_delay")
        psql(replica, "postgres", "SELECT pg_reload_conf()")
    assert problems == []
    assert sorted(set(counts.values())) == [0, 10, 20, 30] and answers[0] > 100
