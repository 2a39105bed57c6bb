"""Real clients against a real `gdi serve` (both stores): GDAL's ogr2ogr/ogrinfo, OWSLib,
QGIS's OAPIF provider, Schemathesis, the Python and Leaflet examples of docs/clients.md.

Every count is compared with what the API itself says (numberMatched) or with the complete
download; tests/test_server.py has the smaller pyogrio and OWSLib smoke tests.
"""
from __future__ import annotations

import functools
import http.server
import json
import os
import re
import subprocess
import threading
from collections import Counter
from urllib.parse import parse_qs, urlsplit

import pyogrio
import pytest
import requests
import shapely
from shapely.geometry import shape

from conftest import REPO, free_port, launch_chromium, offline_page, run_schemathesis

OGR2OGR = "/usr/bin/ogr2ogr"
OGRINFO = "/usr/bin/ogrinfo"
SYSTEM_PYTHON = "/usr/bin/python3"
COLLECTIONS = ("municipalities", "supply_points")
DOC = REPO / "docs" / "clients.md"
DOC_URL = "http://127.0.0.1:5000"
MARBURG_BBOX = (8.70, 50.76, 8.85, 50.86)       # lon/lat, around Marburg
HOEXTER_BBOX = (9.30, 51.70, 9.45, 51.85)       # lon/lat, around Höxter
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"


