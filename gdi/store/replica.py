"""Reads from a PostgreSQL streaming replica (``GDI_STORE_READ``), never older than what is published.

A replica replays the primary's write-ahead log some milliseconds behind — under load, or with
replay paused, much longer. The HTTP layer stamps every answer (its ETag, its response-cache entry,
a 304) with the data version it read from the primary; an answer made from a replica that has not
replayed that version yet would carry old data under the new tag, and every revalidation would
then keep it. So each read statement returns the data version of its own snapshot with its rows,
and an answer whose version is below the one required is dropped and read again from the primary
(at once: waiting for the replica would hold a request thread for as long as it lags, and a lag
happens right after a publish, for the few requests that then go to the primary). A replica that
cannot answer (down, its database not replayed yet, a query cancelled by replay) is left alone for
a few seconds while the primary answers. Without ``GDI_STORE_READ`` nothing here changes anything:
every read goes to the primary.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import TypeVar

import psycopg

from gdi import settings
from gdi.store.base import StoreError

LOGGER = logging.getLogger(__name__)
SKIP_SECONDS = 10.0         # how long a replica that failed is left alone
T = TypeVar("T")
_required: ContextVar[int | None] = ContextVar("gdi_required_data_version", default=None)
_skip_until: dict[str, float] = {}
_lock = threading.Lock()


def require(version: int | None) -> None:
    """The data version the answer now being made is stamped with (the primary's, read by the HTTP
    layer's data-version check); reads made for it must show at least that version."""
    _required.set(version)


def required() -> int | None:
    return _required.get()


def fresh(version: int | None) -> bool:
    """Whether a snapshot of data version ``version`` may answer: at least the required version.
    None stands for an answer with no data in it (the caller reads again), always fresh."""
    need = _required.get()
    return version is None or need is None or int(version) >= need


def replica_of(primary: str) -> str | None:
    """The replica that reads of the store at ``primary`` go to now: GDI_STORE_READ when primary is
    GDI_STORE, it names another server, and it has not failed in the last SKIP_SECONDS."""
    replica = settings.store_read_url()
    if primary != settings.store_url() or not replica or replica == primary:
        return None
    with _lock:
        if time.monotonic() < _skip_until.get(replica, 0.0):
            return None
    return replica


def is_replica(url: str) -> bool:
    replica = settings.store_read_url()
    return bool(replica) and url == replica and replica != settings.store_url()


def _skip(replica: str, exc: BaseException) -> None:
    text = str(exc).strip()
    LOGGER.warning("read replica failed, reading from the primary for %s s: %s", SKIP_SECONDS,
                   text.splitlines()[0] if text else type(exc).__name__)
    with _lock:
        _skip_until[replica] = time.monotonic() + SKIP_SECONDS


def read(primary: str, run: Callable[[str], tuple[int | None, T]]) -> T:
    """``run(url)`` returns (data version of the snapshot it read, answer). It runs on the replica
    first; when that answer is older than the required version, or the replica failed, it runs
    again on the primary, whose answer stands (its errors are the caller's)."""
    replica = replica_of(primary)
    if replica is not None:
        try:
            version, answer = run(replica)
        except (psycopg.OperationalError, StoreError) as exc:   # unreachable, no database, cancelled by replay
            _skip(replica, exc)
        except psycopg.Error as exc:                 # e.g. a column the replica has not replayed yet
            LOGGER.warning("read replica could not answer, reading from the primary: %s", exc)
        else:
            if fresh(version):
                return answer
    return run(primary)[1]


def read_store(store, at_least: int | None = None):  # type: ignore[no-untyped-def]
    """The store the map build reads ``store``'s collections from: the replica when it has replayed at
    least ``at_least`` (default: the required version), else ``store``. A replica only moves forward,
    so its later snapshots are at least as new. (Downloads go through ``read``: a replica that fails
    half-way leaves their file to the primary.)"""
    replica = replica_of(getattr(store, "url", ""))
    if replica is None:
        return store
    from gdi.store.postgis import PostgisStore

    need = required() if at_least is None else at_least
    candidate = PostgisStore(replica)
    try:
        if need is None or candidate.data_version() >= need:
            return candidate
    except Exception as exc:  # noqa: BLE001 — StoreError or psycopg: the primary answers instead
        _skip(replica, exc)
    return store
