"""Vector tiles (OGC API Tiles, MVT) on both stores, against the features API of the same server.

The demo data are the real files of data/ (the VG250 municipalities, the OSM supply points). Tiles are
decoded twice — with mapbox-vector-tile and with GDAL's MVT driver (pyogrio, the X/Y/Z open options)
— and their box is taken from the served tile matrix set, as a client computes it. At a collection's
highest zoom a tile must hold exactly the features ``items`` returns for the tile's box.
"""
from __future__ import annotations

import gzip
import json
import math
from collections import Counter

import mapbox_vector_tile
import numpy as np
import pyogrio
import pytest
import requests
import shapely
from shapely.geometry import shape

from conftest import home_store, run_gdi

EPSG = "http://www.opengis.net/def/crs/EPSG/0/{}"
WMQ = "WebMercatorQuad"
ADV = "AdV_25832"
COLLECTIONS = {"supply_points": {"properties": ["name", "category"], "max": 14},
               "municipalities": {"properties": ["name", "ags"], "max": 14}}


def tile_path(cid: str, tms: str, z: int, y: int, x: int, f: str = "mvt") -> str:
    return f"/collections/{cid}/tiles/{tms}/{z}/{y}/{x}?f={f}"


def matrix(server, tms: str, z: int) -> dict:
    doc = server.get(f"/TileMatrixSets/{tms}?f=json").json()
    return next(m for m in doc["tileMatrices"] if m["id"] == str(z))


def tile_bounds(m: dict, y: int, x: int) -> tuple[float, float, float, float]:
    size = m["cellSize"] * m["tileWidth"]
    ox, oy = m["pointOfOrigin"]
    return ox + x * size, oy - (y + 1) * size, ox + (x + 1) * size, oy - y * size


