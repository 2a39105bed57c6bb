"""What the GeoPackage and PostGIS tile providers share: the request's tile, its area, the metadata.

pygeoapi's tiles API (pygeoapi/api/tiles.py) serves ``/collections/{id}/tiles…`` through a provider
of ``type: tile``; gdi/publish/config.py writes ours beside each collection's feature provider, with
the collection's ``tiles:`` block as options. A tile's box is projected into the storage CRS exactly
as the features API projects ``bbox`` with ``bbox-crs`` (provider_base.projected_box), so at the
highest zoom a tile holds the very features ``items`` returns for that box. Each store supplies only
how it cuts a tile (``_tile``).

A tile without features is an empty MVT (zero bytes, 200): like every other tile it carries an ETag,
is revalidated with a 304 and answered from the response cache (gdi/server/caching.py), where
pygeoapi's 204 for ``None`` would be neither; every MVT client reads it as a tile without layers.
"""
from __future__ import annotations

import logging
from typing import Any

import shapely
from pygeoapi.models.provider.base import TileMatrixSetEnumType
from pygeoapi.provider.base import ProviderGenericError, ProviderItemNotFoundError
from pygeoapi.provider.base_mvt import BaseMVTProvider
from pygeoapi.provider.tile import ProviderTilesetIdNotFoundError

from gdi.collections import TileStyle

from gdi.publish.provider_base import _transformer, _wkt, projected_box
from gdi.publish.tile_matrix import BUFFER, EXTENT, TILE_PX, TileMatrixSet, level_of, sets

LOGGER = logging.getLogger(__name__)
EPSG_URI = "http://www.opengis.net/def/crs/EPSG/0/{}"
MVT = "application/vnd.mapbox-vector-tile"


class TileOutsideError(ProviderItemNotFoundError):
    """A tile outside the tile matrix or the collection's zoom levels: 404 with a JSON body
    (pygeoapi answers its own ProviderTileNotFoundError with a bare text)."""

    def __init__(self, msg: str):
        super().__init__(user_msg=msg)


class TileParameterError(ProviderGenericError):
    """A tile path or format that names no tile: 400 InvalidParameterValue, never a 500."""

    ogc_exception_code = "InvalidParameterValue"
    http_status_code = 400

    def __init__(self, msg: str):
        super().__init__(user_msg=msg)


class TileRequest:
    """One tile as the request names it, checked: the set, the level and its box."""

    def __init__(self, tms: TileMatrixSet, level: int, row: int, col: int, zoom: int):
        self.tms, self.level, self.row, self.col, self.zoom = tms, level, row, col, zoom
        self.bounds = tms.bounds(level, row, col)

    @property
    def units_per_crs(self) -> float:
        """MVT units per CRS unit (metre) in this tile."""
        return EXTENT / (self.bounds[2] - self.bounds[0])

    @property
    def clip_box(self) -> tuple[float, float, float, float]:
        """The tile's box with the MVT buffer, in the set's CRS."""
        pad = BUFFER / self.units_per_crs
        minx, miny, maxx, maxy = self.bounds
        return minx - pad, miny - pad, maxx + pad, maxy + pad


