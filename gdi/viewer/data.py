"""Turn the GeoDataFrames into the compact JSON the map's script reads.

Why not folium.GeoJson: its tooltips and popups paste property values into
HTML, and every value here comes from an upload.  The map script inserts them
as text instead, so this module only has to deliver plain values — and embed
them in a way that cannot end the surrounding <script> element.

Nothing here knows a collection: the callers say which fields to deliver.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Collection as Container
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd

from gdi.viewer.style import OTHER

COORD_DECIMALS = 6  # ~0.1 m; more only makes the page bigger


def safe_json(value: Any) -> str:
    """JSON that is safe inside an HTML <script>: no '<', '>', '&' or JS line breaks."""
    return (
        json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        .replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    )


def inline_code(path: Path) -> str:
    """A script or style sheet of ours to copy into a <script>/<style> element of the page: refused when
    it holds "</script" or "</style", which would end that element early."""
    code = path.read_text(encoding="utf-8")
    if re.search(r"</(script|style)", code, re.IGNORECASE):
        raise ValueError(f"{path.name} must not contain </script or </style")
    return code


def has_features(gdf: gpd.GeoDataFrame | None) -> bool:
    """Rows and a geometry column (an empty upload may have neither)."""
    return (gdf is not None and len(gdf) > 0 and isinstance(gdf, gpd.GeoDataFrame)
            and gdf._geometry_column_name in gdf.columns)


def to_wgs84(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Leaflet wants lon/lat; data without a CRS is taken to be lon/lat already."""
    if gdf.crs is not None and gdf.crs.to_epsg() != 4326:
        return gdf.to_crs(4326)
    return gdf


def plain(value: Any) -> str | int | float | None:
    """A JSON-friendly scalar: NaN/NaT/None -> None, timestamps -> 'YYYY-MM-DD HH:MM'."""
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (pd.Timestamp, dt.datetime)):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int) or (hasattr(value, "dtype") and getattr(value.dtype, "kind", "") in "iu"):
        return int(value)
    if isinstance(value, float) or (hasattr(value, "dtype") and getattr(value.dtype, "kind", "") == "f"):
        return float(value)
    text = str(value).strip()
    return text or None


def _round(coords: Any, decimals: int = COORD_DECIMALS) -> Any:
    if isinstance(coords, (list, tuple)):
        if coords and isinstance(coords[0], (int, float)):
            return [round(c, decimals) for c in coords]
        return [_round(c, decimals) for c in coords]
    return coords


def features_geojson(gdf: gpd.GeoDataFrame, fields: Sequence[str], extra: dict[str, list[Any]] | None = None,
                     decimals: int = COORD_DECIMALS, *, text_fields: Sequence[str] = ()) -> dict[str, Any]:
    """A GeoJSON FeatureCollection of gdf (any geometry) with the plain values of fields
    (None where a column is missing) plus extra[key][position] for each key of extra.

    text_fields are given as text (a key such as 06534014 must never become a number).
    Rows without geometry are left out; extra is indexed by the row's position in gdf.
    """
    features: list[dict[str, Any]] = []
    if not has_features(gdf):
        return {"type": "FeatureCollection", "features": features}
    wgs = to_wgs84(gdf)
    n = len(wgs)
    columns = {f: wgs[f].tolist() if f in wgs.columns else [None] * n for f in fields}
    for position, geom in enumerate(wgs.geometry):
        if geom is None or geom.is_empty:
            continue
        props = {f: plain(col[position]) for f, col in columns.items()}
        for f in text_fields:
            if props.get(f) is not None:
                props[f] = text_value(props[f])
        for key, values in (extra or {}).items():
            props[key] = plain(values[position])
        mapping = geom.__geo_interface__
        features.append({
            "type": "Feature",
            "properties": props,
            "geometry": {"type": mapping["type"], "coordinates": _round(mapping["coordinates"], decimals)},
        })
    return {"type": "FeatureCollection", "features": features}


