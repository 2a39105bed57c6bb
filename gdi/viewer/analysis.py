"""The supply picture: pure functions over the territory and the supply points.

Everything is computed in EPSG:25832 (metres) with shapely:

* points per territory feature (municipality) and term (a point counts for the
  feature whose polygon contains or touches it; each point counts once),
* points per 1,000 inhabitants (when the territory declares its population),
* the reach of the food supply: the union of the buffers around every food
  point at each declared distance, clipped to each feature, the share of each
  feature's area within each distance, and the areas beyond the last one.

No function here reads files, knows about the map or names a collection's
field: the callers pass the column names the definitions declare
(gdi/viewer/supply.py does, from `role: territory` and `analysis: supply`).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely
from shapely.geometry.base import BaseGeometry

from gdi.collections import Collection, supply_collection

ANALYSIS_CRS = 25832
QUAD_SEGS = 8  # buffer circles with 32 segments: area error < 0.7 %, fast unions
COUNTY_KEY_LENGTH = 5  # a county's key is the first 5 characters of its municipalities' keys (AGS, ARS)


def food_categories(collections: Mapping[str, Collection]) -> list[str]:
    """The terms the supply analysis counts as food (analysis.supply.food), in YAML order."""
    coll = supply_collection(collections)
    return list(coll.supply.food) if coll is not None and coll.supply is not None else []


def to_metric(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """gdf in EPSG:25832 (frames without CRS are taken as lon/lat), without empty geometries."""
    if len(gdf) == 0 or gdf._geometry_column_name not in gdf.columns:
        return gpd.GeoDataFrame(geometry=gpd.GeoSeries([], crs=ANALYSIS_CRS))
    if gdf.crs is None:
        gdf = gdf.set_crs(4326)
    if gdf.crs.to_epsg() != ANALYSIS_CRS:
        gdf = gdf.to_crs(ANALYSIS_CRS)
    return gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty].copy()


@dataclass(frozen=True)
class PointSet:
    """Points as coordinates and one field's values, without a shapely object per point.

    Why: the analysis needs positions and terms only, and a million shapely points alone take
    350 MB (gdi/publish/map_build.py reads a tiled collection into this, in batches)."""

    xy: np.ndarray                  # (n, 2) float, in crs
    values: np.ndarray              # (n,) object: the analysed field's value per point
    crs: Any = ANALYSIS_CRS

    def __len__(self) -> int:
        return len(self.xy)


def point_set(points: gpd.GeoDataFrame | PointSet, field: str) -> PointSet:
    """points in EPSG:25832, points only (other geometries dropped), with field's values
    (None where the column is missing)."""
    if isinstance(points, PointSet):
        if points.crs is None or pyproj.CRS.from_user_input(points.crs).to_epsg() != ANALYSIS_CRS:
            source = 4326 if points.crs is None else points.crs
            t = pyproj.Transformer.from_crs(source, ANALYSIS_CRS, always_xy=True)
            x, y = t.transform(points.xy[:, 0], points.xy[:, 1])
            return PointSet(np.column_stack([x, y]), points.values)
        return points
    gdf = to_metric(points).reset_index(drop=True)
    if len(gdf):
        gdf = gdf[shapely.get_type_id(np.asarray(gdf.geometry.values)) == shapely.GeometryType.POINT]
    values = gdf[field].astype(object).to_numpy() if field in gdf.columns else np.full(len(gdf), None, dtype=object)
    xy = shapely.get_coordinates(np.asarray(gdf.geometry.values)) if len(gdf) else np.empty((0, 2))
    return PointSet(xy, values)


def assign_xy(territory: gpd.GeoDataFrame, xy: np.ndarray) -> np.ndarray:
    """For each point (coordinates, the territory's CRS) the positional index of the first
    territory feature it lies in or on, or -1: per feature a box test, then shapely.intersects_xy
    on what is in the box (no shapely object per point)."""
    result = np.full(len(xy), -1, dtype=np.int64)
    for i, geom in enumerate(np.asarray(territory.geometry.values)):
        if geom is None or geom.is_empty or not len(xy):
            continue
        x0, y0, x1, y1 = geom.bounds
        todo = np.flatnonzero((result < 0) & (xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1))
        if len(todo):
            shapely.prepare(geom)
            hit = shapely.intersects_xy(geom, xy[todo, 0], xy[todo, 1])
            result[todo[hit]] = i
    return result


def assign_territory(territory: gpd.GeoDataFrame, points: gpd.GeoDataFrame) -> np.ndarray:
    """For each point the positional index of the first territory feature that
    intersects it, or -1 (outside all of them).  Both frames in one CRS."""
    result = np.full(len(points), -1, dtype=np.int64)
    if len(points) == 0 or len(territory) == 0:
        return result
    tree = shapely.STRtree(np.asarray(territory.geometry.values))
    pt_idx, ter_idx = tree.query(np.asarray(points.geometry.values), predicate="intersects")
    # first hit per point (query output is sorted by point index)
    order = np.lexsort((ter_idx, pt_idx))
    pt_idx, ter_idx = pt_idx[order], ter_idx[order]
    first = np.unique(pt_idx, return_index=True)[1]
    result[pt_idx[first]] = ter_idx[first]
    return result


def counts_by_territory(territory: gpd.GeoDataFrame, points: gpd.GeoDataFrame | PointSet, field: str,
                        terms: Sequence[str]) -> pd.DataFrame:
    """Points per territory feature (rows, in the order of territory) and value of
    points[field] (columns: terms in the given order, plus 'total'); integers, zero
    where none.  Points whose value is not among terms count in 'total' only.
    Both in one CRS (a PointSet: EPSG:25832, like to_metric(territory))."""
    ter = territory.reset_index(drop=True)
    if isinstance(points, PointSet):
        return counts_xy(ter, points.xy, points.values, terms)
    pts = points.reset_index(drop=True)
    if not len(pts):
        return counts_xy(ter, np.empty((0, 2)), np.empty(0, dtype=object), terms)
    values = pts[field].astype(object).to_numpy() if field in pts.columns else np.full(len(pts), None, dtype=object)
    return counts_from(assign_territory(ter, pts), values, len(ter), terms)


def counts_xy(territory: gpd.GeoDataFrame, xy: np.ndarray, values: np.ndarray, terms: Sequence[str]) -> pd.DataFrame:
    """counts_by_territory for points given as coordinates (assign_xy) and their values."""
    return counts_from(assign_xy(territory, xy), values, len(territory), terms)


def counts_from(where: np.ndarray, values: np.ndarray, n: int, terms: Sequence[str]) -> pd.DataFrame:
    """The counts table from each point's territory row (-1: none) and value.

    Counted with numpy (np.add.at over term codes): a million points take a second,
    not the minutes a loop over them took."""
    columns = [*terms, "total"]
    counts = np.zeros((n, len(columns)), dtype=np.int64)
    inside = where >= 0
    np.add.at(counts[:, -1], where[inside], 1)
    known = list(dict.fromkeys(t for t in terms if t != "total"))
    if len(values) and known:
        codes = pd.Categorical(values, categories=known).codes
        hit = inside & (codes >= 0)
        column_of = np.array([columns.index(t) for t in known], dtype=np.int64)
        np.add.at(counts, (where[hit], column_of[codes[hit]]), 1)
    return pd.DataFrame(counts, index=pd.RangeIndex(n), columns=columns)


def per_thousand(count: float, population: Any) -> float | None:
    """count per 1,000 inhabitants; None without a positive population."""
    try:
        pop = float(population)
    except (TypeError, ValueError):
        return None
    if not np.isfinite(pop) or pop <= 0:
        return None
    return 1000.0 * float(count) / pop


#: Above this many distinct points the reach is built from the grid (reach_many): same area, in seconds.
REACH_DIRECT_POINTS = 20_000
#: reach_many's cell sizes to try, as fractions of the radius (each below 1/sqrt(2): a cell must lie
#: within the radius of any point in it).  Small cells: few points near an edge; large: few cells.
REACH_CELLS = (1 / 8, 1 / 4, 1 / 2)


def reach(points: gpd.GeoDataFrame | PointSet | np.ndarray | Iterable[BaseGeometry], radius_m: float) -> BaseGeometry:
    """The union of the radius_m buffers around all points (metric CRS; an array: (n, 2) coordinates)."""
    if isinstance(points, PointSet):
        points = points.xy
    if isinstance(points, np.ndarray) and points.dtype.kind == "f":
        coords = points.reshape(-1, 2)
    else:
        geoms = np.asarray(points.geometry.values if isinstance(points, gpd.GeoDataFrame) else list(points))
        coords = shapely.get_coordinates(geoms) if len(geoms) else np.empty((0, 2))
    if len(coords) == 0:
        return shapely.Polygon()
    # Points at the same place draw the same circle: drop the repeats first.
    coords = np.unique(coords, axis=0)
    if len(coords) > REACH_DIRECT_POINTS:
        return reach_many(coords, radius_m)
    return shapely.union_all(shapely.buffer(shapely.points(coords), radius_m, quad_segs=QUAD_SEGS))


def reach_many(coords: np.ndarray, radius_m: float) -> BaseGeometry:
    """The union of the radius_m circles around many points, without a circle per point.

    Why it is the same set: put the points on a grid of cells of side c (< radius/sqrt(2)).
    A point's cell lies within c*sqrt(2) of it, so the circle of radius - c*sqrt(2) around any
    cell holding a point lies in that point's circle: the reach contains U + (radius - c*sqrt(2)),
    U the union of the occupied cells, and that in turn lies in the union of the circles of one
    representative point per occupied cell.  A point whose 5 x 5 block of cells is all occupied
    has the disc of radius c*sqrt(2) (< 2c) around it inside U, so its circle lies in
    U + (radius - c*sqrt(2)) and adds nothing.  So the reach is the union of the circles of one
    point per occupied cell and of every point near the edge of the occupied area (reach_cells).
    Of a few cell sizes the one that keeps the fewest circles is used: for 200,000 points in a
    county some ten thousand circles instead of 200,000 (bench: seconds, not minutes).
    """
    keep = min((reach_cells(coords, radius_m * f) for f in REACH_CELLS), key=lambda k: int(k.sum()))
    return shapely.union_all(shapely.buffer(shapely.points(coords[keep]), radius_m, quad_segs=QUAD_SEGS))


def reach_cells(coords: np.ndarray, cell: float) -> np.ndarray:
    """Which points reach_many draws a circle for, on a grid of cells of side cell: one per
    occupied cell, and every point whose 5 x 5 block of cells is not all occupied."""
    origin = coords.min(axis=0) - 3 * cell
    ij = np.floor((coords - origin) / cell).astype(np.int64)
    shape = tuple(ij.max(axis=0) + 4)
    occupied = np.zeros(shape, dtype=bool)
    occupied[ij[:, 0], ij[:, 1]] = True
    # cells whose 5 x 5 block is all occupied: a box sum over an integral image
    integral = np.zeros((shape[0] + 1, shape[1] + 1), dtype=np.int64)
    integral[1:, 1:] = occupied.cumsum(0).cumsum(1)
    full = np.zeros(shape, dtype=bool)
    lo = np.arange(shape[0] - 4)[:, None], np.arange(shape[1] - 4)[None, :]
    block = (integral[lo[0] + 5, lo[1] + 5] - integral[lo[0], lo[1] + 5]
             - integral[lo[0] + 5, lo[1]] + integral[lo[0], lo[1]])
    full[2:-2, 2:-2] = block == 25
    keep = ~full[ij[:, 0], ij[:, 1]]
    keep[np.unique(ij[:, 0] * shape[1] + ij[:, 1], return_index=True)[1]] = True
    return keep


def reaches_of(points: gpd.GeoDataFrame | PointSet | np.ndarray, radii: Sequence[int]) -> dict[int, BaseGeometry]:
    """reach() at each radius.  Many points: the smallest radius from the grid (reach_many), the
    larger ones as its buffer by the difference — the union of circles of radius a, widened by b,
    is the union of the circles of radius a + b (Minkowski), so one union of many circles is made
    instead of one per radius (the same sets up to the circles' polygons, 32 segments each)."""
    radii = sorted(radii)
    xy = points.xy if isinstance(points, PointSet) else points
    if isinstance(xy, np.ndarray) and xy.dtype.kind == "f" and radii:
        coords = np.unique(xy.reshape(-1, 2), axis=0)
        if len(coords) > REACH_DIRECT_POINTS:
            first = reach_many(coords, radii[0])
            return {r: first if r == radii[0] else shapely.buffer(first, r - radii[0], quad_segs=QUAD_SEGS)
                    for r in radii}
        points = coords
    # GEOS releases the GIL: the unions run side by side.
    with ThreadPoolExecutor(max_workers=max(1, len(radii))) as pool:
        return dict(zip(radii, pool.map(lambda r: reach(points, r), radii), strict=True))


@dataclass(frozen=True)
class Coverage:
    """The reach of the food supply in one region."""

    radii: tuple[int, ...]
    shares: pd.DataFrame            # rows = territory features, columns = radii, values in [0, 1]
    bands: gpd.GeoDataFrame         # feature x band (within the first radius, between two, beyond the last)
    reaches: dict[int, BaseGeometry]


def coverage(territory: gpd.GeoDataFrame, food_points: gpd.GeoDataFrame | PointSet | np.ndarray,
             radii: Sequence[int]) -> Coverage:
    """Share of each territory feature within each distance of a food point, and the
    distance bands clipped to each feature (metric CRS for both inputs).

    bands has one row per feature and band that is not empty: columns position
    (row of territory), band (index: 0 = within radii[0], i = between radii[i-1]
    and radii[i], len(radii) = beyond the last), area_m2, geometry.
    """
    radii = tuple(sorted(int(r) for r in radii))
    ter = territory.reset_index(drop=True)
    geoms = np.asarray(ter.geometry.values)
    areas = shapely.area(geoms)
    reaches = reaches_of(food_points, radii)
    shares = pd.DataFrame(index=pd.RangeIndex(len(ter)), columns=list(radii), dtype=float)
    band_rows: list[dict[str, Any]] = []
    previous: BaseGeometry | None = None
    inside_prev = np.array([shapely.Polygon()] * len(ter), dtype=object)
    for band, r in enumerate(radii):
        inside = shapely.intersection(geoms, reaches[r]) if not reaches[r].is_empty else \
            np.array([shapely.Polygon()] * len(ter), dtype=object)
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(areas > 0, shapely.area(inside) / areas, np.nan)
        shares[r] = np.clip(share, 0.0, 1.0)
        ring = inside if previous is None else shapely.difference(inside, inside_prev)
        band_rows += _band_rows(ring, band)
        previous, inside_prev = reaches[r], inside
    beyond = shapely.difference(geoms, inside_prev) if radii else geoms
    band_rows += _band_rows(beyond, len(radii))
    bands = gpd.GeoDataFrame(band_rows, columns=["position", "band", "area_m2", "geometry"],
                             geometry="geometry", crs=ter.crs)
    return Coverage(radii, shares, bands, reaches)


def _band_rows(parts: np.ndarray, band: int) -> list[dict[str, Any]]:
    rows = []
    for i, geom in enumerate(parts):
        geom = _polygonal(geom)
        if geom is not None:
            rows.append({"position": i, "band": band, "area_m2": float(geom.area), "geometry": geom})
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


def county_outlines(territory: gpd.GeoDataFrame, key: str) -> gpd.GeoDataFrame:
    """One polygon per county ("kreis"): the union of the territory features whose
    key shares its first COUNTY_KEY_LENGTH characters (in the AGS: Land, Bezirk, Kreis)."""
    ter = territory[territory[key].notna()] if key in territory.columns else territory.iloc[0:0]
    if len(ter) == 0:
        return gpd.GeoDataFrame({"kreis": pd.Series(dtype=object)}, geometry=gpd.GeoSeries([], crs=territory.crs))
    keys = ter[key].astype(str).str[:COUNTY_KEY_LENGTH]
    rows = [{"kreis": k, "geometry": shapely.union_all(np.asarray(group.geometry.values))}
            for k, group in ter.groupby(keys, sort=True)]
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=territory.crs)


@dataclass(frozen=True)
class SupplyPicture:
    """Everything the map shows about supply, per territory feature (rows in input order)."""

    territory: gpd.GeoDataFrame        # metric CRS, reset index, without empty geometries
    key: str                           # the column names in territory that the map and table read
    label: str | None
    population: str | None
    counts: pd.DataFrame               # terms + total
    rate: list[float | None]           # all points per 1,000 inhabitants (None without population)
    coverage: Coverage
    counties: gpd.GeoDataFrame
    food: list[str]
    unassigned: int                    # points outside every territory feature


def supply_picture(territory: gpd.GeoDataFrame, points: gpd.GeoDataFrame | PointSet, terms: Sequence[str],
                   food: Sequence[str], radii: Sequence[int], *, key: str, field: str,
                   population: str | None = None, label: str | None = None) -> SupplyPicture:
    """All analyses at once; inputs in any CRS.

    key, population, label: columns of territory (role: territory); field: the
    column of points whose terms are counted, food: those that are food supply.
    """
    ter = to_metric(territory).reset_index(drop=True)
    pts = point_set(points, field)          # coordinates and values: no shapely object per point
    counts = counts_xy(ter, pts.xy, pts.values, terms)
    people = ter[population].tolist() if population and population in ter.columns else [None] * len(ter)
    rate = [per_thousand(c, p) for c, p in zip(counts["total"], people, strict=True)]
    food_xy = pts.xy[pd.Series(pts.values, dtype=object).isin(list(food)).to_numpy()] if len(pts) else pts.xy
    cov = coverage(ter, food_xy, radii)
    unassigned = int(len(pts) - counts["total"].sum())
    return SupplyPicture(ter, key, label, population, counts, rate, cov, county_outlines(ter, key), list(food),
                         unassigned)
