"""Vector tiles from the PostGIS store: one statement per tile, ST_AsMVT over ST_AsMVTGeom.

The features are selected as the features API selects a bbox (provider_pg: GiST prefilter ``&&`` on
the box of the tile's area in EPSG:25832, then ``ST_Intersects`` with the area itself), transformed
into the tile matrix set's CRS, simplified where the collection says so, clipped and quantised to the
tile's 4096 units by ST_AsMVTGeom (envelope from ST_TileEnvelope over the set's level-0 box), and
thinned — one point per cell, the lowest fid — in the same statement. The fid is the MVT feature id.
The statement also returns the data version of its snapshot: a tile read from a read replica that is
behind the version the answer is stamped with is cut again on the primary (gdi.store.replica).
"""
from __future__ import annotations

import logging

import psycopg
import shapely
from pygeoapi.provider.base import ProviderQueryError

from gdi.publish.provider_pg import SCHEMA, VERSION, _pool
from gdi.publish.tile_matrix import BUFFER, EXTENT
from gdi.publish.tile_provider_base import StoreTileProvider, TileRequest
from gdi.store import replica

LOGGER = logging.getLogger(__name__)


class PostgisTileProvider(StoreTileProvider):

    def _tile(self, tile: TileRequest, area: shapely.Geometry, tolerance: float, thin: int | None, *,
              exact: bool = False) -> bytes:
        srid, out = self.storage_epsg, tile.tms.epsg
        geom = "geom" if out == srid else f"ST_Transform(geom, {out})"
        if tolerance > 0:
            geom = f"ST_SimplifyPreserveTopology({geom}, {float(tolerance)!r})"
        world = "ST_MakeEnvelope({!r}, {!r}, {!r}, {!r}, {})".format(*tile.tms.bounds(0, 0, 0), out)
        cols = "".join(f', "{c}"' for c in self.properties)
        envelope = f"ST_TileEnvelope(%(z)s, %(x)s, %(y)s, {world})"
        mvtgeom = f"ST_AsMVTGeom({geom}, {envelope}, {EXTENT}, {BUFFER}, true)"
        if exact:   # the deepest level: a feature that rounds to nothing (NULL) stays, as its point on surface
            mvtgeom = f"COALESCE({mvtgeom}, ST_AsMVTGeom(ST_PointOnSurface({geom}), {envelope}, {EXTENT}, {BUFFER}, true))"
        rows = (f'SELECT fid, {mvtgeom} '
                f'AS mvtgeom{cols} FROM {SCHEMA}."{self.table}" '
                f"WHERE geom && ST_GeomFromWKB(%(box)s, {srid}) AND ST_Intersects(geom, ST_GeomFromWKB(%(area)s, {srid}))")
        if thin:
            cell = f"floor(ST_XMin(mvtgeom) / {int(thin)}), floor(ST_YMin(mvtgeom) / {int(thin)})"
            rows = (f"SELECT DISTINCT ON ({cell}) * FROM ({rows}) AS cut WHERE mvtgeom IS NOT NULL "
                    f"ORDER BY {cell}, fid")
        sql = (f"SELECT ST_AsMVT(tile.*, %(layer)s, {EXTENT}, 'mvtgeom', 'fid'), {VERSION} FROM ({rows}) AS tile "
               "WHERE mvtgeom IS NOT NULL")
        params = {"layer": self.get_layer(), "z": tile.level, "x": tile.col, "y": tile.row,
                  "box": shapely.to_wkb(shapely.box(*area.bounds)), "area": shapely.to_wkb(area)}

        def cut(url: str) -> tuple[int | None, bytes]:
            with _pool(url, autocommit=True).connection() as conn:
                row = conn.execute(sql, params).fetchone()
            return row[1], (bytes(row[0]) if row[0] is not None else b"")

        try:
            return replica.read(self.data, cut)
        except psycopg.Error as exc:
            LOGGER.error("tile query failed: %s", exc)
            raise ProviderQueryError(user_msg="tile query failed") from exc
