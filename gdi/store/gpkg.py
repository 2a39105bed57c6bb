"""The embedded store: one GeoPackage, one table per collection.

Written with plain sqlite3 (no SpatiaLite, no extension loading) so every
replace is a single SQLite transaction; in WAL mode readers keep their snapshot
while a writer works, which gives the old-or-new, never-a-mix guarantee.
"""
from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj

from gdi.collections import Collection
from gdi.files import connect_readonly
from gdi.messages import t
from gdi.store import gpkg_binary, gpkg_rtree
from gdi.store.base import (DatasetInfo, DatasetNotFound, StoreError, VersionInfo, VersionMeta, VersionNotFound,
                            known_columns, rollback_target)
from gdi.store.rows import check_crs, feature_rows, lonlat_bounds

GPKG_APPLICATION_ID = 0x47504B47  # "GPKG"
GPKG_USER_VERSION = 10300
GEOM = "geom"
ARCHIVE = "gdi_archive_"      # per collection: every version's features, for rollback

SQL_TYPES = {
    "string": "TEXT", "integer": "INTEGER", "number": "DOUBLE", "boolean": "BOOLEAN",
    "date": "DATE", "datetime": "DATETIME", "uri": "TEXT",
}

_CORE = """
CREATE TABLE IF NOT EXISTS gpkg_spatial_ref_sys (
  srs_name TEXT NOT NULL, srs_id INTEGER PRIMARY KEY, organization TEXT NOT NULL,
  organization_coordsys_id INTEGER NOT NULL, definition TEXT NOT NULL, description TEXT);
CREATE TABLE IF NOT EXISTS gpkg_contents (
  table_name TEXT NOT NULL PRIMARY KEY, data_type TEXT NOT NULL, identifier TEXT UNIQUE,
  description TEXT DEFAULT '', last_change DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  min_x DOUBLE, min_y DOUBLE, max_x DOUBLE, max_y DOUBLE, srs_id INTEGER,
  CONSTRAINT fk_gc_r_srs_id FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys(srs_id));
CREATE TABLE IF NOT EXISTS gpkg_geometry_columns (
  table_name TEXT NOT NULL, column_name TEXT NOT NULL, geometry_type_name TEXT NOT NULL,
  srs_id INTEGER NOT NULL, z TINYINT NOT NULL, m TINYINT NOT NULL,
  CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name),
  CONSTRAINT fk_gc_tn FOREIGN KEY (table_name) REFERENCES gpkg_contents(table_name),
  CONSTRAINT fk_gc_srs FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys (srs_id));
CREATE TABLE IF NOT EXISTS gpkg_extensions (
  table_name TEXT, column_name TEXT, extension_name TEXT NOT NULL, definition TEXT NOT NULL,
  scope TEXT NOT NULL, CONSTRAINT ge_tce UNIQUE (table_name, column_name, extension_name));
CREATE TABLE IF NOT EXISTS gdi_datasets (
  collection TEXT NOT NULL, member TEXT NOT NULL, dataset TEXT NOT NULL,
  count INTEGER NOT NULL, updated TEXT NOT NULL, version INTEGER NOT NULL,
  lon_min DOUBLE, lat_min DOUBLE, lon_max DOUBLE, lat_max DOUBLE,
  PRIMARY KEY (collection, member, dataset));
CREATE TABLE IF NOT EXISTS gdi_state (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS gdi_versions (
  id INTEGER PRIMARY KEY AUTOINCREMENT, collection TEXT NOT NULL, member TEXT NOT NULL, dataset TEXT NOT NULL,
  version INTEGER NOT NULL, created TEXT NOT NULL, action TEXT NOT NULL, count INTEGER NOT NULL,
  uploader TEXT, file TEXT, original TEXT, sha256 TEXT, report TEXT, restored_from INTEGER,
  UNIQUE (collection, member, dataset, version));
INSERT OR IGNORE INTO gdi_state VALUES ('data_version', 0);
INSERT OR IGNORE INTO gpkg_spatial_ref_sys VALUES
  ('Undefined cartesian SRS', -1, 'NONE', -1, 'undefined', 'undefined cartesian coordinate reference system'),
  ('Undefined geographic SRS', 0, 'NONE', 0, 'undefined', 'undefined geographic coordinate reference system');
"""

