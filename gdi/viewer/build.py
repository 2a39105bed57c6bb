"""Build the planners' map: one static HTML page from boundaries and supply points.

folium gives us the map, the layer structure and the layer control; the data
and everything that shows it (popups, tooltips, search, legend) live in
map.js, which reads the embedded JSON and inserts values as text only.  All
libraries come from viewer/vendor/ (served at asset_url) or, with
inline_assets, are copied into the page so it works as an e-mail attachment.
"""
from __future__ import annotations

import html
import re
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import folium
import geopandas as gpd
from folium.elements import JSCSSMixin
from folium.plugins import Fullscreen, MarkerCluster
from folium.template import Template

from gdi.viewer import offline
from gdi.viewer.data import POINT_FIELDS, boundaries_geojson, bounds, point_rows, safe_json
from gdi.viewer.style import (
    BOUNDARIES_COLLECTION,
    OTHER,
    CategoryStyle,
    attributions,
    category_styles,
    collection_title,
    field_labels,
    text,
)

HERE = Path(__file__).resolve().parent
DEFAULT_VIEW = ([51.2, 8.9], 8)  # between Marburg-Biedenkopf and Höxter, when there is no data
MAX_FIT_ZOOM = 15

BASEMAPS: dict[str, tuple[str, str, int]] = {
    # name: (tile URL, attribution HTML, max zoom).  Tiles fail quietly offline.
    "osm": (
        "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
        '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a>-Mitwirkende',
        19,
    ),
    "basemap.de": (
        "https://sgx.geodatenzentrum.de/wmts_basemapde/tile/1.0.0/de_basemapde_web_raster_farbe/"
        "default/GLOBAL_WEBMERCATOR/{z}/{y}/{x}.png",
        '&copy; <a href="https://basemap.de">basemap.de</a> / BKG',
        18,
    ),
}


class MapScript(JSCSSMixin):
    """map.css/map.js in the page header, and the call that fills the layers."""

    _template = Template(
        """
        {% macro header(this, kwargs) %}
        <style>{{ this.css }}</style>
        <script>{{ this.js }}</script>
        {% endmacro %}
        {% macro script(this, kwargs) %}
        gdiMap.init({{ this._parent.get_name() }}, {{ this.config }}, {
            boundaries: {{ this.boundaries.get_name() }},
            groups: {{ this.groups }}
        }, {{ this.data }});
        {% endmacro %}
        """
    )

    def __init__(self, config: dict[str, Any], data: dict[str, Any], boundaries: folium.FeatureGroup,
                 groups: Mapping[str, MarkerCluster], asset_url: str) -> None:
        super().__init__()
        self._name = "GdiMapScript"
        self.css = (HERE / "map.css").read_text(encoding="utf-8")
        self.js = (HERE / "map.js").read_text(encoding="utf-8")
        if re.search(r"</(script|style)", self.js + self.css, re.IGNORECASE):
            raise ValueError("map.js/map.css must not contain </script or </style")
        self.config = safe_json(config)
        self.data = safe_json(data)
        self.boundaries = boundaries
        # Category ids become object keys (JSON-quoted); values are folium's JS variable names.
        self.groups = "{" + ", ".join(f"{safe_json(cid)}: {g.get_name()}" for cid, g in groups.items()) + "}"
        offline.set_assets(self, asset_url, offline.SEARCH_JS, offline.SEARCH_CSS)


def layer_label(style: CategoryStyle, count: int) -> str:
    """Layer-control entry: Leaflet shows it as HTML, so the label is escaped."""
    return (f'<span class="gdi-swatch" style="background:{style.colour}">'
            f'<i class="fa-solid fa-{style.icon}"></i></span>{html.escape(style.label)} ({count})')


def _add_basemap(m: folium.Map, basemap: str) -> None:
    if basemap == "none":
        return
    if basemap not in BASEMAPS:
        raise ValueError(f"unknown basemap {basemap!r}; use one of {sorted(BASEMAPS) + ['none']}")
    url, attribution, max_zoom = BASEMAPS[basemap]
    folium.TileLayer(url, attr=attribution, name=basemap, max_zoom=max_zoom, control=False).add_to(m)


