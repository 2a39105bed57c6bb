"""Build the planners' map: one static HTML page from boundaries and supply points.

folium gives us the map, the layer structure and the layer control; the data
and everything that shows it (popups, tooltips, search, legend) live in
map.js, which reads the embedded JSON and inserts values as text only.  All
libraries come from viewer/vendor/ (served at asset_url) or, with
inline_assets, are copied into the page so it works as an e-mail attachment.

The distance bands (the largest data, not needed for the first draw) go into
<page stem>.bands.json next to the page and are fetched when that layer is
switched on; with inline_assets they stay in the page (as a JSON element that
is parsed only then), so the single file still works on its own.
"""
from __future__ import annotations

import os

import hashlib
import html
import json
import math
import re
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import folium
import geopandas as gpd
import numpy as np
from folium.elements import JSCSSMixin
from folium.plugins import Fullscreen, MarkerCluster
from folium.template import Template

from gdi.viewer import offline
from gdi.viewer.analysis import RADII_M, SupplyPicture, food_categories, supply_picture, to_metric
from gdi.viewer.data import POINT_FIELDS, boundaries_geojson, bounds, point_columns, safe_json, to_wgs84
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
        <script type="application/json" id="gdi-data">{{ this.data }}</script>
        {% if this.bands is not none %}<script type="application/json" id="gdi-bands">{{ this.bands }}</script>{% endif %}
        {% endmacro %}
        {% macro script(this, kwargs) %}
        gdiMap.init({{ this._parent.get_name() }}, {{ this.config }}, {
            boundaries: {{ this.boundaries.get_name() }},
            density: {{ this.density.get_name() }},
            distance: {{ this.distance.get_name() }},
            groups: {{ this.groups }}
        }, JSON.parse(document.getElementById('gdi-data').textContent));
        {% endmacro %}
        """
    )

    def __init__(self, config: dict[str, Any], data: dict[str, Any], boundaries: folium.FeatureGroup,
                 density: folium.FeatureGroup, distance: folium.FeatureGroup,
                 groups: Mapping[str, MarkerCluster], asset_url: str, bands: dict[str, Any] | None = None) -> None:
        super().__init__()
        self._name = "GdiMapScript"
        self.css = (HERE / "map.css").read_text(encoding="utf-8")
        self.js = (HERE / "map.js").read_text(encoding="utf-8")
        if re.search(r"</(script|style)", self.js + self.css, re.IGNORECASE):
            raise ValueError("map.js/map.css must not contain </script or </style")
        self.config = safe_json(config)
        # Data as JSON elements, not JS literals: the HTML parser skips them and
        # JSON.parse reads them much faster than the JS parser.  The distance
        # bands (large) are parsed only when that layer is switched on.
        self.data = safe_json(data)
        self.bands = None if bands is None else safe_json(bands)
        self.boundaries = boundaries
        self.density = density
        self.distance = distance
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


#: Choropleth colours: no point at all, then low -> high density (ColorBrewer YlGnBu).
ZERO_COLOUR = "#f4a582"
DENSITY_COLOURS = ("#ffffcc", "#a1dab4", "#41b6c4", "#2c7fb8", "#253494")
#: Distance bands: within 1 km, 1-3 km, 3-5 km, beyond 5 km.
BAND_COLOURS = ("#1a9850", "#a6d96a", "#fee08b", "#d73027")
ANALYSIS_DECIMALS = 5  # ~1 m: the analysis polygons are simplified to 5 m anyway
SIMPLIFY_M = 5.0
#: The distance bands are a regional overview (fill only, no outline): 25 m is
#: invisible at the zoom levels they are meant for and keeps them small.
BAND_SIMPLIFY_M = 25.0


def _number(value: float, lang: str, digits: int = 2) -> str:
    out = f"{value:,.{digits}f}"
    return out.replace(",", "\0").replace(".", ",").replace("\0", ".") if lang == "de" else out


def density_classes(rates: list[float | None], lang: str) -> tuple[list[int | None], list[dict[str, str]]]:
    """Class index per municipality and the legend entries (label, colour).

    Class 0 is "no point at all" (highlighted: that is where supply is thin);
    the positive rates are split at their quantiles into up to five classes.
    """
    positive = sorted(r for r in rates if r is not None and r > 0)
    legend: list[dict[str, str]] = []
    if any(r == 0 for r in rates):
        legend.append({"label": "0", "colour": ZERO_COLOUR})
    zero_offset = len(legend)
    breaks: list[float] = []
    if positive:
        qs = [float(q) for q in np.quantile(positive, np.linspace(0, 1, len(DENSITY_COLOURS) + 1))]
        breaks = sorted({round(q, 2) for q in qs})
        if len(breaks) == 1:
            breaks = [breaks[0], breaks[0]]
        for i in range(len(breaks) - 1):
            legend.append({"label": f"{_number(breaks[i], lang)} – {_number(breaks[i + 1], lang)}",
                           "colour": DENSITY_COLOURS[min(i, len(DENSITY_COLOURS) - 1) if len(breaks) > 2 else 2]})
    classes: list[int | None] = []
    for r in rates:
        if r is None:
            classes.append(None)
        elif r == 0:
            classes.append(0)
        else:
            i = 0
            while i < len(breaks) - 2 and round(r, 2) > breaks[i + 1]:
                i += 1
            classes.append(zero_offset + i)
    return classes, legend


def supply_table(picture: SupplyPicture, categories: list[str]) -> list[list[Any]]:
    """Rows [ags, name, population, *counts per category, total, per 1,000, share 1/3/5 km, km² beyond]."""
    mun = picture.municipalities
    shares = picture.coverage.shares
    bands = picture.coverage.bands
    beyond = bands[bands["band"] == len(picture.coverage.radii)].groupby("position")["area_m2"].sum()
    rows = []
    for i in range(len(mun)):
        pop = mun["population"].iloc[i] if "population" in mun.columns else None
        pop = None if pop is None or (isinstance(pop, float) and math.isnan(pop)) else int(pop)
        rate = picture.rate[i]
        rows.append([
            None if mun["ags"].iloc[i] is None else str(mun["ags"].iloc[i]),
            None if "name" not in mun.columns or mun["name"].iloc[i] is None else str(mun["name"].iloc[i]),
            pop,
            *[int(picture.counts.at[i, c]) for c in categories],
            int(picture.counts.at[i, "total"]),
            None if rate is None else round(rate, 3),
            *[None if math.isnan(v) else round(float(v), 4) for v in shares.iloc[i].tolist()],
            round(float(beyond.get(i, 0.0)) / 1e6, 2),
        ])
    return rows


def _analysis_geojson(gdf: gpd.GeoDataFrame, props: list[str], tolerance: float = SIMPLIFY_M) -> dict[str, Any]:
    """Simplified polygons in lon/lat with the given plain properties."""
    if len(gdf) == 0:
        return {"type": "FeatureCollection", "features": []}
    simple = gdf.copy()
    simple["geometry"] = simple.geometry.simplify(tolerance, preserve_topology=True)
    out = boundaries_geojson(to_wgs84(simple), {p: simple[p].tolist() for p in props}, ANALYSIS_DECIMALS)
    for feature in out["features"]:  # these are not municipalities: keep only the given properties
        feature["properties"] = {p: feature["properties"][p] for p in props}
    return out


def compute_picture(municipalities: gpd.GeoDataFrame, points: gpd.GeoDataFrame,
                    collections: Mapping[str, Any]) -> SupplyPicture:
    """The supply analysis for build_viewer (compute once, render in several languages)."""
    styles = category_styles(collections)
    if len(points) and "category" in points.columns:
        known = points["category"].isin([c for c in styles if c != OTHER])
        points = points.assign(category=points["category"].where(known, OTHER))
    return supply_picture(municipalities, points, list(styles), food_categories(collections), RADII_M)


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
    picture: SupplyPicture | None = None,
    lang_switch: bool = False,
) -> Path:
    """Write the planners' map to out_file and return it.

    collections: the collection definitions keyed by id (parsed YAML dicts or
    gdi.collections.Collection objects).  asset_url: where viewer/vendor/ is
    served.  inline_assets: put every library into the page (single file).
    picture: the result of compute_picture() for these frames (computed when
    not given).  lang_switch: link to the other language (?lang=..), for pages
    served by `gdi serve`, which has both.
    """
    if not re.fullmatch(r"[a-z]{2}", lang):
        raise ValueError(f"lang must be a two-letter code, got {lang!r}")
    ui = text(lang)
    styles = category_styles(collections, lang)
    point_data = point_columns(points, set(styles) - {OTHER})
    category = point_data["fields"]["category"] or []  # see data._column
    counts = Counter(category) if isinstance(category, list) else \
        Counter(category["values"][c] for c in category["codes"])
    present = [cid for cid in styles if counts[cid]]
    municipalities = to_metric(municipalities).reset_index(drop=True) if len(municipalities) else municipalities
    if picture is None:
        picture = compute_picture(municipalities, points, collections)

    m = folium.Map(location=DEFAULT_VIEW[0], zoom_start=DEFAULT_VIEW[1], tiles=None, control_scale=False,
                   **{"maxZoom": 19})  # the clusters need a maxZoom even without a base map
    offline.set_assets(m, asset_url, offline.LEAFLET_JS, offline.LEAFLET_CSS)
    _add_basemap(m, basemap)

    boundaries_label = collection_title(collections, BOUNDARIES_COLLECTION, lang, ui["boundaries"])
    boundary_group = folium.FeatureGroup(name=html.escape(boundaries_label))
    boundary_group.add_to(m)
    density_group = folium.FeatureGroup(name=html.escape(ui["density"]), show=False)
    density_group.add_to(m)
    distance_group = folium.FeatureGroup(name=html.escape(ui["distance"]), show=False)
    distance_group.add_to(m)
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
    classes, density_legend = density_classes(picture.rate, lang)
    table_categories = [c for c in present if c in picture.counts.columns]
    food_labels = ", ".join(styles[c].label for c in picture.food if c in styles)
    config.update({
        "bounds": bounds(municipalities, points),
        "maxFitZoom": MAX_FIT_ZOOM,
        "langSwitch": ("en" if lang == "de" else "de") if lang_switch else None,
        "densityLegend": density_legend,
        "bandColours": list(BAND_COLOURS),
        "bandLabels": [ui[f"band_{i}"] for i in range(len(RADII_M) + 1)],
        "tableCategories": table_categories,
        "shareLabels": [ui["within"].format(r=r // 1000) for r in RADII_M],
        "shareShort": [ui["within_short"].format(r=r // 1000) for r in RADII_M],
        "tableNote": ui["table_note"].format(food=food_labels),
        "unassigned": ui["unassigned"].format(n=picture.unassigned) if picture.unassigned else None,
    })
    data = {
        "boundaries": boundaries_geojson(municipalities, {"cls": classes}),
        "points": point_data,
        "counties": _analysis_geojson(picture.counties.rename(columns={"kreis": "ags"}), ["ags"]),
        "table": supply_table(picture, table_categories),
    }
    bands: dict[str, Any] = {"type": "FeatureCollection", "features": []}
    if len(picture.coverage.bands):
        bands = _analysis_geojson(picture.coverage.bands.rename(columns={"position": "row"}), ["row", "band"],
                                  BAND_SIMPLIFY_M)
    out_file = Path(out_file)
    bands_text = None
    if inline_assets:
        inline_bands: dict[str, Any] | None = bands
    else:
        # A file next to the page, fetched when the distance layer is switched on
        # (the first draw does not need it).  ?v= keeps a browser from using an old copy.
        inline_bands = None
        bands_text = json.dumps(bands, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        version = hashlib.sha256(bands_text.encode("utf-8")).hexdigest()[:12]
        config["bandsUrl"] = f"{out_file.stem}.bands.json?v={version}"
    config["bandCount"] = len(bands["features"])
    MapScript(config, data, boundary_group, density_group, distance_group, groups, asset_url,
              inline_bands).add_to(m)
    folium.LayerControl(collapsed=False).add_to(m)

    offline.localise_tree(m, asset_url)
    page = _finish_html(m.get_root().render(), lang, ui["title"])
    if inline_assets:
        page = offline.inline_assets(page, asset_url)
    offline.assert_offline(page, asset_url, inline_assets)

    out_file.parent.mkdir(parents=True, exist_ok=True)
    if bands_text is not None:         # first the side file, so a new page never misses it
        _write_atomically(out_file.with_name(f"{out_file.stem}.bands.json"), bands_text)
    _write_atomically(out_file, page)  # a browser never gets half a page
    return out_file


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
