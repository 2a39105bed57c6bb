"""Where a member may publish, and which territory keys a feature gets.

The territory collection (``role: territory`` in its definition) holds the
boundaries the county published; a member's territory is the union of the
features whose key starts with the member's key (an 8-digit AGS names one
municipality, a 5-digit key a whole county). Everything here works on the
published boundaries, never on what the uploader claims.
"""
from __future__ import annotations

import re

import geopandas as gpd
import numpy as np
import shapely

from gdi.messages import t

MEMBER_KEY = re.compile(r"^(\d{5}|\d{8})$")
KEY_SEPARATOR = ","     # a line or polygon touching several territory features gets all their keys


def check_member_key(member: str) -> str:
    member = str(member).strip()
    if not MEMBER_KEY.fullmatch(member):
        raise ValueError(t(
            f"der Mitgliedsschlüssel ‚{member}‘ ist fehlerhaft: geben Sie den achtstelligen AGS einer Gemeinde "
            "(z. B. 06534014) oder den fünfstelligen Schlüssel des Kreises (z. B. 06534) an",
            f"member key '{member}' is malformed: give the 8-digit AGS of a municipality "
            "(e.g. 06534014) or the 5-digit key of the county (e.g. 06534)"))
    return member


def member_features(boundaries: gpd.GeoDataFrame, key: str, member: str) -> gpd.GeoDataFrame:
    """The published territory features that belong to member."""
    return boundaries[boundaries[key].astype(str).str.startswith(member)]


def territory(boundaries: gpd.GeoDataFrame, key: str, member: str):
    """The union of the member's territory features, or None when none are published."""
    mine = member_features(boundaries, key, member)
    if mine.empty:
        return None
    return shapely.union_all(mine.geometry.values)


def inside(geoms: np.ndarray, area, tolerance: float) -> np.ndarray:
    """Boolean per geometry: points within ``tolerance`` metres of the area, lines and polygons
    entirely inside the area grown by ``tolerance`` (a route may not leave the member's territory)."""
    ok = np.zeros(len(geoms), dtype=bool)
    if len(geoms) == 0:
        return ok
    is_point = shapely.get_type_id(geoms) == 0
    if is_point.any():
        shapely.prepare(area)
        pts = geoms[is_point]
        hit = shapely.intersects(area, pts)
        if tolerance > 0 and not hit.all():
            far = ~hit
            hit[far] = shapely.dwithin(area, pts[far], tolerance)
        ok[is_point] = hit
    if (~is_point).any():
        grown = shapely.buffer(area, tolerance) if tolerance > 0 else area
        shapely.prepare(grown)
        ok[~is_point] = shapely.covers(grown, geoms[~is_point])
    return ok


def assign_keys(geoms: np.ndarray, boundaries: gpd.GeoDataFrame, key: str, tolerance: float) -> list[str | None]:
    """The territory key(s) of each geometry: for a point the feature it lies in (the nearest within
    tolerance at borders); for a line or polygon every feature it touches, sorted and joined by ','."""
    out: list[str | None] = [None] * len(geoms)
    if boundaries.empty or len(geoms) == 0:
        return out
    is_point = shapely.get_type_id(geoms) == 0
    if is_point.any():
        idx = np.nonzero(is_point)[0]
        for i, k in zip(idx.tolist(), _point_keys(geoms[idx], boundaries, key, tolerance)):
            out[i] = k
    if (~is_point).any():
        idx = np.nonzero(~is_point)[0]
        keys = boundaries[key].astype(str).to_numpy()
        tree = shapely.STRtree(boundaries.geometry.values)
        g_idx, b_idx = tree.query(geoms[idx], predicate="intersects")
        found: dict[int, set[str]] = {}
        for g, b in zip(g_idx.tolist(), b_idx.tolist()):
            found.setdefault(g, set()).add(str(keys[b]))
        for j, i in enumerate(idx.tolist()):
            if j in found:
                out[i] = KEY_SEPARATOR.join(sorted(found[j]))
    return out


def _point_keys(points: np.ndarray, boundaries: gpd.GeoDataFrame, key: str, tolerance: float) -> list[str | None]:
    """One prepared polygon at a time against the points inside its bounding box
    (``intersects_xy``): an order of magnitude faster than a tree query whose
    predicate tests unprepared polygons point by point.
    """
    xy = shapely.get_coordinates(points)
    present = ~shapely.is_empty(points) & ~shapely.is_missing(points)
    x = np.full(len(points), np.nan)
    y = np.full(len(points), np.nan)
    x[present], y[present] = xy[:, 0], xy[:, 1]
    keys = boundaries[key].astype(str).to_numpy()
    out = np.full(len(points), None, dtype=object)
    for polygon, k in zip(boundaries.geometry.values, keys):
        if polygon is None or polygon.is_empty:
            continue
        minx, miny, maxx, maxy = polygon.bounds
        candidates = np.nonzero((x >= minx) & (x <= maxx) & (y >= miny) & (y <= maxy) & np.equal(out, None))[0]
        if len(candidates):
            shapely.prepare(polygon)
            out[candidates[shapely.intersects_xy(polygon, x[candidates], y[candidates])]] = k
    missing = np.nonzero(np.equal(out, None) & present)[0]
    if len(missing):
        tree = shapely.STRtree(boundaries.geometry.values)
        near_p, near_m = tree.query_nearest(points[missing], max_distance=tolerance, all_matches=False)
        out[missing[near_p]] = keys[near_m]
    return out.tolist()


def split_keys(value: object) -> list[str]:
    """The keys a stored territory_key value names."""
    return [k for k in str(value).split(KEY_SEPARATOR) if k] if value not in (None, "") else []
