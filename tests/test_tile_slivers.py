"""Features that round to nothing in a tile's 4096 units — a 3 cm line, a 5 cm square, the slivers and
digitising leftovers of real plans — are still in the tile at a collection's deepest level (as a point on
them), on both stores: there a tile holds exactly what the features API returns for its box. Below it
they may drop out like any generalised detail. And a collection whose zoom range goes deeper than a tile
matrix set (AdV_25832 has 15 levels) ends at that set's last level, which is then the exact one.
"""
from __future__ import annotations

import mapbox_vector_tile
import numpy as np
import psycopg
import pyproj
import pytest
import shapely

from conftest import fresh_store
from gdi.publish import mvt
from gdi.publish.tile_matrix import sets
from gdi.publish.tile_provider_pg import PostgisTileProvider

WMQ, ADV = "WebMercatorQuad", "AdV_25832"
# Marburg, in EPSG:25832: a 3 cm line, a 5 cm square and an ordinary 40 m building
X, Y = 483500.0, 5630500.0
SHAPES = {1: shapely.LineString([(X, Y), (X + 0.03, Y)]),
          2: shapely.box(X + 5, Y + 5, X + 5.05, Y + 5.05),
          3: shapely.box(X + 20, Y + 20, X + 60, Y + 60)}


def test_kept_whole_turns_what_collapses_into_a_point_and_leaves_the_rest():
    shapes = np.array([shapely.LineString([(10.2, 10.2), (10.3, 10.2)]), shapely.box(20.1, 20.1, 20.2, 20.2),
                       shapely.box(0, 0, 100, 100), shapely.Point(5, 5), None], dtype=object)
    kept = mvt.kept_whole(shapes)
    assert [shapely.get_type_id(g) if g is not None else None for g in kept] == [0, 0, 3, 0, None]
    assert shapely.equals(kept[0], shapely.Point(10, 10)) and shapely.equals(kept[1], shapely.Point(20, 20))
    assert kept[2] is shapes[2] and kept[3] is shapes[3]


def test_the_geopackage_encoder_keeps_slivers_only_where_exact():
    bounds = (0.0, 0.0, 4096.0, 4096.0)           # one CRS unit = one tile unit
    geoms = np.array([shapely.LineString([(100.1, 100.1), (100.2, 100.1)]), shapely.box(200.1, 200.1, 200.15, 200.15),
                      shapely.box(300, 300, 340, 340)], dtype=object)
    values = [("a",), ("b",), ("c",)]
    clip = (-64.0, -64.0, 4160.0, 4160.0)

    def ids(**kw) -> list[int]:
        body = mvt.encode("plans", [1, 2, 3], geoms, ["name"], values, bounds, clip, **kw)
        return sorted(f["id"] for f in mapbox_vector_tile.decode(body).get("plans", {}).get("features", []))

    assert ids() == [3]
    assert ids(exact=True) == [1, 2, 3]


@pytest.fixture(scope="module")
def sliver_db(request) -> str:
    url = fresh_store("postgis", request)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS gdi")
        # a store's data version: every PostGIS tile read returns the version of its snapshot (gdi.store.replica)
        conn.execute("CREATE TABLE IF NOT EXISTS gdi.state (key text PRIMARY KEY, value bigint NOT NULL)")
        conn.execute("INSERT INTO gdi.state VALUES ('data_version', 1) ON CONFLICT DO NOTHING")
        conn.execute("CREATE TABLE gdi.slivers (fid bigint PRIMARY KEY, geom geometry(Geometry, 25832), name text)")
        for fid, g in SHAPES.items():
            conn.execute("INSERT INTO gdi.slivers VALUES (%s, ST_GeomFromWKB(%s, 25832), %s)",
                         (fid, shapely.to_wkb(g), f"plan {fid}"))
    return url


def provider(url: str, zoom_max: int) -> PostgisTileProvider:
    return PostgisTileProvider({
        "name": "gdi.publish.tile_provider_pg.PostgisTileProvider", "data": url,
        "format": {"name": "mvt", "mimetype": "application/vnd.mapbox-vector-tile"},
        "options": {"zoom": {"min": 0, "max": zoom_max}, "schemes": [WMQ, ADV], "table": "slivers",
                    "storage_epsg": 25832, "properties": ["name"], "geometry_dimension": 2}})


def tile_ids(p: PostgisTileProvider, tms_id: str, level: int) -> list[int]:
    """The ids in the tile of tms_id at level that holds the features (all within 60 m of X, Y)."""
    tms = sets()[tms_id]
    x, y = pyproj.Transformer.from_crs(25832, tms.epsg, always_xy=True).transform(X + 30, Y + 30)
    m = tms.matrix(level)
    size = m["cellSize"] * m["tileWidth"]
    ox, oy = m["pointOfOrigin"]
    row, col = int((oy - y) // size), int((x - ox) // size)
    body = p.get_tiles(tileset=tms_id, z=level, y=row, x=col)
    return sorted(f["id"] for f in mapbox_vector_tile.decode(body).get("slivers", {}).get("features", []))


def test_postgis_keeps_slivers_at_the_deepest_level_only(sliver_db):
    p = provider(sliver_db, 16)
    assert tile_ids(p, WMQ, 16) == [1, 2, 3]
    assert tile_ids(p, WMQ, 15) == [3]          # generalised: what rounds to nothing drops out


def test_a_zoom_range_deeper_than_adv_ends_at_its_last_level(sliver_db):
    p = provider(sliver_db, 20)
    adv = sets()[ADV]
    assert p.levels(adv) == (0, 14) and p.levels(sets()[WMQ]) == (0, 20)
    meta = p.get_default_metadata("slivers", "http://127.0.0.1:5000", "slivers", ADV, "Slivers", "", [])
    assert meta["layers"][0]["maxTileMatrix"] == "14" and meta["tileMatrixSetLimits"][-1]["tileMatrix"] == "14"
    assert tile_ids(p, ADV, 14) == [1, 2, 3]


def test_thinning_in_batches_keeps_what_thinning_at_once_keeps():
    """The overview tiles of points thin batch by batch (gdi/publish/tile_provider.py); the choice must be
    the one of all points at once: the lowest fid per cell."""
    rng = np.random.default_rng(7)
    units = np.rint(rng.uniform(-64, 4160, size=(5000, 2)))
    fids = rng.permutation(10_000)[:5000].astype(np.int64)
    at_once = mvt.thinned(shapely.points(units), fids, 64)
    batches = [(fids[i:i + 700], units[i:i + 700]) for i in range(0, len(fids), 700)]
    kept_fids, kept_units = mvt.thinned_points(batches, 64)
    assert sorted(kept_fids.tolist()) == sorted(fids[at_once].tolist())
    assert {tuple(u) for u in kept_units.tolist()} == {tuple(u) for u in units[at_once].tolist()}
