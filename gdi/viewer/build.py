"""Build the planners' map: one static HTML page with a layer per collection.

folium gives us the map, the layer structure and the layer control; the data
and everything that shows it (popups, tooltips, search, legend) live in
map.js, which reads the embedded JSON and inserts values as text only.  What
each layer looks like comes from its collection's `map:` declaration
(gdi/viewer/layers.py); the supply analysis is drawn when the definitions
declare it (gdi/viewer/supply.py).  All libraries come from viewer/vendor/
(served at asset_url) or, with inline_assets, are copied into the page so it
works as an e-mail attachment.

The distance bands (the largest data, not needed for the first draw) go into
<page stem>.bands.json next to the page and are fetched when that layer is
switched on; with inline_assets they stay in the page (as a JSON element that
is parsed only then), so the single file still works on its own.
"""
from __future__ import annotations

import hashlib
import html
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import folium
import geopandas as gpd
from folium.elements import JSCSSMixin
from folium.plugins import Fullscreen, MarkerCluster
from folium.template import Template

from gdi.collections import Collection, supply_collection, territory_collection
from gdi.files import write_atomically
from gdi.viewer import offline
from gdi.viewer.analysis import SupplyPicture, county_outlines, to_metric
from gdi.viewer.data import (bounds, column_counts, features_geojson, has_features, inline_code, point_columns,
                             safe_json)
from gdi.viewer.layout import MapLayout
from gdi.viewer.layers import Layer, control_name, map_layers, marker_swatch, shape_swatch, term_control_name
from gdi.viewer.style import OTHER, attributions, text
from gdi.viewer.supply import BAND_SIMPLIFY_M, analysis_geojson, compute_picture, supply_config, supply_terms
from gdi.viewer.tiles import TiledCollection, tile_layer, tiled_config

__all__ = ["build_viewer", "compute_picture"]

HERE = Path(__file__).resolve().parent
DEFAULT_VIEW = ([51.2, 8.9], 8)  # between Marburg-Biedenkopf and Höxter, when there is no data
MAX_FIT_ZOOM = 15
#: Extra feature properties the map adds; property names start with a letter, so these never clash.
ROW, CLASS = "_row", "_cls"

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

Frames = Mapping[str, gpd.GeoDataFrame]


class MapScript(JSCSSMixin):
    """map.css/map.js in the page header, and the call that fills the layers."""

    _template = Template(
        """
        {% macro header(this, kwargs) %}
        <style>{{ this.css }}</style>
        <script>{{ this.js }}</script>
        <script type="application/json" id="gdi-data">{{ this.data }}</script>
        {% if this.bands is not none %}<script type="application/json" id="gdi-bands">{{ this.bands }}</script>{% endif %}
        {% endmacro %}
        {% macro script(this, kwargs) %}
        gdiMap.init({{ this._parent.get_name() }}, {{ this.config }}, {
            groups: {{ this.groups }},
            density: {{ this.density }},
            distance: {{ this.distance }}
        }, JSON.parse(document.getElementById('gdi-data').textContent));
        {% endmacro %}
        """
    )

    def __init__(self, config: dict[str, Any], data: dict[str, Any], groups: Mapping[str, Mapping[str, folium.Layer]],
                 density: folium.FeatureGroup | None, distance: folium.FeatureGroup | None, asset_url: str,
                 bands: dict[str, Any] | None = None) -> None:
        super().__init__()
        self._name = "GdiMapScript"
        self.css = inline_code(HERE / "map.css")
        self.js = inline_code(HERE / "map.js")
        self.config = safe_json(config)
        # Data as JSON elements, not JS literals: the HTML parser skips them and
        # JSON.parse reads them much faster than the JS parser.  The distance
        # bands (large) are parsed only when that layer is switched on.
        self.data = safe_json(data)
        self.bands = None if bands is None else safe_json(bands)
        # Collection and term ids become object keys (JSON-quoted); values are folium's JS variable names.
        self.groups = "{" + ", ".join(
            f"{safe_json(cid)}: {{" + ", ".join(f"{safe_json(key)}: {g.get_name()}" for key, g in by_key.items()) + "}"
            for cid, by_key in groups.items()) + "}"
        self.density = density.get_name() if density is not None else "null"
        self.distance = distance.get_name() if distance is not None else "null"
        offline.set_assets(self, asset_url, offline.SEARCH_JS, offline.SEARCH_CSS)


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


