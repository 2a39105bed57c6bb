"""OGC API Features Part 2 (CRS), Part 3 (filtering, CQL2), sorting and HTML, against a real server."""
from __future__ import annotations

import json

import pyproj
import pytest
import requests

from test_conformance_core import get_json, rels

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG = "http://www.opengis.net/def/crs/EPSG/0/{}"
F3 = "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/"
CQL2 = "http://www.opengis.net/spec/cql2/1.0/conf/"


def conforms(server) -> set[str]:
    return set(get_json(server, "/conformance")["conformsTo"])


# Part 2 -------------------------------------------------------------------------
def test_part2_claimed_and_collections_advertise_crs(server):
    assert "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs" in conforms(server)
    features = [c for c in get_json(server, "/collections")["collections"] if c["itemType"] == "feature"]
    assert len(features) == 2      # the metadata records (itemType record) have no CRS to offer
    for c in features:
        assert {CRS84, EPSG.format(25832), EPSG.format(4258)} <= set(c["crs"])
        assert c["storageCrs"] == EPSG.format(25832)


@pytest.mark.parametrize("cid", ["municipalities", "supply_points"])
def test_crs_25832_equals_pyproj_within_millimetres(server, cid):
    lonlat = get_json(server, f"/collections/{cid}/items", limit=5)
    r = server.get(f"/collections/{cid}/items", params={"f": "json", "limit": 5, "crs": EPSG.format(25832)})
    assert r.status_code == 200 and r.headers["Content-Crs"] == f"<{EPSG.format(25832)}>"
    assert server.get(f"/collections/{cid}/items", params={"f": "json", "limit": 1}).headers[
        "Content-Crs"] == f"<{CRS84}>"
    utm = r.json()
    t = pyproj.Transformer.from_crs("OGC:CRS84", "EPSG:25832", always_xy=True)
    import shapely
    from shapely.geometry import shape
    for a, b in zip(lonlat["features"], utm["features"]):
        assert a["id"] == b["id"]
        ga = shapely.get_coordinates(shape(a["geometry"]))
        gb = shapely.get_coordinates(shape(b["geometry"]))
        x, y = t.transform(ga[:, 0], ga[:, 1])
        # lon/lat are served with 7 decimals (~1 cm), so compare against the UTM output at that precision
        assert abs(x - gb[:, 0]).max() < 0.02 and abs(y - gb[:, 1]).max() < 0.02
    one = utm["features"][0]
    single = server.get(f"/collections/{cid}/items/{one['id']}", params={"f": "json", "crs": EPSG.format(25832)})
    assert single.headers["Content-Crs"] == f"<{EPSG.format(25832)}>" and single.json()["geometry"] == one["geometry"]


def test_crs_4258_is_lat_lon(server):
    a = get_json(server, "/collections/supply_points/items", limit=1)["features"][0]["geometry"]["coordinates"]
    b = get_json(server, "/collections/supply_points/items", limit=1, crs=EPSG.format(4258))["features"][0]
    assert b["geometry"]["coordinates"] == pytest.approx([a[1], a[0]], abs=1e-6)


def test_bbox_crs(server):
    box = (8.70, 50.76, 8.85, 50.86)
    ref = {f["id"] for f in get_json(server, "/collections/supply_points/items", limit=1000,
                                      bbox=",".join(map(str, box)))["features"]}
    t = pyproj.Transformer.from_crs("OGC:CRS84", "EPSG:25832", always_xy=True)
    pts = get_json(server, "/collections/supply_points/items", limit=1000, crs=EPSG.format(25832))["features"]
    x0, y0 = t.transform(box[0], box[1])
    x1, y1 = t.transform(box[2], box[3])
    utm = get_json(server, "/collections/supply_points/items", limit=1000, bbox=f"{x0},{y0},{x1},{y1}",
                   **{"bbox-crs": EPSG.format(25832)})
    expected = {f["id"] for f in pts if x0 <= f["geometry"]["coordinates"][0] <= x1
                and y0 <= f["geometry"]["coordinates"][1] <= y1}
    assert {f["id"] for f in utm["features"]} == expected and expected
    latlon = get_json(server, "/collections/supply_points/items", limit=1000,
                      bbox=f"{box[1]},{box[0]},{box[3]},{box[2]}", **{"bbox-crs": EPSG.format(4258)})
    assert {f["id"] for f in latlon["features"]} == ref
    for bad in ({"crs": "EPSG:9999"}, {"crs": EPSG.format(9999)}, {"bbox": "1,2,3,4", "bbox-crs": EPSG.format(9999)},
                {"bbox-crs": EPSG.format(25832)}):
        assert server.get("/collections/supply_points/items", params={"f": "json", **bad}).status_code == 400, bad