_RTREE_TABLE = "CREATE VIRTUAL TABLE rtree_{t}_{g} USING rtree(id, minx, maxx, miny, maxy);"
_RTREE_TRIGGER_NAMES = ("insert", "update1", "update2", "update3", "update4", "delete")
# The GeoPackage R-tree triggers, for every other writer (QGIS, GDAL). Our own bulk
# writes drop them for the transaction and fill the R-tree from bounds computed for
# all rows at once: the triggers call ST_MinX & co., which here are Python functions,
# five calls per row.
_RTREE_TRIGGERS = """
CREATE TRIGGER rtree_{t}_{g}_insert AFTER INSERT ON "{t}"
  WHEN (new."{g}" NOT NULL AND NOT ST_IsEmpty(NEW."{g}"))
BEGIN INSERT OR REPLACE INTO rtree_{t}_{g} VALUES (NEW.fid, ST_MinX(NEW."{g}"), ST_MaxX(NEW."{g}"), ST_MinY(NEW."{g}"), ST_MaxY(NEW."{g}")); END;
CREATE TRIGGER rtree_{t}_{g}_update1 AFTER UPDATE OF "{g}" ON "{t}"
  WHEN OLD.fid = NEW.fid AND (NEW."{g}" NOTNULL AND NOT ST_IsEmpty(NEW."{g}"))
BEGIN INSERT OR REPLACE INTO rtree_{t}_{g} VALUES (NEW.fid, ST_MinX(NEW."{g}"), ST_MaxX(NEW."{g}"), ST_MinY(NEW."{g}"), ST_MaxY(NEW."{g}")); END;
CREATE TRIGGER rtree_{t}_{g}_update2 AFTER UPDATE OF "{g}" ON "{t}"
  WHEN OLD.fid = NEW.fid AND (NEW."{g}" ISNULL OR ST_IsEmpty(NEW."{g}"))
BEGIN DELETE FROM rtree_{t}_{g} WHERE id = OLD.fid; END;
CREATE TRIGGER rtree_{t}_{g}_update3 AFTER UPDATE ON "{t}"
  WHEN OLD.fid != NEW.fid AND (NEW."{g}" NOTNULL AND NOT ST_IsEmpty(NEW."{g}"))
BEGIN DELETE FROM rtree_{t}_{g} WHERE id = OLD.fid;
  INSERT OR REPLACE INTO rtree_{t}_{g} VALUES (NEW.fid, ST_MinX(NEW."{g}"), ST_MaxX(NEW."{g}"), ST_MinY(NEW."{g}"), ST_MaxY(NEW."{g}")); END;
CREATE TRIGGER rtree_{t}_{g}_update4 AFTER UPDATE ON "{t}"
  WHEN OLD.fid != NEW.fid AND (NEW."{g}" ISNULL OR ST_IsEmpty(NEW."{g}"))
BEGIN DELETE FROM rtree_{t}_{g} WHERE id IN (OLD.fid, NEW.fid); END;
CREATE TRIGGER rtree_{t}_{g}_delete AFTER DELETE ON "{t}" WHEN old."{g}" NOT NULL
BEGIN DELETE FROM rtree_{t}_{g} WHERE id = OLD.fid; END;
"""


def _run_script(conn: sqlite3.Connection, script: str) -> None:
    """Run statements one by one: ``executescript`` would commit the open transaction."""
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            conn.execute(buf)
            buf = ""
    if buf.strip():
        raise StoreError(f"incomplete SQL statement: {buf[:80]}")


