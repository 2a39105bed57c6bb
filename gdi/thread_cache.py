"""Memoisation that never hands one native object to two threads.

The API is served by threads (gunicorn's gthread worker), and the GEOS and
PROJ objects we cache are not thread-safe: a GEOS *prepared* geometry builds
its indexes lazily on first use, and two threads doing that first use at once
corrupt the heap (libgeos/geos#825; it aborted our workers with
``malloc(): unaligned tcache chunk detected``). A process-wide
``functools.lru_cache`` of such objects shares them between request threads,
so every cache of a native object is kept per thread instead: the object is
built once per thread and then reused by that thread alone.
"""
from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


def per_thread_lru_cache(maxsize: int) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Like ``functools.lru_cache(maxsize)``, with one cache for each thread."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        local = threading.local()

        @functools.wraps(fn)
        def cached(*args: P.args, **kwargs: P.kwargs) -> R:
            mine = getattr(local, "cached", None)
            if mine is None:
                mine = local.cached = functools.lru_cache(maxsize=maxsize)(fn)
            return mine(*args, **kwargs)

        return cached

    return decorate
