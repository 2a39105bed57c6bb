"""The served map shared by every server on one PostGIS store: one build at a time, every server serving it.

Several `gdi serve` on one database each notice a new data version within seconds; each building
the map would cost every machine the same seconds of CPU and memory for the same page. So the
builder holds a PostgreSQL advisory lock (``pg_try_advisory_lock`` on its own session: a builder
that dies loses it with its connection, and the next one takes over) and stores the files it wrote
— a few hundred kilobytes, the large collections being drawn from tiles — in ``gdi.map_builds``
with the data version and a key of everything else the page is made of (collection definitions,
settings, the code and the web libraries' versions). A server whose data version and key match a
stored build installs its files instead of building; one that finds the lock held waits for that
build, up to ``viewer.build_wait_seconds``.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import psycopg

from gdi import settings
from gdi.files import write_atomically

SCHEMA = "gdi"
KEEP = 4                    # stored builds kept (the newest): older ones serve nobody
POLL = 0.25                 # seconds between looks while another server builds
LOCK = "(hashtext('gdi'), hashtext('map build'))"   # two-key form: apart from the store's dataset locks
_TABLE = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.map_builds (
  id bigserial PRIMARY KEY, inputs text NOT NULL, data_version bigint NOT NULL,
  built timestamptz NOT NULL DEFAULT now(), builder text NOT NULL,
  names text[] NOT NULL, contents bytea[] NOT NULL,
  UNIQUE (inputs, data_version));
"""
CODE_SUFFIXES = {".py", ".js", ".css", ".html", ".po"}
LIBRARIES = ("folium", "branca", "jinja2", "shapely")


@dataclass(frozen=True)
class Build:
    data_version: int
    builder: str
    files: dict[str, bytes]


def _files(root: Path, suffixes: set[str] | None = None) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and (suffixes is None or path.suffix in suffixes):
            yield path


def inputs_key() -> str:
    """What the page is made of besides the data: the same on two servers means the same page."""
    digest = hashlib.sha256()

    def add(label: str, data: bytes) -> None:
        digest.update(f"{label}\0{len(data)}\0".encode())
        digest.update(data)

    add("config", settings.config_file().read_bytes())
    for folder in settings.collections_dirs():
        for path in _files(folder):
            add(f"collections/{path.relative_to(folder)}", path.read_bytes())
    package = Path(__file__).resolve().parent.parent
    for path in _files(package, CODE_SUFFIXES):
        add(f"gdi/{path.relative_to(package)}", path.read_bytes())
    assets = settings.repo_root() / "viewer" / "assets.yml"
    add("assets", assets.read_bytes() if assets.exists() else b"")
    for name in LIBRARIES:
        add(name, importlib.metadata.version(name).encode())
    return digest.hexdigest()


def builder_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{settings.paths().home}"


class SharedBuilds:
    """The stored builds and the build lock of one PostGIS database, on one session."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True, connect_timeout=10, application_name="gdi-map")
        with self.conn.transaction():
            self.conn.execute("SELECT pg_advisory_xact_lock(hashtext('gdi-schema'))")   # as the store's DDL
            self.conn.execute(_TABLE)

    def close(self) -> None:
        self.conn.close()

    def stored(self, inputs: str, version: int) -> Build | None:
        row = self.conn.execute(f"SELECT data_version, builder, names, contents FROM {SCHEMA}.map_builds "
                                "WHERE inputs = %s AND data_version = %s", (inputs, version)).fetchone()
        return None if row is None else Build(int(row[0]), row[1], dict(zip(row[2], (bytes(c) for c in row[3]))))

    def store(self, inputs: str, version: int, files: dict[str, bytes]) -> None:
        names = sorted(files)
        with self.conn.transaction():
            self.conn.execute(f"INSERT INTO {SCHEMA}.map_builds (inputs, data_version, builder, names, contents) "
                              "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (inputs, data_version) DO NOTHING",
                              (inputs, version, builder_name(), names, [files[n] for n in names]))
            self.conn.execute(f"DELETE FROM {SCHEMA}.map_builds WHERE id NOT IN "
                              f"(SELECT id FROM {SCHEMA}.map_builds ORDER BY id DESC LIMIT {KEEP})")

    def data_version(self) -> int:
        """The store's data version (PostgisStore.data_version on the primary), on this session."""
        if self.conn.execute(f"SELECT to_regclass('{SCHEMA}.state')").fetchone()[0] is None:
            return 0
        row = self.conn.execute(f"SELECT value FROM {SCHEMA}.state WHERE key = 'data_version'").fetchone()
        return int(row[0]) if row else 0

    def try_lock(self) -> bool:
        return bool(self.conn.execute(f"SELECT pg_try_advisory_lock{LOCK}").fetchone()[0])

    def unlock(self) -> None:
        self.conn.execute(f"SELECT pg_advisory_unlock{LOCK}")


@contextmanager
def shared_builds(url: str) -> Iterator[SharedBuilds]:
    builds = SharedBuilds(url)
    try:
        yield builds
    finally:
        builds.close()


def install(folder: Path, files: dict[str, bytes]) -> None:
    """Write a build's files into folder, each atomically, the pages last (a page never misses its side file)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in sorted(files, key=lambda n: (n.endswith(".html"), n)):
        write_atomically(folder / name, files[name])


def refresh(url: str, build: Callable[[int], dict[str, bytes]],
            done: Callable[[int, dict[str, bytes]], None]) -> tuple[bool, int] | None:
    """Bring this server's map to the store's data version: install the stored build for it, or build it
    under the lock and store it, or wait for the server that is building it. ``build(version)`` returns
    the files it made, ``done(version, files)`` installs them here. Returns (built here, data version),
    or None when another server held the lock for longer than viewer.build_wait_seconds."""
    inputs = inputs_key()
    deadline = time.monotonic() + settings.get().viewer.build_wait_seconds
    with shared_builds(url) as builds:
        while True:
            version = builds.data_version()
            found = builds.stored(inputs, version)
            if found is None and builds.try_lock():
                try:
                    version = builds.data_version()     # read again under the lock: another may have just built it
                    found = builds.stored(inputs, version)
                    if found is None:
                        files = build(version)
                        builds.store(inputs, version, files)
                        done(version, files)
                        return True, version
                finally:
                    with suppress(psycopg.Error):   # a broken session has lost the lock already
                        builds.unlock()
            if found is not None:
                done(version, found.files)
                return False, version
            if time.monotonic() > deadline:
                return None
            time.sleep(POLL)
