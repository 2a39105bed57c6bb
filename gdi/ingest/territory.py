"""Where a member may publish: the municipalities whose AGS starts with its key."""
from __future__ import annotations

import re

import geopandas as gpd
import numpy as np
import shapely

MEMBER_KEY = re.compile(r"^(\d{5}|\d{8})$")


def check_member_key(member: str) -> str:
    member = str(member).strip()
    if not MEMBER_KEY.fullmatch(member):
        raise ValueError(
            f"member key '{member}' is malformed: give the 8-digit AGS of a municipality "
            "(e.g. 06534014) or the 5-digit key of the county (e.g. 06534)")
    return member


def territory(municipalities: gpd.GeoDataFrame, member: str):
    """The union of the member's municipalities, or None when none are known."""
    mine = municipalities[municipalities["ags"].astype(str).str.startswith(member)]
    if mine.empty:
        return None
    return shapely.union_all(mine.geometry.values)


def inside(geoms: np.ndarray, area, tolerance: float) -> np.ndarray:
    """Boolean per geometry: within ``tolerance`` metres of the area."""
    shapely.prepare(area)
    ok = shapely.intersects(area, geoms)
    if tolerance > 0 and not ok.all():
        far = ~ok
        ok[far] = shapely.dwithin(area, geoms[far], tolerance)
    return ok


def assign_ags(geoms: np.ndarray, municipalities: gpd.GeoDataFrame, tolerance: float) -> list[str | None]:
    """The AGS of the municipality each geometry lies in (nearest within tolerance at borders).

    One prepared polygon at a time against the points inside its bounding box
    (``intersects_xy``): an order of magnitude faster than a tree query whose
    predicate tests unprepared municipality polygons point by point.
    """
    if municipalities.empty or len(geoms) == 0:
        return [None] * len(geoms)
    is_point = shapely.get_type_id(geoms) == 0
    points = geoms if is_point.all() else np.where(is_point, geoms, shapely.point_on_surface(geoms))
    xy = shapely.get_coordinates(points)
    present = ~shapely.is_empty(points) & ~shapely.is_missing(points)
    x = np.full(len(points), np.nan)
    y = np.full(len(points), np.nan)
    x[present], y[present] = xy[:, 0], xy[:, 1]
    ags = municipalities["ags"].astype(str).to_numpy()
    out = np.full(len(points), None, dtype=object)
    for polygon, key in zip(municipalities.geometry.values, ags):
        if polygon is None or polygon.is_empty:
            continue
        minx, miny, maxx, maxy = polygon.bounds
        candidates = np.nonzero((x >= minx) & (x <= maxx) & (y >= miny) & (y <= maxy) & np.equal(out, None))[0]
        if len(candidates):
            shapely.prepare(polygon)
            out[candidates[shapely.intersects_xy(polygon, x[candidates], y[candidates])]] = key
    missing = np.nonzero(np.equal(out, None) & present)[0]
    if len(missing):
        tree = shapely.STRtree(municipalities.geometry.values)
        near_p, near_m = tree.query_nearest(points[missing], max_distance=tolerance, all_matches=False)
        out[missing[near_p]] = ags[near_m]
    return out.tolist()
