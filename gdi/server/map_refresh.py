"""Keeps the served map in step with the store while `gdi serve` runs.

Uploads (over HTTP or with `gdi ingest`, from this or another server on the
same store) only bump the store's data version; this thread notices within a
few seconds, publishes this server's configuration again (another machine's
upload published only in that machine's GDI_HOME) and rebuilds the map in a child process, so the build's memory
never sits in the supervisor and the build dies with the server. The child
runs at a lower priority and, while uploads keep arriving, at most half the
time: requests come first (measured: 16 readers timed out while uploads
arrived back to back and the map was rebuilt after each).
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

from gdi import settings


def _background_child() -> None:
    """Dies with the server, and yields the CPU to the request workers (nice 10)."""
    from gdi.server.jobs import _die_with_parent

    _die_with_parent()
    os.nice(10)


def build_map(env: dict[str, str], *, force: bool = False, background: bool = True) -> subprocess.Popen:
    """Start `python -m gdi.publish.map_build` in a child that dies with the server; in the background
    (niced) unless the server waits for it."""
    from gdi.server.jobs import _die_with_parent

    return subprocess.Popen([sys.executable, "-m", "gdi.publish.map_build", *(["--force"] if force else [])], env=env,
                            preexec_fn=_background_child if background else _die_with_parent)


class MapRefresher(threading.Thread):
    def __init__(self, env: dict[str, str], interval: float | None = None) -> None:
        super().__init__(name="gdi-map", daemon=True)
        self.env = env
        self.interval = float(interval if interval is not None else settings.get().viewer.refresh_seconds)
        self.stop_event = threading.Event()
        self.child: subprocess.Popen | None = None
        # the data version this server's configuration was last published for here (the first look
        # publishes once more: an upload may have landed since gdi serve's own publish)
        self.published: int | None = None

    def stale(self) -> bool:
        from gdi.store import open_store
        from gdi.publish.map_build import built_for

        version = open_store().data_version()
        self._publish_for(version)
        return built_for() != str(version)

    def _publish_for(self, version: int) -> None:
        """This server's configuration and metadata (extents, records, the CSW's documents) written
        again for a data version it has not published: an upload run by another server on the same
        PostGIS (each machine has its own GDI_HOME) publishes only there. Nothing is written when
        nothing changed, so after this server's own uploads it costs one comparison."""
        if version == self.published:
            return
        from gdi.publish import publish

        publish(url=self.env.get("GDI_URL"), viewer=False)
        self.published = version

    def run(self) -> None:
        wait = self.interval
        while not self.stop_event.wait(wait):
            wait = self.interval
            try:
                if not self.stale():
                    continue
                started = time.monotonic()
                self.child = build_map(self.env)
                code = self.child.wait()
                # while uploads keep coming, at most every other moment goes to the map: requests first
                wait = max(self.interval, time.monotonic() - started)
                if code != 0 and not self.stop_event.is_set():
                    print(f"gdi: rebuilding the map failed (exit {code}); retrying", file=sys.stderr, flush=True)
                    wait = 30
            except Exception as exc:  # noqa: BLE001 — the refresher must keep going
                print(f"gdi: map refresher: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)

    def stop(self) -> None:
        self.stop_event.set()
        if self.child is not None and self.child.poll() is None:
            self.child.terminate()
