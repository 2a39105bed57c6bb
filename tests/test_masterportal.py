"""Masterportal's OAF layer and filter, replayed request by request against the real server on both stores.

The requests are those of Masterportal v3: the layer (src/core/layers/js/layer2dVectorOaf.js with
masterportalapi's oaf layer: crs and bbox-crs EPSG:25832, limit 400, loaded by bbox), the filter
(src/modules/filter: ``{url}/api`` read as ``application/vnd.oai.openapi+json`` for the property types,
``properties=…&skipGeometry=true`` pages followed by their ``next`` links of type application/geo+json,
CQL2 text with ``filter-crs``), each sent from another origin as a browser does. Every expectation is
computed from the bundled data in data/ with geopandas, not from the server's answers.
"""
from __future__ import annotations

import re
from collections import Counter
from types import SimpleNamespace

import geopandas as gpd
import pandas as pd
import pytest
import requests
import yaml

from conftest import REPO, launch_chromium, offline_page
from fixtures import published_supply_points, same_points

EPSG25832 = "http://www.opengis.net/def/crs/EPSG/0/25832"
ORIGIN = "https://geoportal.example.de"
OAS = "application/vnd.oai.openapi+json"
GEOJSON = "application/geo+json"
# around Marburg, in EPSG:25832 (the map CRS of a Masterportal in Hesse)
MARBURG = (478000.0, 5624000.0, 490000.0, 5636000.0)
# masterportal's isSpecifiedOafKey: parameters of OGC API itself, not read as properties
OGC_KEYS = {"limit", "offset", "bbox", "bbox-crs", "datetime", "crs", "f"}
TYPES = {"string": "string", "integer": "integer", "number": "number", "boolean": "boolean", "date": "string",
         "datetime": "string", "uri": "string"}
FORMATS = {"date": "date", "datetime": "date-time", "uri": "uri"}


@pytest.fixture(scope="module")
def supply(real_data) -> gpd.GeoDataFrame:
    return published_supply_points(real_data).to_crs(25832)


def browser_get(url: str, accept: str = GEOJSON, **params) -> requests.Response:
    """A GET as Masterportal's axios sends it from its own origin."""
    r = requests.get(url, params=params or None, headers={"Accept": accept, "Origin": ORIGIN}, timeout=30)
    assert r.status_code == 200, (r.url, r.status_code, r.text[:500])
    assert r.headers["Access-Control-Allow-Origin"] == "*", r.url
    return r


def masterportal_features(server, collection: str, **params) -> list[dict]:
    """getOAFFeatureGet: the first page with limit 400 (unless given), then every ``next`` link of type
    application/geo+json, as oafRecursionHelper follows them; asserts the pages add up to numberMatched."""
    params.setdefault("limit", 400)
    page = browser_get(f"{server.url}/collections/{collection}/items", **params).json()
    matched, features = page["numberMatched"], list(page["features"])
    while True:
        nxt = [link["href"] for link in page["links"] if link["rel"] == "next" and link.get("type") == GEOJSON]
        if not nxt:
            break
        page = browser_get(nxt[0]).json()
        features += page["features"]
    assert len(features) == matched
    assert len({f["id"] for f in features}) == matched
    return features


def pairs(names, categories) -> Counter:
    """(name, category) with a missing name as None, as the API serves it."""
    return Counter((None if pd.isna(n) else n, c) for n, c in zip(names, categories))


