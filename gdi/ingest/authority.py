"""Write rights, which rest on the county's authority and which no member can widen.

Two rules, both declared in the collection definitions and checked here, before
anything is stored:

* who may write a collection at all (``write: county`` — admin tokens and
  ``gdi ingest --admin`` only — or ``write: members``);
* the territory collection stays consistent: every key is unique across the
  whole collection, and keys that features of other collections depend on are
  never dropped or renamed by a new version, nor withdrawn.

Messages are German and English: they reach municipal GIS staff and the
county's operators alike.
"""
from __future__ import annotations

from collections.abc import Iterable

from gdi.collections import Collection
from gdi.ingest import IngestRefused
from gdi.messages import t

SHOWN = 5        # keys named in a refusal; the rest are counted


def _some(keys: Iterable[str]) -> str:
    keys = sorted(set(keys))
    shown = ", ".join(keys[:SHOWN])
    return shown + (f" (+{len(keys) - SHOWN})" if len(keys) > SHOWN else "")


def check_write_right(collection: Collection, admin: bool) -> None:
    """Refuse a member writing a collection only the county writes."""
    if collection.write == "county" and not admin:
        raise IngestRefused(t(
            f"nur der Kreis (Admin-Token) darf die Sammlung {collection.id} schreiben",
            f"only the county (an admin token) may write the collection {collection.id}"))


def check_unique_keys(keys: list[str], key_field: str, taken: dict[str, str]) -> None:
    """Refuse keys given twice in the upload, or already published by another dataset.

    taken: key → "member/dataset" of every published feature outside the dataset being replaced.
    """
    seen: set[str] = set()
    twice = {k for k in keys if k in seen or seen.add(k)}
    if twice:
        raise IngestRefused(t(
            f"{key_field} mehrfach in der Datei: {_some(twice)}", f"{key_field} given more than once: {_some(twice)}"))
    clash = sorted(k for k in set(keys) if k in taken)
    if clash:
        where = ", ".join(sorted({taken[k] for k in clash})[:SHOWN])
        raise IngestRefused(t(
            f"{key_field} bereits veröffentlicht (in {where}): {_some(clash)}",
            f"{key_field} already published (in {where}): {_some(clash)}"))


def check_kept_keys(new_keys: Iterable[str], old_keys: Iterable[str], key_field: str,
                    referenced: dict[str, set[str]], *, withdrawn: str | None = None) -> None:
    """Refuse a new version that drops (or renames) keys other collections' features depend on.

    referenced: collection id → the territory keys its published features carry.
    withdrawn: "collection/member/dataset" when the dataset is being withdrawn (no new version).
    """
    dropped = set(old_keys) - set(new_keys)
    used = {k: sorted(cid for cid, keys in referenced.items() if k in keys) for k in dropped}
    used = {k: v for k, v in used.items() if v}
    if used and withdrawn:
        colls = ", ".join(sorted({c for v in used.values() for c in v}))
        raise IngestRefused(t(
            f"{withdrawn} kann nicht zurückgezogen werden, Objekte in {colls} verwenden {key_field}: {_some(used)}",
            f"{withdrawn} cannot be withdrawn, features of {colls} use {key_field}: {_some(used)}"))
    if used:
        colls = ", ".join(sorted({c for v in used.values() for c in v}))
        raise IngestRefused(t(
            f"{key_field} fehlen in der neuen Fassung, werden aber von Objekten in {colls} verwendet: {_some(used)}",
            f"{key_field} missing from the new version but used by features of {colls}: {_some(used)}"))
