"""Two `gdi serve` processes on one PostGIS: stateless workers behind a load balancer."""
from __future__ import annotations

import time

import requests

from conftest import Server, free_port, fresh_store, run_gdi


def test_two_servers_share_one_database(tmp_path, real_data, request):
    home = tmp_path / "home"
    home.mkdir()
    store = fresh_store("postgis", request)
    (home / "store-url").write_text(store)
    run_gdi("ingest", str(real_data / "boundaries" / "vg250ew_gemeinden_marburg-biedenkopf.geojson"),
            "--collection", "municipalities", "--member", "06534", "--admin", home=home, store=store, check=True)
    a, b = Server(home, free_port()), Server(home, free_port())
    try:
        def count(srv, collection):
            r = requests.get(f"{srv.url}/collections/{collection}/items", params={"f": "json", "limit": 1}, timeout=30)
            assert r.status_code == 200
            return r.json()["numberMatched"]

        assert count(a, "municipalities") == count(b, "municipalities") == 22
        assert count(a, "supply_points") == count(b, "supply_points") == 0
        secret = run_gdi("token", "create", "--member", "06534", home=home, store=store,
                         check=True).stdout.strip().splitlines()[-1]
        lidl = real_data / "poi" / "lidl_marburg-biedenkopf_hoexter_umland.geojson"
        with open(lidl, "rb") as fh:
            r = requests.post(f"{a.url}/uploads", headers={"Authorization": f"Bearer {secret}"},
                              data={"collection": "supply_points"}, files={"file": (lidl.name, fh)}, timeout=60)
        assert r.status_code == 202
        jid = r.json()["id"]
        deadline = time.time() + 120
        while time.time() < deadline:     # the job may run on either server; both answer for it
            job = requests.get(f"{b.url}/uploads/{jid}", headers={"Authorization": f"Bearer {secret}"}, timeout=30).json()
            if job["status"] not in {"queued", "running"}:
                break
            time.sleep(0.3)
        assert job["status"] == "accepted"
        n = job["counts"]["accepted"]
        assert n == 10
        assert count(a, "supply_points") == count(b, "supply_points") == n      # visible on both at once
        time.sleep(2)                                                            # both reloaded their config
        ext = [requests.get(f"{s.url}/collections/supply_points?f=json", timeout=30).json()["extent"]["spatial"]["bbox"]
               for s in (a, b)]
        assert ext[0] == ext[1] and ext[0][0][0] > 8
    finally:
        a.stop()
        b.stop()
