"""The upload service's state in PostgreSQL, when the store is PostGIS: schema ``gdi_service``.

Tokens (hashes only), jobs with their progress, and the uploaded file of every job not yet
finished, in the store's database: every server behind a load balancer knows every token
and job, a job queued on one server can be run by another (its file comes from here), and
a server started on an empty ``GDI_HOME`` has lost nothing.

The connection speaks as ``service_db``'s SQLite connection does (``?`` parameters, rows
read by position or name, autocommit with explicit ``BEGIN``), so tokens and jobs have
one set of queries for both; only the queue's locking (``begin_queue``) and the claim of a
job differ, and they are here. A job left running by a stopped or dead server is the job
queue's to fail (gdi.server.queue: its job process's advisory lock tells whether it lives).
"""
from __future__ import annotations

import os
import shutil
import socket
import threading
from collections.abc import Sequence
from pathlib import Path

import psycopg
from psycopg_pool import ConnectionPool

from gdi import settings
from gdi.store import pg_chunks, postgis

SCHEMA = "gdi_service"
UPLOADS = f"{SCHEMA}.upload_chunks"

_DDL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.tokens (
  id text PRIMARY KEY, hash text NOT NULL UNIQUE, member text NOT NULL, name text, admin integer NOT NULL,
  created text NOT NULL, revoked text);
CREATE TABLE IF NOT EXISTS {SCHEMA}.jobs (
  id text PRIMARY KEY, member text NOT NULL, token_id text NOT NULL, uploader text, collection text NOT NULL,
  dataset text, file text NOT NULL, path text NOT NULL, options text NOT NULL, status text NOT NULL,
  stage text, progress double precision NOT NULL DEFAULT 0, created text NOT NULL, started text, finished text,
  report text, counts text, message text, pid integer, version integer, runner text);
CREATE INDEX IF NOT EXISTS jobs_member ON {SCHEMA}.jobs (member, status);
CREATE INDEX IF NOT EXISTS jobs_status ON {SCHEMA}.jobs (status, created);
""" + pg_chunks.table_sql(UPLOADS)


class Row:
    """A result row read by position or by column name, as ``sqlite3.Row`` is (``dict(row)`` too)."""

    __slots__ = ("_names", "_values")

    def __init__(self, names: list[str], values: Sequence) -> None:
        self._names, self._values = names, tuple(values)

    def __getitem__(self, key: int | str):
        return self._values[key if isinstance(key, int) else self._names.index(key)]

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def keys(self) -> list[str]:
        return list(self._names)


def _rows(cursor: psycopg.Cursor):
    names = [c.name for c in cursor.description or ()]
    return lambda values: Row(names, values)


def runner_id() -> str:
    """Which server runs a job: the machine and its GDI_HOME (a restarted server is the same runner)."""
    return f"{socket.gethostname()}:{settings.paths().home}"


class Connection:
    """One pooled connection (autocommit), with SQLite's ``?`` parameters."""

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool
        self.raw: psycopg.Connection = pool.getconn()

    def execute(self, sql: str, args: Sequence = ()) -> psycopg.Cursor:
        return self.raw.execute(sql.replace("?", "%s"), tuple(args))

    def close(self) -> None:
        self.pool.putconn(self.raw)      # the pool rolls back a transaction left open by an error

    def begin_queue(self, member: str) -> None:
        """The write transaction in which a member's queue is counted and a job added: one member's
        submissions wait for each other on every server (a transaction-level advisory lock)."""
        self.execute("BEGIN")
        self.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (f"gdi-queue/{member}",))

    def claim(self, jid: str, started: str) -> bool:
        """Take a queued job for this server; of several servers trying at once exactly one gets it."""
        return self.execute("UPDATE jobs SET status = 'running', started = ?, stage = 'starting', runner = ? "
                            "WHERE id = ? AND status = 'queued'", (started, runner_id(), jid)).rowcount == 1

    def keep_upload(self, jid: str, path: Path) -> None:
        """The uploaded file of a job, streamed into the database (in the caller's transaction)."""
        pg_chunks.write(self.raw, UPLOADS, jid, path)

    files_shared = True       # the database holds the file: the receiving server's copy goes once committed

    def queue_job(self, jid: str, member: str) -> None:
        """The job queued in procrastinate (gdi.server.queue) in the row's own transaction: a server dying
        in between leaves neither a row without its queue job nor a queue job without its row."""
        from gdi.server import queue

        queue.defer(jid, member, connection=self.raw)

    def upload_file(self, job: dict) -> Path:
        """A local copy of a job's uploaded file, fetched from the database a chunk at a time (under
        this server's GDI_HOME/uploads, removed when the job ends)."""
        local = _local_folder(job["id"]) / Path(job["path"]).name
        if not local.is_file() and not pg_chunks.read_into(self.raw, UPLOADS, job["id"], local):
            return Path(job["path"])          # dropped already: the job has ended
        return local

    def drop_upload(self, jid: str) -> None:
        """A finished job's file: no server needs it any more (the kept original is the store's)."""
        pg_chunks.delete(self.raw, UPLOADS, jid)
        shutil.rmtree(_local_folder(jid), ignore_errors=True)


def _local_folder(jid: str) -> Path:
    return settings.paths().home / "uploads" / jid


_pools: dict[tuple[str, int], ConnectionPool] = {}
_lock = threading.Lock()


def _ensure_schema(conn: psycopg.Connection) -> None:
    """Create the schema and tables if missing; several servers starting at once wait for each other
    (CREATE … IF NOT EXISTS alone is not safe against a concurrent creation)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('gdi-service-schema'))")
        conn.execute(_DDL)


def connect() -> Connection:
    """A connection to the state in the store's database (one pool per process; the schema made once)."""
    url = settings.store_url()
    key = (url, os.getpid())                # a forked job process never reuses its parent's sockets
    pool = _pools.get(key)
    if pool is None:
        with _lock:
            pool = _pools.get(key)
            if pool is None:
                with postgis.connect(url, autocommit=True) as conn:    # a missing database: one clear error
                    _ensure_schema(conn)
                # public after our schema: procrastinate's tables, written to in a submit's transaction
                pool = ConnectionPool(url, min_size=1, max_size=4, open=True, timeout=30, name="gdi-service",
                                      kwargs={"autocommit": True, "row_factory": _rows, "connect_timeout": 10,
                                              "options": f"-c search_path={SCHEMA},public"})
                _pools[key] = pool
    return Connection(pool)


