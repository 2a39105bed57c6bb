"""The supply picture: pure functions over municipalities and supply points.

Everything is computed in EPSG:25832 (metres) with shapely:

* points per municipality and category (a point counts for the municipality
  whose polygon contains or touches it; each point counts once),
* points per 1,000 inhabitants (population from the boundary data),
* the reach of the food supply: the union of the buffers around every food
  point at 1, 3 and 5 km, clipped to each municipality, the share of each
  municipality's area within each distance, and the areas beyond the last one.

No function here reads files or knows about the map; build.py turns the results
into GeoJSON and table rows.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

ANALYSIS_CRS = 25832
RADII_M: tuple[int, ...] = (1000, 3000, 5000)
QUAD_SEGS = 8  # buffer circles with 32 segments: area error < 0.7 %, fast unions


def food_categories(collections: Mapping[str, Any]) -> list[str]:
    """Category ids marked `food: true` in the supply_points collection, in YAML order."""
    from gdi.viewer.style import POINTS_COLLECTION, as_dict

    if POINTS_COLLECTION not in collections:
        return []
    cats = as_dict(collections[POINTS_COLLECTION]).get("categories") or {}
    return [str(cid) for cid, spec in cats.items() if (spec or {}).get("food") is True]


def to_metric(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """gdf in EPSG:25832 (frames without CRS are taken as lon/lat), without empty geometries."""
    if len(gdf) == 0 or gdf._geometry_column_name not in gdf.columns:
        return gpd.GeoDataFrame({"ags": pd.Series(dtype=object)}, geometry=gpd.GeoSeries([], crs=ANALYSIS_CRS))
    if gdf.crs is None:
        gdf = gdf.set_crs(4326)
    if gdf.crs.to_epsg() != ANALYSIS_CRS:
        gdf = gdf.to_crs(ANALYSIS_CRS)
    return gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty].copy()


def assign_municipality(municipalities: gpd.GeoDataFrame, points: gpd.GeoDataFrame) -> np.ndarray:
    """For each point the positional index of the first municipality that
    intersects it, or -1 (outside all of them).  Both frames in one CRS."""
    result = np.full(len(points), -1, dtype=np.int64)
    if len(points) == 0 or len(municipalities) == 0:
        return result
    tree = shapely.STRtree(np.asarray(municipalities.geometry.values))
    pt_idx, mun_idx = tree.query(np.asarray(points.geometry.values), predicate="intersects")
    # first hit per point (query output is sorted by point index)
    order = np.lexsort((mun_idx, pt_idx))
    pt_idx, mun_idx = pt_idx[order], mun_idx[order]
    first = np.unique(pt_idx, return_index=True)[1]
    result[pt_idx[first]] = mun_idx[first]
    return result


def counts_by_municipality(municipalities: gpd.GeoDataFrame, points: gpd.GeoDataFrame,
                           categories: Sequence[str]) -> pd.DataFrame:
    """Points per municipality (rows, in the order of municipalities) and category
    (columns, in the given order, plus 'total'); integers, zero where none."""
    mun = municipalities.reset_index(drop=True)
    table = pd.DataFrame(0, index=pd.RangeIndex(len(mun)), columns=[*categories, "total"], dtype=np.int64)
    if len(points):
        pts = points.reset_index(drop=True)
        where = assign_municipality(mun, pts)
        cats = pts["category"].astype(object).to_numpy() if "category" in pts.columns else np.full(len(pts), None)
        for i, cat in zip(where, cats, strict=True):
            if i < 0:
                continue
            if cat in table.columns and cat != "total":
                table.at[i, cat] += 1
            table.at[i, "total"] += 1
    return table


def per_thousand(count: float, population: Any) -> float | None:
    """count per 1,000 inhabitants; None without a positive population."""
    try:
        pop = float(population)
    except (TypeError, ValueError):
        return None
    if not np.isfinite(pop) or pop <= 0:
        return None
    return 1000.0 * float(count) / pop


def reach(points: gpd.GeoDataFrame | Iterable[BaseGeometry], radius_m: float) -> BaseGeometry:
    """The union of the radius_m buffers around all points (metric CRS)."""
    geoms = np.asarray(points.geometry.values if isinstance(points, gpd.GeoDataFrame) else list(points))
    if len(geoms) == 0:
        return shapely.Polygon()
    # Points at the same place draw the same circle: drop the repeats first.
    coords = np.unique(shapely.get_coordinates(geoms), axis=0)
    return shapely.union_all(shapely.buffer(shapely.points(coords), radius_m, quad_segs=QUAD_SEGS))


@dataclass(frozen=True)
class Coverage:
    """The reach of the food supply in one region."""

    radii: tuple[int, ...]
    shares: pd.DataFrame            # rows = municipalities, columns = radii, values in [0, 1]
    bands: gpd.GeoDataFrame         # municipality x band (0-1, 1-3, 3-5 km, beyond) polygons
    reaches: dict[int, BaseGeometry]


def coverage(municipalities: gpd.GeoDataFrame, food_points: gpd.GeoDataFrame,
             radii: Sequence[int] = RADII_M) -> Coverage:
    """Share of each municipality within each distance of a food point, and the
    distance bands clipped to each municipality (metric CRS for both inputs).

    bands has one row per municipality and band that is not empty: columns
    position (row of municipalities), ags, band (index: 0 = within radii[0],
    i = between radii[i-1] and radii[i], len(radii) = beyond the last), geometry.
    """
    radii = tuple(sorted(int(r) for r in radii))
    mun = municipalities.reset_index(drop=True)
    geoms = np.asarray(mun.geometry.values)
    areas = shapely.area(geoms)
    # GEOS releases the GIL: the three unions run side by side.
    with ThreadPoolExecutor(max_workers=max(1, len(radii))) as pool:
        reaches = dict(zip(radii, pool.map(lambda r: reach(food_points, r), radii), strict=True))
    shares = pd.DataFrame(index=pd.RangeIndex(len(mun)), columns=list(radii), dtype=float)
    band_rows: list[dict[str, Any]] = []
    previous: BaseGeometry | None = None
    inside_prev = np.array([shapely.Polygon()] * len(mun), dtype=object)
    for band, r in enumerate(radii):
        inside = shapely.intersection(geoms, reaches[r]) if not reaches[r].is_empty else \
            np.array([shapely.Polygon()] * len(mun), dtype=object)
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(areas > 0, shapely.area(inside) / areas, np.nan)
        shares[r] = np.clip(share, 0.0, 1.0)
        ring = inside if previous is None else shapely.difference(inside, inside_prev)
        band_rows += _band_rows(mun, ring, band)
        previous, inside_prev = reaches[r], inside
    beyond = shapely.difference(geoms, inside_prev) if radii else geoms
    band_rows += _band_rows(mun, beyond, len(radii))
    bands = gpd.GeoDataFrame(band_rows, columns=["position", "ags", "band", "area_m2", "geometry"],
                             geometry="geometry", crs=mun.crs)
    return Coverage(radii, shares, bands, reaches)


def _band_rows(mun: gpd.GeoDataFrame, parts: np.ndarray, band: int) -> list[dict[str, Any]]:
    rows = []
    ags = mun["ags"].tolist() if "ags" in mun.columns else [None] * len(mun)
    for i, geom in enumerate(parts):
        geom = _polygonal(geom)
        if geom is not None:
            rows.append({"position": i, "ags": ags[i], "band": band, "area_m2": float(geom.area), "geometry": geom})
    return rows


def _polygonal(geom: BaseGeometry | None) -> BaseGeometry | None:
    """Only the polygons of geom (intersections may add slivers of lines/points); None if no area."""
    if geom is None or geom.is_empty:
        return None
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom if geom.area > 1.0 else None
    polys = [g for g in shapely.get_parts(geom) if g.geom_type in ("Polygon", "MultiPolygon")]
    if not polys:
        return None
    out = shapely.union_all(polys)
    return out if out.area > 1.0 else None


def county_outlines(municipalities: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """One polygon per county: the union of its municipalities (first 5 digits of the AGS)."""
    mun = municipalities[municipalities["ags"].notna()] if "ags" in municipalities.columns else municipalities.iloc[0:0]
    if len(mun) == 0:
        return gpd.GeoDataFrame({"kreis": pd.Series(dtype=object)}, geometry=gpd.GeoSeries([], crs=municipalities.crs))
    keys = mun["ags"].astype(str).str[:5]
    rows = [{"kreis": key, "geometry": shapely.union_all(np.asarray(group.geometry.values))}
            for key, group in mun.groupby(keys, sort=True)]
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=municipalities.crs)


@dataclass(frozen=True)
class SupplyPicture:
    """Everything the map shows about supply, per municipality (rows in input order)."""

    municipalities: gpd.GeoDataFrame   # metric CRS, reset index
    counts: pd.DataFrame               # categories + total
    rate: list[float | None]           # all points per 1,000 inhabitants
    coverage: Coverage
    counties: gpd.GeoDataFrame
    food: list[str]
    unassigned: int                    # points outside every municipality


def supply_picture(municipalities: gpd.GeoDataFrame, points: gpd.GeoDataFrame, categories: Sequence[str],
                   food: Sequence[str], radii: Sequence[int] = RADII_M) -> SupplyPicture:
    """All analyses at once; inputs in any CRS."""
    mun = to_metric(municipalities).reset_index(drop=True)
    pts = to_metric(points).reset_index(drop=True)
    if len(pts) and "category" in pts.columns:
        pts = pts[pts.geometry.geom_type == "Point"].reset_index(drop=True)
    counts = counts_by_municipality(mun, pts, categories)
    population = mun["population"].tolist() if "population" in mun.columns else [None] * len(mun)
    rate = [per_thousand(c, p) for c, p in zip(counts["total"], population, strict=True)]
    food_pts = pts[pts["category"].isin(list(food))] if len(pts) and "category" in pts.columns else pts.iloc[0:0]
    cov = coverage(mun, food_pts, radii)
    unassigned = int(len(pts) - counts["total"].sum())
    return SupplyPicture(mun, counts, rate, cov, county_outlines(mun), list(food), unassigned)
