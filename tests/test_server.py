"""The demo served by a real `gdi serve` process, read by real clients."""
from __future__ import annotations

import re

import pyogrio
import pytest

from conftest import is_tile, launch_chromium, offline_page

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG = "http://www.opengis.net/def/crs/EPSG/0/{}"
EXTERNAL = re.compile(
    r"""<script[^>]+src=["']https?://(?!127\.0\.0\.1)|<img[^>]+src=["']https?://(?!127\.0\.0\.1)|"""
    r"""<link(?=[^>]*rel=["'](?:stylesheet|icon|preload|modulepreload|shortcut icon)["'])[^>]+href=["']https?://(?!127\.0\.0\.1)""",
    re.I)

# Demo content (see data/SOURCES.md): 22 + 10 municipalities; OSM points inside the counties:
# farm shops etc. 42 (06534) + 26 (05762), minus one 'unknown' category each; Lidl 10 + 6.
N_MUNICIPALITIES = 32


def items(server, collection, **params):
    params.setdefault("f", "json")
    r = server.get(f"/collections/{collection}/items", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_landing_and_collections(server, real_data):
    landing = server.get("/?f=json").json()
    rels = {link["rel"] for link in landing["links"]}
    assert {"self", "service-desc", "conformance", "data"} <= rels
    colls = {c["id"]: c for c in server.get("/collections?f=json").json()["collections"]}
    assert set(colls) == {"municipalities", "supply_points", "catalogue"}
    mun = colls["municipalities"]
    bbox = mun["extent"]["spatial"]["bbox"][0]
    import geopandas as gpd
    import pandas as pd
    src = pd.concat([gpd.read_file(real_data / "boundaries" / f"vg250ew_gemeinden_{n}.geojson")
                     for n in ("marburg-biedenkopf", "hoexter")])
    assert bbox == pytest.approx(list(src.total_bounds), abs=1e-4)
    assert set(mun["crs"]) >= {CRS84, EPSG.format(25832), EPSG.format(4258), EPSG.format(4326), EPSG.format(3857)}
    assert any(link["rel"] == "license" and "dl-de/by-2-0" in link["href"] for link in mun["links"])
    assert any(link["rel"] == "license" and "odbl" in link["href"] for link in colls["supply_points"]["links"])


def expected_points(real_data) -> dict[str, int]:
    """Per category: OSM points inside the two counties, as the demo loads them."""
    import geopandas as gpd
    farm = gpd.read_file(real_data / "poi" / "farmshops_marburg-biedenkopf_hoexter_umland.geojson")
    farm = farm[farm["ags"].fillna("").str[:5].isin(["06534", "05762"])]
    names = {"farm": "farm_shop", "vending_machine": "vending_machine", "marketplace": "market",
             "beekeeper": "beekeeper"}
    counts = farm["farmshops_category"].map(names).dropna().value_counts().to_dict()
    lidl = gpd.read_file(real_data / "poi" / "lidl_marburg-biedenkopf_hoexter_umland.geojson")
    counts["supermarket"] = int(lidl["ags"].fillna("").str[:5].isin(["06534", "05762"]).sum())
    return counts


def test_all_municipalities_and_points_are_served(server, real_data):
    mun = items(server, "municipalities", limit=1000)
    assert mun["numberMatched"] == N_MUNICIPALITIES == mun["numberReturned"]
    names = {f["properties"]["name"] for f in mun["features"]}
    assert {"Marburg", "Amöneburg", "Höxter", "Bad Driburg", "Wohratal"} <= names
    members = {f["properties"]["ags"]: f["properties"]["member"] for f in mun["features"]}
    assert members["06534014"] == "06534" and members["05762020"] == "05762"
    pts = items(server, "supply_points", limit=1000)
    cats = {}
    for f in pts["features"]:
        cats[f["properties"]["category"]] = cats.get(f["properties"]["category"], 0) + 1
        assert f["properties"]["ags"][:5] in {"06534", "05762"}
        assert f["properties"]["member"] in {"06534", "05762"}
    assert pts["numberMatched"] == pts["numberReturned"] == sum(cats.values())
    assert cats == expected_points(real_data)
    assert cats["supermarket"] == 16


def test_paging_links_add_up(server):
    total = items(server, "municipalities", limit=1)["numberMatched"]
    seen, url = [], f"{server.url}/collections/municipalities/items?f=json&limit=7"
    import requests
    while url:
        page = requests.get(url, timeout=30).json()
        seen += [f["id"] for f in page["features"]]
        nxt = [link["href"] for link in page["links"] if link["rel"] == "next"]
        url = nxt[0] if nxt else None
    assert len(seen) == len(set(seen)) == total


def test_bbox_filter_sort_and_crs(server):
    marburg = items(server, "municipalities", filter="name = 'Marburg'")
    assert marburg["numberMatched"] == 1
    inside = items(server, "municipalities", filter="S_INTERSECTS(geometry, POINT(8.7705 50.8098))")
    assert [f["properties"]["name"] for f in inside["features"]] == ["Marburg"]
    box = items(server, "supply_points", bbox="8.70,50.76,8.85,50.86", limit=1000)
    for f in box["features"]:
        lon, lat = f["geometry"]["coordinates"]
        assert 8.70 <= lon <= 8.85 and 50.76 <= lat <= 50.86
    by_pop = items(server, "municipalities", sortby="-population", limit=3)
    assert [f["properties"]["name"] for f in by_pop["features"]][0] == "Marburg"
    utm = server.get("/collections/municipalities/items", params={"f": "json", "crs": EPSG.format(25832), "limit": 1})
    assert utm.headers["Content-Crs"] == f"<{EPSG.format(25832)}>"
    x, y = utm.json()["features"][0]["geometry"]["coordinates"][0][0][0]
    assert 400_000 < x < 600_000 and 5_500_000 < y < 5_800_000


def test_errors_are_client_errors(server):
    assert server.get("/collections/nope/items?f=json").status_code == 404
    assert server.get("/collections/municipalities/items/999999?f=json").status_code == 404
    assert server.get("/collections/municipalities/items/abc?f=json").status_code == 404
    assert server.get("/collections/municipalities/items?f=json&sortby=").status_code == 400
    assert server.get("/collections/municipalities/items?f=json&bbox=1,2,3").status_code == 400
    assert server.get("/collections/municipalities/items?f=json&filter=nosuch = 1").status_code == 400


def test_limit_up_to_10000_is_honoured(server):
    page = items(server, "supply_points", limit=10000)
    assert page["numberReturned"] == page["numberMatched"] > 10


def test_html_pages_load_nothing_from_other_hosts(server):
    for path in ["/", "/collections", "/collections/supply_points", "/collections/supply_points/items",
                 "/collections/municipalities/items/1", "/openapi", "/conformance"]:
        r = server.get(path, params={"f": "html"})
        assert r.status_code == 200, path
        assert not EXTERNAL.search(r.text), (path, EXTERNAL.search(r.text).group(0))
    assert server.get("/vendor/leaflet/dist/leaflet.js").status_code == 200


def test_viewer_is_served(server):
    r = server.get("/viewer")
    assert r.status_code == 200
    assert "Marburg" in r.text and "Höxter" in r.text
    assert not EXTERNAL.search(r.text)


def test_the_map_follows_an_upload(server, monkeypatch):
    """An upload only bumps the store's data version; the running server rebuilds the map by itself
    (in a child process) within seconds — and again when the upload is withdrawn."""
    import time

    import geopandas as gpd
    import shapely

    from conftest import home_store
    from gdi.collections import load_collections
    from gdi.store import open_store
    from gdi.store.base import VersionMeta

    monkeypatch.setenv("GDI_HOME", str(server.home))
    if home_store(server.home):
        monkeypatch.setenv("GDI_STORE", home_store(server.home))
    else:
        monkeypatch.delenv("GDI_STORE", raising=False)
    store = open_store()
    collection = load_collections()["supply_points"]
    name = "Karten-Test-Hofladen"
    frame = gpd.GeoDataFrame({"name": [name], "category": ["farm_shop"]},
                             geometry=gpd.GeoSeries([shapely.Point(483100, 5630100)], crs=collection.storage_crs))

    def map_shows(expected: bool, within: float = 90) -> float:
        started = time.monotonic()
        while time.monotonic() - started < within:
            if (name in server.get("/viewer").text) == expected:
                return time.monotonic() - started
            time.sleep(0.5)
        raise AssertionError(f"the map did not {'show' if expected else 'drop'} {name} within {within} s")

    assert name not in server.get("/viewer").text
    try:
        store.replace(collection, "06534", "map-test", frame, updated="2026-01-01T00:00:00Z", meta=VersionMeta())
        map_shows(True)
        # The stamp names the version read before the data: a build that started just before the upload
        # committed may show the new point under the old version, and the refresher then builds once more.
        stamp = server.home / "viewer" / "data-version"
        started = time.monotonic()
        while stamp.read_text() != str(store.data_version()) and time.monotonic() - started < 90:
            time.sleep(0.5)
        assert stamp.read_text() == str(store.data_version())
        assert name in server.get("/viewer").text
    finally:
        store.replace(collection, "06534", "map-test", frame.iloc[:0], updated="2026-01-01T00:00:01Z",
                      meta=VersionMeta())
    map_shows(False)


def test_gdal_oapif_driver_copies_every_collection(server, real_data):
    n_points = sum(expected_points(real_data).values())
    for cid, n in (("municipalities", N_MUNICIPALITIES), ("supply_points", n_points)):
        df = pyogrio.read_dataframe(f"OAPIF:{server.url}/collections/{cid}", PAGE_SIZE=20)
        assert len(df) == n
    mun = pyogrio.read_dataframe(f"OAPIF:{server.url}/collections/municipalities")
    assert "Höxter" in set(mun["name"])


def test_owslib_reads_collections_and_items(server):
    from owslib.ogcapi.features import Features

    api = Features(server.url)
    ids = {c["id"] for c in api.collections()["collections"]}
    assert ids == {"municipalities", "supply_points", "catalogue"}
    assert set(api.feature_collections()) == {"municipalities", "supply_points"}
    q = api.collection_queryables("supply_points")
    assert {"name", "category", "ags", "member", "dataset"} <= set(q["properties"])
    res = api.collection_items("supply_points", bbox=[8.70, 50.76, 8.85, 50.86], limit=100)
    assert res["numberReturned"] == len(res["features"]) > 0
    hx = api.collection_items("municipalities", filter="name LIKE 'Bad%'", sortby=("name", "asc"), limit=100)
    assert [f["properties"]["name"] for f in hx["features"]] == sorted(
        f["properties"]["name"] for f in hx["features"])
    assert {"Bad Driburg", "Bad Endbach"} <= {f["properties"]["name"] for f in hx["features"]}


def test_demo_in_a_real_browser_offline(server, real_data):
    """The served map and pygeoapi's HTML pages, with every request to another host blocked."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page, problems, blocked = offline_page(browser)
            page.goto(server.url + "/viewer")
            page.wait_for_selector("html[data-gdi-ready='1']", timeout=15000)
            assert page.locator("path.gdi-boundary").count() == N_MUNICIPALITIES
            assert page.evaluate("gdiMap.stats.points") == sum(expected_points(real_data).values())
            layers = page.locator(".leaflet-control-layers-overlays").inner_text()
            for label in ("Supermarkt", "Hofladen", "Verkaufsautomat", "Wochenmarkt", "Imkerei"):
                assert label in layers
            page.screenshot(path=str(server.home / "viewer.png"))
            for path in ("/?f=html", "/collections/supply_points/items?f=html&limit=100",
                         "/collections/municipalities/items/1?f=html", "/openapi?f=html"):
                page.goto(server.url + path, wait_until="networkidle")
            assert problems == []
            assert all(is_tile(u) for u in blocked), blocked
        finally:
            browser.close()