def connect(path: Path, *, readonly: bool = False, timeout: float = 60.0) -> sqlite3.Connection:
    """A connection with the GeoPackage SQL functions registered.

    Read-only connections use ``mode=ro`` and ``query_only`` so serving can
    never write to the store.
    """
    if readonly:
        conn = connect_readonly(path, timeout=timeout)
    else:
        conn = sqlite3.connect(path, timeout=timeout, isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        # bulk writes (R-tree and index inserts in spatial, not key, order) thrash SQLite's
        # default 2 MB page cache; 64 MB keeps the hot pages of a large upload in memory
        conn.execute("PRAGMA cache_size = -65536")
        conn.execute("PRAGMA temp_store = MEMORY")
    gpkg_binary.register_functions(conn)
    return conn


class GpkgStore:
    kind = "gpkg"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"GpkgStore({str(self.path)!r})"

    # -- schema -------------------------------------------------------------
    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = connect(self.path)
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()

    def _init(self, conn: sqlite3.Connection) -> None:
        conn.execute(f"PRAGMA application_id = {GPKG_APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version = {GPKG_USER_VERSION}")
        _run_script(conn, _CORE)
        have = {row[1] for row in conn.execute("PRAGMA table_info(gdi_datasets)")}
        for col in ("lon_min", "lat_min", "lon_max", "lat_max"):
            if col not in have:
                conn.execute(f"ALTER TABLE gdi_datasets ADD COLUMN {col} DOUBLE")
        wgs84 = pyproj.CRS.from_epsg(4326)
        conn.execute(
            "INSERT OR IGNORE INTO gpkg_spatial_ref_sys VALUES (?,?,?,?,?,?)",
            ("WGS 84 geodetic", 4326, "EPSG", 4326, wgs84.to_wkt("WKT1_GDAL"), "longitude/latitude coordinates in decimal degrees on the WGS 84 spheroid"),
        )

    def ensure(self, collection: Collection) -> None:
        with self._write() as conn:
            self._ensure(conn, collection)

    def _ensure(self, conn: sqlite3.Connection, collection: Collection) -> None:
        self._init(conn)
        t = collection.id
        exists = conn.execute("SELECT 1 FROM gpkg_contents WHERE table_name = ?", (t,)).fetchone()
        crs = pyproj.CRS.from_user_input(collection.storage_crs)
        conn.execute(
            "INSERT OR IGNORE INTO gpkg_spatial_ref_sys VALUES (?,?,?,?,?,?)",
            (crs.name, collection.epsg, "EPSG", collection.epsg, crs.to_wkt("WKT1_GDAL"), crs.name),
        )
        if exists:
            self._ensure_archive(conn, collection)
            self._migrate(conn, collection)
            return
        cols = [f'"{name}" {SQL_TYPES[p.type]}' for name, p in collection.properties.items()]
        cols += ['"member" TEXT NOT NULL', '"dataset" TEXT NOT NULL']
        conn.execute(
            f'CREATE TABLE "{t}" (fid INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, '
            f'"{GEOM}" {collection.geometry_type.upper()}, {", ".join(cols)})'
        )
        conn.execute(f'CREATE INDEX "idx_{t}_member_dataset" ON "{t}" (member, dataset)')
        self._ensure_archive(conn, collection)
        conn.execute(
            "INSERT INTO gpkg_contents (table_name, data_type, identifier, description, srs_id) VALUES (?,?,?,?,?)",
            (t, "features", t, collection.title.get("en", t), collection.epsg),
        )
        conn.execute(
            "INSERT INTO gpkg_geometry_columns VALUES (?,?,?,?,0,0)",
            (t, GEOM, collection.geometry_type.upper(), collection.epsg),
        )
        conn.execute(_RTREE_TABLE.format(t=t, g=GEOM))
        _run_script(conn, _RTREE_TRIGGERS.format(t=t, g=GEOM))
        conn.execute(
            "INSERT INTO gpkg_extensions VALUES (?,?,?,?,?)",
            (t, GEOM, "gpkg_rtree_index", "http://www.geopackage.org/spec120/#extension_rtree", "write-only"),
        )

    @staticmethod
    def _ensure_archive(conn: sqlite3.Connection, collection: Collection) -> None:
        t = collection.id
        cols = [f'"{name}" {SQL_TYPES[p.type]}' for name, p in collection.properties.items()]
        conn.execute(f'CREATE TABLE IF NOT EXISTS "{ARCHIVE}{t}" (version_id INTEGER NOT NULL, "{GEOM}" BLOB, '
                     f'{", ".join(cols)}, "member" TEXT NOT NULL, "dataset" TEXT NOT NULL)')
        conn.execute(f'CREATE INDEX IF NOT EXISTS "idx_{ARCHIVE}{t}_version" ON "{ARCHIVE}{t}" (version_id)')

    def _migrate(self, conn: sqlite3.Connection, collection: Collection) -> None:
        """Add columns a collection definition gained since the table was made."""
        for table in (collection.id, ARCHIVE + collection.id):
            have = {row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')}
            for name, p in collection.properties.items():
                if name not in have:
                    conn.execute(f'ALTER TABLE "{table}" ADD COLUMN "{name}" {SQL_TYPES[p.type]}')

    # -- writes -------------------------------------------------------------
    def replace(self, collection: Collection, member: str, dataset: str, features: gpd.GeoDataFrame, *,
                updated: str, meta: VersionMeta | None = None) -> DatasetInfo:
        meta = meta or VersionMeta()
        check_crs(collection, features)
        n = len(features)
        bounds = lonlat_bounds(features) if n else (None, None, None, None)
        envelopes = gpkg_binary.envelopes(features.geometry.values)

        def rows_for(fids: np.ndarray):
            return feature_rows(collection, member, dataset, features,
                                lambda geoms: gpkg_binary.encode(geoms, collection.epsg), ids=fids)
        with self._write() as conn:
            self._ensure(conn, collection)
            number = self._next_version(conn, collection.id, member, dataset)
            conn.execute(
                "INSERT INTO gdi_versions (collection, member, dataset, version, created, action, count, uploader, "
                "file, original, sha256, report, restored_from) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,NULL)",
                (collection.id, member, dataset, number, updated, "upload", n, meta.uploader, meta.file,
                 meta.original, meta.sha256, meta.report))
            self._publish_rows(conn, collection, member, dataset, rows_for, n, envelopes, updated, number, bounds)
        return DatasetInfo(collection.id, member, dataset, n, updated, number)

    def rollback(self, collection: Collection, member: str, dataset: str, *, to_version: int | None = None,
                 updated: str, uploader: str | None = None) -> DatasetInfo:
        props = list(collection.properties)
        cols = ", ".join(f'"{c}"' for c in [GEOM, *props, "member", "dataset"])
        with self._write() as conn:
            self._ensure(conn, collection)
            live = conn.execute("SELECT version FROM gdi_datasets WHERE collection=? AND member=? AND dataset=?",
                                (collection.id, member, dataset)).fetchone()
            versions = conn.execute(
                "SELECT id, version FROM gdi_versions WHERE collection=? AND member=? AND dataset=? ORDER BY version",
                (collection.id, member, dataset)).fetchall()
            target = rollback_target(f"{collection.id}/{member}/{dataset}", versions, live[0] if live else None,
                                     to_version)
            self._archive_live(conn, collection, member, dataset)     # the target may be the live version
            rows = conn.execute(f'SELECT {cols} FROM "{ARCHIVE}{collection.id}" WHERE version_id = ? ORDER BY rowid',
                                (target[0],)).fetchall()
            number = self._next_version(conn, collection.id, member, dataset)
            conn.execute(
                "INSERT INTO gdi_versions (collection, member, dataset, version, created, action, count, uploader, "
                "file, original, sha256, report, restored_from) "
                "SELECT collection, member, dataset, ?, ?, 'rollback', count, ?, file, original, sha256, report, version "
                "FROM gdi_versions WHERE id = ?", (number, updated, uploader, target[0]))
            geoms = gpkg_binary.decode([r[0] for r in rows]) if rows else np.empty(0, dtype=object)
            bounds = lonlat_bounds(gpd.GeoDataFrame(geometry=gpd.GeoSeries(geoms, crs=collection.epsg))) \
                if rows else (None, None, None, None)
            self._publish_rows(conn, collection, member, dataset,
                               lambda fids: ((fid, *row) for fid, row in zip(fids.tolist(), rows)), len(rows),
                               gpkg_binary.envelopes(geoms), updated, number, bounds)
        return DatasetInfo(collection.id, member, dataset, len(rows), updated, number)

    def withdraw(self, collection: Collection, member: str, dataset: str, *, updated: str,
                 uploader: str | None = None) -> DatasetInfo:
        with self._write() as conn:
            self._ensure(conn, collection)
            if conn.execute("SELECT 1 FROM gdi_datasets WHERE collection=? AND member=? AND dataset=?",
                            (collection.id, member, dataset)).fetchone() is None:
                raise DatasetNotFound(f"{collection.id}/{member}/{dataset}")
            number = self._next_version(conn, collection.id, member, dataset)
            # _publish_rows archives the live version first, then publishes nothing
            conn.execute(
                "INSERT INTO gdi_versions (collection, member, dataset, version, created, action, count, uploader, "
                "file, original, sha256, report, restored_from) VALUES (?,?,?,?,?,'withdraw',0,?,NULL,NULL,NULL,NULL,NULL)",
                (collection.id, member, dataset, number, updated, uploader))
            self._publish_rows(conn, collection, member, dataset, lambda fids: iter(()), 0,
                               np.empty((0, 4)), updated, number, (None, None, None, None))
        return DatasetInfo(collection.id, member, dataset, 0, updated, number)

    def history(self, collection: Collection, member: str, dataset: str | None = None) -> list[VersionInfo]:
        if not self.path.exists():
            return []
        conn = connect(self.path, readonly=True)
        try:
            if conn.execute("SELECT 1 FROM sqlite_master WHERE name='gdi_versions'").fetchone() is None:
                return []
            sql = ("SELECT v.collection, v.member, v.dataset, v.version, v.created, v.action, v.count, v.uploader, "
                   "v.file, v.original, v.sha256, v.report, v.restored_from, "
                   "coalesce(d.version = v.version, 0) FROM gdi_versions v LEFT JOIN gdi_datasets d "
                   "ON d.collection = v.collection AND d.member = v.member AND d.dataset = v.dataset "
                   "WHERE v.collection = ? AND v.member = ?")
            args: list = [collection.id, member]
            if dataset is not None:
                sql += " AND v.dataset = ?"
                args.append(dataset)
            rows = conn.execute(sql + " ORDER BY v.dataset, v.version", args).fetchall()
        finally:
            conn.close()
        return [VersionInfo(*r[:13], live=bool(r[13])) for r in rows]

    def members(self, collection: Collection) -> list[str]:
        if not self.path.exists():
            return []
        conn = connect(self.path, readonly=True)
        try:
            if conn.execute("SELECT 1 FROM sqlite_master WHERE name='gdi_versions'").fetchone() is None:
                return []
            return [r[0] for r in conn.execute(
                "SELECT DISTINCT member FROM gdi_versions WHERE collection = ? ORDER BY member", (collection.id,))]
        finally:
            conn.close()

    def version_features(self, collection: Collection, member: str, dataset: str, version: int) -> gpd.GeoDataFrame:
        """The features one version published (from the archive, or the live table for the live version)."""
        cols = collection.columns
        conn = connect(self.path, readonly=True)
        try:
            conn.execute("BEGIN")           # one snapshot: the live check and the rows agree
            row = conn.execute("SELECT id FROM gdi_versions WHERE collection=? AND member=? AND dataset=? AND version=?",
                               (collection.id, member, dataset, version)).fetchone()
            if row is None:
                raise VersionNotFound(t(f"{collection.id}/{member}/{dataset} hat keine Version {version}",
                                        f"{collection.id}/{member}/{dataset} has no version {version}"))
            names = ", ".join(chr(34) + c + chr(34) for c in cols)
            archived = conn.execute(f'SELECT 1 FROM "{ARCHIVE}{collection.id}" WHERE version_id = ? LIMIT 1',
                                    (row[0],)).fetchone()
            live = conn.execute("SELECT 1 FROM gdi_datasets WHERE collection=? AND member=? AND dataset=? AND version=?",
                                (collection.id, member, dataset, version)).fetchone()
            if live and not archived:       # the live version is archived only once it is replaced
                rows = conn.execute(f'SELECT "{GEOM}", {names} FROM "{collection.id}" WHERE member = ? AND dataset = ? '
                                    "ORDER BY fid", (member, dataset)).fetchall()
            else:
                rows = conn.execute(f'SELECT "{GEOM}", {names} FROM "{ARCHIVE}{collection.id}" '
                                    "WHERE version_id = ? ORDER BY rowid", (row[0],)).fetchall()
            conn.execute("COMMIT")
        finally:
            conn.close()
        data = {c: [r[i + 1] for r in rows] for i, c in enumerate(cols)}
        geoms = gpkg_binary.decode([r[0] for r in rows]) if rows else []
        return gpd.GeoDataFrame(data, geometry=gpd.GeoSeries(geoms, crs=collection.storage_crs))

    @staticmethod
    def _next_version(conn: sqlite3.Connection, t: str, member: str, dataset: str) -> int:
        row = conn.execute("SELECT max(version) FROM gdi_versions WHERE collection=? AND member=? AND dataset=?",
                           (t, member, dataset)).fetchone()
        return (row[0] or 0) + 1

    @staticmethod
    def _archive_live(conn: sqlite3.Connection, collection: Collection, member: str, dataset: str) -> None:
        """Copy the dataset's live rows into the archive under their version, unless already there.

        Versions are archived when they stop being live (replaced, rolled back from, deleted), so an
        upload writes its features once; the live version is read from the live table.
        """
        row = conn.execute(
            "SELECT v.id FROM gdi_datasets d JOIN gdi_versions v ON v.collection = d.collection "
            "AND v.member = d.member AND v.dataset = d.dataset AND v.version = d.version "
            "WHERE d.collection = ? AND d.member = ? AND d.dataset = ?", (collection.id, member, dataset)).fetchone()
        if row is None or conn.execute(f'SELECT 1 FROM "{ARCHIVE}{collection.id}" WHERE version_id = ? LIMIT 1',
                                       (row[0],)).fetchone():
            return
        cols = ", ".join(f'"{c}"' for c in [GEOM, *collection.properties, "member", "dataset"])
        conn.execute(f'INSERT INTO "{ARCHIVE}{collection.id}" (version_id, {cols}) '
                     f'SELECT ?, {cols} FROM "{collection.id}" WHERE member = ? AND dataset = ? ORDER BY fid',
                     (row[0], member, dataset))

    def _publish_rows(self, conn: sqlite3.Connection, collection: Collection, member: str, dataset: str,
                      rows_for, n: int, envelopes: np.ndarray, updated: str, number: int, bounds) -> None:
        """Swap the dataset's live rows; the R-tree is maintained here in bulk (triggers off meanwhile)."""
        t = collection.id
        rtree = f"rtree_{t}_{GEOM}"
        props = list(collection.properties)
        collist = ", ".join(f'"{c}"' for c in ["fid", GEOM, *props, "member", "dataset"])
        marks = ", ".join("?" * (len(props) + 4))
        self._archive_live(conn, collection, member, dataset)
        for name in _RTREE_TRIGGER_NAMES:
            conn.execute(f'DROP TRIGGER IF EXISTS "{rtree}_{name}"')
        old = np.array([r[0] for r in conn.execute(f'SELECT fid FROM "{t}" WHERE member = ? AND dataset = ?',
                                                    (member, dataset))], dtype=np.int64)
        total = conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] - len(old) + n
        first = conn.execute(
            f"SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = ?), 0), "
            f'coalesce((SELECT max(fid) FROM "{t}"), 0)) + 1', (t,)).fetchone()[0]
        conn.execute(f'DELETE FROM "{t}" WHERE member = ? AND dataset = ?', (member, dataset))
        fids = np.arange(first, first + n, dtype=np.int64)
        conn.executemany(f'INSERT INTO "{t}" ({collist}) VALUES ({marks})', rows_for(fids))
        has = ~np.isnan(envelopes[:, 0]) if n else np.zeros(0, dtype=bool)
        # An R-tree insert or delete costs ~9 µs, a packed rebuild ~1.5 µs per entry of the whole tree.
        if (len(old) + n) * 6 > total:
            ids, boxes = gpkg_rtree.entries(conn, rtree)
            keep = ~np.isin(ids, old)
            new_ids, new_boxes = gpkg_rtree.as_cells(fids[has], envelopes[has])
            gpkg_rtree.rebuild(conn, rtree, np.concatenate([ids[keep], new_ids]),
                               np.concatenate([boxes[keep], new_boxes]))
        else:
            conn.executemany(f'DELETE FROM "{rtree}" WHERE id = ?', ((i,) for i in old.tolist()))
            conn.executemany(f'INSERT INTO "{rtree}" VALUES (?,?,?,?,?)',
                             zip(fids[has].tolist(), *(envelopes[has, k].tolist() for k in range(4))))
        _run_script(conn, _RTREE_TRIGGERS.format(t=t, g=GEOM))
        self._bump(conn)
        if n:
            conn.execute("INSERT OR REPLACE INTO gdi_datasets VALUES (?,?,?,?,?,?,?,?,?,?)",
                         (t, member, dataset, n, updated, number, *bounds))
        else:
            conn.execute("DELETE FROM gdi_datasets WHERE collection=? AND member=? AND dataset=?", (t, member, dataset))
        self._update_contents(conn, t)

    def delete(self, collection: Collection, member: str, dataset: str) -> int:
        with self._write() as conn:
            self._ensure(conn, collection)
            self._archive_live(conn, collection, member, dataset)
            n = conn.execute(f'DELETE FROM "{collection.id}" WHERE member = ? AND dataset = ?', (member, dataset)).rowcount
            conn.execute("DELETE FROM gdi_datasets WHERE collection=? AND member=? AND dataset=?", (collection.id, member, dataset))
            self._bump(conn)
            self._update_contents(conn, collection.id)
        return n

    @staticmethod
    def _bump(conn: sqlite3.Connection) -> int:
        conn.execute("UPDATE gdi_state SET value = value + 1 WHERE key = 'data_version'")
        return conn.execute("SELECT value FROM gdi_state WHERE key = 'data_version'").fetchone()[0]

    @staticmethod
    def _update_contents(conn: sqlite3.Connection, t: str) -> None:
        conn.execute(
            f"""UPDATE gpkg_contents SET
                  min_x = (SELECT min(minx) FROM rtree_{t}_{GEOM}), max_x = (SELECT max(maxx) FROM rtree_{t}_{GEOM}),
                  min_y = (SELECT min(miny) FROM rtree_{t}_{GEOM}), max_y = (SELECT max(maxy) FROM rtree_{t}_{GEOM}),
                  last_change = strftime('%Y-%m-%dT%H:%M:%fZ','now')
                WHERE table_name = ?""",
            (t,),
        )

    # -- reads --------------------------------------------------------------
    def _has_table(self, conn: sqlite3.Connection, t: str) -> bool:
        return conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='gpkg_contents'"
        ).fetchone() is not None and conn.execute(
            "SELECT 1 FROM gpkg_contents WHERE table_name = ?", (t,)
        ).fetchone() is not None

    def read(self, collection: Collection, *, member_prefix: str | None = None) -> gpd.GeoDataFrame:
        cols = collection.columns
        empty = gpd.GeoDataFrame({c: pd.Series(dtype=object) for c in ["fid", *cols]},
                                 geometry=gpd.GeoSeries([], crs=collection.storage_crs))
        if not self.path.exists():
            return empty
        conn = connect(self.path, readonly=True)
        try:
            if not self._has_table(conn, collection.id):
                return empty
            sql = f'SELECT fid, "{GEOM}", {", ".join(chr(34) + c + chr(34) for c in cols)} FROM "{collection.id}"'
            args: tuple = ()
            if member_prefix:
                sql += " WHERE member LIKE ? ESCAPE '\\'"
                args = (member_prefix.replace("%", "\\%").replace("_", "\\_") + "%",)
            rows = conn.execute(sql + " ORDER BY fid", args).fetchall()
        finally:
            conn.close()
        if not rows:
            return empty
        data = {"fid": [r[0] for r in rows]}
        for i, c in enumerate(cols):
            data[c] = [r[i + 2] for r in rows]
        geoms = gpkg_binary.decode([r[1] for r in rows])
        return gpd.GeoDataFrame(data, geometry=gpd.GeoSeries(geoms, crs=collection.storage_crs))

    @contextlib.contextmanager
    def read_batches(self, collection: Collection, *, batch_size: int,
                     columns: Sequence[str] | None = None) -> Iterator[tuple[int, Iterator[list[list]]]]:
        """All live rows from one read transaction (WAL keeps its snapshot while uploads commit),
        fetched ``batch_size`` at a time; geometries as WKB (the GeoPackage header cut off)."""
        if not self.path.exists():
            yield 0, iter(())
            return
        conn = connect(self.path, readonly=True)
        try:
            conn.execute("BEGIN")
            if not self._has_table(conn, collection.id):
                yield 0, iter(())
                return
            version = conn.execute("SELECT value FROM gdi_state WHERE key='data_version'").fetchone()[0]
            cols = "".join(f', "{c}"' for c in known_columns(collection, columns))
            cursor = conn.execute(f'SELECT fid, "{GEOM}"{cols} FROM "{collection.id}" ORDER BY fid')

            def batches() -> Iterator[list[list]]:
                while rows := cursor.fetchmany(batch_size):
                    fids, blobs, *columns = (list(c) for c in zip(*rows))
                    yield [fids, [None if b is None else gpkg_binary.wkb_of(b) for b in blobs], *columns]
            yield int(version), batches()
        finally:
            conn.close()        # ends the read transaction

    def datasets(self, collection: Collection | None = None) -> list[DatasetInfo]:
        if not self.path.exists():
            return []
        conn = connect(self.path, readonly=True)
        try:
            if conn.execute("SELECT 1 FROM sqlite_master WHERE name='gdi_datasets'").fetchone() is None:
                return []
            sql = "SELECT collection, member, dataset, count, updated, version FROM gdi_datasets"
            args: tuple = ()
            if collection is not None:
                sql += " WHERE collection = ?"
                args = (collection.id,)
            return [DatasetInfo(*r) for r in conn.execute(sql + " ORDER BY collection, member, dataset", args)]
        finally:
            conn.close()

    def _aggregate(self, collection: Collection, sql: str) -> list[tuple]:
        """Rows of an aggregate query over the collection's table ({t}: its name), [] without one."""
        if not self.path.exists():
            return []
        conn = connect(self.path, readonly=True)
        try:
            if not self._has_table(conn, collection.id):
                return []
            return conn.execute(sql.format(t=f'"{collection.id}"', g=f'"{GEOM}"')).fetchall()
        finally:
            conn.close()

    def count(self, collection: Collection) -> int:
        rows = self._aggregate(collection, "SELECT count(*) FROM {t} WHERE {g} IS NOT NULL")
        return int(rows[0][0]) if rows else 0

    def value_counts(self, collection: Collection, field: str) -> dict[str | None, int]:
        known_columns(collection, [field])
        rows = self._aggregate(collection, f'SELECT "{field}", count(*) FROM {{t}} WHERE {{g}} IS NOT NULL GROUP BY 1')
        return {value: int(n) for value, n in rows}

    def extent(self, collection: Collection) -> tuple[float, float, float, float] | None:
        if not self.path.exists():
            return None
        conn = connect(self.path, readonly=True)
        try:
            if not self._has_table(conn, collection.id):
                return None
            row = conn.execute(
                "SELECT min_x, min_y, max_x, max_y FROM gpkg_contents WHERE table_name = ?", (collection.id,)
            ).fetchone()
        finally:
            conn.close()
        return None if row is None or row[0] is None else tuple(row)

    def extent_lonlat(self, collection: Collection) -> tuple[float, float, float, float] | None:
        """The exact lon/lat bounds of the data (from each dataset's features, not a projected box)."""
        if not self.path.exists():
            return None
        conn = connect(self.path, readonly=True)
        try:
            if conn.execute("SELECT 1 FROM sqlite_master WHERE name='gdi_datasets'").fetchone() is None:
                return None
            row = conn.execute(
                "SELECT min(lon_min), min(lat_min), max(lon_max), max(lat_max) FROM gdi_datasets WHERE collection = ?",
                (collection.id,)).fetchone()
        finally:
            conn.close()
        return None if row is None or row[0] is None else tuple(row)

    def time_extent(self, collection: Collection) -> tuple[str, str] | None:
        if not collection.time_field or not self.path.exists():
            return None
        conn = connect(self.path, readonly=True)
        try:
            if not self._has_table(conn, collection.id):
                return None
            row = conn.execute(f'SELECT min("{collection.time_field}"), max("{collection.time_field}") '
                               f'FROM "{collection.id}"').fetchone()
        finally:
            conn.close()
        return None if row is None or row[0] is None else (str(row[0]), str(row[1]))

    def data_version(self) -> int:
        if not self.path.exists():
            return 0
        conn = connect(self.path, readonly=True)
        try:
            row = conn.execute("SELECT value FROM gdi_state WHERE key='data_version'").fetchone()
            return int(row[0]) if row else 0
        except sqlite3.OperationalError:
            return 0
        finally:
            conn.close()
