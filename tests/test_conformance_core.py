"""OGC API Features Part 1 (Core) abstract test suite, ported from the CITE ETS.

Every test takes the `server` fixture only (a real `gdi serve` process), so the
suite can later be parametrised over stores. Numbers in comments refer to the
abstract tests of OGC 17-069r4 Annex A.
"""
from __future__ import annotations

from datetime import datetime

import pytest
import requests

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
CORE = "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core"
COLLECTIONS = ("municipalities", "supply_points")


def get_json(server, path, expect=200, **params):
    params.setdefault("f", "json")
    r = server.get(path, params=params)
    assert r.status_code == expect, (path, params, r.status_code, r.text[:500])
    return r.json()


def rels(doc) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for link in doc.get("links", []):
        assert "href" in link and "rel" in link, link
        out.setdefault(link["rel"], []).append(link)
    return out


# A.2.2 landing page ------------------------------------------------------------
def test_landing_page(server):
    r = server.get("/", params={"f": "json"})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    doc = r.json()
    links = rels(doc)
    for rel in ("self", "service-desc", "conformance", "data"):
        assert rel in links, rel
    for rel in ("service-desc", "conformance", "data"):
        for link in links[rel]:
            assert requests.get(link["href"], timeout=30).status_code == 200, link
    assert any(link["type"].startswith("application/vnd.oai.openapi+json") for link in links["service-desc"])
    assert doc["title"] and doc["description"]


# A.2.3 API definition ----------------------------------------------------------
def test_api_definition(server):
    r = server.get("/openapi", params={"f": "json"})
    assert r.status_code == 200
    assert "openapi" in r.headers["Content-Type"] or r.headers["Content-Type"].startswith("application/json")
    doc = r.json()
    assert doc["openapi"].startswith("3.0")
    for cid in COLLECTIONS:
        assert f"/collections/{cid}/items" in doc["paths"]
        assert f"/collections/{cid}/items/{{featureId}}" in doc["paths"]


def test_api_definition_resolves_offline(server):
    from gdi.publish.openapi import external_refs

    doc = server.get("/openapi", params={"f": "json"}).json()
    assert external_refs(doc) == []
    # every local reference points at something
    def resolve(ref):
        node = doc
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    stack = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "$ref" in node:
                resolve(node["$ref"])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


# A.2.4 conformance -------------------------------------------------------------
def test_conformance(server):
    doc = get_json(server, "/conformance")
    classes = set(doc["conformsTo"])
    assert {CORE, "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
            "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html",
            "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30"} <= classes
    # the collections are read-only: Part 4 must not be claimed
    assert not any("ogcapi-features-4" in c for c in classes)


# A.2.5/A.2.6 collections -------------------------------------------------------
def test_collections(server):
    doc = get_json(server, "/collections")
    links = rels(doc)
    assert "self" in links
    ids = [c["id"] for c in doc["collections"]]
    assert sorted(ids) == sorted([*COLLECTIONS, "catalogue"])      # catalogue: the metadata records (Records API)
    assert [c["itemType"] for c in doc["collections"] if c["id"] == "catalogue"] == ["record"]
    for c in doc["collections"]:
        if c["id"] != "catalogue":
            check_collection(c)


def check_collection(c):
    links = rels(c)
    items = [link for link in links.get("items", []) if link.get("type") == "application/geo+json"]
    assert items, c["id"]
    assert items[0]["href"].split("?")[0].endswith(f"/collections/{c['id']}/items")
    bbox = c["extent"]["spatial"]["bbox"][0]
    assert c["extent"]["spatial"].get("crs", CRS84) == CRS84
    assert len(bbox) == 4 and -180 <= bbox[0] < bbox[2] <= 180 and -90 <= bbox[1] < bbox[3] <= 90
    assert 5.8 < bbox[0] < 15.1 and 47.2 < bbox[1] < 55.1      # Germany
    assert c["crs"][0] == CRS84 or CRS84 in c["crs"]
    assert c.get("itemType", "feature") == "feature"


@pytest.mark.parametrize("cid", COLLECTIONS)
def test_collection(server, cid):
    c = get_json(server, f"/collections/{cid}")
    assert c["id"] == cid
    check_collection(c)
    listed = next(x for x in get_json(server, "/collections")["collections"] if x["id"] == cid)
    assert listed["extent"] == c["extent"] and listed["title"] == c["title"]