def tile_of(m: dict, x: float, y: float) -> tuple[int, int]:
    """(row, col) of the tile holding a point in the set's CRS."""
    size = m["cellSize"] * m["tileWidth"]
    ox, oy = m["pointOfOrigin"]
    return int((oy - y) // size), int((x - ox) // size)


def items_in(server, cid: str, bounds, epsg: int, **params) -> list[dict]:
    r = server.get(f"/collections/{cid}/items", params={
        "f": "json", "limit": 10000, "bbox": ",".join(repr(v) for v in bounds), "bbox-crs": EPSG.format(epsg),
        **params})
    assert r.status_code == 200, r.text[:300]
    data = r.json()
    assert data["numberReturned"] == data["numberMatched"]
    return data["features"]


def decoded(body: bytes, cid: str) -> list[dict]:
    return mapbox_vector_tile.decode(body).get(cid, {}).get("features", []) if body else []


def by_gdal(body: bytes, cid: str, z: int, y: int, x: int, tmp_path):
    path = tmp_path / f"{cid}-{z}-{y}-{x}.pbf"
    path.write_bytes(body)
    return pyogrio.read_dataframe(path, layer=cid, X=str(x), Y=str(y), Z=str(z))


def busiest_tiles(server, cid: str, tms: str, z: int, epsg: int, n: int = 3) -> list[tuple[int, int]]:
    """The n tiles of level z holding the most features (points) or the most vertices of
    boundaries (polygons: where municipalities meet)."""
    feats = server.get(f"/collections/{cid}/items", params={"f": "json", "limit": 10000,
                                                            "crs": EPSG.format(epsg)}).json()["features"]
    m = matrix(server, tms, z)
    coords = np.vstack([shapely.get_coordinates(shape(f["geometry"]))[::50] for f in feats])
    counted = Counter(tile_of(m, cx, cy) for cx, cy in coords)
    return [t for t, _ in counted.most_common(n)]


@pytest.mark.parametrize("cid", list(COLLECTIONS))
def test_highest_zoom_tile_is_exactly_the_features_of_its_box(server, cid, tmp_path):
    """Count and ids, read with mapbox-vector-tile and with GDAL, equal items?bbox=<tile box>; each
    feature's id is its fid, its properties the declared ones with the features' values."""
    z = COLLECTIONS[cid]["max"]
    declared = COLLECTIONS[cid]["properties"]
    m = matrix(server, WMQ, z)
    several = 0
    for y, x in busiest_tiles(server, cid, WMQ, z, 3857):
        r = server.get(tile_path(cid, WMQ, z, y, x))
        assert r.status_code == 200 and r.headers["Content-Type"] == "application/vnd.mapbox-vector-tile"
        expected = {f["id"]: f for f in items_in(server, cid, tile_bounds(m, y, x), 3857)}
        assert expected, (cid, z, y, x)
        several += len(expected) > 1
        mvt = decoded(r.content, cid)
        assert len(mvt) == len(expected) and {f["id"] for f in mvt} == set(expected)
        for f in mvt:
            props = expected[f["id"]]["properties"]
            assert f["properties"] == {k: props[k] for k in declared if props.get(k) is not None}
        gdal = by_gdal(r.content, cid, z, y, x, tmp_path)
        assert len(gdal) == len(expected) and set(gdal["mvt_id"]) == set(expected)
        assert set(gdal.columns) - {"mvt_id", "geometry"} <= set(declared)
        assert str(gdal.crs) == "EPSG:3857"
        if cid == "supply_points":       # positions within a tile unit (2446 m / 4096 ≈ 0.6 m)
            for fid, geom in zip(gdal["mvt_id"], gdal.geometry):
                want = shapely.Point(expected[fid]["geometry"]["coordinates"])
                assert geom.distance(_to_3857(want)) < 1.0
    assert several, "no tile with more than one feature: the test data moved"


def _to_3857(point: shapely.Point) -> shapely.Point:
    from pyproj import Transformer

    return shapely.Point(Transformer.from_crs("OGC:CRS84", "EPSG:3857", always_xy=True).transform(point.x, point.y))


def test_adv_tile_at_the_highest_level_is_exactly_the_features_of_its_box(server, tmp_path):
    """The AdV_25832 set cuts the stored EPSG:25832 data without reprojection; its level for
    WebMercatorQuad z14 is 10."""
    m = matrix(server, ADV, 10)
    for y, x in busiest_tiles(server, "supply_points", ADV, 10, 25832, n=2):
        r = server.get(tile_path("supply_points", ADV, 10, y, x))
        assert r.status_code == 200
        expected = {f["id"] for f in items_in(server, "supply_points", tile_bounds(m, y, x), 25832)}
        mvt = decoded(r.content, "supply_points")
        assert len(mvt) == len(expected) > 1 and {f["id"] for f in mvt} == expected
    assert server.get(tile_path("supply_points", ADV, 11, 0, 0)).status_code == 404      # beyond z14


def test_low_zoom_is_generalised(server):
    """Below zoom 12 supply points are thinned to one per 16-pixel cell (the lowest fid); below 14 the
    municipalities' outlines are simplified: fewer points, fewer vertices than the features hold."""
    z = 8
    m = matrix(server, WMQ, z)
    marburg = _to_3857(shapely.Point(8.77, 50.81))
    y, x = tile_of(m, marburg.x, marburg.y)
    bounds = tile_bounds(m, y, x)
    points = decoded(server.get(tile_path("supply_points", WMQ, z, y, x)).content, "supply_points")
    all_points = {f["id"] for f in items_in(server, "supply_points", bounds, 3857)}
    assert 0 < len(points) < len(all_points) and {f["id"] for f in points} <= all_points
    cells = Counter((c[0] // 256, c[1] // 256) for c in (f["geometry"]["coordinates"] for f in points))
    assert max(cells.values()) == 1
    outlines = decoded(server.get(tile_path("municipalities", WMQ, z, y, x)).content, "municipalities")
    features = items_in(server, "municipalities", bounds, 3857)
    assert {f["id"] for f in outlines} == {f["id"] for f in features}
    vertices_tile = sum(len(shapely.get_coordinates(shape(f["geometry"]))) for f in outlines)
    box = shapely.box(*bounds)
    raw = 0
    for f in features:
        g = shapely.transform(shape(f["geometry"]), _lonlat_to_3857)
        raw += int(shapely.contains_xy(box, *shapely.get_coordinates(g).T).sum())
    assert vertices_tile * 3 < raw, (vertices_tile, raw)


def _lonlat_to_3857(c: np.ndarray) -> np.ndarray:
    x = np.radians(c[:, 0]) * 6378137.0
    y = np.log(np.tan(np.pi / 4 + np.radians(c[:, 1]) / 2)) * 6378137.0
    return np.column_stack([x, y])


def test_tiles_are_cached_like_the_features(server):
    """ETag, 304 on If-None-Match, gzip when asked for (MVT compresses), an empty tile is an empty 200."""
    z = 8
    m = matrix(server, WMQ, z)
    marburg = _to_3857(shapely.Point(8.77, 50.81))
    y, x = tile_of(m, marburg.x, marburg.y)
    path = tile_path("municipalities", WMQ, z, y, x)
    plain = requests.get(server.url + path, headers={"Accept-Encoding": "identity"}, timeout=30)
    assert plain.status_code == 200 and len(plain.content) > 1024 and "Content-Encoding" not in plain.headers
    raw = requests.get(server.url + path, headers={"Accept-Encoding": "gzip"}, stream=True, timeout=30)
    assert raw.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(raw.raw.read()) == plain.content
    for r, encoding in ((plain, "identity"), (raw, "gzip")):
        again = server.get(path, headers={"If-None-Match": r.headers["ETag"], "Accept-Encoding": encoding})
        assert again.status_code == 304 and again.headers["ETag"] == r.headers["ETag"]
    assert plain.headers["Cache-Control"] == "public, no-cache"
    empty = server.get(tile_path("supply_points", WMQ, 10, 0, 0))           # the Arctic Ocean
    assert empty.status_code == 200 and empty.content == b"" and empty.headers["ETag"]


def test_a_publish_changes_the_next_tile(server, tmp_path):
    """`gdi ingest` of a new file, then `gdi withdraw`: the very next tile request sees each."""
    from pyproj import Transformer

    lon, lat = Transformer.from_crs("EPSG:25832", "OGC:CRS84", always_xy=True).transform(483000, 5630000)
    m = matrix(server, WMQ, 14)
    p = _to_3857(shapely.Point(lon, lat))
    y, x = tile_of(m, p.x, p.y)
    path = tile_path("supply_points", WMQ, 14, y, x)
    before = server.get(path)
    ids = {f["id"] for f in decoded(before.content, "supply_points")}
    upload = tmp_path / "kachel-test.geojson"
    upload.write_text(json.dumps({"type": "FeatureCollection", "features": [{
        "type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]},
        "properties": {"name": "Kachel-Test-Laden", "category": "Hofladen"}}]}), encoding="utf-8")
    store = home_store(server.home)
    try:
        run_gdi("ingest", str(upload), "--collection", "supply_points", "--member", "06534014",
                "--dataset", "kachel-test", home=server.home, store=store, check=True)
        after = server.get(path, headers={"If-None-Match": before.headers["ETag"]})
        assert after.status_code == 200 and after.headers["ETag"] != before.headers["ETag"]
        added = [f for f in decoded(after.content, "supply_points") if f["id"] not in ids]
        assert [f["properties"] for f in added] == [{"name": "Kachel-Test-Laden", "category": "farm_shop"}]
    finally:
        run_gdi("withdraw", "--collection", "supply_points", "--member", "06534014", "--dataset", "kachel-test",
                home=server.home, store=store)
    assert {f["id"] for f in decoded(server.get(path).content, "supply_points")} == ids


@pytest.mark.parametrize("path, status", [
    (tile_path("supply_points", WMQ, 4, 5, 8), 404),                 # below the collection's zoom 5
    (tile_path("supply_points", WMQ, 15, 0, 0), 404),                # above its zoom 14
    (tile_path("supply_points", WMQ, 14, 16384, 0), 404),            # beyond the matrix
    (tile_path("supply_points", WMQ, 14, 0, 16384), 404),
    (tile_path("supply_points", WMQ, 14, -1, 0), 400),
    (tile_path("supply_points", WMQ, "x", 0, 0), 400),
    (tile_path("supply_points", WMQ, 99999999999999999999, 0, 0), 400),
    (tile_path("supply_points", "WorldCRS84Quad", 8, 0, 0), 404),    # a set pygeoapi knows, not ours
    (tile_path("supply_points", "Nope", 8, 0, 0), 404),
    (tile_path("supply_points", WMQ, 8, 85, 134, f="png"), 400),
    (tile_path("supply_points", WMQ, 8, 85, 134, f="json"), 400),
    (tile_path("nothing", WMQ, 8, 85, 134), 404),
    ("/TileMatrixSets/Nope?f=json", 400),
])
def test_bad_tile_requests_are_json_4xx(server, path, status):
    r = server.get(path)
    assert r.status_code == status, (path, r.status_code, r.text[:300])
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json()["description"]


def test_tilesets_tile_matrix_sets_and_openapi(server):
    for cid in COLLECTIONS:
        sets = server.get(f"/collections/{cid}/tiles?f=json").json()
        assert [s["tileMatrixSetURI"].rsplit("/", 1)[-1] for s in sets["tilesets"]] == [WMQ, ADV]
        assert any(link["href"].endswith("/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}?f=mvt")
                   for link in sets["links"])
        meta = server.get(f"/collections/{cid}/tiles/{WMQ}?f=json").json()
        assert meta["crs"] == EPSG.format(3857) and meta["dataType"] == "vector"
        assert meta["layers"][0]["id"] == cid and (meta["layers"][0]["minTileMatrix"],
                                                    meta["layers"][0]["maxTileMatrix"]) == ("5", "14")
        assert set(meta["layers"][0]["propertiesSchema"]["properties"]) == set(COLLECTIONS[cid]["properties"])
        assert any(link["rel"] == "item" and link["href"].endswith(f"/collections/{cid}/tiles/{WMQ}"
                                                                   "/{tileMatrix}/{tileRow}/{tileCol}?f=mvt")
                   for link in meta["links"])
        tilejson = server.get(f"/collections/{cid}/tiles/{WMQ}/metadata?f=tilejson").json()
        assert tilejson["tiles"] == [f"{server.url}/collections/{cid}/tiles/{WMQ}/{{z}}/{{y}}/{{x}}?f=mvt"]
        assert (tilejson["minzoom"], tilejson["maxzoom"]) == (5, 14)
        links = {link["rel"] for link in server.get(f"/collections/{cid}?f=json").json()["links"]}
        assert "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector" in links
    ids = [s["id"] for s in server.get("/TileMatrixSets?f=json").json()["tileMatrixSets"]]
    assert WMQ in ids and ADV in ids
    adv = server.get(f"/TileMatrixSets/{ADV}?f=json").json()
    assert adv["crs"] == EPSG.format(25832)
    assert adv["tileMatrices"][0]["pointOfOrigin"] == [-46133.17, 6301219.54]
    assert math.isclose(adv["tileMatrices"][0]["scaleDenominator"], 17471320.7508974)
    oas = server.get("/openapi?f=json").json()
    for cid in COLLECTIONS:
        get = oas["paths"][f"/collections/{cid}/tiles/{{tileMatrixSetId}}/{{tileMatrix}}/{{tileRow}}/{{tileCol}}"]["get"]
        names = {oas["components"]["parameters"][p["$ref"].rsplit("/", 1)[1]]["name"] if "$ref" in p else p["name"]
                 for p in get["parameters"]}
        assert names == {"tileMatrixSetId", "tileMatrix", "tileRow", "tileCol", "f"}
        assert "application/vnd.mapbox-vector-tile" in get["responses"]["200"]["content"]


def test_qgis_draws_every_point_of_a_tile(server, tmp_path):
    """QGIS's vector tile layer (XYZ source of our MVT) is valid with the collection's zoom range and
    draws one mark per point of a z14 tile — as many as items returns for the box (tiles whose points
    lie at least 16 pixels apart in the 512-pixel image) — and nothing where there are no features."""
    import os
    import subprocess

    from conftest import REPO

    m = matrix(server, WMQ, 14)
    chosen = []
    for y, x in busiest_tiles(server, "supply_points", WMQ, 14, 3857, n=40):
        bounds = tile_bounds(m, y, x)
        feats = items_in(server, "supply_points", bounds, 3857, crs=EPSG.format(3857))
        px = np.array([[(c[0] - bounds[0]) / (bounds[2] - bounds[0]) * 512, (bounds[3] - c[1]) / (bounds[3] - bounds[1]) * 512]
                       for c in (f["geometry"]["coordinates"] for f in feats)])
        gaps = [np.hypot(*(a - b)) for i, a in enumerate(px) for b in px[i + 1:]]
        inside = ((px > 8) & (px < 504)).all()
        if len(feats) > 1 and min(gaps) > 16 and inside:
            chosen.append((bounds, len(feats)))
        if len(chosen) == 2:
            break
    assert chosen, "no z14 tile with well separated points: the test data moved"
    home, runtime = tmp_path / "qgis-home", tmp_path / "xdg-runtime"
    home.mkdir()
    runtime.mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "QGIS"))}
    env.update(QT_QPA_PLATFORM="offscreen", HOME=str(home), XDG_RUNTIME_DIR=str(runtime), PATH="/usr/bin:/bin")
    extents = [b for b, _ in chosen] + [(0.0, 19000000.0, 10000.0, 19010000.0)]      # the Arctic Ocean
    cmd = ["/usr/bin/python3", str(REPO / "tests" / "qgis_tiles.py"), server.url, "supply_points", "5", "14"]
    for b in extents:
        cmd += ["--extent", *(repr(v) for v in b)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env, cwd=tmp_path)
    assert proc.returncode == 0, f"QGIS failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    out = json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])["layer"]
    assert out["valid"] and (out["zmin"], out["zmax"], out["crs"]) == (5, 14, "EPSG:3857"), out
    assert out["drawn"] == [n for _, n in chosen] + [0], (out, chosen)


