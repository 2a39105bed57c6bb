"""Encoding one vector tile from features in the tile matrix set's CRS (the GeoPackage store's path;
PostGIS does the same in SQL, gdi/publish/tile_provider_pg.py).

The steps mirror ST_AsMVTGeom: simplify (where the zoom asks for it), clip to the tile and its
buffer, quantise to the 4096 units with y down, drop what collapsed, thin points to one per cell
(the lowest fid), and encode with the maintained encoder mapbox-vector-tile. Pure: geometries made
here belong to the request's thread alone (no prepared geometries, no shared transformers).
"""
from __future__ import annotations

from collections.abc import Sequence
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
    order = np.argsort(fids, kind="stable")
    corner = shapely.bounds(geoms[order])[:, :2]
    keys = np.floor(corner / cell).astype(np.int64)
    _, first = np.unique(keys, axis=0, return_index=True)
    return np.sort(order[first])


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
    features = [{"id": int(fid_array[i]), "geometry": shapes[i],
                 "properties": {k: v for k, v in zip(names, values[i]) if v is not None}} for i in keep.tolist()]
    # points have no winding order to check (the encoder's check costs a tenth of a points tile)
    polygons = bool(np.isin(shapely.get_type_id(shapes[keep]), (3, 6)).any())
    return mapbox_vector_tile.encode(
        [{"name": layer, "features": features}],
        default_options={"extents": EXTENT, "y_coord_down": True, "check_winding_order": polygons,
                         "on_invalid_geometry": on_invalid_geometry_make_valid})
