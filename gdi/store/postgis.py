"""The production store: PostGIS, same behaviour as the GeoPackage store.

One schema ``gdi``: a table per collection (GiST and attribute indexes), an
archive table per collection for versions, and the bookkeeping tables. Every
replace, rollback and withdrawal is one transaction, serialised per dataset by an advisory
lock, so readers see the old or the new data and never a mix.
"""
from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence

import geopandas as gpd
import numpy as np
import pandas as pd
import psycopg
import shapely

from gdi.collections import Collection
from gdi.messages import t
from gdi.store.base import (DatasetInfo, DatasetNotFound, StoreError, VersionInfo, VersionMeta, VersionNotFound,
                            indexed_properties, known_columns, rollback_target)
from gdi.store import pg_chunks
from gdi.store.rows import prepared_rows

SCHEMA = "gdi"
SCHEMA_VERSION = 1
SQL_TYPES = {"string": "text", "integer": "bigint", "number": "double precision", "boolean": "boolean",
             "date": "text", "datetime": "text", "uri": "text"}

_BOOKKEEPING = f"""
CREATE EXTENSION IF NOT EXISTS postgis;
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.state (key text PRIMARY KEY, value bigint NOT NULL);
INSERT INTO {SCHEMA}.state VALUES ('data_version', 0), ('schema_version', {SCHEMA_VERSION}) ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS {SCHEMA}.datasets (
  collection text NOT NULL, member text NOT NULL, dataset text NOT NULL, count bigint NOT NULL,
  updated text NOT NULL, version integer NOT NULL,
  lon_min double precision, lat_min double precision, lon_max double precision, lat_max double precision,
  PRIMARY KEY (collection, member, dataset));
CREATE TABLE IF NOT EXISTS {SCHEMA}.versions (
  id bigserial PRIMARY KEY, collection text NOT NULL, member text NOT NULL, dataset text NOT NULL,
  version integer NOT NULL, created text NOT NULL, action text NOT NULL, count bigint NOT NULL,
  uploader text, file text, original text, sha256 text, report text, restored_from integer,
  UNIQUE (collection, member, dataset, version));
CREATE TABLE IF NOT EXISTS {SCHEMA}.reports (
  id text PRIMARY KEY, json text NOT NULL, html text NOT NULL, html_en text NOT NULL);
""" + pg_chunks.table_sql(f"{SCHEMA}.originals")
ORIGINALS = f"{SCHEMA}.originals"
REPORT_KINDS = ("json", "html", "html_en")


