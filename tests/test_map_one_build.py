"""Two `gdi serve` with two GDI_HOMEs on one PostGIS: one map build per data version for both, under a
PostgreSQL advisory lock, and both serve the same map; a builder that dies releases the lock with its
connection."""
from __future__ import annotations

import re
import subprocess
import sys
import time

import requests

from cluster import psql, upload
from conftest import Server, free_port, fresh_store, homes_on, run_gdi

LIDL = "poi/lidl_marburg-biedenkopf_hoexter_umland.geojson"


def stamp(srv: Server) -> str:
    r = requests.get(f"{srv.url}/viewer/data-version", timeout=30)
    return r.text.strip() if r.status_code == 200 else ""


def wait_for_stamp(servers: list[Server], version: int, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while any(stamp(s) != str(version) for s in servers):
        assert time.time() < deadline, f"maps still at {[stamp(s) for s in servers]}, not {version}"
        time.sleep(0.2)


def builds(srv: Server, version: int) -> int:
    """How often this server's log says it built the map for version (its fetches say so otherwise)."""
    return len(re.findall(rf"^gdi: map rebuilt for data version {version}$", srv.log_path.read_text(), re.M))


def fetches(srv: Server, version: int) -> int:
    return len(re.findall(rf"^gdi: map for data version {version} fetched from the store$",
                          srv.log_path.read_text(), re.M))


def test_one_build_for_two_servers(tmp_path, real_data, request, postgis):
    store = fresh_store("postgis", request)
    database = store.rsplit("/", 1)[1]
    homes = homes_on(store, tmp_path / "a", tmp_path / "b")
    run_gdi("ingest", str(real_data / "boundaries" / "vg250ew_gemeinden_marburg-biedenkopf.geojson"),
            "--collection", "municipalities", "--member", "06534", "--admin", home=homes[0], store=store, check=True)
    secret = run_gdi("token", "create", "--member", "06534", home=homes[0], store=store,
                     check=True).stdout.strip().splitlines()[-1]
    version = int(psql(postgis.port, database, "SELECT value FROM gdi.state WHERE key = 'data_version'"))
    a = Server(homes[0], free_port())
    b = Server(homes[1], free_port())
    holder = None
    try:
        # at start-up too: the second server installs the first one's build
        wait_for_stamp([a, b], version)
        assert (builds(a, version), builds(b, version), fetches(b, version)) == (1, 0, 1)

        assert upload(a, secret, real_data / LIDL, "lidl")["status"] == "accepted"
        version += 1
        wait_for_stamp([a, b], version)
        assert builds(a, version) + builds(b, version) == 1
        assert fetches(a, version) + fetches(b, version) == 1
        assert a.get("/viewer").content == b.get("/viewer").content            # the very same page
        # the server that did not run the upload published it in its own GDI_HOME too: same extent, records
        ext = [s.get("/collections/supply_points?f=json").json()["extent"]["spatial"]["bbox"] for s in (a, b)]
        assert ext[0] == ext[1] and 8 < ext[0][0][0] < ext[0][0][2] < 10, ext
        # each names its own address, and its fileIdentifier derives from it; all else (extent, dates) is one
        iso = [re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "ID",
                      s.get("/collections/supply_points/metadata").text.replace(s.url, "URL")) for s in (a, b)]
        assert iso[0] == iso[1] and "<gmd:westBoundLongitude>" in iso[0]
        assert a.get("/viewer?lang=en").content == b.get("/viewer?lang=en").content
        builder = a if builds(a, version) else b
        rows = psql(postgis.port, database, f"SELECT builder FROM gdi.map_builds WHERE data_version = {version}")
        assert len(rows.splitlines()) == 1 and rows.endswith(f":{builder.home}")
        names = psql(postgis.port, database, f"SELECT array_to_string(names, ',') FROM gdi.map_builds "
                                             f"WHERE data_version = {version}")
        assert names == "index.bands.json,index.en.bands.json,index.en.html,index.html"

        # a builder elsewhere holds the lock: nobody builds; it dies (kill -9): its lock goes with it
        holder = subprocess.Popen([sys.executable, "-c", (
            "import sys, time, psycopg\n"
            f"c = psycopg.connect({store!r}, autocommit=True)\n"
            "assert c.execute(\"SELECT pg_try_advisory_lock(hashtext('gdi'), hashtext('map build'))\").fetchone()[0]\n"
            "print('locked', flush=True)\n"
            "time.sleep(600)\n")], stdout=subprocess.PIPE, text=True)
        assert holder.stdout.readline().strip() == "locked"
        assert upload(a, secret, real_data / LIDL, "lidl-zwei")["status"] == "accepted"
        version += 1
        time.sleep(6)       # three refresh intervals: both servers are waiting for the lock
        assert (stamp(a), stamp(b)) == (str(version - 1), str(version - 1))
        assert builds(a, version) + builds(b, version) == 0
        holder.kill()
        holder.wait()
        wait_for_stamp([a, b], version, timeout=60)
        assert builds(a, version) + builds(b, version) == 1
        assert a.get("/viewer").content == b.get("/viewer").content
    finally:
        if holder is not None and holder.poll() is None:
            holder.kill()
        a.stop()
        b.stop()
