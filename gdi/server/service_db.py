"""The upload service's own state: tokens and jobs.

Kept apart from the data store's tables so that a store switch (GeoPackage ↔ PostGIS)
never touches who may upload, and a job's bookkeeping never blocks readers. Where it lives
follows the store: with the embedded GeoPackage in ``GDI_HOME/service.sqlite`` (one
machine; an upload's file stays under ``GDI_HOME/uploads``), with PostGIS in the store's
database (``gdi.server.service_pg``), so that every server of a cluster shares it.

Both connections take the same queries (``execute`` with ``?`` parameters, rows read by
position or name) and have the same methods for what differs: the queue's write
transaction, the claim of a job, the recovery after a stop, and where a job's uploaded
file is kept.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

from gdi import settings

SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
  id TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, member TEXT NOT NULL, name TEXT, admin INTEGER NOT NULL,
  created TEXT NOT NULL, revoked TEXT);
CREATE TABLE IF NOT EXISTS jobs (
  id TEXT PRIMARY KEY, member TEXT NOT NULL, token_id TEXT NOT NULL, uploader TEXT, collection TEXT NOT NULL,
  dataset TEXT, file TEXT NOT NULL, path TEXT NOT NULL, options TEXT NOT NULL, status TEXT NOT NULL,
  stage TEXT, progress REAL NOT NULL DEFAULT 0, created TEXT NOT NULL, started TEXT, finished TEXT,
  report TEXT, counts TEXT, message TEXT, pid INTEGER, version INTEGER);
CREATE INDEX IF NOT EXISTS jobs_member ON jobs (member, status);
"""


def path() -> Path:
    return settings.paths().home / "service.sqlite"


class SqliteConnection:
    """service.sqlite in GDI_HOME: one machine (servers sharing GDI_HOME share it)."""

    def __init__(self) -> None:
        self.raw = sqlite3.connect(path(), timeout=30, isolation_level=None)
        self.raw.row_factory = sqlite3.Row
        self.raw.execute("PRAGMA journal_mode = WAL")
        self.raw.execute("PRAGMA busy_timeout = 30000")
        for stmt in SCHEMA.strip().split(";"):
            if stmt.strip():
                self.raw.execute(stmt)

    def execute(self, sql: str, args=()) -> sqlite3.Cursor:
        return self.raw.execute(sql, tuple(args))

    def close(self) -> None:
        self.raw.close()

    def begin_queue(self, member: str) -> None:
        """The write transaction in which a member's queue is counted and a job added (BEGIN IMMEDIATE:
        a separate count-then-insert let every request of a burst pass the count)."""
        self.execute("BEGIN IMMEDIATE")

    def claim(self, jid: str, started: str) -> bool:
        """Atomically take a queued job (several servers may share GDI_HOME)."""
        return self.execute("UPDATE jobs SET status = 'running', started = ?, stage = 'starting' "
                            "WHERE id = ? AND status = 'queued'", (started, jid)).rowcount == 1

    def fail_interrupted(self, finished: str, message: str) -> int:
        """Jobs left 'running' by a stopped server: failed, with the reason."""
        return self.execute("UPDATE jobs SET status = 'failed', finished = ?, message = ? WHERE status = 'running'",
                            (finished, message)).rowcount

    def keep_upload(self, jid: str, path: Path) -> None:
        """The saved file under GDI_HOME/uploads is where the job reads it."""

    files_shared = False      # the saved file is the only copy

    def queue_job(self, jid: str, member: str) -> None:
        """Nothing more: the runner of `gdi serve` finds queued rows itself (and never imports the queue)."""

    def upload_file(self, job: dict) -> Path:
        return Path(job["path"])

    def drop_upload(self, jid: str) -> None:
        """The file stays under GDI_HOME/uploads."""


def connect() -> SqliteConnection:
    """A connection to the state: service.sqlite, or the store's PostgreSQL (gdi.server.service_pg)."""
    if settings.is_postgres(settings.store_url()):
        from gdi.server import service_pg

        return service_pg.connect()
    return SqliteConnection()
