"""Vector tiles from the embedded GeoPackage store.

The features of a tile are those the features API returns for its box (provider.bbox_clause: the
R-tree prefilter, the exact test near the edges) read in one statement — one snapshot — over the
thread's own read-only connection (provider._connection), decoded (gpkg_binary), transformed into
the tile matrix set's CRS with the thread's own transformer and encoded by gdi/publish/mvt.py.
"""
from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import numpy as np
import shapely
from pygeoapi.provider.base import ProviderQueryError

from gdi.publish import mvt
from gdi.publish.provider import GEOM, _connection, bbox_clause, envelope_clause
from gdi.publish.provider_base import _transformer, _wkt
from gdi.publish.tile_matrix import tile_coordinates
from gdi.publish.tile_provider_base import EPSG_URI, StoreTileProvider, TileRequest
from gdi.store import gpkg_binary

LOGGER = logging.getLogger(__name__)


class GpkgTileProvider(StoreTileProvider):

    def _tile(self, tile: TileRequest, area: shapely.Geometry, tolerance: float, thin: int | None, *,
              exact: bool = False) -> bytes:
        if thin and self.geometry_dimension == 0:
            try:
                return self._thinned_points(tile, area, thin)
            except _NotPlainPoints:
                pass                        # multi-points (or blobs of another writer): the general path
        where, params = bbox_clause(self.table, GEOM, area)
        cols = "".join(f', "{c}"' for c in self.properties)
        sql = f'SELECT fid, "{GEOM}"{cols} FROM "{self.table}" WHERE {" AND ".join(where)}'
        try:
            rows = _connection(str(Path(self.data).resolve())).execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            LOGGER.error("tile query failed: %s", exc)
            raise ProviderQueryError(user_msg="tile query failed") from exc
        if not rows:
            return b""
        geoms = gpkg_binary.decode([r[1] for r in rows])
        if tile.tms.epsg != self.storage_epsg:
            t = _transformer(_wkt(EPSG_URI.format(self.storage_epsg)), _wkt(EPSG_URI.format(tile.tms.epsg)), False)
            geoms = shapely.transform(geoms, lambda c: np.column_stack(t.transform(c[:, 0], c[:, 1])))
        return mvt.encode(self.get_layer(), [r[0] for r in rows], geoms, self.properties, [r[2:] for r in rows],
                          tile.bounds, tile.clip_box, tolerance, thin)

    def _thinned_points(self, tile: TileRequest, area: shapely.Geometry, thin: int) -> bytes:
        """An overview tile of points: their positions read in batches straight from the blobs
        (gpkg_binary.point_xy), thinned to the lowest fid per cell as they come (mvt.thinned_points),
        and only the kept points' properties read — the same tile as the general path, without a
        shapely point or a property row per point of the box (1.5 M points: seconds and gigabytes)."""
        # the R-tree's envelope query, then the exact test of every point at once (the general path's
        # per-row test near the edges is a Python call each: half the time of an overview tile)
        clause, params = envelope_clause(self.table, GEOM, area)
        shapely.prepare(area)               # this request's own geometry: never seen by another thread
        conn = _connection(str(Path(self.data).resolve()))
        t = None
        if tile.tms.epsg != self.storage_epsg:
            t = _transformer(_wkt(EPSG_URI.format(self.storage_epsg)), _wkt(EPSG_URI.format(tile.tms.epsg)), False)

        def batches():
            cursor = conn.execute(f'SELECT fid, "{GEOM}" FROM "{self.table}" WHERE {clause}', params)
            while rows := cursor.fetchmany(POINT_BATCH):
                xy = gpkg_binary.point_xy([r[1] for r in rows])
                if xy is None:
                    raise _NotPlainPoints
                inside = shapely.intersects_xy(area, xy[:, 0], xy[:, 1])
                xy = xy[inside]
                x, y = (xy[:, 0], xy[:, 1]) if t is None else t.transform(xy[:, 0], xy[:, 1])
                fids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))[inside]
                yield fids, np.column_stack(tile_coordinates(np.asarray(x), np.asarray(y), tile.bounds))

        try:
            fids, units = mvt.thinned_points(batches(), thin)
            values: dict[int, tuple] = {}
            cols = "".join(f', "{c}"' for c in self.properties)
            for start in range(0, len(fids), POINT_BATCH):
                chunk = fids[start:start + POINT_BATCH].tolist()
                for row in conn.execute(f'SELECT fid{cols} FROM "{self.table}" WHERE fid IN '
                                        f'({",".join("?" * len(chunk))})', chunk):
                    values[row[0]] = row[1:]
        except sqlite3.Error as exc:
            LOGGER.error("tile query failed: %s", exc)
            raise ProviderQueryError(user_msg="tile query failed") from exc
        return mvt.encode_units(self.get_layer(), fids, shapely.points(units), self.properties,
                                [values[f] for f in fids.tolist()])


#: points read at a time for an overview tile (and kept fids per property query: under SQLite's 32,766
#: variables)
POINT_BATCH = 20_000


class _NotPlainPoints(Exception):
    """A blob of the box is no plain 2D point: the tile is cut the general way."""

