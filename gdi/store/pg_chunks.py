"""Files kept in PostgreSQL as rows of 1 MiB ``bytea`` chunks.

With PostGIS every server of a cluster must reach an upload's file and its kept original,
whichever machine received it, so they live in the database instead of one server's
``GDI_HOME``. Chunked rows rather than large objects: they are ordinary rows of the
caller's transaction (a rolled-back upload leaves none behind, ``pg_dump`` and replicas
carry them without ``lo_*`` bookkeeping), and a file is streamed in and out a chunk at a
time, so memory stays bounded however large the file (uploads are capped by
``uploads.max_bytes``). The chunks are stored uncompressed (``STORAGE EXTERNAL``):
uploads are mostly zip archives and GeoPackages, which TOAST compression only slows down.
"""
from __future__ import annotations

from pathlib import Path

import psycopg

CHUNK_BYTES = 1 << 20


def table_sql(table: str) -> str:
    """The statement that creates a chunk table named ``table`` (schema-qualified, trusted) if missing.
    Its storage is set only when it is created: run again (at every start) it takes no lock."""
    return (f"DO $$ BEGIN IF to_regclass('{table}') IS NULL THEN "
            f"CREATE TABLE {table} (key text NOT NULL, seq integer NOT NULL, data bytea NOT NULL, "
            f"PRIMARY KEY (key, seq)); "
            f"ALTER TABLE {table} ALTER COLUMN data SET STORAGE EXTERNAL; END IF; END $$;\n")


def write(conn: psycopg.Connection, table: str, key: str, source: Path) -> int:
    """Stream the file ``source`` into ``table`` under ``key`` (replacing what was there); returns its size.
    Runs in the connection's current transaction."""
    conn.execute(f"DELETE FROM {table} WHERE key = %s", (key,))
    size = 0
    with open(source, "rb") as fh, conn.cursor().copy(f"COPY {table} (key, seq, data) FROM STDIN (FORMAT BINARY)") as cp:
        cp.set_types(["text", "int4", "bytea"])
        for seq, chunk in enumerate(iter(lambda: fh.read(CHUNK_BYTES), b"")):
            cp.write_row((key, seq, chunk))
            size += len(chunk)
    return size


def read_into(conn: psycopg.Connection, table: str, key: str, target: Path) -> bool:
    """Write the file kept under ``key`` to ``target`` (a chunk at a time); False when there is none."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.part")
    found = False
    with open(partial, "wb") as fh:
        for (data,) in conn.cursor().stream(f"SELECT data FROM {table} WHERE key = %s ORDER BY seq", (key,)):
            fh.write(data)
            found = True
    if not found:
        partial.unlink()
        return False
    partial.replace(target)
    return True


def delete(conn: psycopg.Connection, table: str, key: str) -> None:
    conn.execute(f"DELETE FROM {table} WHERE key = %s", (key,))
