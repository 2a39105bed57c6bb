"""A polygon and a line layer, declared in YAML only (tests/layers/), from upload to API, page and report.

Development plans (a zipped CP1252 Shapefile) and cycle routes (a GeoPackage in EPSG:4326) of
Marburg-Biedenkopf, built from the repo's real data (tests/layer_data.py), uploaded by member
tokens over HTTP into a server that knows them from ``GDI_COLLECTIONS`` alone — on both stores.
"""
from __future__ import annotations

import pytest
import requests

import layer_data
from conftest import DATA, REPO, Server, free_port, fresh_store, launch_chromium, run_gdi
from test_uploads import bearer, report_of, token, upload, wait

LAYERS = REPO / "tests" / "layers"
MB = DATA / "boundaries" / "vg250ew_gemeinden_marburg-biedenkopf.geojson"


@pytest.fixture(scope="module", params=["gpkg", "postgis"])
def layers(request, tmp_path_factory):
    """A server with the county's boundaries, Marburg's plans and the county's cycle routes uploaded."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GDI_COLLECTIONS", f"{REPO / 'collections'}:{LAYERS}")
        home = tmp_path_factory.mktemp(f"layers-{request.param}") / "home"
        home.mkdir(parents=True)
        store = fresh_store(request.param, request)
        (home / "store-url").write_text(store or "")
        run_gdi("ingest", str(MB), "--collection", "municipalities", "--member", "06534", "--admin",
                home=home, check=True, store=store)
        files = tmp_path_factory.mktemp("layer-files")
        srv = Server(home, free_port())
        srv.files = {"plans_marburg": layer_data.write_development_plans(files / "bplaene_marburg.zip", "06534014"),
                     "plans_county": layer_data.write_development_plans(files / "bplaene_kreis.zip", "06534"),
                     "routes": layer_data.write_cycle_routes(files / "radrouten.gpkg", "06534")}
        srv.tokens = {"marburg": token(home, "06534014", "--name", "Stadt Marburg"),
                      "county": token(home, "06534", "--name", "Kreis (Mitglied)")}
        srv.jobs = {}
        for name, tok, path, coll in (("plans", "marburg", srv.files["plans_marburg"], "development_plans"),
                                      ("routes", "county", srv.files["routes"], "cycle_routes")):
            r = upload(srv, srv.tokens[tok], path, collection=coll)
            assert r.status_code == 202, r.text
            srv.jobs[name] = wait(srv, srv.tokens[tok], r.json()["id"])
        yield srv
        srv.stop()


def items(srv, cid: str, **params) -> dict:
    params.setdefault("f", "json")
    params.setdefault("limit", 1000)
    r = requests.get(f"{srv.url}/collections/{cid}/items", params=params, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def test_the_uploads_are_accepted_with_the_declared_field_mapping(layers):
    plans, routes = layers.jobs["plans"], layers.jobs["routes"]
    assert plans["status"] == "accepted" and plans["counts"] == {"read": 3, "accepted": 3, "repaired": 0,
                                                                  "rejected": 0}
    assert routes["status"] == "accepted" and routes["counts"] == {"read": 9, "accepted": 9, "repaired": 0,
                                                                    "rejected": 0}
    report = report_of(layers, layers.tokens["marburg"], plans)
    assert report["field_mapping"] == {"nummer": ["NUMMER"], "titel": ["TITEL"], "rechtsstan": ["RECHTSSTAN"],
                                       "in_kraft": ["IN_KRAFT"]}
    assert report["encoding"]["name"] == "cp1252" and report["crs"]["epsg"] == 25832
    html = requests.get(f"{layers.url}/uploads/{plans['id']}/report.html", headers=bearer(layers.tokens["marburg"]),
                        timeout=30).text
    assert "RECHTSSTAN" in html and "rechtsstan" in html


def test_the_collections_are_published_with_their_declared_titles_and_types(layers):
    colls = {c["id"]: c for c in requests.get(f"{layers.url}/collections?f=json", timeout=30).json()["collections"]}
    assert {"development_plans", "cycle_routes"} <= set(colls)
    assert colls["development_plans"]["title"] == "Bebauungspläne"
    q = requests.get(f"{layers.url}/collections/development_plans/queryables?f=json", timeout=30).json()
    props = q["properties"]
    assert props["in_kraft"]["type"] == "string" and props["in_kraft"]["format"] == "date"
    assert props["rechtsstan"]["enum"] == ["in_force", "in_progress", "repealed"]
    assert props["nummer"]["type"] == "string" and props["in_kraft"]["x-ogc-role"] == "primary-instant"
    r = requests.get(f"{layers.url}/collections/cycle_routes/queryables?f=json", timeout=30).json()["properties"]
    assert (r["laenge_km"]["type"], r["beschildert"]["type"], r["updated"]["format"]) == ("number", "boolean",
                                                                                         "date-time")


def test_the_features_carry_normalised_values_and_their_territory_keys(layers):
    plans = items(layers, "development_plans", sortby="nummer")["features"]
    assert [(f["properties"]["nummer"], f["properties"]["rechtsstan"], f["properties"]["in_kraft"],
             f["properties"]["ags"], f["geometry"]["type"]) for f in plans] == [
        ("B-14/1", "in_force", "2009-02-28", "06534014", "Polygon"),
        ("B-14/2", "in_force", "2012-07-11", "06534014", "Polygon"),
        ("B-14/3", "in_progress", None, "06534014", "Polygon")]
    routes = items(layers, "cycle_routes", sortby="name")["features"]
    expected = sorted(zip(layer_data.cycle_routes().frame["NAME"], layer_data.cycle_routes().ags))
    assert [(f["properties"]["name"], f["properties"]["ags"]) for f in routes] == expected
    marburg = [f["properties"] for f in routes if f["properties"]["name"] == "Hofladen-Radroute Marburg"][0]
    assert (marburg["laenge_km"], marburg["beschildert"], marburg["member"]) == (24.78, True, "06534")
    assert all(f["geometry"]["type"] == "LineString" for f in routes)


@pytest.mark.parametrize("cid,params,expected", [
    ("development_plans", {"filter": "rechtsstan = 'in_force'"}, ["B-14/1", "B-14/2"]),
    ("development_plans", {"filter": "titel LIKE '%Süd'"}, ["B-14/2"]),
    ("development_plans", {"datetime": "2010-01-01/.."}, ["B-14/2"]),
    ("development_plans", {"datetime": "2009-02-28"}, ["B-14/1"]),
    ("cycle_routes", {"filter": "laenge_km > 4.5 AND beschildert = true"},
     ["Hofladen-Radroute Cölbe", "Hofladen-Radroute Dautphetal", "Hofladen-Radroute Gladenbach",
      "Hofladen-Radroute Lohra", "Hofladen-Radroute Marburg"]),
    ("cycle_routes", {"filter": "ags = '06534014'"}, ["Hofladen-Radroute Marburg"]),
])
def test_cql2_and_datetime_on_the_declared_fields(layers, cid, params, expected):
    key = "nummer" if cid == "development_plans" else "name"
    got = items(layers, cid, sortby=key, **params)["features"]
    assert [f["properties"][key] for f in got] == expected


def test_a_member_cannot_publish_plans_of_other_municipalities(layers):
    """Marburg sends the whole county's plans: its three are accepted, the seven others rejected."""
    r = upload(layers, layers.tokens["marburg"], layers.files["plans_county"], collection="development_plans",
               dry_run="1")
    job = wait(layers, layers.tokens["marburg"], r.json()["id"])
    assert job["status"] == "accepted" and job["counts"] == {"read": 10, "accepted": 3, "repaired": 0,
                                                             "rejected": 7}
    report = report_of(layers, layers.tokens["marburg"], job)
    assert {n["reason"] for n in report["rejected"]} == {
        "outside the territory of member 06534014 (more than 50 m beyond its boundary)"}


