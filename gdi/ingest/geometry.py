"""Geometry checks and repairs, keeping the collection's geometry type."""
from __future__ import annotations

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Point, Polygon
from shapely.geometry.base import BaseGeometry

from gdi.messages import Text, t

POLYGONAL = {"Polygon", "MultiPolygon"}


def _polygons(geom: BaseGeometry) -> list[Polygon]:
    if geom.geom_type == "Polygon":
        return [geom]
    if geom.geom_type in {"MultiPolygon", "GeometryCollection"}:
        return [p for g in geom.geoms for p in _polygons(g)]
    return []


def conform(geom: BaseGeometry | None, target: str) -> tuple[BaseGeometry | None, Text | None, Text | None]:
    """(geometry, repair note, rejection reason) for one feature.

    Z and M are dropped; invalid polygons are repaired with make_valid and
    reduced to their polygonal parts; single parts are promoted to Multi*.
    """
    if geom is None:
        return None, None, t("keine Geometrie", "no geometry")
    if geom.is_empty:
        return None, None, t("leere Geometrie", "empty geometry")
    geom = shapely.force_2d(geom)
    coords = shapely.get_coordinates(geom)
    if not np.isfinite(coords).all():
        return None, None, t("eine Koordinate ist keine Zahl (NaN, Infinity oder jenseits von ±1,8e308)",
                             "a coordinate is not a number (NaN, Infinity or beyond ±1.8e308)")
    note = None
    if target in {"Point"}:
        if geom.geom_type == "MultiPoint" and len(geom.geoms) == 1:
            geom = geom.geoms[0]
        if geom.geom_type != "Point":
            if geom.geom_type in POLYGONAL or geom.geom_type in {"LineString", "MultiLineString"}:
                rp = geom.representative_point()
                return rp, t(f"{geom.geom_type} auf einen Punkt darin reduziert",
                             f"{geom.geom_type} reduced to a point inside it"), None
            return None, None, t(f"{geom.geom_type}, wo ein Punkt erwartet wird",
                                 f"{geom.geom_type} where a point is expected")
        return geom, None, None
    if target in POLYGONAL:
        if geom.geom_type not in POLYGONAL and geom.geom_type != "GeometryCollection":
            return None, None, t(f"{geom.geom_type}, wo ein Polygon erwartet wird",
                                 f"{geom.geom_type} where a polygon is expected")
        if not geom.is_valid:
            why = shapely.is_valid_reason(geom)
            geom = shapely.make_valid(geom)
            note = t(f"ungültige Geometrie repariert ({why})", f"invalid geometry repaired ({why})")
        parts = [p for p in _polygons(geom) if not p.is_empty and p.area > 0]
        if not parts:
            return None, None, t("die Geometrie hat keine Fläche", "geometry has no area")
        if target == "MultiPolygon":
            geom = MultiPolygon(parts)
        elif len(parts) == 1:
            geom = parts[0]
        else:
            return None, None, t("mehrere Polygone, wo eines erwartet wird", "several polygons where one is expected")
        return geom, note, None
    # Lines and other types: validity repair only.
    if not geom.is_valid:
        geom = shapely.make_valid(geom)
        note = t("ungültige Geometrie repariert", "invalid geometry repaired")
    return geom, note, None


def is_point_like(geom: BaseGeometry) -> bool:
    return isinstance(geom, Point)


def conform_many(geoms: np.ndarray, target: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """conform() for an array: (geometries, repair notes, rejection reasons), object arrays.

    The common cases are decided with shapely's array functions — points that
    are points, valid polygons that already have the target type — and only
    the rest (missing, empty, non-finite, other types, invalid) go through
    conform() one by one, so the results are identical.
    """
    geoms = np.asarray(geoms, dtype=object)
    n = len(geoms)
    fixed = np.full(n, None, dtype=object)
    notes = np.full(n, None, dtype=object)
    reasons = np.full(n, None, dtype=object)
    if n == 0:
        return fixed, notes, reasons
    type_ids = shapely.get_type_id(geoms)          # -1 for None
    present = type_ids >= 0
    empty = np.zeros(n, dtype=bool)
    empty[present] = shapely.is_empty(geoms[present])
    flat = np.zeros(n, dtype=bool)
    flat[present] = ~shapely.has_z(geoms[present])
    if hasattr(shapely, "has_m"):
        flat[present] &= ~shapely.has_m(geoms[present])
    coords, index = shapely.get_coordinates(geoms[present & ~empty], return_index=True)
    finite = np.ones(n, dtype=bool)
    if len(coords):
        bad_rows = np.unique(index[~np.isfinite(coords).all(axis=1)])
        finite[np.nonzero(present & ~empty)[0][bad_rows]] = False
    ok = present & ~empty & finite
    fast = np.zeros(n, dtype=bool)
    if target == "Point":
        fast = ok & (type_ids == 0)
    elif target in POLYGONAL:
        want = 3 if target == "Polygon" else 6
        cand = ok & (type_ids == want)
        if cand.any():
            idx = np.nonzero(cand)[0]
            good = shapely.is_valid(geoms[idx])
            parts, part_index = shapely.get_parts(geoms[idx], return_index=True)
            small = np.zeros(len(idx), dtype=bool)
            if len(parts):
                zero = shapely.is_empty(parts) | ~(shapely.area(parts) > 0)
                small[np.unique(part_index[zero])] = True
            fast[idx[good & ~small]] = True
    # force_2d only where there is a Z (or M) to drop; otherwise the geometry itself is kept
    keep_as_is = fast & flat
    fixed[keep_as_is] = geoms[keep_as_is]
    drop_z = fast & ~flat
    if drop_z.any():
        fixed[drop_z] = shapely.force_2d(geoms[drop_z])
    for i in np.nonzero(~fast)[0].tolist():
        fixed[i], notes[i], reasons[i] = conform(geoms[i], target)
    return fixed, notes, reasons