def in_marburg(supply: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    return supply.cx[MARBURG[0]:MARBURG[2], MARBURG[1]:MARBURG[3]]


# -- the API definition, as the filter reads it ------------------------------------------------------------
def attr_types(doc: dict, collection: str) -> dict[str, str]:
    """getOafAttributeTypes.getAttrTypesFromOafResponse: name → schema.type of every parameter of the items
    GET (following #/ references) that is no OGC API key."""
    def resolve(ref: str):
        node = doc
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
        return node

    out = {}
    for p in doc["paths"][f"/collections/{collection}/items"]["get"]["parameters"]:
        p = resolve(p["$ref"]) if "$ref" in p else p
        if isinstance(p.get("schema"), dict) and "type" in p["schema"] and "name" in p and p["name"] not in OGC_KEYS:
            out[p["name"]] = p["schema"]["type"]
    return out


@pytest.mark.parametrize("collection", ["municipalities", "supply_points"])
def test_api_is_the_openapi_document_with_a_typed_parameter_per_property(server, collection):
    r = browser_get(f"{server.url}/api", accept=OAS)
    assert r.headers["Content-Type"].split(";")[0] == OAS
    doc = r.json()
    assert doc == browser_get(f"{server.url}/openapi", accept=OAS).json()
    definition = yaml.safe_load((REPO / "collections" / f"{collection}.yml").read_text(encoding="utf-8"))
    declared = definition["properties"]
    expected = {name: TYPES[p["type"]] for name, p in declared.items()} | {"member": "string", "dataset": "string"}
    types = attr_types(doc, collection)
    assert {k: v for k, v in types.items() if k in expected} == expected
    # the rest are pygeoapi's own parameters, which the filter lists too but no snippet names
    assert set(types) - set(expected) == {"lang", "properties", "skipGeometry", "sortby", "vendorSpecificParameters"}
    params = {p["name"]: p for p in doc["paths"][f"/collections/{collection}/items"]["get"]["parameters"]
              if "name" in p}
    for name, p in declared.items():
        assert params[name]["in"] == "query" and params[name]["required"] is False
        assert params[name]["schema"].get("format") == FORMATS.get(p["type"]), name
        if "vocabulary" in p:
            assert params[name]["schema"]["enum"] == list(definition["vocabularies"][p["vocabulary"]]), name
        assert "values" not in params[name]["schema"], name       # pygeoapi's keyword is no OpenAPI


def test_api_serves_swagger_to_a_browser_as_openapi_does(server):
    for how in ({"headers": {"Accept": "text/html"}}, {"params": {"f": "html"}}):
        api = requests.get(f"{server.url}/api", timeout=30, **how)
        openapi = requests.get(f"{server.url}/openapi", timeout=30, **how)
        assert api.status_code == openapi.status_code == 200
        assert api.headers["Content-Type"].startswith("text/html")
        assert "swagger" in api.text.lower() and api.text == openapi.text


# -- the layer: crs and bbox in EPSG:25832, limit 400 -------------------------------------------------------
def test_layer_loads_the_marburg_box_in_25832(server, supply):
    params = {"crs": EPSG25832, "bbox-crs": EPSG25832, "bbox": ",".join(str(v) for v in MARBURG), "limit": 400}
    first = browser_get(f"{server.url}/collections/supply_points/items", **params)
    assert first.headers["Content-Crs"] == f"<{EPSG25832}>"
    expected = in_marburg(supply)
    assert len(expected) > 5
    page = first.json()
    assert page["numberMatched"] == page["numberReturned"] == len(expected)
    assert same_points(page["features"], expected, 0.01)
    assert pairs([f["properties"]["name"] for f in page["features"]],
                 [f["properties"]["category"] for f in page["features"]]) == pairs(expected["name"], expected["category"])


def test_limit_400_pages_the_collection(server, supply):
    features = masterportal_features(server, "supply_points", crs=EPSG25832)
    assert len(features) == len(supply)
    assert same_points(features, supply, 0.01)


# -- the filter: all properties, paged, without geometry ---------------------------------------------------
def test_filter_pages_properties_without_geometry(server, supply):
    features = masterportal_features(server, "supply_points", limit=25, properties="name,category",
                                     skipGeometry="true")
    assert len(features) == len(supply) > 75          # several pages
    assert all(f["geometry"] is None for f in features)
    assert all(set(f["properties"]) == {"name", "category"} for f in features)
    assert pairs([f["properties"]["name"] for f in features],
                 [f["properties"]["category"] for f in features]) == pairs(supply["name"], supply["category"])


@pytest.mark.parametrize("cql,pick", [
    ("name LIKE 'Hof%'", lambda s: s[s["name"].fillna("").str.startswith("Hof")]),
    ("category IN ('farm_shop','market')", lambda s: s[s["category"].isin(["farm_shop", "market"])]),
    ("NOT category='farm_shop'", lambda s: s[s["category"] != "farm_shop"]),
    ("name LIKE '%laden%' AND category IN ('farm_shop')",
     lambda s: s[s["name"].fillna("").str.contains("laden") & (s["category"] == "farm_shop")]),
    ("S_INTERSECTS(geometry, POLYGON(({0} {1}, {2} {1}, {2} {3}, {0} {3}, {0} {1})))".format(*MARBURG), in_marburg),
    ("BBOX(geometry, {}, {}, {}, {})".format(*MARBURG), in_marburg),
])
def test_filter_cql2_text(server, supply, cql, pick):
    features = masterportal_features(server, "supply_points", filter=cql, **{"filter-crs": EPSG25832},
                                     crs=EPSG25832)
    expected = pick(supply)
    assert len(expected) > 0
    assert same_points(features, expected, 0.01)


def test_filter_on_the_time_field(server, supply):
    """``updated`` is when each point was published (``publish_time``): the expectations come from
    the values the collection serves without a filter, compared in Python."""
    everything = masterportal_features(server, "supply_points", properties="updated", skipGeometry="true")
    times = sorted(f["properties"]["updated"] for f in everything)
    assert len(times) == len(supply) and all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", t) for t in times)
    first, last = times[0], times[-1]

    def count(cql: str) -> int:
        return len(masterportal_features(server, "supply_points", filter=cql, properties="updated",
                                         skipGeometry="true", **{"filter-crs": EPSG25832}))

    assert count("T_INTERSECTS(updated, INTERVAL('2020-01-01T00:00:00Z','..'))") == \
        sum(t >= "2020-01-01T00:00:00Z" for t in times) == len(supply)
    assert count("T_INTERSECTS(updated, INTERVAL('..','2020-01-01T00:00:00Z'))") == 0
    assert count(f"T_BEFORE(updated, TIMESTAMP('{last}'))") == sum(t < last for t in times)
    assert count(f"T_AFTER(updated, TIMESTAMP('{first}'))") == sum(t > first for t in times)
    assert count(f"T_EQUALS(updated, TIMESTAMP('{last}'))") == times.count(last)
    assert count(f"T_DURING(updated, INTERVAL('{first}','{last}'))") == sum(first < t < last for t in times)
    day = first[:10]
    assert count(f"T_EQUALS(updated, DATE('{day}'))") == sum(t[:10] == day for t in times)    # Masterportal's date EQ
    assert count(f"T_INTERSECTS(updated, INTERVAL('{day}','{day}'))") == sum(t[:10] == day for t in times)


@pytest.mark.parametrize("cql,words", [
    ("T_AFTER(name, DATE('2020-01-01'))", "'name' is no date or timestamp property"),
    ("T_AFTER(nosuch, DATE('2020-01-01'))", "unknown queryable 'nosuch'"),
    ("T_INTERSECTS(updated, INTERVAL('2020-13-01','..'))", "Bad CQL text"),
])
def test_bad_filters_answer_400_with_the_reason(server, cql, words):
    r = requests.get(f"{server.url}/collections/supply_points/items", params={"f": "json", "filter": cql},
                     headers={"Origin": ORIGIN}, timeout=30)
    assert r.status_code == 400
    assert words in r.json()["description"]
    assert r.headers["Access-Control-Allow-Origin"] == "*"     # a browser script can read why


# -- CORS as the browser sees it ---------------------------------------------------------------------------
def test_cross_origin_reads_get_cors_headers_cached_and_revalidated_too(server):
    url = f"{server.url}/collections/supply_points/items?f=json&limit=3"
    first = browser_get(url)
    again = browser_get(url)                                  # from the response cache now
    for r in (first, again):
        assert r.headers["Access-Control-Allow-Origin"] == "*"
        assert set(r.headers["Access-Control-Expose-Headers"].split(", ")) >= {"ETag", "Content-Crs", "Link"}
        assert "Access-Control-Allow-Credentials" not in r.headers
        assert "Origin" not in r.headers["Vary"]              # the answer is the same for every origin
    revalidated = requests.get(url, timeout=30, headers={"Origin": ORIGIN, "Accept": GEOJSON,
                                                         "If-None-Match": first.headers["ETag"]})
    assert revalidated.status_code == 304
    assert revalidated.headers["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize("path", ["/collections/supply_points/items", "/api", "/collections", "/"])
def test_preflight_is_answered(server, path):
    r = requests.options(server.url + path, timeout=30, headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, if-none-match"})
    assert r.status_code == 204 and r.content == b""
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert set(r.headers["Access-Control-Allow-Methods"].split(", ")) == {"GET", "HEAD", "POST", "OPTIONS"}
    assert {"Content-Type", "If-None-Match"} <= set(r.headers["Access-Control-Allow-Headers"].split(", "))
    assert "Authorization" not in r.headers["Access-Control-Allow-Headers"]
    assert int(r.headers["Access-Control-Max-Age"]) > 0


@pytest.mark.parametrize("method,path", [
    ("GET", "/upload"), ("GET", "/uploads"), ("POST", "/uploads"), ("OPTIONS", "/uploads"),
    ("GET", "/uploads/nosuch"), ("GET", "/datasets/supply_points/06534/versions"),
    ("POST", "/datasets/supply_points/06534/demo/rollback"), ("DELETE", "/datasets/supply_points/06534/demo"),
    ("OPTIONS", "/datasets/supply_points/06534/demo"),
])
def test_upload_routes_never_answer_another_origin(server, method, path):
    headers = {"Origin": ORIGIN}
    if method == "OPTIONS":
        headers |= {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    r = requests.request(method, server.url + path, headers=headers, timeout=30)
    assert r.status_code != 204, (method, path)
    assert not [k for k in r.headers if k.lower().startswith("access-control-")], (method, path, r.headers)


def test_a_page_on_another_origin_reads_the_api_but_not_the_uploads(server, supply, tmp_path):
    """Chromium itself decides: a portal page served from another origin (another port) fetches as
    Masterportal does — /api, items in EPSG:25832, a CQL2 JSON POST (which needs a preflight) — and is
    refused the upload list."""
    import functools
    import http.server
    import threading

    from playwright.sync_api import sync_playwright

    (tmp_path / "portal.html").write_text("<!doctype html><title>Geoportal</title>", encoding="utf-8")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    portal = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=portal.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as p:
            browser = launch_chromium(p)
            page, problems, blocked = offline_page(browser)
            page.goto(f"http://127.0.0.1:{portal.server_port}/portal.html")
            result = page.evaluate("""async ([api, crs]) => {
                const out = {};
                const doc = await fetch(api + '/api', {headers: {accept: 'application/vnd.oai.openapi+json'}});
                out.api = [doc.status, (await doc.json()).openapi.slice(0, 3)];
                const items = await fetch(api + '/collections/supply_points/items?limit=400&crs=' + crs,
                                          {headers: {accept: 'application/geo+json'}});
                out.items = [items.status, items.headers.get('content-crs'), items.headers.get('etag') !== null,
                             (await items.json()).numberReturned];
                const post = await fetch(api + '/collections/supply_points/items?f=json&filter-lang=cql2-json', {
                    method: 'POST', headers: {'content-type': 'application/query-cql-json'},
                    body: JSON.stringify({op: 'in', args: [{property: 'category'}, ['farm_shop', 'market']]})});
                out.post = [post.status, (await post.json()).numberMatched];
                try { await fetch(api + '/uploads'); out.uploads = 'read'; } catch (e) { out.uploads = e.name; }
                return out;
            }""", [server.url, EPSG25832])
            browser.close()
    finally:
        portal.shutdown()
    assert result == {"api": [200, "3.0"], "items": [200, f"<{EPSG25832}>", True, len(supply)],
                      "post": [200, int(supply["category"].isin(["farm_shop", "market"]).sum())],
                      "uploads": "TypeError"}
    assert blocked == []
    assert [m for m in problems if "/uploads" not in m] == []     # the one refusal is the uploads'


def test_a_configured_origin_list_is_echoed_only_to_its_origins(tmp_path, monkeypatch):
    """server.cors_origins as a list, read from the configuration file per request (GDI_CONFIG), in front
    of a WSGI app answering as the cache does (its own Vary): listed origins are echoed, any case of the
    host; others and requests without Origin get no grant, and every answer says Vary: Origin."""
    from werkzeug.test import Client

    from gdi.server import cors, uploads

    config = tmp_path / "gdi.yml"
    config.write_text("server:\n  cors_origins: [https://geoportal.example.de, http://127.0.0.1:8080]\n",
                      encoding="utf-8")
    monkeypatch.setenv("GDI_CONFIG", str(config))

    def api(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/geo+json"), ("ETag", 'W/"1"'),
                                  ("Vary", "Accept, Accept-Encoding, Accept-Language")])
        return [b"{}"]

    app = SimpleNamespace(wsgi_app=api)
    cors.install(app, uploads.OURS)
    client = Client(app.wsgi_app)
    for origin in ("https://geoportal.example.de", "https://GeoPortal.Example.DE", "http://127.0.0.1:8080"):
        r = client.get("/collections/supply_points/items", headers={"Origin": origin})
        assert r.headers["Access-Control-Allow-Origin"] == origin
        assert r.headers["Vary"] == "Accept, Accept-Encoding, Accept-Language, Origin"
        pre = client.options("/collections/supply_points/items",
                             headers={"Origin": origin, "Access-Control-Request-Method": "GET"})
        assert pre.status_code == 204 and pre.headers["Access-Control-Allow-Origin"] == origin
        assert pre.headers["Vary"] == "Origin"
    for headers in ({"Origin": "https://evil.example"}, {"Origin": "https://geoportal.example.de:8443"}, {}):
        r = client.get("/collections/supply_points/items", headers=headers)
        assert r.status_code == 200 and "Access-Control-Allow-Origin" not in r.headers, headers
        assert r.headers["Vary"] == "Accept, Accept-Encoding, Accept-Language, Origin"
    pre = client.options("/collections/supply_points/items",
                         headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
    assert pre.status_code == 200 and "Access-Control-Allow-Origin" not in pre.headers   # the app's own answer
    r = client.get("/uploads", headers={"Origin": "https://geoportal.example.de"})
    assert "Access-Control-Allow-Origin" not in r.headers and r.headers["Vary"] == \
        "Accept, Accept-Encoding, Accept-Language"                                          # untouched
    config.write_text("server:\n  cors_origins: []\n", encoding="utf-8")
    r = client.get("/collections/supply_points/items", headers={"Origin": "https://geoportal.example.de"})
    assert not [k for k in r.headers.keys() if k.lower().startswith("access-control-")]