def connect(url: str, *, autocommit: bool = False) -> psycopg.Connection:
    """A connection to the database, or a StoreError saying in one line why there is none."""
    try:
        return psycopg.connect(url, autocommit=autocommit, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise StoreError(f"cannot connect to PostGIS: {str(exc).strip().splitlines()[0]}") from exc


def _ident(name: str) -> str:
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise StoreError(f"invalid identifier {name!r}")
    return f'"{name}"'


class PostgisStore:
    kind = "postgis"

    def __init__(self, url: str) -> None:
        self.url = url
        self._ready: set[str] = set()

    def __repr__(self) -> str:
        return f"PostgisStore({re.sub(r':[^:@/]*@', ':***@', self.url)!r})"

    @property
    def path(self) -> str:
        """What publish puts into the provider's ``data``: the connection URL."""
        return self.url

    @contextlib.contextmanager
    def _conn(self, *, write: bool = False) -> Iterator[psycopg.Connection]:
        conn = connect(self.url)
        try:
            if not write:
                conn.read_only = True
            yield conn
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            conn.close()

    @contextlib.contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        """Hold the lock ``name`` across every server of the database: a session advisory lock on a
        connection of its own, released when the block ends or the process dies."""
        with connect(self.url, autocommit=True) as conn:
            conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (f"gdi-lock/{name}",))
            yield

    # -- schema -------------------------------------------------------------
    def ensure(self, collection: Collection) -> None:
        with self._conn(write=True) as conn:
            self._ensure(conn, collection)

    def _ensure(self, conn: psycopg.Connection, collection: Collection) -> None:
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('gdi-schema'))")
        conn.execute(_BOOKKEEPING)
        t = _ident(collection.id)
        a = _ident("archive_" + collection.id)
        cols = ", ".join(f"{_ident(n)} {SQL_TYPES[p.type]}" for n, p in collection.properties.items())
        gtype = collection.geometry_type
        conn.execute(f"""
            CREATE TABLE IF NOT EXISTS {SCHEMA}.{t} (
              fid bigserial PRIMARY KEY, geom geometry({gtype}, {collection.epsg}), {cols},
              member text NOT NULL, dataset text NOT NULL);
            CREATE TABLE IF NOT EXISTS {SCHEMA}.{a} (
              version_id bigint NOT NULL, geom geometry({gtype}, {collection.epsg}), {cols},
              member text NOT NULL, dataset text NOT NULL, ord integer NOT NULL);""")
        self._migrate(conn, collection)
        idx = [f"CREATE INDEX IF NOT EXISTS {_ident(collection.id + '_geom_gist')} ON {SCHEMA}.{t} USING gist (geom)",
               f"CREATE INDEX IF NOT EXISTS {_ident(collection.id + '_member_dataset')} ON {SCHEMA}.{t} (member, dataset)",
               f"CREATE INDEX IF NOT EXISTS {_ident('archive_' + collection.id + '_version')} ON {SCHEMA}.{a} (version_id)"]
        for name in indexed_properties(collection):
            if name in collection.properties:
                idx.append(f"CREATE INDEX IF NOT EXISTS {_ident(collection.id + '_' + name)} ON {SCHEMA}.{t} ({_ident(name)})")
        for stmt in idx:
            conn.execute(stmt)

    def _migrate(self, conn: psycopg.Connection, collection: Collection) -> None:
        """Add columns a collection definition gained since the tables were made."""
        for table in (collection.id, "archive_" + collection.id):
            have = {r[0] for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
                (SCHEMA, table))}
            for name, p in collection.properties.items():
                if name not in have:
                    conn.execute(f"ALTER TABLE {SCHEMA}.{_ident(table)} ADD COLUMN {_ident(name)} {SQL_TYPES[p.type]}")

    # -- writes -------------------------------------------------------------
    def replace(self, collection: Collection, member: str, dataset: str, features: gpd.GeoDataFrame, *,
                updated: str, meta: VersionMeta | None = None) -> DatasetInfo:
        meta = meta or VersionMeta()
        rows, bounds = prepared_rows(collection, member, dataset, features, lambda geoms: shapely.to_wkb(
            np.asarray(geoms, dtype=object), hex=True, flavor="iso", output_dimension=2))
        with self._conn(write=True) as conn:
            self._ensure(conn, collection)
            self._lock(conn, collection.id, member, dataset)
            number = self._next_version(conn, collection.id, member, dataset)
            vid = conn.execute(
                f"INSERT INTO {SCHEMA}.versions (collection, member, dataset, version, created, action, count, uploader, "
                "file, original, sha256, report) VALUES (%s,%s,%s,%s,%s,'upload',%s,%s,%s,%s,%s,%s) RETURNING id",
                (collection.id, member, dataset, number, updated, len(rows), meta.uploader, meta.file, meta.original,
                 meta.sha256, meta.report)).fetchone()[0]
            if meta.original and meta.original_source is not None:     # no version without its original
                pg_chunks.write(conn, ORIGINALS, meta.original, meta.original_source)
            if meta.report and meta.report_documents is not None:       # nor without its report
                self._keep_report(conn, meta.report, meta.report_documents(number))
            self._copy(conn, collection, "archive_" + collection.id, rows, extra=("version_id", "ord"), vid=vid)
            self._publish(conn, collection, member, dataset, updated, number, bounds, vid)
        return DatasetInfo(collection.id, member, dataset, len(rows), updated, number)

    def rollback(self, collection: Collection, member: str, dataset: str, *, to_version: int | None = None,
                 updated: str, uploader: str | None = None) -> DatasetInfo:
        with self._conn(write=True) as conn:
            self._ensure(conn, collection)
            self._lock(conn, collection.id, member, dataset)
            live = conn.execute(f"SELECT version FROM {SCHEMA}.datasets WHERE collection=%s AND member=%s AND dataset=%s",
                                (collection.id, member, dataset)).fetchone()
            versions = conn.execute(
                f"SELECT id, version FROM {SCHEMA}.versions WHERE collection=%s AND member=%s AND dataset=%s ORDER BY version",
                (collection.id, member, dataset)).fetchall()
            target = rollback_target(f"{collection.id}/{member}/{dataset}", versions, live[0] if live else None,
                                     to_version)
            number = self._next_version(conn, collection.id, member, dataset)
            vid = conn.execute(
                f"INSERT INTO {SCHEMA}.versions (collection, member, dataset, version, created, action, count, uploader, "
                "file, original, sha256, report, restored_from) SELECT collection, member, dataset, %s, %s, 'rollback', "
                f"count, %s, file, original, sha256, report, version FROM {SCHEMA}.versions WHERE id = %s RETURNING id",
                (number, updated, uploader, target[0])).fetchone()[0]
            a = f"{SCHEMA}.{_ident('archive_' + collection.id)}"
            cols = ", ".join(["geom", *(_ident(p) for p in collection.properties), "member", "dataset", "ord"])
            conn.execute(f"INSERT INTO {a} (version_id, {cols}) SELECT %s, {cols} FROM {a} WHERE version_id = %s",
                         (vid, target[0]))
            b = conn.execute(
                f"SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Extent(ST_Transform(geom, 4326)) e "
                f"FROM {a} WHERE version_id = %s) s", (vid,)).fetchone()
            info_count = self._publish(conn, collection, member, dataset, updated, number, b, vid)
        return DatasetInfo(collection.id, member, dataset, info_count, updated, number)

    def withdraw(self, collection: Collection, member: str, dataset: str, *, updated: str,
                 uploader: str | None = None) -> DatasetInfo:
        with self._conn(write=True) as conn:
            self._ensure(conn, collection)
            self._lock(conn, collection.id, member, dataset)
            if conn.execute(f"SELECT 1 FROM {SCHEMA}.datasets WHERE collection=%s AND member=%s AND dataset=%s",
                            (collection.id, member, dataset)).fetchone() is None:
                raise DatasetNotFound(f"{collection.id}/{member}/{dataset}")
            number = self._next_version(conn, collection.id, member, dataset)
            # every version is archived when it is written: the withdrawn one stays there for a rollback
            vid = conn.execute(
                f"INSERT INTO {SCHEMA}.versions (collection, member, dataset, version, created, action, count, uploader) "
                "VALUES (%s,%s,%s,%s,%s,'withdraw',0,%s) RETURNING id",
                (collection.id, member, dataset, number, updated, uploader)).fetchone()[0]
            self._publish(conn, collection, member, dataset, updated, number, (None, None, None, None), vid)
        return DatasetInfo(collection.id, member, dataset, 0, updated, number)

    def version_features(self, collection: Collection, member: str, dataset: str, version: int) -> gpd.GeoDataFrame:
        """The features one version published (from the archive)."""
        cols = collection.columns
        with self._conn() as conn:
            row = conn.execute(f"SELECT id FROM {SCHEMA}.versions WHERE collection=%s AND member=%s AND dataset=%s "
                               "AND version=%s", (collection.id, member, dataset, version)).fetchone()
            if row is None:
                raise VersionNotFound(t(f"{collection.id}/{member}/{dataset} hat keine Version {version}",
                                        f"{collection.id}/{member}/{dataset} has no version {version}"))
            rows = conn.execute(
                f"SELECT ST_AsBinary(geom), {', '.join(_ident(c) for c in cols)} FROM "
                f"{SCHEMA}.{_ident('archive_' + collection.id)} WHERE version_id = %s ORDER BY ord", (row[0],)).fetchall()
        data = {c: [r[i + 1] for r in rows] for i, c in enumerate(cols)}
        geoms = shapely.from_wkb(np.array([None if r[0] is None else bytes(r[0]) for r in rows], dtype=object))
        return gpd.GeoDataFrame(data, geometry=gpd.GeoSeries(geoms, crs=collection.storage_crs))

    # -- the audit trail's documents: reports and originals -------------------------
    def keep_report(self, rid: str, documents: dict[str, str]) -> None:
        """Keep a report's documents (``json``, ``html`` German, ``html_en``), replacing earlier ones of the id."""
        with self._conn(write=True) as conn:
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('gdi-schema'))")
            conn.execute(_BOOKKEEPING)
            self._keep_report(conn, rid, documents)

    @staticmethod
    def _keep_report(conn: psycopg.Connection, rid: str, documents: dict[str, str]) -> None:
        conn.execute(f"INSERT INTO {SCHEMA}.reports (id, json, html, html_en) VALUES (%s,%s,%s,%s) "
                     "ON CONFLICT (id) DO UPDATE SET json = EXCLUDED.json, html = EXCLUDED.html, "
                     "html_en = EXCLUDED.html_en", (rid, *(documents[k] for k in REPORT_KINDS)))

    def report_document(self, rid: str, kind: str) -> str | None:
        """One document of a kept report (``json``, ``html``, ``html_en``), None when there is none."""
        if kind not in REPORT_KINDS:
            raise StoreError(f"no report document {kind!r}")
        with self._conn() as conn:
            if not self._exists(conn, "reports"):
                return None
            row = conn.execute(f"SELECT {kind} FROM {SCHEMA}.reports WHERE id = %s", (rid,)).fetchone()
        return None if row is None else row[0]

    def original_into(self, key: str, target) -> bool:
        """Write the original kept under ``key`` (a version's ``original``) to the file ``target``."""
        with self._conn() as conn:
            if not self._exists(conn, "originals"):
                return False
            return pg_chunks.read_into(conn, ORIGINALS, key, target)

    @staticmethod
    def _lock(conn: psycopg.Connection, *key: str) -> None:
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ("/".join(key),))

    @staticmethod
    def _next_version(conn: psycopg.Connection, t: str, member: str, dataset: str) -> int:
        row = conn.execute(f"SELECT max(version) FROM {SCHEMA}.versions WHERE collection=%s AND member=%s AND dataset=%s",
                           (t, member, dataset)).fetchone()
        return (row[0] or 0) + 1

    def _copy(self, conn: psycopg.Connection, collection: Collection, table: str, rows: list[tuple], *,
              extra: tuple[str, ...], vid: int) -> None:
        cols = ["geom", *collection.properties, "member", "dataset", *extra]
        with conn.cursor().copy(f"COPY {SCHEMA}.{_ident(table)} ({', '.join(_ident(c) for c in cols)}) FROM STDIN") as cp:
            for i, row in enumerate(rows):
                geom = f"SRID={collection.epsg};{row[0]}" if row[0] is not None else None
                cp.write_row((geom, *row[1:], vid, i))

    def _publish(self, conn: psycopg.Connection, collection: Collection, member: str, dataset: str, updated: str,
                 number: int, bounds, vid: int) -> int:
        t = f"{SCHEMA}.{_ident(collection.id)}"
        a = f"{SCHEMA}.{_ident('archive_' + collection.id)}"
        cols = ", ".join(["geom", *(_ident(p) for p in collection.properties), "member", "dataset"])
        conn.execute(f"DELETE FROM {t} WHERE member = %s AND dataset = %s", (member, dataset))
        n = conn.execute(f"INSERT INTO {t} ({cols}) SELECT {cols} FROM {a} WHERE version_id = %s ORDER BY ord",
                         (vid,)).rowcount
        conn.execute(f"UPDATE {SCHEMA}.state SET value = value + 1 WHERE key = 'data_version'")
        if n:
            conn.execute(
                f"INSERT INTO {SCHEMA}.datasets VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (collection, member, dataset) "
                "DO UPDATE SET count = EXCLUDED.count, updated = EXCLUDED.updated, version = EXCLUDED.version, "
                "lon_min = EXCLUDED.lon_min, lat_min = EXCLUDED.lat_min, lon_max = EXCLUDED.lon_max, lat_max = EXCLUDED.lat_max",
                (collection.id, member, dataset, n, updated, number, *bounds))
        else:
            conn.execute(f"DELETE FROM {SCHEMA}.datasets WHERE collection=%s AND member=%s AND dataset=%s",
                         (collection.id, member, dataset))
        return n

    # -- reads --------------------------------------------------------------
    def _exists(self, conn: psycopg.Connection, table: str) -> bool:
        return conn.execute("SELECT to_regclass(%s)", (f"{SCHEMA}.{table}",)).fetchone()[0] is not None

    def read(self, collection: Collection, *, member_prefix: str | None = None) -> gpd.GeoDataFrame:
        cols = collection.columns
        empty = gpd.GeoDataFrame({c: pd.Series(dtype=object) for c in ["fid", *cols]},
                                 geometry=gpd.GeoSeries([], crs=collection.storage_crs))
        with self._conn() as conn:
            if not self._exists(conn, collection.id):
                return empty
            sql = (f"SELECT fid, ST_AsBinary(geom), {', '.join(_ident(c) for c in cols)} "
                   f"FROM {SCHEMA}.{_ident(collection.id)}")
            args: tuple = ()
            if member_prefix:
                sql += " WHERE starts_with(member, %s)"
                args = (member_prefix,)
            rows = conn.execute(sql + " ORDER BY fid", args).fetchall()
        if not rows:
            return empty
        data = {"fid": [r[0] for r in rows]}
        for i, c in enumerate(cols):
            data[c] = [r[i + 2] for r in rows]
        geoms = shapely.from_wkb(np.array([None if r[1] is None else bytes(r[1]) for r in rows], dtype=object))
        return gpd.GeoDataFrame(data, geometry=gpd.GeoSeries(geoms, crs=collection.storage_crs))

    @contextlib.contextmanager
    def read_batches(self, collection: Collection, *, batch_size: int,
                     columns: Sequence[str] | None = None) -> Iterator[tuple[int, Iterator[list[list]]]]:
        """All live rows through a server-side cursor in one REPEATABLE READ transaction (the data
        version and every row from the same snapshot), ``batch_size`` rows per round trip."""
        with self._conn() as conn:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            if not self._exists(conn, "state") or not self._exists(conn, collection.id):
                yield 0, iter(())
                return
            version = conn.execute(f"SELECT value FROM {SCHEMA}.state WHERE key = 'data_version'").fetchone()[0]
            cols = "".join(f", {_ident(c)}" for c in known_columns(collection, columns))
            with conn.cursor(name="gdi_read_batches") as cursor:
                cursor.execute(f"SELECT fid, ST_AsBinary(geom){cols} FROM {SCHEMA}.{_ident(collection.id)} "
                               "ORDER BY fid")

                def batches() -> Iterator[list[list]]:
                    while rows := cursor.fetchmany(batch_size):
                        fids, wkbs, *columns = (list(c) for c in zip(*rows))
                        yield [fids, [None if w is None else bytes(w) for w in wkbs], *columns]
                yield int(version), batches()

    def history(self, collection: Collection, member: str, dataset: str | None = None) -> list[VersionInfo]:
        with self._conn() as conn:
            if not self._exists(conn, "versions"):
                return []
            sql = (f"SELECT v.collection, v.member, v.dataset, v.version, v.created, v.action, v.count, v.uploader, "
                   f"v.file, v.original, v.sha256, v.report, v.restored_from, coalesce(d.version = v.version, false) "
                   f"FROM {SCHEMA}.versions v LEFT JOIN {SCHEMA}.datasets d ON d.collection = v.collection "
                   f"AND d.member = v.member AND d.dataset = v.dataset WHERE v.collection = %s AND v.member = %s")
            args: list = [collection.id, member]
            if dataset is not None:
                sql += " AND v.dataset = %s"
                args.append(dataset)
            rows = conn.execute(sql + " ORDER BY v.dataset, v.version", args).fetchall()
        return [VersionInfo(*r[:13], live=bool(r[13])) for r in rows]

    def members(self, collection: Collection) -> list[str]:
        with self._conn() as conn:
            if not self._exists(conn, "versions"):
                return []
            return [r[0] for r in conn.execute(
                f"SELECT DISTINCT member FROM {SCHEMA}.versions WHERE collection = %s ORDER BY member", (collection.id,))]

    def datasets(self, collection: Collection | None = None) -> list[DatasetInfo]:
        with self._conn() as conn:
            if not self._exists(conn, "datasets"):
                return []
            sql = f"SELECT collection, member, dataset, count, updated, version FROM {SCHEMA}.datasets"
            args: tuple = ()
            if collection is not None:
                sql += " WHERE collection = %s"
                args = (collection.id,)
            return [DatasetInfo(*r) for r in conn.execute(sql + " ORDER BY collection, member, dataset", args)]

    def count(self, collection: Collection) -> int:
        with self._conn() as conn:
            if not self._exists(conn, collection.id):
                return 0
            return int(conn.execute(f"SELECT count(*) FROM {SCHEMA}.{_ident(collection.id)} "
                                    "WHERE geom IS NOT NULL").fetchone()[0])

    def value_counts(self, collection: Collection, field: str) -> dict[str | None, int]:
        known_columns(collection, [field])
        with self._conn() as conn:
            if not self._exists(conn, collection.id):
                return {}
            rows = conn.execute(f"SELECT {_ident(field)}, count(*) FROM {SCHEMA}.{_ident(collection.id)} "
                                "WHERE geom IS NOT NULL GROUP BY 1").fetchall()
        return {value: int(n) for value, n in rows}

    def extent_lonlat(self, collection: Collection) -> tuple[float, float, float, float] | None:
        with self._conn() as conn:
            if not self._exists(conn, "datasets"):
                return None
            row = conn.execute(f"SELECT min(lon_min), min(lat_min), max(lon_max), max(lat_max) FROM {SCHEMA}.datasets "
                               "WHERE collection = %s", (collection.id,)).fetchone()
        return None if row is None or row[0] is None else tuple(row)

    def time_extent(self, collection: Collection) -> tuple[str, str] | None:
        if not collection.time_field:
            return None
        with self._conn() as conn:
            if not self._exists(conn, collection.id):
                return None
            column = _ident(collection.time_field)
            row = conn.execute(f"SELECT min({column}), max({column}) FROM {SCHEMA}.{_ident(collection.id)}").fetchone()
        return None if row is None or row[0] is None else (str(row[0]), str(row[1]))

    def data_version(self) -> int:
        with self._conn() as conn:
            if not self._exists(conn, "state"):
                return 0
            return int(conn.execute(f"SELECT value FROM {SCHEMA}.state WHERE key = 'data_version'").fetchone()[0])