# Part 3 -------------------------------------------------------------------------
def test_part3_conformance_claims(server):
    classes = conforms(server)
    assert {F3 + "filter", F3 + "features-filter", F3 + "queryables", F3 + "queryables-query-parameters",
            CQL2 + "cql2-text", CQL2 + "cql2-json", CQL2 + "basic-cql2", CQL2 + "advanced-comparison-operators",
            CQL2 + "case-insensitive-comparison",
            CQL2 + "basic-spatial-functions", CQL2 + "basic-spatial-functions-plus",
            CQL2 + "spatial-functions"} <= classes
    # ACCENTI works in CQL2 text, but pygeofilter's CQL2 JSON parser lacks it: not claimed
    for unproven in ("accent-insensitive-comparison", "temporal-functions", "array-functions", "property-property", "arithmetic", "functions"):
        assert CQL2 + unproven not in classes


def test_queryables(server):
    for cid in ("municipalities", "supply_points"):
        c = get_json(server, f"/collections/{cid}")
        href = next(link["href"] for link in c["links"]
                    if link["rel"] == "http://www.opengis.net/def/rel/ogc/1.0/queryables"
                    and link["type"] == "application/schema+json")
        q = requests.get(href, timeout=30).json()
        assert q["type"] == "object" and "geometry" in q["properties"]
    q = get_json(server, "/collections/municipalities/queryables")
    assert {"ags", "name", "population"} <= set(q["properties"])
    assert get_json(server, "/collections/municipalities/items", name="Marburg")["numberMatched"] == 1


@pytest.mark.parametrize("cid", ["municipalities", "supply_points"])
def test_queryables_are_a_closed_json_schema_2020_12(server, cid):
    """/req/queryables/get-queryables-response: $schema, $id (the URL, no query string), type object;
    closed, since a filter naming anything else is a 400."""
    url = f"{server.url}/collections/{cid}/queryables"
    plain = {"Accept-Encoding": "identity"}
    answers = {
        "f=json": server.get(f"/collections/{cid}/queryables", params={"f": "json"}, headers=plain),
        "Accept": server.get(f"/collections/{cid}/queryables",
                             headers={"Accept": "application/schema+json", **plain}),
        "query string": server.get(f"/collections/{cid}/queryables", params={"f": "json", "properties": "name"},
                                   headers=plain),
    }
    for how, r in answers.items():
        assert r.status_code == 200, how
        assert r.headers["Content-Type"].split(";")[0] == "application/schema+json", how
        q = r.json()
        assert q["$schema"] == "https://json-schema.org/draft/2020-12/schema", how
        assert q["$id"] == url, how
        assert q["type"] == "object", how
        assert q["additionalProperties"] is False, how
        assert q["properties"]["geometry"] == {"format": "geometry-any", "x-ogc-role": "primary-geometry"}, how
        assert int(r.headers["Content-Length"]) == len(r.content), how
    assert set(answers["query string"].json()["properties"]) == {"geometry", "name"}
    assert answers["f=json"].json() == answers["Accept"].json()
    # what additionalProperties: false promises
    r = server.get(f"/collections/{cid}/items", params={"f": "json", "filter": "nosuch = 1"})
    assert r.status_code == 400
    assert server.get(f"/collections/{cid}/items", params={"f": "json", "filter": "name = 'x'"}).status_code == 200


def names(fc) -> set[str]:
    return {f["properties"]["name"] for f in fc["features"]}


def mun(server, **params):
    params.setdefault("limit", 100)
    return get_json(server, "/collections/municipalities/items", **params)