class StoreTileProvider(BaseMVTProvider):
    """Vector tiles of one collection of our store (options written by gdi/publish/config.py)."""

    def __init__(self, provider_def: dict):
        super().__init__(provider_def)
        opts = self.options
        self.table = opts["table"]
        self.storage_epsg = int(opts["storage_epsg"])
        thin = opts.get("thin") or {}
        self.style = TileStyle(properties=tuple(opts.get("properties") or ()), zoom_min=int(opts["zoom"]["min"]),
                               zoom_max=int(opts["zoom"]["max"]),
                               simplify=tuple((int(z), float(px)) for z, px in opts.get("simplify") or ()),
                               thin_below=thin.get("below"), thin_cell=int(thin.get("cell") or TileStyle.thin_cell))
        self.properties = list(self.style.properties)
        self.zoom_min, self.zoom_max = self.style.zoom_min, self.style.zoom_max
        self.geometry_dimension = int(opts.get("geometry_dimension", 0))

    # -- what pygeoapi asks ---------------------------------------------------------------
    def get_layer(self) -> str:
        """The MVT layer name: the collection id."""
        return self.table

    def get_fields(self) -> dict:
        return {name: {"type": "string"} for name in self.properties}

    def get_tiling_schemes(self) -> list[TileMatrixSetEnumType]:
        known = sets()
        return [tile_matrix_set_type(known[s]) for s in self.schemes if s in known]

    def get_tiles_service(self, baseurl=None, servicepath=None, dirpath=None, tile_type=None) -> dict:
        self._service_url = servicepath
        return self.get_tms_links()

    def get_tiles(self, layer=None, tileset=None, z=None, y=None, x=None, format_=None) -> bytes:
        _check_format()
        tile = self.tile_request(tileset, z, y, x)
        if tile.level == self.levels(tile.tms)[1]:
            # this set's deepest level for the collection (AdV_25832 ends before WebMercatorQuad's zoom 18):
            # the features API's answer for the box, unsimplified, unthinned, nothing lost to rounding
            return self._tile(tile, self.area(tile), 0.0, None, exact=True)
        tolerance = self.style.tolerance(tile.zoom) * tile.tms.cell_size(tile.level)     # CRS units
        thin = self.style.thin_cell * EXTENT // TILE_PX if self.style.thinned(tile.zoom) else None   # MVT units
        return self._tile(tile, self.area(tile), tolerance, thin)

    # -- the tile ---------------------------------------------------------------------------
    def tile_request(self, tileset, z, y, x) -> TileRequest:
        tms = sets().get(str(tileset)) if str(tileset) in self.schemes else None
        if tms is None:
            raise ProviderTilesetIdNotFoundError(
                user_msg=f"unknown tile matrix set '{tileset}' (this collection: {', '.join(self.schemes)})")
        level, row, col = (level_of(str(v)) for v in (z, y, x))
        if level is None or row is None or col is None:
            raise TileParameterError("tileMatrix, tileRow and tileCol must be whole numbers ≥ 0")
        zoom = level + tms.zoom_offset
        first, last = self.levels(tms)
        if not first <= level <= last:
            raise TileOutsideError(f"tile matrix {level} of {tms.id} is outside this collection's levels "
                                   f"{first} to {last}")
        if not tms.contains(level, row, col):
            m = tms.matrix(level)
            raise TileOutsideError(f"tile {row}/{col} is outside tile matrix {level} of {tms.id} "
                                   f"({m['matrixHeight']} rows, {m['matrixWidth']} columns)")
        return TileRequest(tms, level, row, col, zoom)

    def area(self, tile: TileRequest) -> shapely.Geometry:
        """The tile's box in the storage CRS, as the features API reads bbox=…&bbox-crs=<the set's CRS>."""
        box = shapely.box(*tile.bounds)
        if tile.tms.epsg == self.storage_epsg:
            return box
        t = _transformer(_wkt(EPSG_URI.format(tile.tms.epsg)), _wkt(EPSG_URI.format(self.storage_epsg)), False)
        return projected_box(box, t)

    def _tile(self, tile: TileRequest, area: shapely.Geometry, tolerance: float, thin: int | None, *,
              exact: bool = False) -> bytes:
        """exact: the deepest level, where a feature that rounds to nothing in the tile's 4096 units
        (a sliver, a 3 cm line) is kept as a point on it, so the tile holds what the features API returns."""
        raise NotImplementedError

    # -- metadata ---------------------------------------------------------------------------
    def tile_url(self, server_url: str, dataset: str, tileset: str) -> str:
        return (f"{server_url.rstrip('/')}/collections/{dataset}/tiles/{tileset}"
                "/{tileMatrix}/{tileRow}/{tileCol}?f=mvt")

    def levels(self, tms: TileMatrixSet) -> tuple[int, int]:
        """The first and last level of tms this collection serves: its zoom range mapped onto the set and
        cut to the levels the set has (AdV_25832 has 15, so a zoom.max of 20 ends at its level 14)."""
        deepest = len(tms.definition["tileMatrices"]) - 1
        last = min(tms.level(self.zoom_max), deepest)
        return min(max(tms.level(self.zoom_min), 0), last), last

    def get_default_metadata(self, dataset, server_url, layer, tileset, title, description, keywords,
                             **kwargs) -> dict[str, Any]:
        """OGC API Tiles tileset metadata (/req/tileset): the set, the levels, the layer and its
        properties, and the URL template of the tiles."""
        tms = sets().get(str(tileset)) if str(tileset) in self.schemes else None
        if tms is None:
            raise ProviderTilesetIdNotFoundError(user_msg=f"unknown tile matrix set '{tileset}'")
        first, last = self.levels(tms)
        base = server_url.rstrip("/")
        return {
            "title": title, "description": description, "dataType": "vector",
            "crs": tms.definition["crs"], "tileMatrixSetURI": tms.definition["uri"],
            "mediaTypes": [MVT],
            "links": [
                {"href": f"{base}/TileMatrixSets/{tms.id}", "rel": "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme",
                 "type": "application/json", "title": f"{tms.id} tile matrix set definition"},
                {"href": self.tile_url(base, dataset, tms.id), "rel": "item", "type": MVT, "templated": True,
                 "title": f"{tms.id} vector tiles of {dataset}"},
            ],
            "layers": [{"id": self.get_layer(), "dataType": "vector", "geometryDimension": self.geometry_dimension,
                        "minTileMatrix": str(first), "maxTileMatrix": str(last),
                        "propertiesSchema": {"type": "object",
                                             "properties": {n: {"type": "string"} for n in self.properties}}}],
            "tileMatrixSetLimits": [{"tileMatrix": str(level), "minTileRow": 0, "minTileCol": 0,
                                     "maxTileRow": tms.matrix(level)["matrixHeight"] - 1,
                                     "maxTileCol": tms.matrix(level)["matrixWidth"] - 1}
                                    for level in range(first, last + 1)],
        }

    def get_vendor_metadata(self, dataset, server_url, layer, tileset, title, description, keywords,
                            **kwargs) -> dict[str, Any]:
        """TileJSON 3.0 (what MapLibre reads for a vector source), for WebMercatorQuad (TileJSON knows
        no other set)."""
        tms = sets()["WebMercatorQuad"]
        first, last = self.levels(tms)
        url = self.tile_url(server_url, dataset, tms.id).replace("{tileMatrix}", "{z}").replace(
            "{tileRow}", "{y}").replace("{tileCol}", "{x}")
        return {"tilejson": "3.0.0", "name": title, "description": description, "tiles": [url],
                "minzoom": first, "maxzoom": last,
                "vector_layers": [{"id": self.get_layer(), "fields": {n: "String" for n in self.properties},
                                   "minzoom": first, "maxzoom": last}]}

    def get_html_metadata(self, dataset, server_url, layer, tileset, title, description, keywords,
                          **kwargs) -> dict[str, Any]:
        base = server_url.rstrip("/")
        return {"id": dataset, "title": title, "tileset": tileset,
                "collections_path": self.tile_url(base, dataset, str(tileset)),
                "json_url": f"{base}/collections/{dataset}/tiles/{tileset}/metadata?f=json",
                "tilejson_url": f"{base}/collections/{dataset}/tiles/{tileset}/metadata?f=tilejson"}

    def __repr__(self) -> str:
        return f"<{type(self).__name__}> {self.table}"


def tile_matrix_set_type(tms: TileMatrixSet) -> TileMatrixSetEnumType:
    """pygeoapi's model of a tile matrix set, from our definition."""
    d = tms.definition
    return TileMatrixSetEnumType(tileMatrixSet=d["id"], tileMatrixSetURI=d["uri"], crs=d["crs"], title=d["title"],
                                 orderedAxes=d["orderedAxes"], wellKnownScaleSet=d.get("wellKnownScaleSet", ""),
                                 tileMatrices=d["tileMatrices"])


def _check_format() -> None:
    """Tiles are MVT only: ``f=png`` (or anything else named) is a 400, where pygeoapi would send MVT
    under any ``f`` it knows."""
    try:
        from flask import has_request_context, request
    except ImportError:
        return
    if has_request_context():
        f = request.args.get("f")
        if f is not None and f.lower() != "mvt":
            raise TileParameterError(f"tiles are served as f=mvt only, not f={f}")
