"""Write rights rest on the county's authority: the hostile attempts of a member, refused.

A municipality's token (06534014, Marburg) tried to widen its own territory by uploading
a rectangle 8–10°E, 50–52.5°N as its municipality, to publish points in Kreis Höxter,
Frankfurt and Kassel, and to add further boundaries for its own AGS. Every attempt is
refused and nothing published changes — on both stores.
"""
from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import requests
import shapely

from conftest import DATA, Server, free_port, fresh_store, run_gdi, store_text
from fixtures import feature_collection, write_json
from test_uploads import bearer, report_of, token, upload, wait

MB = DATA / "boundaries" / "vg250ew_gemeinden_marburg-biedenkopf.geojson"
HX = DATA / "boundaries" / "vg250ew_gemeinden_hoexter.geojson"
FARM = DATA / "poi" / "farmshops_marburg-biedenkopf_hoexter_umland.geojson"
COUNTY_ONLY = "only the county (an admin token) may write the collection municipalities"


@pytest.fixture(scope="module", params=["gpkg", "postgis"])
def county(request, tmp_path_factory):
    """Both counties' boundaries (by the county) and Marburg-Biedenkopf's farm shops, served."""
    home = tmp_path_factory.mktemp(f"rights-{request.param}") / "home"
    home.mkdir(parents=True)
    store = fresh_store(request.param, request)
    (home / "store-url").write_text(store or "")
    for f, m in ((MB, "06534"), (HX, "05762")):
        run_gdi("ingest", str(f), "--collection", "municipalities", "--member", m, "--admin", "--dataset", "vg250ew",
                home=home, check=True, store=store)
    run_gdi("ingest", str(FARM), "--collection", "supply_points", "--member", "06534", "--dataset", "farms",
            home=home, check=True, store=store)
    srv = Server(home, free_port())
    srv.store_url = store
    srv.tokens = {"marburg": token(home, "06534014", "--name", "Stadt Marburg"),
                  "admin": token(home, "06534", "--admin", "--name", "Kreis GIS")}
    yield srv
    srv.stop()


def published(srv, monkeypatch) -> str:
    """Everything a reader can see: features, versions and datasets of every collection."""
    monkeypatch.setenv("GDI_HOME", str(srv.home))
    if srv.store_url:
        monkeypatch.setenv("GDI_STORE", srv.store_url)
    else:
        monkeypatch.delenv("GDI_STORE", raising=False)
    return store_text()


def rectangle(tmp_path: Path, ags: str = "06534014", name: str = "Marburg", population: int = 1) -> Path:
    box = shapely.box(8.0, 50.0, 10.0, 52.5)
    return write_json(feature_collection([{
        "type": "Feature", "properties": {"ags": ags, "name": name, "population": population},
        "geometry": shapely.geometry.mapping(box)}]), tmp_path / "gemeinde.geojson")


def far_points(tmp_path: Path) -> Path:
    """Farm shops in Höxter, Frankfurt am Main and Kassel, claimed by Marburg."""
    places = {"Hofladen Höxter": (9.383, 51.775), "Hofladen Frankfurt": (8.682, 50.110),
              "Hofladen Kassel": (9.479, 51.312)}
    return write_json(feature_collection([
        {"type": "Feature", "properties": {"name": n, "category": "Hofladen"},
         "geometry": {"type": "Point", "coordinates": list(xy)}} for n, xy in places.items()]),
        tmp_path / "hoflaeden.geojson")


def test_a_member_token_cannot_write_the_territory_over_http(county, tmp_path, monkeypatch):
    before = published(county, monkeypatch)
    r = upload(county, county.tokens["marburg"], rectangle(tmp_path), collection="municipalities")
    assert r.status_code == 403 and r.json()["description"] == COUNTY_ONLY
    r = requests.post(f"{county.url}/datasets/municipalities/06534014/vg250ew/rollback",
                      headers=bearer(county.tokens["marburg"]), json={}, timeout=30)
    assert r.status_code == 403, r.text
    assert published(county, monkeypatch) == before


def test_a_member_cannot_write_the_territory_from_the_command_line(county, tmp_path, monkeypatch):
    before = published(county, monkeypatch)
    proc = run_gdi("ingest", str(rectangle(tmp_path)), "--collection", "municipalities", "--member", "06534014",
                   home=county.home, store=county.store_url)
    assert proc.returncode == 2 and proc.stderr.strip() == f"gdi: refused: {COUNTY_ONLY}"
    proc = run_gdi("rollback", "--collection", "municipalities", "--member", "06534", "--dataset", "vg250ew",
                   home=county.home, store=county.store_url)
    assert proc.returncode == 2 and proc.stderr.strip() == f"gdi: refused: {COUNTY_ONLY}"
    assert published(county, monkeypatch) == before