CQL_CASES = [
    ("name = 'Marburg'", {"op": "=", "args": [{"property": "name"}, "Marburg"]}, {"Marburg"}),
    ("name LIKE 'Bad D%'", {"op": "like", "args": [{"property": "name"}, "Bad D%"]}, {"Bad Driburg"}),
    ("name IN ('Marburg','Höxter')", {"op": "in", "args": [{"property": "name"}, ["Marburg", "Höxter"]]},
     {"Marburg", "Höxter"}),
    ("population > 70000 AND NOT name = 'x'",
     {"op": "and", "args": [{"op": ">", "args": [{"property": "population"}, 70000]},
                            {"op": "not", "args": [{"op": "=", "args": [{"property": "name"}, "x"]}]}]}, {"Marburg"}),
    ("CASEI(name) = casei('HÖXTER')", {"op": "=", "args": [{"op": "casei", "args": [{"property": "name"}]},
                                                         {"op": "casei", "args": ["HÖXTER"]}]}, {"Höxter"}),
    ("S_INTERSECTS(geometry, POINT(8.7705 50.8098))",
     {"op": "s_intersects", "args": [{"property": "geometry"}, {"type": "Point", "coordinates": [8.7705, 50.8098]}]},
     {"Marburg"}),
    ("S_INTERSECTS(geometry, BBOX(8.76, 50.80, 8.78, 50.82))",
     {"op": "s_intersects", "args": [{"property": "geometry"}, {"bbox": [8.76, 50.80, 8.78, 50.82]}]}, {"Marburg"}),
    ("BBOX(geometry, 8.76, 50.80, 8.78, 50.82)",
     {"op": "s_intersects", "args": [{"property": "geometry"}, {"bbox": [8.76, 50.80, 8.78, 50.82]}]}, {"Marburg"}),
    ("BBOX(geometry, 9.37, 51.76, 9.39, 51.78) OR BBOX(geometry, 8.76, 50.80, 8.78, 50.82)",
     {"op": "or", "args": [
         {"op": "s_intersects", "args": [{"property": "geometry"}, {"bbox": [9.37, 51.76, 9.39, 51.78]}]},
         {"op": "s_intersects", "args": [{"property": "geometry"}, {"bbox": [8.76, 50.80, 8.78, 50.82]}]}]},
     {"Marburg", "Höxter"}),
    ("S_CONTAINS(geometry, POINT(9.3804 51.7745))",
     {"op": "s_contains", "args": [{"property": "geometry"}, {"type": "Point", "coordinates": [9.3804, 51.7745]}]},
     {"Höxter"}),
]


@pytest.mark.parametrize("text,cql_json,expected", CQL_CASES)
def test_cql2_text_json_get_and_post_agree(server, text, cql_json, expected):
    assert names(mun(server, filter=text)) == expected
    assert names(mun(server, filter=text, **{"filter-lang": "cql2-text"})) == expected
    assert names(mun(server, filter=json.dumps(cql_json), **{"filter-lang": "cql2-json"})) == expected
    r = requests.post(f"{server.url}/collections/municipalities/items?f=json&limit=100&filter-lang=cql2-json",
                      data=json.dumps(cql_json), headers={"Content-Type": "application/query-cql-json"}, timeout=30)
    assert r.status_code == 200 and names(r.json()) == expected


def test_spatial_functions(server):
    marburg_area = "POLYGON((8.70 50.76, 8.85 50.76, 8.85 50.86, 8.70 50.86, 8.70 50.76))"
    within = names(mun(server, filter=f"S_WITHIN(geometry, {marburg_area})"))
    inter = names(mun(server, filter=f"S_INTERSECTS(geometry, {marburg_area})"))
    disj = names(mun(server, filter=f"S_DISJOINT(geometry, {marburg_area})"))
    assert within == set() and "Marburg" in inter and not (inter & disj) and len(inter | disj) == 32
    big = "POLYGON((8.0 50.4, 9.5 50.4, 9.5 51.2, 8.0 51.2, 8.0 50.4))"
    assert len(names(mun(server, filter=f"S_WITHIN(geometry, {big})"))) == 22     # all of Marburg-Biedenkopf
    touches = names(mun(server, filter="S_TOUCHES(geometry, POINT(8.7705 50.8098))"))
    assert touches == set()


def test_filter_crs(server):
    t = pyproj.Transformer.from_crs("OGC:CRS84", "EPSG:25832", always_xy=True)
    x, y = t.transform(8.7705, 50.8098)
    fc = mun(server, filter=f"S_INTERSECTS(geometry, POINT({x} {y}))", **{"filter-crs": EPSG.format(25832)})
    assert names(fc) == {"Marburg"}
    x0, y0 = t.transform(8.76, 50.80)
    x1, y1 = t.transform(8.78, 50.82)
    fc = mun(server, filter=f"S_INTERSECTS(geometry, BBOX({x0}, {y0}, {x1}, {y1}))",
             **{"filter-crs": EPSG.format(25832)})
    assert names(fc) == {"Marburg"}


