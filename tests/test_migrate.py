"""gdi migrate: GeoPackage → PostGIS → GeoPackage, versions included, counts verified."""
from __future__ import annotations

import json

from conftest import fresh_store, run_gdi

MB = "boundaries/vg250ew_gemeinden_marburg-biedenkopf.geojson"
FARM = "poi/farmshops_marburg-biedenkopf_hoexter_umland.geojson"
LIDL = "poi/lidl_marburg-biedenkopf_hoexter_umland.geojson"


def items(home, store, collection, monkeypatch):
    from gdi.collections import get_collection
    from gdi.store import open_store

    monkeypatch.setenv("GDI_HOME", str(home))
    g = open_store(store or "gpkg").read(get_collection(collection))
    return g.drop(columns=["fid"]).to_json(sort_keys=True)


def history(home, store):
    out = run_gdi("history", "--collection", "supply_points", "--member", "06534", "--json", home=home, store=store,
                  check=True).stdout
    return [{k: v for k, v in h.items()} for h in json.loads(out)]


def test_round_trip_keeps_data_and_versions(tmp_path, real_data, request, monkeypatch):
    home = tmp_path / "a"
    home.mkdir()
    for args in ((MB, "municipalities", "vg"), (FARM, "supply_points", "shops"), (LIDL, "supply_points", "shops")):
        run_gdi("ingest", str(real_data / args[0]), "--collection", args[1], "--member", "06534", "--dataset", args[2],
                *(["--admin"] if args[1] == "municipalities" else []), home=home, store=None, check=True)
    run_gdi("rollback", "--collection", "supply_points", "--member", "06534", "--dataset", "shops",
            home=home, store=None, check=True)
    url = fresh_store("postgis", request)
    proc = run_gdi("migrate", "--to", url, home=home, store=None, check=True)
    assert "copied 2 datasets, 4 versions" in proc.stdout and "counts verified" in proc.stdout
    assert history(home, url) == history(home, None)
    for c in ("municipalities", "supply_points"):
        assert items(home, url, c, monkeypatch) == items(home, None, c, monkeypatch)
    empty = tmp_path / "c"          # PostGIS now keeps the originals: a server without home a reads them
    empty.mkdir()
    for version, sent in ((1, FARM), (2, LIDL)):
        out = tmp_path / f"original-{version}"
        run_gdi("original", "--collection", "supply_points", "--member", "06534", "--dataset", "shops",
                "--version", str(version), "--out", str(out), home=empty, store=url, check=True)
        assert out.read_bytes() == (real_data / sent).read_bytes()
    again = run_gdi("migrate", "--to", url, home=home, store=None)
    assert again.returncode != 0 and "already holds data" in again.stderr

    back = tmp_path / "b"
    back.mkdir()
    run_gdi("migrate", "--to", "gpkg", home=back, store=url, check=True)
    assert history(back, None) == history(home, None)
    for c in ("municipalities", "supply_points"):
        assert items(back, None, c, monkeypatch) == items(home, None, c, monkeypatch)