def test_the_upload_page_offers_the_declared_collections(layers):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 900}, locale="de-DE")
            page.goto(f"{layers.url}/upload")
            page.wait_for_function("document.querySelectorAll('#collection option').length >= 4", timeout=30000)
            options = page.eval_on_selector_all("#collection option", "os => os.map(o => [o.value, o.textContent])")
            assert ["development_plans", "Bebauungspläne"] in [list(map(str.strip, o)) for o in options]
            assert ["cycle_routes", "Radrouten"] in [list(map(str.strip, o)) for o in options]
        finally:
            browser.close()


def test_the_planners_map_draws_the_declared_layers(layers):
    """After the uploads the served map has both layers, titled, styled and with the declared popups."""
    import time

    from playwright.sync_api import sync_playwright

    from conftest import is_tile, offline_page

    deadline = time.time() + 120          # the server rebuilds the map in the background after a publish
    while "Radrouten (9)" not in requests.get(f"{layers.url}/viewer", timeout=30).text:     # built with the data
        assert time.time() < deadline, "the map was not rebuilt with the new layers"
        time.sleep(1)
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page, problems, blocked = offline_page(browser, viewport=(1366, 900))
            page.goto(f"{layers.url}/viewer")
            page.wait_for_selector("html[data-gdi-ready='1']", timeout=30000)
            overlays = page.locator(".leaflet-control-layers-overlays").inner_text()
            assert "Bebauungspläne" in overlays and "Radrouten (9)" in overlays
            assert page.locator("path.gdi-layer-development_plans").count() == 3
            assert page.locator("path.gdi-layer-cycle_routes").count() == 9
            fills = page.evaluate("""() => Array.from(document.querySelectorAll('path.gdi-layer-development_plans'),
                p => p.getAttribute('fill')).sort()""")
            assert fills == ["#2e7d32", "#2e7d32", "#f9a825"]       # in force, in force, in progress
            page.evaluate("""() => {
                let hit = null;
                gdiMap.layers.byId['development_plans'].eachLayer(l => {
                    if (l.feature.properties.nummer === 'B-14/2') hit = l; });
                gdiMap.focus(gdiMap.map, hit); }""")
            page.wait_for_selector(".gdi-popup h3:text-is('Sondergebiet Einzelhandel Marburg-Süd')", timeout=10000)
            rows = page.evaluate("""() => Array.from(document.querySelectorAll('.leaflet-popup-content .gdi-popup tr'),
                tr => [tr.querySelector('th').innerText, tr.querySelector('td').innerText])""")
            assert rows[:4] == [["Plannummer", "B-14/2"], ["Titel", "Sondergebiet Einzelhandel Marburg-Süd"],
                                ["Rechtsstand", "Rechtskräftig"], ["In Kraft seit", "2012-07-11"]]
            assert ["Mitglied", "06534014"] in rows
            page.screenshot(path=str(layers.home / "map-layers.png"))
            assert problems == [] and [u for u in blocked if not is_tile(u)] == []   # only base-map tiles stay out
        finally:
            browser.close()


