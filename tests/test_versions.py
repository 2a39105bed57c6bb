"""Every accepted upload is a version; rollback restores exactly what was published."""
from __future__ import annotations

import json
import os

import pytest

from conftest import run_gdi
from gdi.collections import get_collection
from gdi.store import open_store

MB = "vg250ew_gemeinden_marburg-biedenkopf.geojson"
FARM = "farmshops_marburg-biedenkopf_hoexter_umland.geojson"
LIDL = "lidl_marburg-biedenkopf_hoexter_umland.geojson"


@pytest.fixture
def home(gdi_home, real_data):
    run_gdi("ingest", str(real_data / "boundaries" / MB), "--collection", "municipalities", "--member", "06534", "--admin",
            home=gdi_home, check=True)
    return gdi_home


def live(home):
    g = open_store().read(get_collection("supply_points"))
    return g.drop(columns=["fid", "updated"]).sort_values(["name", "category"], na_position="first").reset_index(drop=True)


def test_history_rollback_and_audit(home, real_data):
    run_gdi("ingest", str(real_data / "poi" / FARM), "--collection", "supply_points", "--member", "06534",
            "--dataset", "shops", home=home, check=True)
    first = live(home)
    run_gdi("ingest", str(real_data / "poi" / LIDL), "--collection", "supply_points", "--member", "06534",
            "--dataset", "shops", home=home, check=True)
    second = live(home)
    assert len(first) == 42 and len(second) == 10

    hist = json.loads(run_gdi("history", "--collection", "supply_points", "--member", "06534", "--json",
                              home=home, check=True).stdout)
    assert [(v["version"], v["action"], v["count"], v["live"], v["file"]) for v in hist] == [
        (1, "upload", 42, False, FARM), (2, "upload", 10, True, LIDL)]
    assert all(len(v["sha256"]) == 64 and v["uploader"].startswith("cli") for v in hist)
    for v, sent in zip(hist, (FARM, LIDL)):          # the originals, byte for byte, wherever the store keeps them
        out = home.parent / f"original-{v['version']}"
        run_gdi("original", "--collection", "supply_points", "--member", "06534", "--dataset", "shops",
                "--version", str(v["version"]), "--out", str(out), home=home, check=True)
        assert out.read_bytes() == (real_data / "poi" / sent).read_bytes()
        assert v["original"] == f"originals/supply_points/06534/shops/{v['report']}-{sent}"
        assert (home / v["original"]).exists() is (os.environ.get("GDI_STORE") is None)

    proc = run_gdi("rollback", "--collection", "supply_points", "--member", "06534", "--dataset", "shops",
                   home=home, check=True)
    assert "version 1 restored as version 3 (42 features)" in proc.stdout
    import pandas.testing as pd_testing
    pd_testing.assert_frame_equal(live(home), first)

    run_gdi("rollback", "--collection", "supply_points", "--member", "06534", "--dataset", "shops", "--to", "2",
            home=home, check=True)
    pd_testing.assert_frame_equal(live(home), second)
    hist = json.loads(run_gdi("history", "--collection", "supply_points", "--member", "06534", "--dataset", "shops",
                              "--json", home=home, check=True).stdout)
    assert [(v["version"], v["action"], v["restored_from"], v["live"]) for v in hist] == [
        (1, "upload", None, False), (2, "upload", None, False), (3, "rollback", 1, False), (4, "rollback", 2, True)]


def test_rollback_of_unknown_versions_is_refused(home, real_data):
    run_gdi("ingest", str(real_data / "poi" / LIDL), "--collection", "supply_points", "--member", "06534",
            "--dataset", "shops", home=home, check=True)
    before = live(home)
    for extra, message in ((["--to", "7"], "has no version 7 (has 1)"), ([], "has no version before 1")):
        proc = run_gdi("rollback", "--collection", "supply_points", "--member", "06534", "--dataset", "shops",
                       *extra, home=home)
        assert proc.returncode != 0 and message in proc.stderr
    proc = run_gdi("rollback", "--collection", "supply_points", "--member", "05762", "--dataset", "shops", home=home)
    assert proc.returncode != 0 and "no versions of supply_points/05762/shops" in proc.stderr
    assert live(home).equals(before)