def test_unknown_collection_is_404(server):
    assert server.get("/collections/nope", params={"f": "json"}).status_code == 404
    assert server.get("/collections/nope/items", params={"f": "json"}).status_code == 404
    assert server.get("/collections/nope/items/1", params={"f": "json"}).status_code == 404


# A.2.7 features ----------------------------------------------------------------
@pytest.mark.parametrize("cid", COLLECTIONS)
def test_items_response(server, cid):
    r = server.get(f"/collections/{cid}/items", params={"f": "json", "limit": 5})
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/geo+json")
    fc = r.json()
    assert fc["type"] == "FeatureCollection"
    datetime.fromisoformat(fc["timeStamp"].replace("Z", "+00:00"))
    assert fc["numberReturned"] == len(fc["features"]) == 5
    assert fc["numberMatched"] >= fc["numberReturned"]
    for f in fc["features"]:
        assert f["type"] == "Feature" and "id" in f
        assert f["geometry"]["type"] in {"Point", "MultiPolygon", "Polygon"}
        assert isinstance(f["properties"], dict)
    links = rels(fc)
    assert [link["type"] for link in links["self"]] == ["application/geo+json"]
    assert {"text/html"} <= {link["type"] for link in links.get("alternate", [])}
    for link in links["self"] + links["alternate"]:
        assert requests.get(link["href"], timeout=30).status_code == 200
    assert len(links["next"]) == 1