def test_tiles_cut_by_many_threads_at_once_are_the_tiles_cut_alone(server):
    """8 clients at once on 2 threads per worker, every tile cut afresh (a query no cache has seen):
    each answer decodes to the features of that tile cut alone, and no worker crashed."""
    import random
    import threading

    m = matrix(server, WMQ, 12)
    marburg = _to_3857(shapely.Point(8.77, 50.81))
    y12, x12 = tile_of(m, marburg.x, marburg.y)
    tiles = [(z, y12 * 2 ** (z - 12) + dy, x12 * 2 ** (z - 12) + dx) for z in (12, 13, 14)
             for dy in range(2) for dx in range(2)]
    alone = {t: {f["id"] for f in decoded(server.get(tile_path("supply_points", WMQ, *t)).content, "supply_points")}
             for t in tiles}
    assert sum(len(v) for v in alone.values()) > 20
    problems: list = []

    def work(k: int) -> None:
        rnd = random.Random(k)
        with requests.Session() as session:
            for i in range(20):
                t = rnd.choice(tiles)
                r = session.get(server.url + tile_path("supply_points", WMQ, *t) + f"&nocache={k}-{i}", timeout=60)
                got = {f["id"] for f in decoded(r.content, "supply_points")} if r.status_code == 200 else None
                if got != alone[t]:
                    problems.append((t, r.status_code))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert problems == [] and server.crash_lines() == []
