"""The supply analysis on the map: which frames it reads, and its layers, legend and table.

The analysis exists only when the definitions declare it: a collection with
`role: territory` (the features it is computed for, their key and population)
and one with `analysis: supply` (the counted field, its food terms, the
distance bands).  This module reads those declarations and turns
analysis.SupplyPicture into what map.js draws: the density classes, the
distance bands, the county outlines and the per-municipality table.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from gdi.collections import Collection, supply_collection, territory_collection
from gdi.viewer.analysis import PointSet, SupplyPicture, supply_picture
from gdi.viewer.data import features_geojson, to_wgs84
from gdi.viewer.layers import label_field
from gdi.viewer.style import OTHER, TermStyle, band_colours, distance, distance_parts, number, term_styles, text

#: Choropleth colours: no point at all, then low -> high density (ColorBrewer YlGnBu).
ZERO_COLOUR = "#f4a582"
DENSITY_COLOURS = ("#ffffcc", "#a1dab4", "#41b6c4", "#2c7fb8", "#253494")
ANALYSIS_DECIMALS = 5  # ~1 m: the analysis polygons are simplified to 5 m anyway
SIMPLIFY_M = 5.0
#: The distance bands are a regional overview (fill only, no outline): 25 m is
#: invisible at the zoom levels they are meant for and keeps them small.
BAND_SIMPLIFY_M = 25.0


def _empty() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(geometry=gpd.GeoSeries([], crs=4326))


def compute_picture(frames: Mapping[str, gpd.GeoDataFrame | PointSet],
                    collections: Mapping[str, Collection]) -> SupplyPicture | None:
    """The supply analysis for build_viewer (compute once, render in several languages),
    or None when the definitions declare no territory or no supply analysis."""
    territory, supply = territory_collection(collections), supply_collection(collections)
    if territory is None or supply is None or supply.supply is None or territory.territory is None:
        return None
    spec = supply.supply
    points = frames.get(supply.id)
    points = _empty() if points is None else points
    terms = list(supply.terms(spec.field))
    if isinstance(points, PointSet):
        values = pd.Series(points.values, dtype=object)
        points = PointSet(points.xy, values.where(values.isin(terms), OTHER).to_numpy(), points.crs)
    elif len(points) and spec.field in points.columns:
        known = points[spec.field].isin(terms)
        points = points.assign(**{spec.field: points[spec.field].astype(object).where(known, OTHER)})
    area = frames.get(territory.id)
    return supply_picture(area if area is not None else _empty(), points, [*terms, OTHER], list(spec.food),
                          spec.distance_bands_m, key=territory.territory.key, field=spec.field,
                          population=territory.territory.population, label=label_field(territory))


def density_classes(rates: list[float | None], lang: str) -> tuple[list[int | None], list[dict[str, str]]]:
    """Class index per territory feature and the legend entries (label, colour).

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
            legend.append({"label": f"{number(breaks[i], lang)} – {number(breaks[i + 1], lang)}",
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


def _text_or_none(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


def supply_table(picture: SupplyPicture, terms: list[str]) -> list[list[Any]]:
    """Rows [key, label, population, *counts per term, total, per 1,000, share per band, km² beyond]."""
    ter = picture.territory
    shares = picture.coverage.shares
    bands = picture.coverage.bands
    beyond = bands[bands["band"] == len(picture.coverage.radii)].groupby("position")["area_m2"].sum()
    n = len(ter)
    keys = ter[picture.key].tolist() if picture.key in ter.columns else [None] * n
    labels = ter[picture.label].tolist() if picture.label and picture.label in ter.columns else [None] * n
    people = ter[picture.population].tolist() if picture.population and picture.population in ter.columns \
        else [None] * n
    rows = []
    for i in range(n):
        pop = people[i]
        pop = None if pop is None or (isinstance(pop, float) and math.isnan(pop)) else int(pop)
        rate = picture.rate[i]
        rows.append([
            _text_or_none(keys[i]),
            _text_or_none(labels[i]),
            pop,
            *[int(picture.counts.at[i, c]) for c in terms],
            int(picture.counts.at[i, "total"]),
            None if rate is None else round(rate, 3),
            *[None if math.isnan(v) else round(float(v), 4) for v in shares.iloc[i].tolist()],
            round(float(beyond.get(i, 0.0)) / 1e6, 2),
        ])
    return rows


def analysis_geojson(gdf: gpd.GeoDataFrame, props: list[str], tolerance: float = SIMPLIFY_M) -> dict[str, Any]:
    """Simplified polygons in lon/lat with the given plain properties."""
    if len(gdf) == 0:
        return {"type": "FeatureCollection", "features": []}
    simple = gdf.copy()
    simple["geometry"] = simple.geometry.simplify(tolerance, preserve_topology=True)
    return features_geojson(to_wgs84(simple), props, decimals=ANALYSIS_DECIMALS)


def band_labels(radii: tuple[int, ...], lang: str) -> list[str]:
    """Legend texts of the distance bands: up to the first, between two, beyond the last."""
    ui = text(lang)
    out = [ui["band_first"].format(r=distance(radii[0], lang))] if radii else []
    for a, b in zip(radii, radii[1:]):
        (a_num, a_unit), (_, b_unit) = distance_parts(a, lang), distance_parts(b, lang)
        # "1 bis 3 km": the unit once when both limits share it
        out.append(ui["band_between"].format(a=a_num if a_unit == b_unit else distance(a, lang), b=distance(b, lang)))
    return [*out, ui["band_beyond"].format(r=distance(radii[-1], lang))] if radii else out


def supply_terms(collections: Mapping[str, Collection], lang: str) -> dict[str, TermStyle]:
    """The counted field's terms (plus OTHER) as the table shows them."""
    coll = supply_collection(collections)
    return term_styles(coll, coll.supply.field, lang) if coll is not None and coll.supply else {}


def supply_config(picture: SupplyPicture, collections: Mapping[str, Collection], counts: Mapping[str, int],
                  lang: str) -> tuple[dict[str, Any], list[list[Any]], list[int | None]]:
    """(config for map.js, table rows, density class per territory feature).

    counts: the supply points per term of the counted field; the table has a column
    for each term that occurs."""
    ui = text(lang)
    coll = supply_collection(collections)
    territory = territory_collection(collections)
    assert coll is not None and coll.supply is not None and territory is not None
    terms = supply_terms(collections, lang)
    table_terms = [t for t in terms if counts.get(t) and t in picture.counts.columns]
    radii = picture.coverage.radii
    classes, density_legend = density_classes(picture.rate, lang)
    food_labels = ", ".join(terms[t].label for t in picture.food if t in terms)
    population = territory.territory.population if territory.territory else None
    config = {
        "layer": coll.id,
        "title": coll.label(lang),
        "tableTitle": ui["table"].format(title=coll.label(lang)),
        "terms": {tid: s.as_json() for tid, s in terms.items()},
        "density": population is not None,
        "densityLegend": density_legend,
        "bandColours": band_colours(len(radii) + 1),
        "bandLabels": band_labels(radii, lang),
        "tableTerms": table_terms,
        "shareLabels": [ui["within"].format(r=distance(r, lang)) for r in radii],
        "shareShort": [ui["within_short"].format(r=distance(r, lang)) for r in radii],
        "beyondLabel": ui["beyond_area"].format(r=distance(radii[-1], lang)) if radii else "",
        "tableNote": ui["table_note"].format(food=food_labels),
        "unassigned": ui["unassigned"].format(n=picture.unassigned) if picture.unassigned else None,
    }
    return config, supply_table(picture, table_terms), classes