def test_points_outside_the_published_territory_are_refused(county, tmp_path, monkeypatch):
    before = published(county, monkeypatch)
    r = upload(county, county.tokens["marburg"], far_points(tmp_path))
    job = wait(county, county.tokens["marburg"], r.json()["id"])
    assert job["status"] == "rejected"
    assert job["message_en"] == "none of the 3 features could be accepted (see the rejected list)"
    report = report_of(county, county.tokens["marburg"], job)
    assert [n["reason"] for n in report["rejected"]] == [
        "outside the territory of member 06534014 (more than 50 m beyond its boundary)"] * 3
    assert published(county, monkeypatch) == before


def test_the_county_cannot_give_a_key_twice(county, tmp_path, monkeypatch):
    """A second boundary for Marburg in another dataset, or twice in one file: refused, named."""
    before = published(county, monkeypatch)
    proc = run_gdi("ingest", str(rectangle(tmp_path)), "--collection", "municipalities", "--member", "06534014",
                   "--admin", "--dataset", "extra", home=county.home, store=county.store_url)
    assert proc.returncode == 2, proc.stdout
    assert proc.stderr.strip() == "gdi: refused: ags already published (in 06534/vg250ew): 06534014"
    towns = gpd.read_file(MB)
    again = towns[towns["ags"].isin(["06534014", "06534006"])].assign(pop=1)     # not exact copies: other figures
    twice = gpd.GeoDataFrame(pd_concat([towns, again]), crs=towns.crs)
    path = tmp_path / "twice.geojson"
    twice.to_file(path, driver="GeoJSON")
    proc = run_gdi("ingest", str(path), "--collection", "municipalities", "--member", "06534", "--admin",
                   "--dataset", "vg250ew", home=county.home, store=county.store_url)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "gdi: refused: ags given more than once: 06534006, 06534014"
    assert published(county, monkeypatch) == before


def test_the_county_cannot_drop_keys_other_features_use(county, tmp_path, monkeypatch):
    """A new version of Marburg-Biedenkopf's boundaries without Marburg and Cölbe, where farm shops lie."""
    before = published(county, monkeypatch)
    fewer = gpd.read_file(MB)
    fewer = fewer[~fewer["ags"].isin(["06534014", "06534006"])]
    path = tmp_path / "fewer.geojson"
    fewer.to_file(path, driver="GeoJSON")
    proc = run_gdi("ingest", str(path), "--collection", "municipalities", "--member", "06534", "--admin",
                   "--dataset", "vg250ew", home=county.home, store=county.store_url)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "gdi: refused: ags missing from the new version but used by features of supply_points: 06534006, 06534014")
    assert published(county, monkeypatch) == before


def test_the_county_replaces_its_boundaries_keeping_every_key(county, tmp_path, monkeypatch):
    """The same keys with a corrected population: accepted as version 2, nothing else changes."""
    fixed = gpd.read_file(MB)
    fixed.loc[fixed["ags"] == "06534014", "pop"] = 77129
    path = tmp_path / "fixed.geojson"
    fixed.to_file(path, driver="GeoJSON")
    run_gdi("ingest", str(path), "--collection", "municipalities", "--member", "06534", "--admin",
            "--dataset", "vg250ew", home=county.home, store=county.store_url, check=True)
    rows = requests.get(f"{county.url}/collections/municipalities/items",
                        params={"f": "json", "filter": "ags = '06534014'"}, timeout=30).json()["features"]
    assert [(f["properties"]["name"], f["properties"]["population"]) for f in rows] == [("Marburg", 77129)]


def pd_concat(frames):
    import pandas as pd

    return pd.concat(frames, ignore_index=True)


def test_lines_and_polygons_must_lie_inside_and_get_every_key_they_touch():
    """Pure functions, on the real boundaries: a route from Marburg into Cölbe gets both keys;
    one that leaves the county is outside; a point gets the one municipality it lies in."""
    from gdi.ingest.territory import assign_keys, inside, territory

    mun = gpd.read_file(MB).to_crs(25832)
    marburg = mun[mun["ags"] == "06534014"].geometry.iloc[0]
    coelbe = mun[mun["ags"] == "06534006"].geometry.iloc[0]
    a, b = marburg.representative_point(), coelbe.representative_point()
    route = shapely.LineString([a, b])
    away = shapely.LineString([a, shapely.Point(a.x + 60_000, a.y)])
    plan = a.buffer(100)
    geoms = np.array([route, away, plan, a], dtype=object)
    assert assign_keys(geoms, mun, "ags", 50) == ["06534006,06534014", sorted_keys(mun, away), "06534014", "06534014"]
    county_area = territory(mun, "ags", "06534")
    assert inside(geoms, county_area, 50).tolist() == [True, False, True, True]
    marburg_only = territory(mun, "ags", "06534014")
    assert inside(geoms, marburg_only, 50).tolist() == [False, False, True, True]


def sorted_keys(mun, geom) -> str:
    return ",".join(sorted(mun[mun.intersects(geom)]["ags"]))