def text_value(value: Any) -> str | None:
    """An attribute as text; 35037.0 (a postcode read as float) -> "35037"."""
    value = plain(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return None if value is None else str(value)


def _points_only(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """lon/lat points: multipoints split into their points, other geometries dropped."""
    gdf = to_wgs84(gdf)
    gdf = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty]
    if (gdf.geometry.geom_type == "MultiPoint").any():
        gdf = gdf.explode(index_parts=False)
    return gdf[gdf.geometry.geom_type == "Point"]


def point_rows(points: gpd.GeoDataFrame, fields: Sequence[str], colour_by: str | None = None,
               known_terms: Container[str] = ()) -> list[list[Any]]:
    """One [lat, lon, *fields] row per point, values as text; a colour_by value outside
    known_terms becomes OTHER (so every point has a style)."""
    if not has_features(points):
        return []
    gdf = _points_only(points)
    n = len(gdf)
    columns = [gdf[f].tolist() if f in gdf.columns else [None] * n for f in fields]
    lats, lons = gdf.geometry.y.round(COORD_DECIMALS).tolist(), gdf.geometry.x.round(COORD_DECIMALS).tolist()
    term = list(fields).index(colour_by) if colour_by in fields else None
    rows: list[list[Any]] = []
    for i in range(n):
        values = [text_value(col[i]) for col in columns]
        if term is not None and values[term] not in known_terms:
            values[term] = OTHER
        rows.append([lats[i], lons[i], *values])
    return rows


def bounds(*frames: gpd.GeoDataFrame | None) -> list[list[float]] | None:
    """[[south, west], [north, east]] over all non-empty frames, or None."""
    boxes = [to_wgs84(f).total_bounds for f in frames if has_features(f) and not f.geometry.is_empty.all()]
    boxes = [b for b in boxes if all(math.isfinite(v) for v in b)]
    if not boxes:
        return None
    west = min(b[0] for b in boxes)
    south = min(b[1] for b in boxes)
    east = max(b[2] for b in boxes)
    north = max(b[3] for b in boxes)
    return [[float(south), float(west)], [float(north), float(east)]]


def _column(values: list[str | None]) -> list[str | None] | dict[str, list[Any]] | None:
    """One point attribute for point_columns: None when empty, a dictionary
    encoding ({"values": [...], "codes": [...]}) when few distinct values repeat
    (term, member, dataset, town ...), else the plain list."""
    if all(v is None for v in values):
        return None
    index: dict[str | None, int] = {}
    codes = [index.setdefault(v, len(index)) for v in values]
    if len(index) * 4 <= len(values):
        return {"values": list(index), "codes": codes}
    return values


def point_columns(points: gpd.GeoDataFrame, fields: Sequence[str], colour_by: str | None = None,
                  known_terms: Container[str] = ()) -> dict[str, Any]:
    """The points column by column (compact and fast to parse for 10,000+ points):
    {"n": n, "lat": [...], "lon": [...], "fields": {field: column}} where a column
    is as _column() describes it; row i is the same as point_rows(...)[i]."""
    rows = point_rows(points, fields, colour_by, known_terms)
    n = len(rows)
    out_fields = {f: _column([row[2 + j] for row in rows]) for j, f in enumerate(fields)}
    return {"n": n, "lat": [row[0] for row in rows], "lon": [row[1] for row in rows], "fields": out_fields}


def column_counts(column: list[Any] | dict[str, list[Any]] | None) -> dict[Any, int]:
    """How often each value occurs in a point_columns column."""
    counts: dict[Any, int] = {}
    if column is None:
        return counts
    if isinstance(column, dict):
        values = column["values"]
        for code in column["codes"]:
            counts[values[code]] = counts.get(values[code], 0) + 1
    else:
        for v in column:
            counts[v] = counts.get(v, 0) + 1
    return counts
