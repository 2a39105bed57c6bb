"""Copy a whole store, versions included, into another store (GeoPackage ↔ PostGIS).

Versions are replayed in order — uploads as replaces, rollbacks as rollbacks,
withdrawals as withdrawals —
so the target ends with the same version numbers, audit trail and live data,
and the counts are verified afterwards. Into PostGIS the originals kept under GDI_HOME go
with their versions, so every server of the cluster has them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gdi import settings
from gdi.collections import Collection
from gdi.store.base import Store, StoreError, VersionMeta


@dataclass(frozen=True)
class MigrationResult:
    datasets: int
    versions: int
    features: int


def _members(store: Store, collection: Collection) -> list[str]:
    """Members with versions, live or not: a member whose every dataset is withdrawn keeps its history."""
    return sorted({d.member for d in store.datasets(collection)} | set(store.members(collection)))


def _kept_file(original: str | None) -> Path | None:
    """The embedded store's file of an original, which PostGIS then keeps itself (the other stores ignore it)."""
    path = settings.paths().home / original if original else None
    return path if path is not None and path.is_file() else None


def migrate(source: Store, target: Store, collections: dict[str, Collection], echo=print) -> MigrationResult:
    if target.datasets():
        raise StoreError("the target store already holds data; migrate only into an empty store")
    n_datasets = n_versions = n_features = 0
    for collection in collections.values():
        target.ensure(collection)
        for member in _members(source, collection):
            history = source.history(collection, member)
            for v in history:
                if v.action == "rollback" and v.restored_from is not None:
                    target.rollback(collection, member, v.dataset, to_version=v.restored_from, updated=v.created,
                                    uploader=v.uploader)
                elif v.action == "withdraw":
                    target.withdraw(collection, member, v.dataset, updated=v.created, uploader=v.uploader)
                else:
                    features = source.version_features(collection, member, v.dataset, v.version)
                    target.replace(collection, member, v.dataset, features, updated=v.created, meta=VersionMeta(
                        uploader=v.uploader, file=v.file, original=v.original, sha256=v.sha256, report=v.report,
                        original_source=_kept_file(v.original)))
                n_versions += 1
            echo(f"gdi: {collection.id:<16} member {member}: {len(history)} versions copied")
    # verify: same live datasets, counts and histories
    for collection in collections.values():
        want = [(d.member, d.dataset, d.count, d.version) for d in source.datasets(collection)]
        got = [(d.member, d.dataset, d.count, d.version) for d in target.datasets(collection)]
        if want != got:
            raise StoreError(f"verification failed for {collection.id}: {want} != {got}")
        if len(source.read(collection)) != len(target.read(collection)):
            raise StoreError(f"verification failed for {collection.id}: feature counts differ")
        n_datasets += len(want)
        n_features += sum(d[2] for d in want)
    return MigrationResult(n_datasets, n_versions, n_features)
