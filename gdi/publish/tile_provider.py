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
from gdi.publish.provider import GEOM, _connection, bbox_clause
from gdi.publish.provider_base import _transformer, _wkt
from gdi.publish.tile_provider_base import EPSG_URI, StoreTileProvider, TileRequest
from gdi.store import gpkg_binary

LOGGER = logging.getLogger(__name__)


class GpkgTileProvider(StoreTileProvider):

    def _tile(self, tile: TileRequest, area: shapely.Geometry, tolerance: float, thin: int | None, *,
              exact: bool = False) -> bytes:
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
