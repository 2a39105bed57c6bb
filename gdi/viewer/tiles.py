"""Large collections on the map: drawn from gdi's own vector tiles instead of embedded.

Why: a collection of a million points embedded in the page made a page of 87 MB, a map
build of minutes and gigabytes, and a first draw of seconds.  Above
``viewer.tiles_above`` features a collection is therefore drawn by Leaflet.VectorGrid
(folium's VectorGridProtobuf) from ``/collections/{id}/tiles/WebMercatorQuad/{z}/{y}/{x}?f=mvt``
(layer name = collection id, MVT feature id = the store's fid), and the map build
only needs what the store answers with aggregate queries: the count, the per-term counts
of the legend and the extent (``TiledCollection``).  Popups and search on such a layer go
through the API (map.js: tiled layers).
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from folium.plugins import VectorGridProtobuf

from gdi.collections import TileStyle
from gdi.viewer import offline
from gdi.viewer.data import safe_json
from gdi.viewer.style import OTHER

#: Folium's link name for the library, so its header de-duplication keeps one link.
VECTORGRID_JS = [("vectorGrid", "leaflet.vectorgrid", "dist/Leaflet.VectorGrid.bundled.min.js")]
#: Search results per tiled collection and typed text (a handful, like a gazetteer).
SEARCH_LIMIT = 5
_API_BASE = re.compile(r"(https?://[A-Za-z0-9.\-]+(:[0-9]+)?)?(/[A-Za-z0-9._~\-][A-Za-z0-9._~\-/]*)?")


@dataclass(frozen=True)
class TiledCollection:
    """What the map shows of a tiled collection without reading its features (store aggregates)."""

    count: int
    extent: tuple[float, float, float, float] | None = None   # lon/lat: west, south, east, north
    # per field (map.colour_by, the supply analysis' field): features per value
    values: Mapping[str, Mapping[str | None, int]] = field(default_factory=dict)

    def term_counts(self, name: str, terms: Mapping[str, Any]) -> dict[str, int]:
        """Features per term of field name's vocabulary (values outside it count as OTHER), as the
        legend and the table show them."""
        out: dict[str, int] = {}
        for value, n in self.values.get(name, {}).items():
            term = value if value in terms and value != OTHER else OTHER
            out[term] = out.get(term, 0) + int(n)
        return {t: n for t, n in out.items() if n}


def api_base(url: str) -> str:
    """The API's base URL without a trailing slash ("" = the page's own server), checked to be a
    plain http(s) URL: it is written into the page's script (VectorGrid's URL template)."""
    url = url.rstrip("/")
    if not _API_BASE.fullmatch(url):
        raise ValueError(f"not a plain http(s) base URL for the map's tiles: {url!r}")
    return url


def tile_url(base: str, collection_id: str) -> str:
    """VectorGrid's URL template of a collection's tiles ({z}, {x}, {y} filled in by Leaflet)."""
    return f"{api_base(base)}/collections/{collection_id}/tiles/WebMercatorQuad/{{z}}/{{y}}/{{x}}?f=mvt"


def tile_layer(config: dict[str, Any], name: str, base: str, asset_url: str) -> VectorGridProtobuf:
    """The VectorGrid layer of a tiled collection; its options (style per term, feature ids) are
    made by map.js's gdiMap.tileOptions from the layer's config.  Not on the map at first:
    map.js adds it (config "show") once the view is set, so no tiles of the default view are fetched."""
    options = f"gdiMap.tileOptions({safe_json(config)})"
    layer = VectorGridProtobuf(tile_url(base, config["id"]), name=name, options=options, show=False)
    offline.set_assets(layer, asset_url, VECTORGRID_JS, [])
    return layer


def tiled_config(base: str, tiles: TileStyle) -> dict[str, Any]:
    """The part of a tiled layer's config that map.js needs to reach the API and to ask only for the
    zoom levels the collection's tiles: block declares (below: not drawn; above: the deepest tiles
    scaled up, since they hold every feature)."""
    return {"api": api_base(base), "minZoom": tiles.zoom_min, "maxNativeZoom": tiles.zoom_max,
            "searchLimit": SEARCH_LIMIT, "other": OTHER}


__all__ = ["TiledCollection", "api_base", "tile_layer", "tile_url", "tiled_config"]
