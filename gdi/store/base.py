"""The store interface every back-end implements.

Replacing the features of one (collection, member, dataset) is the unit of
change; it must be atomic so that readers see the old or the new data, never a mix.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import geopandas as gpd

from gdi.collections import Collection


class StoreError(RuntimeError):
    pass


@dataclass(frozen=True)
class DatasetInfo:
    collection: str
    member: str
    dataset: str
    count: int
    updated: str
    version: int


class Store(Protocol):
    def ensure(self, collection: Collection) -> None:
        """Create the collection's table if missing."""

    def replace(self, collection: Collection, member: str, dataset: str,
                features: gpd.GeoDataFrame, *, updated: str) -> DatasetInfo:
        """Atomically replace all features of (collection, member, dataset)."""

    def read(self, collection: Collection, *, member_prefix: str | None = None) -> gpd.GeoDataFrame:
        """All features of a collection (optionally of members whose key starts so)."""

    def datasets(self, collection: Collection | None = None) -> list[DatasetInfo]:
        ...

    def extent(self, collection: Collection) -> tuple[float, float, float, float] | None:
        """Bounding box in the storage CRS, or None when empty."""

    def extent_lonlat(self, collection: Collection) -> tuple[float, float, float, float] | None:
        """Exact lon/lat bounds of the stored features."""

    def data_version(self) -> int:
        """Increases with every change; caches key on it."""
