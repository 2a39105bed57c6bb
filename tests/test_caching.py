"""HTTP caching of the OGC API (gdi/server/caching.py), against the real server on both stores."""
from __future__ import annotations

import gzip
import json

import geopandas as gpd
import pytest
import requests
import shapely

from conftest import home_store

ITEMS = "/collections/supply_points/items?f=json&limit=5"


def test_etag_and_304(server):
    first = server.get(ITEMS, headers={"Accept-Encoding": "identity"})
    assert first.status_code == 200
    etag = first.headers["ETag"]
    assert etag.startswith('W/"') and etag.endswith('"')      # weak: bodies differ by their timeStamp
    assert first.headers["Last-Modified"]
    again = server.get(ITEMS, headers={"If-None-Match": etag, "Accept-Encoding": "identity"})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["ETag"] == etag
    # the tag is the same in every worker: ask often enough to hit all of them
    for _ in range(8):
        assert server.get(ITEMS, headers={"If-None-Match": etag, "Accept-Encoding": "identity"}).status_code == 304
    other = server.get(ITEMS.replace("limit=5", "limit=6"), headers={"If-None-Match": etag})
    assert other.status_code == 200 and other.headers["ETag"] != etag
    # a HEAD carries the same validators
    head = requests.head(server.url + ITEMS, timeout=30, headers={"Accept-Encoding": "identity"})
    assert head.status_code == 200 and head.headers["ETag"] == etag


def test_if_modified_since(server):
    first = server.get(ITEMS)
    assert first.status_code == 200
    again = server.get(ITEMS, headers={"If-Modified-Since": first.headers["Last-Modified"]})
    assert again.status_code == 304


def test_cache_control_and_vary(server):
    for path in ("/", "/conformance?f=json", "/collections?f=json", ITEMS, "/collections/supply_points/items/1?f=json"):
        r = server.get(path)
        assert r.status_code == 200, path
        assert r.headers["Cache-Control"] == "public, no-cache", path
        assert "Accept-Encoding" in r.headers["Vary"], path
    # errors are never cached or given validators
    missing = server.get("/collections/nope/items?f=json")
    assert missing.status_code == 404 and "ETag" not in missing.headers


def test_gzip(server):
    raw = requests.get(server.url + ITEMS.replace("limit=5", "limit=100"), timeout=30, stream=True,
                       headers={"Accept-Encoding": "gzip"})
    assert raw.headers["Content-Encoding"] == "gzip"
    assert raw.headers["ETag"].endswith('-gz"')
    body = gzip.decompress(raw.raw.read())
    assert json.loads(body)["type"] == "FeatureCollection"
    plain = requests.get(server.url + ITEMS.replace("limit=5", "limit=100"), timeout=30,
                         headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers
    assert json.loads(plain.content)["features"] == json.loads(body)["features"]
    assert int(plain.headers["Content-Length"]) == len(plain.content)
    assert plain.headers["Content-Type"].startswith("application/geo+json")
    # the gzip tag validates the gzip representation only
    assert server.get(ITEMS.replace("limit=5", "limit=100"),
                      headers={"If-None-Match": raw.headers["ETag"], "Accept-Encoding": "gzip"}).status_code == 304
    assert server.get(ITEMS.replace("limit=5", "limit=100"),
                      headers={"If-None-Match": raw.headers["ETag"], "Accept-Encoding": "identity"}).status_code == 200


def test_new_upload_is_visible_on_the_very_next_request(server, monkeypatch):
    """Written straight into the store, with no signal to the server: every worker's cache must notice."""
    from gdi.collections import load_collections
    from gdi.store import open_store
    from gdi.store.base import VersionMeta

    monkeypatch.setenv("GDI_HOME", str(server.home))
    store_url = home_store(server.home)
    if store_url:
        monkeypatch.setenv("GDI_STORE", store_url)
    else:
        monkeypatch.delenv("GDI_STORE", raising=False)
    store = open_store()
    collection = load_collections()["supply_points"]
    path = "/collections/supply_points/items?f=json&limit=1&name=Cache-Test-Laden"
    before = [server.get(path) for _ in range(6)]          # warm every worker's cache
    assert all(r.json()["numberMatched"] == 0 for r in before)
    etag = before[0].headers["ETag"]
    count = server.get("/collections/supply_points/items?f=json&limit=1").json()["numberMatched"]
    point = shapely.Point(483000, 5630000)                 # Marburg, EPSG:25832
    frame = gpd.GeoDataFrame({"name": ["Cache-Test-Laden"], "category": ["farm_shop"]},
                             geometry=gpd.GeoSeries([point], crs=collection.storage_crs))
    try:
        store.replace(collection, "06534", "cache-test", frame, updated="2026-01-01T00:00:00Z", meta=VersionMeta())
        after = server.get(path, headers={"If-None-Match": etag})
        assert after.status_code == 200
        assert after.json()["numberMatched"] == 1
        assert after.headers["ETag"] != etag
        for _ in range(6):
            assert server.get(path).json()["numberMatched"] == 1
        assert server.get("/collections/supply_points/items?f=json&limit=1").json()["numberMatched"] == count + 1
    finally:
        # no feature left behind for the other tests sharing this server (both stores: replace by nothing)
        store.replace(collection, "06534", "cache-test", frame.iloc[:0], updated="2026-01-01T00:00:01Z",
                      meta=VersionMeta())
    for _ in range(6):
        assert server.get(path).json()["numberMatched"] == 0
    assert server.get("/collections/supply_points/items?f=json&limit=1").json()["numberMatched"] == count


@pytest.mark.parametrize("method", ["POST"])
def test_non_get_is_not_cached(server, method):
    r = requests.request(method, server.url + "/collections/supply_points/items", timeout=30)
    assert r.status_code == 400
    assert "ETag" not in r.headers