@pytest.mark.parametrize("cid,limit", [("municipalities", 10), ("supply_points", 10), ("supply_points", 13)])
def test_next_pages_add_up_and_last_has_no_next(server, cid, limit):
    first = get_json(server, f"/collections/{cid}/items", limit=limit)
    total = first["numberMatched"]
    ids, page, pages = [], first, 0
    while True:
        pages += 1
        assert page["numberMatched"] == total
        assert page["numberReturned"] == len(page["features"]) <= limit
        ids += [f["id"] for f in page["features"]]
        nxt = rels(page).get("next")
        if not nxt:
            break
        assert len(nxt) == 1
        page = requests.get(nxt[0]["href"], timeout=30).json()
    assert len(ids) == len(set(ids)) == total
    assert pages == -(-total // limit)
    assert page["numberReturned"] == total - (pages - 1) * limit


def test_offset_past_the_end(server):
    fc = get_json(server, "/collections/municipalities/items", offset=1000)
    assert fc["features"] == [] and fc["numberReturned"] == 0 and "next" not in rels(fc)


# A.2.7 limit --------------------------------------------------------------------
def test_limit(server):
    assert get_json(server, "/collections/supply_points/items", limit=1)["numberReturned"] == 1
    default = get_json(server, "/collections/supply_points/items")
    assert default["numberReturned"] == 10
    for bad in ("0", "-1", "abc", "1.5"):
        assert server.get("/collections/supply_points/items", params={"f": "json", "limit": bad}).status_code == 400


def test_limit_over_maximum_is_throttled(server):
    fc = get_json(server, "/collections/supply_points/items", limit=10_000_000)
    assert fc["numberReturned"] == fc["numberMatched"]       # capped at the maximum (10,000), not an error


# A.2.7 bbox ---------------------------------------------------------------------
BBOX = (8.70, 50.76, 8.85, 50.86)


def test_bbox(server):
    all_points = get_json(server, "/collections/supply_points/items", limit=1000)["features"]
    expected = {f["id"] for f in all_points
                if BBOX[0] <= f["geometry"]["coordinates"][0] <= BBOX[2]
                and BBOX[1] <= f["geometry"]["coordinates"][1] <= BBOX[3]}
    fc = get_json(server, "/collections/supply_points/items", bbox=",".join(map(str, BBOX)), limit=1000)
    assert {f["id"] for f in fc["features"]} == expected and 0 < len(expected) < len(all_points)
    assert fc["numberMatched"] == len(expected)
    # a bbox-filtered page keeps the bbox in its next link
    page = get_json(server, "/collections/supply_points/items", bbox=",".join(map(str, BBOX)), limit=2)
    nxt = rels(page)["next"][0]["href"]
    assert "bbox=" in nxt
    # the 6-value form (with heights) selects the same features
    fc6 = get_json(server, "/collections/supply_points/items", limit=1000,
                   bbox=f"{BBOX[0]},{BBOX[1]},-100,{BBOX[2]},{BBOX[3]},1000")
    assert {f["id"] for f in fc6["features"]} == expected


@pytest.mark.parametrize("bbox", ["1,2,3", "a,b,c,d", "1,2,3,4,5", "8.7,50.9,8.8,50.8", "", "1,2,3,4,5,6,7"])
def test_invalid_bbox_is_400(server, bbox):
    r = server.get("/collections/supply_points/items", params={"f": "json", "bbox": bbox})
    assert r.status_code == 400, r.text


def test_bbox_across_the_antimeridian_is_not_an_error(server):
    # minx > maxx means "crossing the antimeridian" in CRS84 (17-069r4 7.15.3); nothing of ours is there
    r = server.get("/collections/supply_points/items", params={"f": "json", "bbox": "170,50,-170,51"})
    assert r.status_code in (200, 400)
    if r.status_code == 200:
        assert r.json()["numberMatched"] == 0


# A.2.7 datetime -----------------------------------------------------------------
def test_datetime(server):
    all_points = get_json(server, "/collections/supply_points/items", limit=1000)
    stamps = sorted({f["properties"]["updated"] for f in all_points["features"]})
    first = stamps[0]
    day = first[:10]
    for value, n in [(first, sum(f["properties"]["updated"] == first for f in all_points["features"])),
                     (f"{day}T00:00:00Z/..", all_points["numberMatched"]),
                     (f"../{day}T23:59:59Z", all_points["numberMatched"]),
                     (f"{day}T00:00:00Z/{day}T23:59:59Z", all_points["numberMatched"]),
                     ("1990-01-01T00:00:00Z/1990-12-31T00:00:00Z", 0),
                     ("2999-01-01T00:00:00Z/..", 0)]:
        fc = get_json(server, "/collections/supply_points/items", datetime=value, limit=1000)
        assert fc["numberMatched"] == n, value
    for bad in ("yesterday", "2020-13-45T00:00:00Z"):
        assert server.get("/collections/supply_points/items",
                          params={"f": "json", "datetime": bad}).status_code == 400


# A.2.7 unknown query parameters -------------------------------------------------
def test_unknown_query_parameter_is_ignored(server):
    plain = get_json(server, "/collections/municipalities/items", limit=50)
    odd = get_json(server, "/collections/municipalities/items", limit=50, nonsense="42", foo="bar")
    assert [f["id"] for f in odd["features"]] == [f["id"] for f in plain["features"]]


# A.2.8 single feature -----------------------------------------------------------
@pytest.mark.parametrize("cid", COLLECTIONS)
def test_single_feature(server, cid):
    some = get_json(server, f"/collections/{cid}/items", limit=3)["features"][2]
    r = server.get(f"/collections/{cid}/items/{some['id']}", params={"f": "json"})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/geo+json")
    f = r.json()
    assert f["type"] == "Feature" and f["id"] == some["id"]
    assert f["properties"] == some["properties"] and f["geometry"] == some["geometry"]
    links = rels(f)
    assert links["self"][0]["href"].split("?")[0].endswith(f"/collections/{cid}/items/{some['id']}")
    assert links["collection"][0]["href"].split("?")[0].endswith(f"/collections/{cid}")
    assert "alternate" in links


@pytest.mark.parametrize("fid", ["999999", "abc", "1.5", "-1", "0", "%20"])
def test_unknown_feature_is_404(server, fid):
    r = server.get(f"/collections/municipalities/items/{fid}", params={"f": "json"})
    assert r.status_code == 404, (fid, r.status_code)


def test_whole_world_bbox_selects_everything(server):
    # regression: a world bbox used to be projected to infinities and matched nothing
    total = get_json(server, "/collections/supply_points/items", limit=1)["numberMatched"]
    assert get_json(server, "/collections/supply_points/items", bbox="-180,-90,180,90")["numberMatched"] == total
