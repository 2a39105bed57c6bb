"""The upload service's own state: tokens and jobs, in GDI_HOME/service.sqlite.

Kept apart from the data store so that a store switch (GeoPackage ↔ PostGIS)
never touches who may upload, and a job's bookkeeping never blocks readers.
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


def connect() -> sqlite3.Connection:
    conn = sqlite3.connect(path(), timeout=30, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA busy_timeout = 30000")
    for stmt in SCHEMA.strip().split(";"):
        if stmt.strip():
            conn.execute(stmt)
    return conn