@pytest.mark.parametrize("cql,crs,box", [
    ("BBOX(geometry, 8.70, 50.76, 8.85, 50.86)", None, (8.70, 50.76, 8.85, 50.86)),
    ("BBOX(geometry, 8.70, 50.76, 8.85, 50.86)", CRS84, (8.70, 50.76, 8.85, 50.86)),
    ("BBOX(geometry, 50.76, 8.70, 50.86, 8.85)", EPSG.format(4326), (8.70, 50.76, 8.85, 50.86)),   # lat, lon
    ("BBOX(geometry, 478000, 5624000, 490000, 5636000)", EPSG.format(25832), (478000, 5624000, 490000, 5636000)),
    ("BBOX(geometry, 9.30, 51.70, 9.45, 51.80) AND category = 'supermarket'", None, (9.30, 51.70, 9.45, 51.80)),
])
def test_bbox_predicate_searches_the_box_in_filter_crs(server, real_data, cql, crs, box):
    """BBOX(geometry, minx, miny, maxx, maxy) in CQL2 text selects the points of that box, the box read in
    filter-crs (default CRS84; EPSG:4326 is latitude first); expected from the source files."""
    from fixtures import published_supply_points, same_points

    points = published_supply_points(real_data)
    if crs == EPSG.format(25832):
        points = points.to_crs(25832)
    inside = points.cx[box[0]:box[2], box[1]:box[3]]
    if "supermarket" in cql:
        inside = inside[inside["category"] == "supermarket"]
    params = {"filter": cql, "limit": 1000, **({"filter-crs": crs} if crs else {})}
    served = get_json(server, "/collections/supply_points/items", **params)
    assert served["numberMatched"] == len(inside) > 0
    assert same_points(served["features"], inside.to_crs(4326), 1e-6)


@pytest.mark.parametrize("bad", ["nosuch = 1", "name = ", "S_INTERSECTS(name, POINT(1 2))", "{\"op\": \"=\"}",
                                 "T_AFTER(updated, TIMESTAMP('2020-01-01T00:00:00Z'))"])
def test_bad_filters_are_400(server, bad):
    r = server.get("/collections/municipalities/items", params={"f": "json", "filter": bad})
    assert r.status_code == 400, (bad, r.status_code)
    assert server.get("/collections/municipalities/items",
                      params={"f": "json", "filter": "name='x'", "filter-lang": "xpath"}).status_code == 400


def test_post_items_without_body_is_400(server):
    assert requests.post(f"{server.url}/collections/municipalities/items", timeout=30).status_code == 400
    r = requests.post(f"{server.url}/collections/municipalities/items", data=b"{}",
                      headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 400


# Sorting ------------------------------------------------------------------------
def test_sorting(server):
    pops = [f["properties"]["population"] for f in mun(server, sortby="-population")["features"]]
    assert pops == sorted(pops, reverse=True)
    ns = [f["properties"]["name"] for f in mun(server, sortby="+name")["features"]]
    assert ns == sorted(ns)
    by_two = [(f["properties"]["member"], f["properties"]["name"])
              for f in mun(server, sortby="member,-name")["features"]]
    assert by_two == sorted(by_two, key=lambda t: (t[0], [-ord(c) for c in t[1]]))
    # sorted paging adds up
    first = mun(server, sortby="-population", limit=20)
    rest = requests.get(rels(first)["next"][0]["href"], timeout=30).json()
    assert [f["properties"]["population"] for f in first["features"] + rest["features"]] == pops
    for bad in ("", "nosuch", "-", "name,nosuch"):
        assert server.get("/collections/municipalities/items", params={"f": "json", "sortby": bad}).status_code == 400


# HTML ---------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/", "/conformance", "/collections", "/collections/municipalities",
                                  "/collections/municipalities/items", "/collections/municipalities/items/1",
                                  "/collections/municipalities/queryables"])
def test_html(server, path):
    r = server.get(path, params={"f": "html"})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    assert "<html" in r.text.lower()
    r2 = server.get(path, headers={"Accept": "text/html"})
    assert r2.status_code == 200 and r2.headers["Content-Type"].startswith("text/html")


# Conventions --------------------------------------------------------------------
def test_licence_attribution_and_languages(server):
    for lang, title, word in (("de", "Gemeindegrenzen", "Grenzen"), ("en", "Municipal boundaries", "Boundaries")):
        c = server.get("/collections/municipalities", params={"f": "json"},
                       headers={"Accept-Language": lang}).json()
        assert c["title"] == title and word in c["description"]
        assert "GeoBasis-DE / BKG" in c["description"]
        assert any(link["rel"] == "license" and "dl-de/by-2-0" in link["href"] for link in c["links"])
