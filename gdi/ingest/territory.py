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
    """The AGS of the municipality each geometry lies in (nearest within tolerance at borders)."""
    if municipalities.empty or len(geoms) == 0:
        return [None] * len(geoms)
    points = shapely.point_on_surface(geoms)
    tree = shapely.STRtree(municipalities.geometry.values)
    ags = municipalities["ags"].astype(str).to_numpy()
    out: list[str | None] = [None] * len(points)
    pidx, midx = tree.query(points, predicate="intersects")
    for p, m in zip(pidx, midx):
        if out[p] is None:
            out[p] = ags[m]
    missing = [i for i, v in enumerate(out) if v is None]
    if missing:
        near_p, near_m = tree.query_nearest(points[missing], max_distance=tolerance, all_matches=False)
        for p, m in zip(near_p, near_m):
            out[missing[p]] = ags[m]
    return out
