"""Encoding one vector tile from features in the tile matrix set's CRS (the GeoPackage store's path;
PostGIS does the same in SQL, gdi/publish/tile_provider_pg.py).

The steps mirror ST_AsMVTGeom: simplify (where the zoom asks for it), clip to the tile and its
buffer, quantise to the 4096 units with y down, drop what collapsed, thin points to one per cell
(the lowest fid), and encode with the maintained encoder mapbox-vector-tile. Pure: geometries made
here belong to the request's thread alone (no prepared geometries, no shared transformers).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import mapbox_vector_tile
import numpy as np
import shapely
from mapbox_vector_tile.encoder import on_invalid_geometry_make_valid

from gdi.publish.tile_matrix import EXTENT, tile_coordinates


def quantised(geoms: np.ndarray, bounds: tuple[float, float, float, float],
              clip_box: tuple[float, float, float, float], tolerance: float) -> np.ndarray:
    """Geometries as MVT units of the tile with bounds: simplified by tolerance (CRS units),
    clipped to clip_box (lines and polygons; points are inside already)."""
    if tolerance > 0:
        geoms = shapely.simplify(geoms, tolerance, preserve_topology=True)
    points = shapely.get_type_id(geoms) == 0
    if (~points).any():
        geoms = geoms.copy()
        geoms[~points] = shapely.clip_by_rect(geoms[~points], *clip_box)

    def to_tile(c: np.ndarray) -> np.ndarray:
        x, y = tile_coordinates(c[:, 0], c[:, 1], bounds)
        return np.column_stack([x, y])

    return shapely.transform(geoms, to_tile)


def kept_whole(shapes: np.ndarray) -> np.ndarray:
    """Lines and polygons that collapse on the tile's whole-unit grid (a 3 cm line, a 5 cm square at
    z16, which the encoder would drop silently) replaced by their point on surface, so that the deepest
    level holds every feature the features API returns for the box (tile_provider_pg does the same
    with ST_PointOnSurface)."""
    lines_or_areas = ~shapely.is_missing(shapes) & ~shapely.is_empty(shapes) & (shapely.get_type_id(shapes) != 0)
    if not lines_or_areas.any():
        return shapes
    which = np.nonzero(lines_or_areas)[0]
    collapsed = which[shapely.is_empty(shapely.set_precision(shapes[which], 1.0))]
    if len(collapsed):
        shapes = shapes.copy()
        shapes[collapsed] = shapely.set_precision(shapely.point_on_surface(shapes[collapsed]), 1.0)
    return shapes


def thinned(geoms: np.ndarray, fids: np.ndarray, cell: int) -> np.ndarray:
    """Indexes of the features kept when each cell of cell × cell units keeps its lowest fid."""
    return lowest_per_cell(shapely.bounds(geoms)[:, :2], fids, cell)


def lowest_per_cell(corners: np.ndarray, fids: np.ndarray, cell: int) -> np.ndarray:
    """Indexes (ascending) of the lowest fid in each cell of cell × cell units, by each feature's lower
    left corner in tile units (a point: itself)."""
    order = np.argsort(fids, kind="stable")
    cells = np.floor(corners[order] / cell).astype(np.int64)
    keys = (cells[:, 0] << 32) + (cells[:, 1] + (1 << 31))     # one number per cell: a 1-D unique is fast
    _, first = np.unique(keys, return_index=True)               # first occurrence: the lowest fid
    return np.sort(order[first])


def thinned_points(batches: Iterable[tuple[np.ndarray, np.ndarray]], cell: int) -> tuple[np.ndarray, np.ndarray]:
    """(fids, units) of the points kept when each cell keeps its lowest fid, from batches of (fids,
    positions in tile units): the same choice as thinned() over all of them at once, holding only one
    batch and the points kept so far (an overview tile of a million points in a few megabytes)."""
    kept_fids = np.empty(0, dtype=np.int64)
    kept_units = np.empty((0, 2), dtype=np.float64)
    for fids, units in batches:
        fids = np.concatenate([kept_fids, np.asarray(fids, dtype=np.int64)])
        units = np.concatenate([kept_units, units])
        keep = lowest_per_cell(units, fids, cell)
        kept_fids, kept_units = fids[keep], units[keep]
    return kept_fids, kept_units


def encode(layer: str, fids: Sequence[int], geoms: np.ndarray, names: Sequence[str], values: Sequence[Sequence[Any]],
           bounds: tuple[float, float, float, float], clip_box: tuple[float, float, float, float],
           tolerance: float = 0.0, thin: int | None = None, *, exact: bool = False) -> bytes:
    """One MVT with one layer; b"" when no feature is left (an empty tile). values: per feature, the
    values of the properties names (None: the feature has none, MVT has no null). exact (the deepest
    level): a feature that rounds to nothing is kept as a point on it (kept_whole)."""
    if not len(fids):
        return b""
    fid_array = np.asarray(fids, dtype=np.int64)
    shapes = quantised(np.asarray(geoms, dtype=object), bounds, clip_box, tolerance)
    if exact:
        shapes = kept_whole(shapes)
    keep = np.nonzero(~shapely.is_empty(shapes) & ~shapely.is_missing(shapes))[0]
    if thin and len(keep):
        keep = keep[thinned(shapes[keep], fid_array[keep], thin)]
    if not len(keep):
        return b""
    return encode_units(layer, fid_array[keep], shapes[keep], names, [values[i] for i in keep.tolist()])


def encode_units(layer: str, fids: Sequence[int], shapes: np.ndarray, names: Sequence[str],
                 values: Sequence[Sequence[Any]]) -> bytes:
    """One MVT with one layer of features already in tile units (quantised, clipped, thinned)."""
    if not len(fids):
        return b""
    features = [{"id": int(fid), "geometry": shape,
                 "properties": {k: v for k, v in zip(names, row) if v is not None}}
                for fid, shape, row in zip(np.asarray(fids).tolist(), shapes, values)]
    # points have no winding order to check (the encoder's check costs a tenth of a points tile)
    polygons = bool(np.isin(shapely.get_type_id(np.asarray(shapes, dtype=object)), (3, 6)).any())
    return mapbox_vector_tile.encode(
        [{"name": layer, "features": features}],
        default_options={"extents": EXTENT, "y_coord_down": True, "check_winding_order": polygons,
                         "on_invalid_geometry": on_invalid_geometry_make_valid})
