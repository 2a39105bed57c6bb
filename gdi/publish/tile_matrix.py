"""The tile matrix sets our vector tiles are cut in (OGC 17-083r4, Two Dimensional Tile Matrix Set 2.0).

* ``WebMercatorQuad`` — what every web map (Leaflet, OpenLayers, MapLibre, Masterportal, QGIS) asks
  for by default; pygeoapi ships its definition.
* ``AdV_25832`` — the AdV's tile matrix set for Germany in ETRS89 / UTM zone 32N, the CRS the county's
  GIS works in and the data are stored in (no reprojection at all). It is the grid of basemap.de's
  WMTS (``DE_EPSG_25832_ADV``) and of ldproxy, the OGC API of the German surveying authorities, under
  this very id: origin (-46133.17, 6301219.54), level 0 one 256-pixel tile at scale 1:17,471,320.75
  (4891.97 m per pixel at OGC's 0.28 mm pixel), halved per level down to level 14 (0.30 m per pixel).
  A planner's UTM map (QGIS or Masterportal in EPSG:25832) thus gets tiles aligned with the basemap
  it already uses.

Pure functions over these definitions; pygeoapi's own model of a set (TileMatrixSetEnumType) is built
from the same dictionaries.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

EXTENT = 4096          # MVT coordinate units per tile (what ST_AsMVT and every client use)
BUFFER = 256           # units kept around a tile so lines and fills join without seams
TILE_PX = 256          # pixels per tile side in both sets
OGC_PIXEL_M = 0.00028  # the standardized rendering pixel size (scale denominator = cell size / 0.28 mm)

ADV_ID = "AdV_25832"
ADV_ORIGIN = (-46133.17, 6301219.54)
ADV_SCALE0 = 17471320.7508974
ADV_LEVELS = 15        # 0 … 14, as AdV/ldproxy define it
WEB_MERCATOR_ID = "WebMercatorQuad"


@dataclass(frozen=True)
class TileMatrixSet:
    id: str
    epsg: int
    definition: dict                 # the TMS 2.0 JSON document
    zoom_offset: int                 # WebMercatorQuad level − this set's level of about the same cell size

    def matrix(self, level: int) -> dict | None:
        matrices = self.definition["tileMatrices"]
        return matrices[level] if 0 <= level < len(matrices) else None

    def level(self, web_mercator_zoom: int) -> int:
        """This set's level for a WebMercatorQuad zoom (cells about as large: a collection declares its
        zooms in WebMercatorQuad levels)."""
        return web_mercator_zoom - self.zoom_offset

    def bounds(self, level: int, row: int, col: int) -> tuple[float, float, float, float]:
        """(minx, miny, maxx, maxy) of a tile in the set's CRS."""
        m = self.matrix(level)
        size = m["cellSize"] * m["tileWidth"]
        ox, oy = m["pointOfOrigin"]
        return ox + col * size, oy - (row + 1) * size, ox + (col + 1) * size, oy - row * size

    def contains(self, level: int, row: int, col: int) -> bool:
        m = self.matrix(level)
        return m is not None and 0 <= row < m["matrixHeight"] and 0 <= col < m["matrixWidth"]

    def cell_size(self, level: int) -> float:
        return self.matrix(level)["cellSize"]


def adv_25832() -> dict:
    """The AdV_25832 definition as a TMS 2.0 document (values as AdV/basemap.de publish them)."""
    matrices = []
    for level in range(ADV_LEVELS):
        scale = ADV_SCALE0 / 2 ** level
        matrices.append({"id": str(level), "scaleDenominator": scale, "cellSize": scale * OGC_PIXEL_M,
                         "cornerOfOrigin": "topLeft", "pointOfOrigin": list(ADV_ORIGIN),
                         "tileWidth": TILE_PX, "tileHeight": TILE_PX,
                         "matrixWidth": 2 ** level, "matrixHeight": 2 ** level})
    return {"id": ADV_ID, "title": "AdV tiling scheme using ETRS89/UTM32N covering Germany",
            # no OGC registry entry exists for it: the URI names the set at the AdV, as ldproxy does by id
            "uri": f"https://www.adv-online.de/tilematrixset/{ADV_ID}",
            "crs": "http://www.opengis.net/def/crs/EPSG/0/25832", "orderedAxes": ["E", "N"],
            "tileMatrices": matrices}


def _web_mercator() -> dict:
    """pygeoapi's own WebMercatorQuad document (the one its /TileMatrixSets serves)."""
    root = Path(find_spec("pygeoapi").origin).resolve().parent
    return json.loads((root / "resources" / "definitions" / "tiles" / "WebMercatorQuad.json").read_text("utf-8"))


@functools.cache
def sets() -> dict[str, TileMatrixSet]:
    """Every tile matrix set we cut tiles in, by id. The offset of AdV_25832: its level 0 cell (4892 m)
    lies between WebMercatorQuad's z4 and z5 at the county's latitude (≈ 6160 and 3080 m at 51° N)."""
    return {WEB_MERCATOR_ID: TileMatrixSet(WEB_MERCATOR_ID, 3857, _web_mercator(), 0),
            ADV_ID: TileMatrixSet(ADV_ID, 25832, adv_25832(), 4)}


def tile_coordinates(x, y, bounds: tuple[float, float, float, float]):
    """Coordinates in a tile's box as MVT units (y down), rounded as ST_AsMVTGeom rounds."""
    import numpy as np

    minx, miny, maxx, maxy = bounds
    return (np.rint((x - minx) * (EXTENT / (maxx - minx))), np.rint((maxy - y) * (EXTENT / (maxy - miny))))


def level_of(text: str) -> int | None:
    """A tileMatrix/tileRow/tileCol path segment as an index, None when it is none."""
    if not text.isascii() or not text.isdigit() or len(text) > 9:
        return None
    return int(text)