def items(server, collection: str, **params) -> dict:
    params = {"f": "json", **params}
    r = server.get(f"/collections/{collection}/items", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def everything(server, collection: str) -> list[dict]:
    data = items(server, collection, limit=10000)
    assert data["numberReturned"] == data["numberMatched"] == len(data["features"])
    return data["features"]


def matched(server, collection: str, **params) -> int:
    return items(server, collection, limit=1, **params)["numberMatched"]


def bbox_str(bbox) -> str:
    return ",".join(str(v) for v in bbox)


def run(cmd: list[str], timeout: int = 180, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


def rings(geom) -> list:
    """The exterior ring coordinates of every polygon part, as (x, y) tuples."""
    polys = geom.geoms if geom.geom_type == "MultiPolygon" else [geom]
    return [[tuple(c[:2]) for c in p.exterior.coords] for p in polys]


# -- GDAL ---------------------------------------------------------------------------------

@pytest.mark.parametrize("page_size", [None, 1000])
def test_ogr2ogr_copies_every_collection_completely(server, tmp_path, page_size):
    for cid in COLLECTIONS:
        api = everything(server, cid)
        out = tmp_path / f"{cid}.gpkg"
        cmd = [OGR2OGR, "-f", "GPKG", str(out), f"OAPIF:{server.url}/collections/{cid}"]
        if page_size:
            cmd += ["-oo", f"PAGE_SIZE={page_size}"]
        run(cmd)
        assert pyogrio.list_layers(out)[:, 0].tolist() == [cid]
        df = pyogrio.read_dataframe(out)
        assert len(df) == len(api) == matched(server, cid)
        # names letter for letter, umlauts included, same multiset as the API
        api_names = Counter(f["properties"]["name"] for f in api if f["properties"]["name"])
        gdal_names = Counter(n for n in df["name"] if isinstance(n, str) and n)
        assert gdal_names == api_names
        if cid == "municipalities":
            assert {"Höxter", "Amöneburg", "Kirchhain", "Bad Driburg"} <= set(gdal_names)
            assert set(df["ags"]) == {f["properties"]["ags"] for f in api}
            by_name = {f["properties"]["name"]: f for f in api}
            for name in ("Höxter", "Amöneburg"):
                served = shape(by_name[name]["geometry"])
                copied = df.loc[df["name"] == name, "geometry"].iloc[0]
                assert rings(copied) == rings(served), name          # exact coordinates
                assert df.loc[df["name"] == name, "population"].iloc[0] == by_name[name]["properties"]["population"]
        else:
            assert sorted((g.x, g.y) for g in df.geometry) == sorted(
                tuple(f["geometry"]["coordinates"][:2]) for f in api)      # every point, exactly
            assert Counter(df["category"]) == Counter(f["properties"]["category"] for f in api)


def test_ogrinfo_lists_the_fields(server):
    for cid in COLLECTIONS:
        schema = server.get(f"/collections/{cid}/queryables?f=json").json()["properties"]
        props = set(everything(server, cid)[0]["properties"])
        out = run([OGRINFO, "-so", f"OAPIF:{server.url}/collections/{cid}", cid]).stdout
        fields = dict(re.findall(r"^(\w+): (\w+) \(", out, re.M))
        assert set(fields) == props, out
        assert {"name", "ags", "member", "dataset"} <= set(schema)
        assert f"Feature Count: {matched(server, cid)}" in out
        if cid == "municipalities":
            assert fields["population"] in {"Integer", "Integer64"}
            assert "Geometry: Multi Polygon" in out
        else:
            assert fields["updated"] == "DateTime"
            assert "Geometry: Point" in out


def test_gdal_passes_spatial_and_attribute_filters_to_the_server(server, tmp_path):
    out = tmp_path / "farm_shops.gpkg"
    proc = run([OGR2OGR, "--config", "CPL_DEBUG", "ON", "-f", "GPKG", str(out),
                f"OAPIF:{server.url}/collections/supply_points", "-oo", "PAGE_SIZE=1000",
                "-spat", *map(str, MARBURG_BBOX), "-where", "category = 'farm_shop'"])
    fetched = re.findall(r"Fetch\((\S+/collections/supply_points/items\?\S+)\)", proc.stderr)
    assert fetched, proc.stderr
    query = parse_qs(urlsplit(fetched[-1]).query)
    assert [float(v) for v in query["bbox"][0].split(",")] == pytest.approx(MARBURG_BBOX)
    assert query["category"] == ["farm_shop"]                       # the -where went to the server
    df = pyogrio.read_dataframe(out)
    expected = items(server, "supply_points", bbox=bbox_str(MARBURG_BBOX), filter="category='farm_shop'", limit=1000)
    assert len(df) == expected["numberMatched"] > 0
    assert set(df["category"]) == {"farm_shop"}
    # the server did the filtering: the simple property query gives the same answer as CQL2
    assert matched(server, "supply_points", bbox=bbox_str(MARBURG_BBOX), category="farm_shop") == len(df)


# -- OWSLib -------------------------------------------------------------------------------

def test_owslib_features_end_to_end(server):
    from owslib.ogcapi.features import Features

    api = Features(server.url, timeout=60)
    assert {c["id"] for c in api.collections()["collections"]} == {*COLLECTIONS, "catalogue"}
    assert set(api.feature_collections()) == set(COLLECTIONS)
    from owslib.ogcapi.records import Records

    assert Records(server.url, timeout=60).records() == ["catalogue"]
    for cid in COLLECTIONS:
        meta = api.collection(cid)
        assert meta["id"] == cid
        bbox = meta["extent"]["spatial"]["bbox"][0]
        assert meta["extent"]["spatial"]["crs"] == CRS84
        assert 8.3 < bbox[0] < bbox[2] < 9.5 and 50.6 < bbox[1] < bbox[3] < 52.0
        assert CRS84 in meta["crs"] and "http://www.opengis.net/def/crs/EPSG/0/25832" in meta["crs"]
        assert meta["storageCrs"] == "http://www.opengis.net/def/crs/EPSG/0/25832"
        # every feature lies inside the advertised extent
        for f in everything(server, cid):
            x0, y0, x1, y1 = shape(f["geometry"]).bounds
            assert bbox[0] <= x0 and bbox[1] <= y0 and x1 <= bbox[2] and y1 <= bbox[3]
        q = api.collection_queryables(cid)
        assert {"name", "ags", "member", "dataset"} <= set(q["properties"])

    points = everything(server, "supply_points")
    box = shapely.box(*MARBURG_BBOX)
    res = api.collection_items("supply_points", bbox=list(MARBURG_BBOX), limit=1000)
    assert res["numberMatched"] == res["numberReturned"] == len(res["features"]) == sum(
        box.intersects(shape(f["geometry"])) for f in points) > 0

    res = api.collection_items("supply_points", filter="category='farm_shop' AND ags LIKE '06534%'", limit=1000)
    want = sorted(f["id"] for f in points
                  if f["properties"]["category"] == "farm_shop" and f["properties"]["ags"].startswith("06534"))
    assert sorted(f["id"] for f in res["features"]) == want and res["numberMatched"] == len(want) > 0

    res = api.collection_items("municipalities", sortby=("population", "desc"), limit=100)
    pops = [f["properties"]["population"] for f in res["features"]]
    assert len(pops) == 32 and pops == sorted(pops, reverse=True)
    res = api.collection_items("municipalities", sortby=("ags", "asc"), filter="name LIKE 'H%'", limit=100)
    ags = [f["properties"]["ags"] for f in res["features"]]
    assert ags == sorted(ags) and "Höxter" in {f["properties"]["name"] for f in res["features"]}

    # paging through everything with small pages: each feature exactly once
    seen: list = []
    offset = 0
    while True:
        page = api.collection_items("supply_points", limit=7, offset=offset, sortby=("name", "asc"))
        seen += [f["id"] for f in page["features"]]
        offset += 7
        if not any(link["rel"] == "next" for link in page["links"]):
            break
        assert offset < 10000
    assert sorted(seen) == sorted(f["id"] for f in points)
    assert len(seen) == page["numberMatched"] == len(points)


# -- QGIS ---------------------------------------------------------------------------------

def test_qgis_oapif_provider_reads_every_collection(server, tmp_path):
    home = tmp_path / "qgis-home"
    runtime = tmp_path / "xdg-runtime"
    home.mkdir()
    runtime.mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "QGIS"))}
    env.update(QT_QPA_PLATFORM="offscreen", HOME=str(home), XDG_RUNTIME_DIR=str(runtime),
               PATH="/usr/bin:/bin")
    script = REPO / "tests" / "qgis_oapif.py"
    results = {}
    for bbox in (MARBURG_BBOX, HOEXTER_BBOX):
        cmd = [SYSTEM_PYTHON, str(script), server.url, *COLLECTIONS, "--bbox", *map(str, bbox)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(f"QGIS did not finish in 240 s:\n{exc.stdout}\n{exc.stderr}") from exc
        assert proc.returncode == 0, f"QGIS failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
        assert lines, f"no JSON from QGIS:\n{proc.stdout}\n{proc.stderr}"
        results[bbox] = json.loads(lines[-1])
    for bbox, out in results.items():
        assert out["qgis"].startswith("3."), out
        for cid in COLLECTIONS:
            info = out["layers"][cid]
            assert info["valid"], f"{cid}: {info}"
            api = everything(server, cid)
            assert info["featureCount"] == info["iterated"] == len(api) == matched(server, cid), info
            assert info["crs"] in {"EPSG:4326", "OGC:CRS84"}
            assert Counter(info["names"]) == Counter(f["properties"]["name"] for f in api if f["properties"]["name"])
            assert set(info["fields"]) >= set(api[0]["properties"])
            in_bbox = matched(server, cid, bbox=bbox_str(bbox))
            assert info["bbox_count"] == in_bbox > 0, (cid, bbox, info["bbox_count"], in_bbox)
    assert "Höxter" in results[HOEXTER_BBOX]["layers"]["municipalities"]["names"]
    assert "Amöneburg" in results[MARBURG_BBOX]["layers"]["municipalities"]["names"]


# -- Schemathesis -------------------------------------------------------------------------

def test_schemathesis_finds_no_server_error(server, tmp_path):
    tested = run_schemathesis(f"{server.url}/openapi?f=json", "--checks", "not_a_server_error",
                              "--include-method", "GET", "--max-examples", "25", "--max-time", "75", "--workers", "2",
                              report_dir=tmp_path, timeout=200)
    assert tested >= 10


@pytest.mark.parametrize("path, status", [
    # found by Schemathesis: offsets and ids beyond 64 bits overflowed SQLite/PostgreSQL integers (500)
    ("/collections/supply_points/items?f=json&offset=44778749100596288533666201600", 200),
    ("/collections/municipalities/items?f=json&offset=9223372036854775808", 200),
    ("/collections/supply_points/items/99999999999999999999999?f=json", 404),
    ("/collections/supply_points/items/-99999999999999999999999?f=json", 404),
    ("/collections/municipalities/items?f=json&filter=population=99999999999999999999999", 200),
    ("/collections/municipalities/items?f=json&filter=population<" + "1" + "0" * 400, 200),
    ("/collections/municipalities/items?f=json&filter=population>-" + "1" + "0" * 400, 200),
])
def test_huge_integers_are_not_server_errors(server, path, status):
    r = server.get(path)
    assert r.status_code == status, r.text[:500]
    if status == 200:
        data = r.json()
        if "offset=" in path:
            assert data["features"] == [] and data["numberReturned"] == 0
            assert data["numberMatched"] == matched(server, path.split("/")[2])
        elif "population=" in path:
            assert data["numberMatched"] == 0
        else:
            assert data["numberMatched"] == 32


@pytest.mark.parametrize("query", [
    # found by Schemathesis on PostGIS: a NUL character in a query value made psycopg fail (500)
    "phone=%C2%B6%C2%9C%C3%85&street=%C3%A0%C2%9C%C2%AFW%00%F1%93%90%AF%1A%2B",
    "filter=name%3D'a%00b'",
    "filter=name%20LIKE%20'%25%00%25'",
    "q=a%00b",
])
def test_nul_characters_in_query_values_are_not_server_errors(server, query):
    r = requests.get(f"{server.url}/collections/supply_points/items?f=json&{query}", timeout=30)
    if server.store:        # PostgreSQL text cannot hold NUL at all: refused as a bad request
        assert r.status_code == 400, r.text[:500]
        assert "NUL" in r.json()["description"]
    else:                   # SQLite compares it: nothing has such a value
        assert r.status_code == 200, r.text[:500]
        assert r.json()["numberMatched"] == 0


# -- docs/clients.md ----------------------------------------------------------------------

def doc_blocks(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```$", DOC.read_text(encoding="utf-8"), re.M | re.S)


def test_docs_python_examples_run_against_the_server(server, capsys):
    blocks = doc_blocks("python")
    assert len(blocks) == 2
    assert all(DOC_URL in b for b in blocks)
    ns: dict = {}
    for block in blocks:
        exec(compile(block.replace(DOC_URL, server.url), str(DOC), "exec"), ns)
    printed = capsys.readouterr().out
    mun, shops = ns["municipalities"], ns["farm_shops"]
    assert len(mun) == matched(server, "municipalities") == 32
    assert mun.crs.to_epsg() == 25832
    assert {"Höxter", "Amöneburg"} <= set(mun["name"])
    want = everything(server, "supply_points")
    farm = [f for f in want if f["properties"]["category"] == "farm_shop"]
    assert len(shops) == len(farm) == matched(server, "supply_points", filter="category='farm_shop'") > 0
    # every demo farm shop lies within exactly one municipality
    per = ns["per_municipality"]
    assert per.sum() == len(shops)
    assert set(per.index) <= set(mun["name"])
    assert per.index[0] in printed
    markets = ns["markets"]
    n_markets = matched(server, "supply_points", filter="category='market'")
    assert markets["numberMatched"] == len(markets["features"]) == n_markets > 0
    names = [f["properties"]["name"] for f in markets["features"]]
    assert all(n in printed for n in names if n)
    assert "supply_points" in printed and "category" in printed


def test_docs_masterportal_entry_is_valid_json():
    (block,) = doc_blocks("json")
    entries = json.loads(block)
    assert {e["collection"] for e in entries} == set(COLLECTIONS)
    for e in entries:
        assert e["typ"] == "OAF" and not e["url"].rstrip("/").endswith("collections")
        assert e["crs"].endswith("/EPSG/0/25832")


def test_docs_openlayers_requests_work(server):
    """OpenLayers is not vendored (no offline browser test); its requests are: Web Mercator
    output and a Web Mercator bbox, as the docs' bbox loading strategy sends them."""
    from pyproj import Transformer

    (html,) = [b for b in doc_blocks("html") if "ol.js" in b]
    assert "&crs=${encodeURIComponent(EPSG3857)}&bbox-crs=${encodeURIComponent(EPSG3857)}" in html
    assert "&bbox=${extent.join(\",\")}" in html
    epsg3857 = "http://www.opengis.net/def/crs/EPSG/0/3857"
    to_merc = Transformer.from_crs("OGC:CRS84", "EPSG:3857", always_xy=True)
    x0, y0 = to_merc.transform(*MARBURG_BBOX[:2])
    x1, y1 = to_merc.transform(*MARBURG_BBOX[2:])
    merc = items(server, "supply_points", limit=1000, crs=epsg3857, **{"bbox-crs": epsg3857},
                 bbox=bbox_str((x0, y0, x1, y1)))
    lonlat = items(server, "supply_points", limit=1000, bbox=bbox_str(MARBURG_BBOX))
    assert sorted(f["id"] for f in merc["features"]) == sorted(f["id"] for f in lonlat["features"])
    assert merc["numberMatched"] == len(merc["features"]) > 0
    by_id = {f["id"]: f["geometry"]["coordinates"] for f in lonlat["features"]}
    for f in merc["features"]:
        assert f["geometry"]["coordinates"] == pytest.approx(to_merc.transform(*by_id[f["id"]]), abs=0.01)


def test_cross_origin_requests_are_allowed(server):
    r = server.get("/collections/supply_points/items?f=json&limit=1", headers={"Origin": "http://127.0.0.1:1"})
    assert r.status_code == 200
    assert r.headers.get("Access-Control-Allow-Origin") in {"*", "http://127.0.0.1:1"}


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_docs_leaflet_example_in_a_real_browser(server, tmp_path):
    """The Leaflet page from docs/clients.md, served from another origin, offline."""
    from playwright.sync_api import sync_playwright

    (html,) = [b for b in doc_blocks("html") if "leaflet.js" in b]
    assert f"{DOC_URL}/vendor/leaflet/dist/leaflet.js" in html
    (tmp_path / "leaflet.html").write_text(html.replace(DOC_URL, server.url), encoding="utf-8")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()),
                                            functools.partial(_Quiet, directory=str(tmp_path)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    page_url = f"http://127.0.0.1:{httpd.server_address[1]}/leaflet.html"
    try:
        with sync_playwright() as p:
            browser = launch_chromium(p)
            try:
                api_calls: list[str] = []
                page, problems, blocked = offline_page(
                    browser, viewport=(1000, 800), locale=None,
                    seen=lambda url: url.startswith(server.url + "/collections/") and api_calls.append(url))
                page.goto(page_url)
                page.wait_for_selector("#status[data-points], #status[data-error]", timeout=20000)
                status = page.locator("#status")
                assert status.get_attribute("data-error") is None, status.get_attribute("data-error")
                n_mun = int(status.get_attribute("data-municipalities"))
                n_points = int(status.get_attribute("data-points"))
                bbox = status.get_attribute("data-bbox")
                assert n_mun == matched(server, "municipalities") == 32
                assert n_points == matched(server, "supply_points", bbox=bbox) > 0
                assert page.locator("path.leaflet-interactive").count() == n_mun + n_points
                assert page.evaluate("typeof L") == "object"             # from our /vendor
                assert any("bbox=" in u for u in api_calls)
                assert problems == [], problems
                assert blocked and all(urlsplit(u).hostname == "tile.openstreetmap.org" for u in blocked), blocked
            finally:
                browser.close()
    finally:
        httpd.shutdown()
        httpd.server_close()
