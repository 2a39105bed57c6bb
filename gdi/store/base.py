"""The store interface every back-end implements.

Replacing the features of one (collection, member, dataset) is the unit of
change; it must be atomic so that readers see the old or the new data, never a
mix. Every accepted upload is a version, archived with its features, so a
rollback restores exactly what was published before. A withdrawal takes a
dataset down as a version too (no features), so it can be rolled back.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import geopandas as gpd

from gdi.collections import Collection
from gdi.messages import t


class StoreError(RuntimeError):
    pass


class VersionNotFound(StoreError):
    pass


class DatasetNotFound(VersionNotFound):
    """No live dataset to withdraw: never published, or withdrawn already."""

    def __init__(self, name: str) -> None:
        super().__init__(t(f"der Datensatz {name} ist nicht veröffentlicht (unbekannt oder bereits zurückgezogen)",
                           f"the dataset {name} is not published (unknown or already withdrawn)"))


@dataclass(frozen=True)
class DatasetInfo:
    collection: str
    member: str
    dataset: str
    count: int
    updated: str
    version: int          # the dataset's live version number (1, 2, …)


@dataclass(frozen=True)
class VersionMeta:
    """Who sent what: the audit trail of one upload."""

    uploader: str | None = None
    file: str | None = None
    original: str | None = None      # path of the kept original, relative to GDI_HOME (PostGIS: its key there)
    # the file to keep as the original in the store itself, in the transaction of the version (PostGIS);
    # None where the original is kept as a file under GDI_HOME (the embedded store)
    original_source: Path | None = None
    # the report's documents ({"json", "html", "html_en"}) for the new version's number, kept by PostGIS in
    # the version's transaction (no published version without its report); None: the report is kept apart
    report_documents: Callable[[int], dict[str, str]] | None = None
    sha256: str | None = None
    report: str | None = None        # report id
    counts: dict = field(default_factory=dict)


@dataclass(frozen=True)
class VersionInfo:
    collection: str
    member: str
    dataset: str
    version: int
    created: str
    action: str                      # upload | rollback | withdraw
    count: int
    uploader: str | None
    file: str | None
    original: str | None
    sha256: str | None
    report: str | None
    restored_from: int | None
    live: bool


def rollback_target(name: str, versions: list[tuple], live: int | None, to_version: int | None) -> tuple:
    """Which (id, version) a rollback restores: the given one, or the one before the live version."""
    if not versions:
        raise VersionNotFound(t(f"keine Versionen von {name}", f"no versions of {name}"))
    if to_version is None:
        current = live if live is not None else versions[-1][1]
        earlier = [v for v in versions if v[1] < current]
        if not earlier:
            raise VersionNotFound(t(f"{name} hat keine Version vor {current}",
                                    f"{name} has no version before {current}"))
        return earlier[-1]
    match = [v for v in versions if v[1] == to_version]
    if not match:
        have = ", ".join(str(v[1]) for v in versions)
        raise VersionNotFound(t(f"{name} hat keine Version {to_version} (vorhanden: {have})",
                                f"{name} has no version {to_version} (has {have})"))
    return match[0]


def known_columns(collection: Collection, columns: Sequence[str] | None) -> list[str]:
    """columns (default: all of the collection's), each checked to be one of them: they become SQL
    identifiers in both stores' reads and aggregates."""
    if columns is None:
        return list(collection.columns)
    unknown = [c for c in columns if c not in collection.columns]
    if unknown:
        raise StoreError(f"{collection.id} has no column {unknown[0]!r}")
    return list(columns)


def indexed_properties(collection: Collection) -> list[str]:
    """The properties clients filter and sort by: the title, the time, vocabularies and territory keys."""
    names = [collection.title_field, collection.time_field,
             collection.territory.key if collection.territory else None,
             *collection.computed("territory_key"),
             *(p.name for p in collection.properties.values() if p.vocabulary)]
    return list(dict.fromkeys(n for n in names if n))


class Store(Protocol):
    kind: str

    def ensure(self, collection: Collection) -> None:
        """Create the collection's tables if missing; add columns the definition gained."""

    def replace(self, collection: Collection, member: str, dataset: str, features: gpd.GeoDataFrame, *,
                updated: str, meta: VersionMeta | None = None) -> DatasetInfo:
        """Atomically replace all features of (collection, member, dataset) as a new version."""

    def rollback(self, collection: Collection, member: str, dataset: str, *, to_version: int | None = None,
                 updated: str, uploader: str | None = None) -> DatasetInfo:
        """Restore the previous (or the given) version as a new version, atomically."""

    def withdraw(self, collection: Collection, member: str, dataset: str, *, updated: str,
                 uploader: str | None = None) -> DatasetInfo:
        """Take the live dataset down in one transaction, recorded as a new version without features
        (action ``withdraw``); the archive keeps the versions, so a rollback restores them.
        Raises DatasetNotFound when the dataset is not live."""

    def history(self, collection: Collection, member: str, dataset: str | None = None) -> list[VersionInfo]:
        ...

    def members(self, collection: Collection) -> list[str]:
        """Every member with versions of the collection, live or withdrawn."""

    def version_features(self, collection: Collection, member: str, dataset: str, version: int) -> gpd.GeoDataFrame:
        """The features one version published (from the archive)."""

    def read(self, collection: Collection, *, member_prefix: str | None = None) -> gpd.GeoDataFrame:
        """All live features of a collection (optionally of members whose key starts so)."""

    def read_batches(self, collection: Collection, *, batch_size: int,
                     columns: Sequence[str] | None = None) -> AbstractContextManager[tuple[int, Iterator[list[list]]]]:
        """All live features, ``batch_size`` at a time, from one snapshot: (its data version, the
        batches). A batch is columns — fids, WKB in the storage CRS (or None), then one list per
        ``columns`` (default: every one of ``collection.columns``) — in fid order.
        For downloads of whole collections: memory stays bounded by the batch, however large the
        collection, and an upload landing meanwhile is not seen half-way."""

    def datasets(self, collection: Collection | None = None) -> list[DatasetInfo]:
        ...

    def count(self, collection: Collection) -> int:
        """How many live features the collection has (with a geometry: what a map can draw).
        An aggregate in the database: the map decides by it whether to embed or tile a collection
        without reading it."""

    def value_counts(self, collection: Collection, field: str) -> dict[str | None, int]:
        """Live features with a geometry per value of ``field`` (its legend's per-term counts),
        counted in the database."""

    def extent_lonlat(self, collection: Collection) -> tuple[float, float, float, float] | None:
        """Exact lon/lat bounds of the stored features."""

    def time_extent(self, collection: Collection) -> tuple[str, str] | None:
        """Earliest and latest value of the collection's time field among the live features (None without one)."""

    def data_version(self) -> int:
        """Increases with every change; caches key on it."""
