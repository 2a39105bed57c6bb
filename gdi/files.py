"""Small helpers every stage shares: time stamps and atomic file writes (one home for each)."""
from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path


def now_iso() -> str:
    """The current UTC time as stored and published everywhere: 2026-12-01T14:19:04Z."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_atomically(path: Path, text: str) -> None:
    """Replace path with text so that a reader sees the old or the new file, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