def _merge_bounds(box: list[list[float]] | None,
                  *extents: tuple[float, float, float, float] | None) -> list[list[float]] | None:
    """[[south, west], [north, east]] over box and the lon/lat extents (west, south, east, north)."""
    boxes = ([] if box is None else [(box[0][1], box[0][0], box[1][1], box[1][0])]) + [e for e in extents if e]
    if not boxes:
        return None
    return [[min(b[1] for b in boxes), min(b[0] for b in boxes)], [max(b[3] for b in boxes), max(b[2] for b in boxes)]]


def _term_counts(frame: gpd.GeoDataFrame | None, field: str, terms: Mapping[str, Any]) -> dict[str, int]:
    """Features per term of field (values outside the vocabulary count as OTHER)."""
    if not has_features(frame) or field not in frame.columns:
        return {}
    drawn = frame[frame.geometry.notna() & ~frame.geometry.is_empty]
    values = drawn[field].where(drawn[field].isin([t for t in terms if t != OTHER]), OTHER)
    return {str(k): int(v) for k, v in values.value_counts().items()}


def _cluster_groups(layer: Layer, counts: Mapping[str, int], total: int, asset_url: str) -> dict[str, MarkerCluster]:
    """The marker cluster groups of a point layer: one per term that occurs (colour_by), else one ("*")."""
    style = layer.style()
    if layer.colour_by and total:
        terms = layer.terms()
        entries = [(tid, terms[tid].colour, term_control_name(layer, terms[tid], counts[tid]))
                   for tid in terms if counts.get(tid)]
    else:
        entries = [("*", style["colour"],
                    control_name(layer.id, layer.title, total, "" if layer.colour_by else
                                 marker_swatch(style["colour"], style["icon"])))]
    groups: dict[str, MarkerCluster] = {}
    for key, colour, name in entries:
        group = MarkerCluster(
            name=name, show=bool(layer.collection.map.show),
            icon_create_function=f"function (c) {{ return gdiMap.clusterIcon(c, {safe_json(colour)}); }}",
            options={"showCoverageOnHover": False, "maxClusterRadius": 50},
        )
        offline.set_assets(group, asset_url, offline.CLUSTER_JS, offline.CLUSTER_CSS)
        groups[key] = group
    return groups


def _territory_config(territory: Collection | None, lang: str) -> dict[str, Any] | None:
    """What map.js needs to know about the territory: its layer and key, and how to name them."""
    if territory is None or territory.territory is None:
        return None
    key, population = territory.territory.key, territory.territory.population
    return {
        "layer": territory.id,
        "key": key,
        # a key is a code, known by its field name (AGS, ARS …): the tooltip says "AGS 06534014"
        "keyLabel": key.upper(),
        "population": population,
        "populationLabel": territory.properties[population].label(lang) if population else None,
    }


