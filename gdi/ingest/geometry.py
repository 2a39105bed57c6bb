"""Geometry checks and repairs, keeping the collection's geometry type."""
from __future__ import annotations

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Point, Polygon
from shapely.geometry.base import BaseGeometry

POLYGONAL = {"Polygon", "MultiPolygon"}


def _polygons(geom: BaseGeometry) -> list[Polygon]:
    if geom.geom_type == "Polygon":
        return [geom]
    if geom.geom_type in {"MultiPolygon", "GeometryCollection"}:
        return [p for g in geom.geoms for p in _polygons(g)]
    return []


def conform(geom: BaseGeometry | None, target: str) -> tuple[BaseGeometry | None, str | None, str | None]:
    """(geometry, repair note, rejection reason) for one feature.

    Z and M are dropped; invalid polygons are repaired with make_valid and
    reduced to their polygonal parts; single parts are promoted to Multi*.
    """
    if geom is None:
        return None, None, "no geometry"
    if geom.is_empty:
        return None, None, "empty geometry"
    geom = shapely.force_2d(geom)
    coords = shapely.get_coordinates(geom)
    if not np.isfinite(coords).all():
        return None, None, "geometry has non-numeric coordinates"
    note = None
    if target in {"Point"}:
        if geom.geom_type == "MultiPoint" and len(geom.geoms) == 1:
            geom = geom.geoms[0]
        if geom.geom_type != "Point":
            if geom.geom_type in POLYGONAL or geom.geom_type in {"LineString", "MultiLineString"}:
                rp = geom.representative_point()
                return rp, f"{geom.geom_type} reduced to a point inside it", None
            return None, None, f"{geom.geom_type} where a point is expected"
        return geom, None, None
    if target in POLYGONAL:
        if geom.geom_type not in POLYGONAL and geom.geom_type != "GeometryCollection":
            return None, None, f"{geom.geom_type} where a polygon is expected"
        if not geom.is_valid:
            why = shapely.is_valid_reason(geom)
            geom = shapely.make_valid(geom)
            note = f"invalid geometry repaired ({why})"
        parts = [p for p in _polygons(geom) if not p.is_empty and p.area > 0]
        if not parts:
            return None, None, "geometry has no area"
        if target == "MultiPolygon":
            geom = MultiPolygon(parts)
        elif len(parts) == 1:
            geom = parts[0]
        else:
            return None, None, "several polygons where one is expected"
        return geom, note, None
    # Lines and other types: validity repair only.
    if not geom.is_valid:
        geom = shapely.make_valid(geom)
        note = "invalid geometry repaired"
    return geom, note, None


def is_point_like(geom: BaseGeometry) -> bool:
    return isinstance(geom, Point)