def test_geopackage_rtree_matches_the_features_after_bulk_writes(tmp_path, monkeypatch, real_data):
    """Replace and rollback fill the R-tree in bulk (its triggers are off meanwhile): afterwards it holds
    exactly one entry per feature with that feature's bounds, and the six GeoPackage triggers are back,
    so other writers (GDAL, QGIS) keep it right too."""
    import sqlite3

    import shapely

    from gdi.store import gpkg_binary

    monkeypatch.setenv("GDI_HOME", str(tmp_path))
    monkeypatch.delenv("GDI_STORE", raising=False)
    run_gdi("ingest", str(real_data / "boundaries" / MB), "--collection", "municipalities", "--member", "06534", "--admin",
            home=tmp_path, store=None, check=True)
    for name in (FARM, LIDL, FARM):
        run_gdi("ingest", str(real_data / "poi" / name), "--collection", "supply_points", "--member", "06534",
                "--dataset", "shops", home=tmp_path, store=None, check=True)
    run_gdi("ingest", str(real_data / "poi" / LIDL), "--collection", "supply_points", "--member", "06534",
            "--dataset", "discount", home=tmp_path, store=None, check=True)
    run_gdi("rollback", "--collection", "supply_points", "--member", "06534", "--dataset", "shops",
            home=tmp_path, store=None, check=True)
    gpkg = open_store().path
    conn = sqlite3.connect(gpkg)
    features = conn.execute("SELECT fid, geom FROM supply_points ORDER BY fid").fetchall()
    entries = conn.execute("SELECT id, minx, maxx, miny, maxy FROM rtree_supply_points_geom ORDER BY id").fetchall()
    assert len(features) == 10 + 10 and [e[0] for e in entries] == [f[0] for f in features]
    for (fid, blob), (_, minx, maxx, miny, maxy) in zip(features, entries):
        x, y = shapely.get_coordinates(gpkg_binary.decode([blob]))[0]
        # the R-tree keeps 32-bit floats, rounded outwards (one step is 0.03 m at x, 0.5 m at y here)
        assert minx <= x <= maxx and miny <= y <= maxy and maxx - minx <= 0.0625 and maxy - miny <= 1.0
    triggers = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    assert {f"rtree_supply_points_geom_{t}" for t in
            ("insert", "update1", "update2", "update3", "update4", "delete")} <= triggers
    # fids are never reused (AUTOINCREMENT semantics): the first 42+10+42 rows were replaced
    assert features[0][0] > 42 + 10
    assert conn.execute("SELECT rtreecheck('rtree_supply_points_geom')").fetchone()[0] == "ok"
    conn.close()
    ogr = __import__("subprocess").run(["ogrinfo", "-ro", "-q", str(gpkg), "-sql",
                                        "SELECT HasSpatialIndex('supply_points', 'geom') AS idx"],
                                       capture_output=True, text=True, check=True).stdout
    assert "HasSpatialIndex (Integer) = 1" in ogr


def test_geopackage_rtree_small_and_large_replaces(tmp_path, monkeypatch):
    """Small changes to a large table go entry by entry, large ones rebuild the packed tree: both leave
    the R-tree answering exactly like the features' own bounds (SQLite's rtreecheck, and a box query)."""
    import sqlite3

    import geopandas as gpd
    import numpy as np
    import shapely

    monkeypatch.setenv("GDI_HOME", str(tmp_path))
    monkeypatch.delenv("GDI_STORE", raising=False)
    c = get_collection("supply_points")
    store = open_store()
    rng = np.random.default_rng(5)

    def points(n):
        xy = rng.uniform([470000, 5610000], [500000, 5640000], (n, 2))
        return gpd.GeoDataFrame({"name": [f"p{i}" for i in range(n)], "category": "farm_shop"},
                                geometry=gpd.GeoSeries(shapely.points(xy), crs=c.storage_crs))

    def check():
        conn = sqlite3.connect(store.path)
        assert conn.execute("SELECT rtreecheck('rtree_supply_points_geom')").fetchone()[0] == "ok"
        box = "minx <= 485000 AND maxx >= 480000 AND miny <= 5625000 AND maxy >= 5620000"
        via_rtree = [r[0] for r in conn.execute(f"SELECT id FROM rtree_supply_points_geom WHERE {box} ORDER BY id")]
        n = conn.execute("SELECT count(*) FROM rtree_supply_points_geom").fetchone()[0]
        conn.close()
        live = store.read(c)
        x, y = shapely.get_coordinates(live.geometry.values).T
        inside = live["fid"][(x >= 480000) & (x <= 485000) & (y >= 5620000) & (y <= 5625000)]
        assert n == len(live) and via_rtree == sorted(inside.tolist()) and len(via_rtree) > 0

    for step, (dataset, n) in enumerate([("big", 3000), ("small", 20), ("small", 25), ("big", 2000),
                                         ("small", 0 + 30)]):
        store.replace(c, "06534", dataset, points(n), updated=f"2026-01-0{step + 1}T00:00:00Z")
        check()
    store.delete(c, "06534", "small")
    check()
