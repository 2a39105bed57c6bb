"""The rows both stores write: features converted column by column, a chunk at a time.

One home for what the GeoPackage and the PostGIS store share, so neither imports the other.
"""
from __future__ import annotations

from collections.abc import Iterator
from itertools import repeat

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gdi.collections import Collection
from gdi.crs import transformer
from gdi.store.base import StoreError

ROW_CHUNK = 50_000            # rows encoded at a time while writing


def lonlat_bounds(features: gpd.GeoDataFrame) -> tuple[float, float, float, float]:
    coords = shapely.get_coordinates(features.geometry.values)
    t = transformer(features.crs.to_epsg(), 4326)
    lon, lat = t.transform(coords[:, 0], coords[:, 1])
    return float(np.min(lon)), float(np.min(lat)), float(np.max(lon)), float(np.max(lat))


def check_crs(collection: Collection, features: gpd.GeoDataFrame) -> None:
    if features.crs is not None and features.crs.to_epsg() != collection.epsg:
        raise StoreError(f"features must be in {collection.storage_crs}, got {features.crs}")


def feature_rows(collection: Collection, member: str, dataset: str, features: gpd.GeoDataFrame, encode, *,
                 ids: np.ndarray | None = None) -> Iterator[tuple]:
    """Rows (id when given, encoded geometry, properties…, member, dataset) for a replace; ``encode``
    turns geometries into what the store writes. Encoded and converted a chunk at a time, so a
    million features never exist twice in memory."""
    props = list(collection.properties)
    for start in range(0, len(features), ROW_CHUNK):
        part = features.iloc[start:start + ROW_CHUNK]
        columns = [encode(part.geometry.values), *_columns(part, props, collection), repeat(member), repeat(dataset)]
        if ids is not None:
            columns.insert(0, ids[start:start + ROW_CHUNK].tolist())
        yield from zip(*columns)


def prepared_rows(collection: Collection, member: str, dataset: str, features: gpd.GeoDataFrame,
                  encode) -> tuple[list[tuple], tuple]:
    """All rows (as feature_rows) and the lon/lat bounds of a replace."""
    check_crs(collection, features)
    bounds = lonlat_bounds(features) if len(features) else (None, None, None, None)
    return list(feature_rows(collection, member, dataset, features, encode)), bounds


def _columns(features: gpd.GeoDataFrame, props: list[str], collection: Collection) -> list[list]:
    """Python values per column, in column order; NaN/NaT become NULL (converted per column, not per value)."""
    n = len(features)
    columns = []
    for name in props:
        if name not in features.columns:
            columns.append([None] * n)
            continue
        ptype = collection.properties[name].type
        series = features[name]
        values = series.astype(object).to_numpy(dtype=object, copy=True)
        missing = pd.isna(series).to_numpy(dtype=bool)
        if missing.any():
            values[missing] = None
        present = ~missing
        if present.any():
            if ptype == "integer":
                values[present] = [int(v) for v in values[present]] if not pd.api.types.is_integer_dtype(series) \
                    else series[present].astype("int64").tolist()
            elif ptype == "number":
                values[present] = series[present].astype("float64").tolist()
            elif ptype == "boolean":
                values[present] = [1 if v else 0 for v in values[present]]
            elif pd.api.types.infer_dtype(values[present], skipna=False) != "string":
                values[present] = [str(v) for v in values[present]]
        columns.append(values.tolist())
    return columns