def build_viewer(
    frames: Frames,
    collections: Mapping[str, Collection],
    out_file: Path,
    *,
    asset_url: str = "/vendor",
    inline_assets: bool = False,
    lang: str = "de",
    basemap: str = "osm",
    picture: SupplyPicture | None = None,
    lang_switch: bool = False,
    tiled: Mapping[str, TiledCollection] | None = None,
    api_url: str = "",
) -> Path:
    """Write the planners' map to out_file and return it.

    frames: the features of each collection, keyed by collection id (a missing
    frame draws an empty layer).  collections: the definitions keyed by id; every
    one gets a layer, in map.order.  asset_url: where viewer/vendor/ is served.
    inline_assets: put every library into the page (single file).  picture: the
    result of compute_picture(frames, collections) (computed when not given; None
    there means no analysis is declared).  lang_switch: link to the other language
    (?lang=..), for pages served by `gdi serve`, which has both.  tiled: the collections drawn
    from the server's vector tiles, with their store aggregates (their frames are not read:
    nothing of them is embedded); api_url: the server they come from ("" = the page's own).
    """
    if not re.fullmatch(r"[a-z]{2}", lang):
        raise ValueError(f"lang must be a two-letter code, got {lang!r}")
    ui = text(lang)
    territory = territory_collection(collections)
    supply = supply_collection(collections)
    tiled = tiled or {}
    if picture is None:
        picture = compute_picture(frames, collections)

    m = folium.Map(location=DEFAULT_VIEW[0], zoom_start=DEFAULT_VIEW[1], tiles=None, control_scale=False,
                   **{"maxZoom": 19})  # the clusters need a maxZoom even without a base map
    offline.set_assets(m, asset_url, offline.LEAFLET_JS, offline.LEAFLET_CSS)
    _add_basemap(m, basemap)

    supply_cfg: dict[str, Any] | None = None
    table: list[list[Any]] = []
    classes: list[int | None] = []
    if picture is not None and supply is not None and supply.supply is not None:
        terms = supply_terms(collections, lang)
        counts = (tiled[supply.id].term_counts(supply.supply.field, terms) if supply.id in tiled
                  else _term_counts(frames.get(supply.id), supply.supply.field, terms))
        supply_cfg, table, classes = supply_config(picture, collections, counts, lang)

    layer_configs: list[dict[str, Any]] = []
    payloads: dict[str, Any] = {}
    groups: dict[str, dict[str, folium.Layer]] = {}
    density_group = distance_group = None
    for layer in map_layers(collections, lang):
        frame = frames.get(layer.id)
        if layer.is_territory and picture is not None:
            frame = picture.territory   # its rows are the table's rows
        if layer.id in tiled and not layer.is_territory:
            summary = tiled[layer.id]
            counts = summary.term_counts(layer.colour_by, layer.terms()) if layer.colour_by else {}
            spec = {**layer.config(counts, summary.count), "tiled": tiled_config(api_url, layer.collection.tiles)}
            swatch = "" if layer.colour_by else (marker_swatch(spec["style"]["colour"], spec["style"]["icon"])
                                                 if layer.kind == "point" else shape_swatch(layer))
            grid = tile_layer(spec, control_name(layer.id, layer.title, summary.count, swatch), api_url, asset_url)
            grid.add_to(m)
            groups[layer.id] = {"*": grid}
            payloads[layer.id] = None
            layer_configs.append(spec)
            continue
        if layer.kind == "point":
            terms = layer.terms()
            payload = point_columns(frame, layer.fields(), layer.colour_by, set(terms) - {OTHER})
            counts = column_counts(payload["fields"].get(layer.colour_by)) if layer.colour_by else {}
            total = payload["n"]
            layer_groups: dict[str, folium.Layer] = dict(_cluster_groups(layer, counts, total, asset_url))
        else:
            extra: dict[str, list[Any]] = {}
            n = len(frame) if frame is not None else 0
            if layer.is_territory:
                extra[ROW] = list(range(n))  # the feature's row in the supply table
                if classes:
                    extra[CLASS] = classes
            key = [layer.collection.territory.key] if layer.collection.territory else []
            payload = features_geojson(frame, layer.fields(), extra, text_fields=key)
            counts = _term_counts(frame, layer.colour_by, layer.terms()) if layer.colour_by else {}
            total = len(payload["features"])
            name = control_name(layer.id, layer.title, None if layer.is_territory else total,
                                "" if layer.is_territory else shape_swatch(layer))
            layer_groups = {"*": folium.FeatureGroup(name=name, show=bool(layer.collection.map.show))}
        for group in layer_groups.values():
            group.add_to(m)
        groups[layer.id] = layer_groups
        payloads[layer.id] = payload
        layer_configs.append(layer.config(counts, total))
        if layer.is_territory and supply_cfg is not None:
            # the analysis of the territory right after it in the layer list
            if supply_cfg["density"]:
                density_group = folium.FeatureGroup(name=html.escape(ui["density"]), show=False)
                density_group.add_to(m)
            distance_group = folium.FeatureGroup(name=html.escape(ui["distance"]), show=False)
            distance_group.add_to(m)

    fullscreen = Fullscreen(title=ui["fullscreen"], title_cancel=ui["fullscreen_exit"])
    offline.set_assets(fullscreen, asset_url, offline.FULLSCREEN_JS, offline.FULLSCREEN_CSS)
    fullscreen.add_to(m)

    counties: dict[str, Any] = {"type": "FeatureCollection", "features": []}
    if territory is not None and territory.territory is not None:
        if picture is not None:
            outlines = picture.counties
        else:
            area = frames.get(territory.id)
            outlines = county_outlines(to_metric(area), territory.territory.key) if has_features(area) else None
        if outlines is not None and len(outlines):
            counties = analysis_geojson(outlines, [])
    config: dict[str, Any] = {
        "lang": lang,
        "text": ui,
        "other": OTHER,
        "layers": layer_configs,
        "territory": _territory_config(territory, lang),
        "supply": supply_cfg,
        # addAttribution() takes HTML: the attributions are escaped text.
        "attribution": [html.escape(a) for a in attributions(collections)],
        "bounds": _merge_bounds(bounds(*(f for f in frames.values() if f is not None)),
                                *(t.extent for t in tiled.values())),
        "maxFitZoom": MAX_FIT_ZOOM,
        "langSwitch": ("en" if lang == "de" else "de") if lang_switch else None,
    }
    data = {"layers": payloads, "counties": counties, "table": table}

    out_file = Path(out_file)
    bands_text = None
    inline_bands: dict[str, Any] | None = None
    if supply_cfg is not None and picture is not None:
        bands: dict[str, Any] = {"type": "FeatureCollection", "features": []}
        if len(picture.coverage.bands):
            bands = analysis_geojson(picture.coverage.bands.rename(columns={"position": "row"}), ["row", "band"],
                                     BAND_SIMPLIFY_M)
        if inline_assets:
            inline_bands = bands
        else:
            # A file next to the page, fetched when the distance layer is switched on
            # (the first draw does not need it).  ?v= keeps a browser from using an old copy.
            bands_text = json.dumps(bands, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
            version = hashlib.sha256(bands_text.encode("utf-8")).hexdigest()[:12]
            supply_cfg["bandsUrl"] = f"{out_file.stem}.bands.json?v={version}"
        supply_cfg["bandCount"] = len(bands["features"])
    MapScript(config, data, groups, density_group, distance_group, asset_url, inline_bands).add_to(m)
    layer_control = folium.LayerControl(collapsed=False).add_to(m)
    MapLayout(layer_control, ui, config["langSwitch"]).add_to(m)   # after the layer control: it places it

    offline.localise_tree(m, asset_url)
    title = ui["title"].format(title=supply.label(lang)) if supply is not None else ui["title_plain"]
    page = _finish_html(m.get_root().render(), lang, title)
    if inline_assets:
        page = offline.inline_assets(page, asset_url)
    offline.assert_offline(page, asset_url, inline_assets)

    out_file.parent.mkdir(parents=True, exist_ok=True)
    if bands_text is not None:         # first the side file, so a new page never misses it
        write_atomically(out_file.with_name(f"{out_file.stem}.bands.json"), bands_text)
    write_atomically(out_file, page)   # a browser never gets half a page
    return out_file
