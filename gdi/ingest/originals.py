"""Where a version's original file is read back: the audit trail's copy of what a member sent.

With PostGIS the store keeps it (``gdi.originals``, written in the version's transaction),
so every server can hand it out; the embedded store keeps it under ``GDI_HOME``. A
version's ``original`` names it either way (a path relative to ``GDI_HOME``).
"""
from __future__ import annotations

import shutil
from pathlib import Path, PurePosixPath

from gdi import settings
from gdi.messages import t
from gdi.store import open_store


def original_into(key: str, target: Path) -> bool:
    """Write the original kept as ``key`` to ``target``; False when it is kept nowhere."""
    parts = PurePosixPath(key).parts
    if not parts or parts[0] != "originals" or ".." in parts:
        raise ValueError(t(f"kein Name eines aufbewahrten Originals: {key!r}",
                           f"not the name of a kept original: {key!r}"))
    store = open_store()
    if store.kind == "postgis" and store.original_into(key, target):
        return True
    local = settings.paths().home / key
    if not local.is_file():
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(local, target)
    return True
