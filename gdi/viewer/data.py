"""Turn the GeoDataFrames into the compact JSON the map's script reads.

Why not folium.GeoJson: its tooltips and popups paste property values into
HTML, and every value here comes from an upload.  The map script inserts them
as text instead, so this module only has to deliver plain values — and embed
them in a way that cannot end the surrounding <script> element.
"""
from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

import geopandas as gpd
import pandas as pd

from gdi.viewer.style import OTHER

#: Attributes of a point, in the order of each row after [lat, lon].
POINT_FIELDS = (
    "category", "name", "street", "housenumber", "postcode", "city", "opening_hours",
    "website", "phone", "operator", "ags", "member", "dataset", "updated",
)
BOUNDARY_FIELDS = ("ags", "name", "population", "member", "dataset")
COORD_DECIMALS = 6  # ~0.1 m; more only makes the page bigger


def safe_json(value: Any) -> str:
    """JSON that is safe inside an HTML <script>: no '<', '>', '&' or JS line breaks."""
    return (
        json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        .replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    )


def has_features(gdf: gpd.GeoDataFrame) -> bool:
    """Rows and a geometry column (an empty upload may have neither)."""
    return len(gdf) > 0 and isinstance(gdf, gpd.GeoDataFrame) and gdf._geometry_column_name in gdf.columns


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


def boundaries_geojson(municipalities: gpd.GeoDataFrame, extra: dict[str, list[Any]] | None = None,
                       decimals: int = COORD_DECIMALS) -> dict[str, Any]:
    """A GeoJSON FeatureCollection of the polygons with their plain attributes
    (BOUNDARY_FIELDS that exist, plus the columns named in extra)."""
    features: list[dict[str, Any]] = []
    if not has_features(municipalities):
        return {"type": "FeatureCollection", "features": features}
    gdf = to_wgs84(municipalities)
    for position, (row, geom) in enumerate(zip(gdf.itertuples(index=False), gdf.geometry, strict=True)):
        if geom is None or geom.is_empty:
            continue
        props = {f: plain(getattr(row, f, None)) for f in BOUNDARY_FIELDS}
        props["row"] = position  # the municipality's row in the supply table
        for key, values in (extra or {}).items():
            props[key] = plain(values[position])
        if props["ags"] is not None:
            props["ags"] = str(props["ags"])
        mapping = geom.__geo_interface__
        features.append({
            "type": "Feature",
            "properties": props,
            "geometry": {"type": mapping["type"], "coordinates": _round(mapping["coordinates"], decimals)},
        })
    return {"type": "FeatureCollection", "features": features}


def text_value(value: Any) -> str | None:
    """A point attribute as text; 35037.0 (a postcode read as float) -> "35037"."""
    value = plain(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return None if value is None else str(value)


def point_rows(points: gpd.GeoDataFrame, known_categories: set[str]) -> list[list[Any]]:
    """One [lat, lon, *POINT_FIELDS] row per point; unknown categories become OTHER."""
    if not has_features(points):
        return []
    gdf = to_wgs84(points)
    gdf = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty & (gdf.geometry.geom_type == "Point")]
    n = len(gdf)
    columns = [gdf[f].tolist() if f in gdf.columns else [None] * n for f in POINT_FIELDS]
    lats, lons = gdf.geometry.y.round(COORD_DECIMALS).tolist(), gdf.geometry.x.round(COORD_DECIMALS).tolist()
    rows: list[list[Any]] = []
    for i in range(n):
        values = [text_value(col[i]) for col in columns]
        if values[0] not in known_categories:
            values[0] = OTHER
        rows.append([lats[i], lons[i], *values])
    return rows


def bounds(*frames: gpd.GeoDataFrame) -> list[list[float]] | None:
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
    (category, member, dataset, city...), else the plain list."""
    if all(v is None for v in values):
        return None
    index: dict[str | None, int] = {}
    codes = [index.setdefault(v, len(index)) for v in values]
    if len(index) * 4 <= len(values):
        return {"values": list(index), "codes": codes}
    return values


def point_columns(points: gpd.GeoDataFrame, known_categories: set[str]) -> dict[str, Any]:
    """The points column by column (compact and fast to parse for 10,000+ points):
    {"n": n, "lat": [...], "lon": [...], "fields": {field: column}} where a column
    is as _column() describes it; row i is the same as point_rows(...)[i]."""
    rows = point_rows(points, known_categories)
    n = len(rows)
    fields = {f: _column([row[2 + j] for row in rows]) for j, f in enumerate(POINT_FIELDS)}
    return {"n": n, "lat": [row[0] for row in rows], "lon": [row[1] for row in rows], "fields": fields}