@pytest.mark.parametrize("cid, props", [("development_plans", ["titel", "rechtsstan"]), ("cycle_routes", ["name"])])
def test_line_and_polygon_tiles_are_the_features_of_their_box(layers, cid, props, tmp_path):
    """Their vector tiles as the YAML declares them: at zoom 16 (the highest) each tile holds exactly the
    features items returns for its box — read with mapbox-vector-tile and GDAL —, with the declared
    properties; at zoom 9 every feature is there and the routes are simplified (fewer vertices than the
    features hold; the plans are near-rectangles of five vertices, nothing to simplify: outlines are
    tested on the municipalities in tests/test_tiles.py)."""
    import numpy as np
    import shapely
    from shapely.geometry import shape

    from test_tiles import WMQ, _lonlat_to_3857, busiest_tiles, by_gdal, decoded, items_in, matrix, tile_bounds

    m = matrix(layers, WMQ, 16)
    for y, x in busiest_tiles(layers, cid, WMQ, 16, 3857):
        r = layers.get(f"/collections/{cid}/tiles/{WMQ}/16/{y}/{x}?f=mvt")
        assert r.status_code == 200
        expected = {f["id"]: f["properties"] for f in items_in(layers, cid, tile_bounds(m, y, x), 3857)}
        mvt = decoded(r.content, cid)
        assert len(mvt) == len(expected) > 0 and {f["id"] for f in mvt} == set(expected)
        for f in mvt:
            assert f["properties"] == {k: expected[f["id"]][k] for k in props if expected[f["id"]].get(k) is not None}
        gdal = by_gdal(r.content, cid, 16, y, x, tmp_path)
        assert set(gdal["mvt_id"]) == set(expected) and len(gdal) == len(expected)
    m9 = matrix(layers, WMQ, 9)
    (y, x), = busiest_tiles(layers, cid, WMQ, 9, 3857, n=1)
    bounds = tile_bounds(m9, y, x)
    tile = decoded(layers.get(f"/collections/{cid}/tiles/{WMQ}/9/{y}/{x}?f=mvt").content, cid)
    features = items_in(layers, cid, bounds, 3857)
    assert {f["id"] for f in tile} == {f["id"] for f in features}
    drawn = sum(len(shapely.get_coordinates(shape(f["geometry"]))) for f in tile)
    held = sum(len(np.asarray(shapely.get_coordinates(shapely.transform(shape(f["geometry"]), _lonlat_to_3857))))
               for f in features)
    if cid == "cycle_routes":
        assert drawn < held, (drawn, held)