def _finish_html(page: str, lang: str, title: str) -> str:
    """lang attribute, <title>, and an empty favicon (no stray /favicon.ico request)."""
    head = f'<title>{html.escape(title)}</title>\n    <link rel="icon" href="data:,">'
    page = page.replace("<html>", f'<html lang="{lang}">', 1)
    return page.replace("<head>", "<head>\n    " + head, 1)


def build_viewer(
    municipalities: gpd.GeoDataFrame,
    points: gpd.GeoDataFrame,
    collections: Mapping[str, Any],
    out_file: Path,
    *,
    asset_url: str = "/vendor",
    inline_assets: bool = False,
    lang: str = "de",
    basemap: str = "osm",
) -> Path:
    """Write the planners' map to out_file and return it.

    collections: the collection definitions keyed by id (parsed YAML dicts or
    gdi.collections.Collection objects).  asset_url: where viewer/vendor/ is
    served.  inline_assets: put every library into the page (single file).
    """
    if not re.fullmatch(r"[a-z]{2}", lang):
        raise ValueError(f"lang must be a two-letter code, got {lang!r}")
    ui = text(lang)
    styles = category_styles(collections, lang)
    rows = point_rows(points, set(styles) - {OTHER})
    counts = Counter(row[2] for row in rows)
    present = [cid for cid in styles if counts[cid]]

    m = folium.Map(location=DEFAULT_VIEW[0], zoom_start=DEFAULT_VIEW[1], tiles=None, control_scale=False)
    offline.set_assets(m, asset_url, offline.LEAFLET_JS, offline.LEAFLET_CSS)
    _add_basemap(m, basemap)

    boundaries_label = collection_title(collections, BOUNDARIES_COLLECTION, lang, ui["boundaries"])
    boundary_group = folium.FeatureGroup(name=html.escape(boundaries_label))
    boundary_group.add_to(m)
    groups: dict[str, MarkerCluster] = {}
    for cid in present:
        style = styles[cid]
        group = MarkerCluster(
            name=layer_label(style, counts[cid]),
            icon_create_function=f"function (c) {{ return gdiMap.clusterIcon(c, {safe_json(style.colour)}); }}",
            options={"showCoverageOnHover": False, "maxClusterRadius": 50},
        )
        offline.set_assets(group, asset_url, offline.CLUSTER_JS, offline.CLUSTER_CSS)
        group.add_to(m)
        groups[cid] = group

    fullscreen = Fullscreen(title=ui["fullscreen"], title_cancel=ui["fullscreen_exit"])
    offline.set_assets(fullscreen, asset_url, offline.FULLSCREEN_JS, offline.FULLSCREEN_CSS)
    fullscreen.add_to(m)

    config = {
        "lang": lang,
        "text": ui,
        "fields": list(POINT_FIELDS),
        "labels": field_labels(collections, lang),
        "categories": {cid: {"label": s.label, "colour": s.colour, "icon": s.icon} for cid, s in styles.items()},
        # addAttribution() takes HTML: the attributions are escaped text.
        "attribution": [html.escape(a) for a in attributions(collections)],
    }
    data = {"boundaries": boundaries_geojson(municipalities), "points": rows}
    MapScript(config, data, boundary_group, groups, asset_url).add_to(m)
    folium.LayerControl(collapsed=False).add_to(m)

    box = bounds(municipalities, points)
    if box is not None:
        m.fit_bounds(box, max_zoom=MAX_FIT_ZOOM)

    offline.localise_tree(m, asset_url)
    page = _finish_html(m.get_root().render(), lang, ui["title"])
    if inline_assets:
        page = offline.inline_assets(page, asset_url)
    offline.assert_offline(page, asset_url, inline_assets)

    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(page, encoding="utf-8")
    return out_file
