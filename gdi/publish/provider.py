"""pygeoapi feature provider for the embedded GeoPackage store.

pygeoapi's own SQLiteGPKG provider needs mod_spatialite, writes to the file on
every read and ignores filter/sortby. This one reads the GeoPackage with plain
sqlite3 in read-only mode, prefilters bbox and spatial CQL2 with the R-tree,
evaluates exact predicates with shapely, pages in SQL, and caches counts per
data version. Each request runs in one read transaction, so a page and its
numberMatched come from the same snapshot even while an ingest commits.
"""
from __future__ import annotations

import functools
import logging
import re
import sqlite3
import threading
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from pygeoapi.provider.base import (
    ProviderConnectionError, ProviderItemNotFoundError,
    ProviderQueryError,
)

from gdi.files import connect_readonly
from gdi.publish.cql_sql import SqlFilter, unaccent
from gdi.publish.provider_base import StoreProvider, cached_count, remember_count
from gdi.store import gpkg_binary
from gdi.thread_cache import per_thread_lru_cache

LOGGER = logging.getLogger(__name__)
GEOM = "geom"
JSON_TYPES = {"TEXT": "string", "INTEGER": "integer", "DOUBLE": "number", "REAL": "number",
              "BOOLEAN": "boolean", "DATE": "string", "DATETIME": "string"}
JSON_FORMATS = {"DATE": "date", "DATETIME": "date-time"}

_local = threading.local()


@per_thread_lru_cache(maxsize=512)
def _prepared(wkb: bytes) -> shapely.Geometry:
    """The request's area, prepared once per thread: GEOS builds a prepared geometry's indexes
    lazily on first use, and two request threads doing that at once on one shared object
    corrupted the heap (workers aborted with "malloc(): unaligned tcache chunk detected")."""
    g = shapely.from_wkb(wkb)
    shapely.prepare(g)
    return g


def _spatial(op: str, blob: bytes | None, wkb: bytes) -> int | None:
    if blob is None:
        return None
    other = _prepared(wkb)
    geom = gpkg_binary._geom(bytes(blob))
    if op == "intersects":
        return int(shapely.intersects(other, geom))
    if op == "within":                    # feature within other
        return int(shapely.contains(other, geom))
    if op == "contains":                  # feature contains other
        return int(shapely.within(other, geom))
    return int(getattr(shapely, op)(geom, other))


@functools.lru_cache(maxsize=256)
def _regex(pattern: str, nocase: int) -> re.Pattern:
    return re.compile(pattern, re.S | (re.I if nocase else 0))


def _like(value: Any, pattern: str, nocase: int) -> int | None:
    if value is None:
        return None
    return int(_regex(pattern, nocase).match(str(value)) is not None)


def _casei(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def _connection(path: str) -> sqlite3.Connection:
    """One read-only connection per thread and file (providers are created per request)."""
    conns = getattr(_local, "conns", None)
    if conns is None:
        conns = _local.conns = {}
    conn = conns.get(path)
    if conn is None:
        if not Path(path).exists():
            raise ProviderConnectionError(f"store not found: {path}")
        conn = connect_readonly(path)
        gpkg_binary.register_functions(conn)
        conn.create_function("gdi_spatial", 3, _spatial, deterministic=True)
        conn.create_function("gdi_like", 3, _like, deterministic=True)
        conn.create_function("gdi_casei", 1, _casei, deterministic=True)
        conn.create_function("gdi_unaccent", 1, unaccent, deterministic=True)
        conns[path] = conn
    return conn


def _inner_box(area: shapely.Geometry) -> tuple[float, float, float, float] | None:
    """An axis-aligned rectangle inside ``area`` covering most of it (a lon/lat box in UTM is
    a slightly rotated quadrilateral), or None when shrinking its bounds by up to half finds none."""
    minx, miny, maxx, maxy = area.bounds
    w, h = maxx - minx, maxy - miny
    if w <= 0 or h <= 0:
        return None
    shapely.prepare(area)
    for f in (0.001, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.25):
        box = (minx + w * f, miny + h * f, maxx - w * f, maxy - h * f)
        if area.contains(shapely.box(*box)):
            return box
    return None


def envelope_clause(table: str, geom: str, area: shapely.Geometry) -> tuple[str, list]:
    """The WHERE clause (and parameters) of the features whose R-tree envelope meets area's bounds."""
    minx, miny, maxx, maxy = area.bounds
    return (f"fid IN (SELECT id FROM rtree_{table}_{geom} WHERE minx <= ? AND maxx >= ? AND miny <= ? AND maxy >= ?)",
            [maxx, minx, maxy, miny])


def bbox_clause(table: str, geom: str, area: shapely.Geometry) -> tuple[list[str], list]:
    """The WHERE clauses (and parameters) of the features intersecting area: R-tree prefilter, exact test
    where needed. The items bbox and the vector tiles (gdi/publish/tile_provider.py) share it."""
    rtree = f"rtree_{table}_{geom}"
    where: list[str] = []
    params: list = []
    minx, miny, maxx, maxy = area.bounds
    inner = _inner_box(area)
    if inner is None:
        clause, params = envelope_clause(table, geom, area)
        where.append(clause)
        where.append(f'gdi_spatial(\'intersects\', "{geom}", ?)')
        params.append(shapely.to_wkb(area))
    else:
        # Envelopes inside a rectangle inscribed in the area match without decoding a
        # geometry (nearly all of them); only those near the edges run the exact test.
        where.append(
            f"fid IN (SELECT id FROM {rtree} WHERE minx >= ? AND maxx <= ? AND miny >= ? AND maxy <= ?"
            f' UNION ALL SELECT r.id FROM {rtree} r JOIN "{table}" e ON e.fid = r.id'
            f" WHERE r.minx <= ? AND r.maxx >= ? AND r.miny <= ? AND r.maxy >= ?"
            f" AND NOT (r.minx >= ? AND r.maxx <= ? AND r.miny >= ? AND r.maxy <= ?)"
            f' AND gdi_spatial(\'intersects\', e."{geom}", ?))')
        params += [inner[0], inner[2], inner[1], inner[3], maxx, minx, maxy, miny,
                   inner[0], inner[2], inner[1], inner[3], shapely.to_wkb(area)]
    return where, params


class GpkgProvider(StoreProvider):
    """Read-only, snapshot-consistent GeoPackage provider."""

    def __init__(self, provider_def: dict):
        super().__init__(provider_def)
        self.table = provider_def.get("table") or provider_def["name"]
        self.path = str(Path(self.data).resolve())
        self.id_field = "fid"
        self.geom = GEOM
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.table):
            raise ProviderConnectionError(f"invalid table name {self.table!r}")
        self.get_fields()

    # -- schema -------------------------------------------------------------
    def get_fields(self) -> dict:
        if not self._fields:
            self._fields = self._declared(_table_fields(self.path, self.table))
        return self._fields

    # -- queries ------------------------------------------------------------
    def query(self, offset: int = 0, limit: int = 10, resulttype: str = "results", bbox: list | None = None,
              datetime_: str | None = None, properties: list | None = None, sortby: list | None = None,
              select_properties: list | None = None, skip_geometry: bool = False, q: str | None = None,
              filterq=None, crs_transform_spec=None, **kwargs) -> dict:
        where_sql, params = self._where(bbox, properties, datetime_, filterq, q)
        order = self._order(sortby)
        columns = self._columns(select_properties)
        conn = _connection(self.path)
        try:
            conn.execute("BEGIN")
            try:
                version = conn.execute("SELECT value FROM gdi_state WHERE key='data_version'").fetchone()[0]
                matched = self._count(conn, version, where_sql, params)
                features: list = []
                if resulttype != "hits" and limit > 0:
                    sql = (f'SELECT fid, {"NULL" if skip_geometry else chr(34) + self.geom + chr(34)}'
                           f'{"".join(", " + chr(34) + c + chr(34) for c in columns)} FROM "{self.table}"'
                           f"{where_sql} ORDER BY {order} LIMIT ? OFFSET ?")
                    rows = conn.execute(sql, [*params, int(limit), min(int(offset), matched)]).fetchall()
                    features = self._features(rows, columns, skip_geometry, crs_transform_spec)
            finally:
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            LOGGER.error("query failed: %s", exc)
            raise ProviderQueryError(user_msg="query failed") from exc
        return {
            "type": "FeatureCollection",
            "features": features,
            "numberMatched": matched,
            "numberReturned": len(features),
        }

    # -- SQL of this store (the request semantics are in StoreProvider._where) -------------
    TEXT_CONTAINS = 'instr(lower("{col}"), lower(?)) > 0'

    def _bbox_clause(self, area: shapely.Geometry) -> tuple[list[str], list]:
        return bbox_clause(self.table, self.geom, area)

    def _filter(self) -> SqlFilter:
        return SqlFilter(self.table, set(self.fields), f"rtree_{self.table}_{self.geom}", self.geom,
                         envelope_to_storage=self._filter_envelope, temporal=self._temporal_fields())

    def get(self, identifier, crs_transform_spec=None, **kwargs) -> dict:
        fid = self._fid(identifier)
        columns = list(self.fields)
        conn = _connection(self.path)
        row = conn.execute(
            f'SELECT fid, "{self.geom}"{"".join(", " + chr(34) + c + chr(34) for c in columns)} '
            f'FROM "{self.table}" WHERE fid = ?', (fid,)).fetchone()
        if row is None:
            raise ProviderItemNotFoundError(user_msg=f"item {identifier} not found")
        feature = self._features([row], columns, False, crs_transform_spec)[0]
        return feature

    # -- helpers ------------------------------------------------------------
    def _count(self, conn: sqlite3.Connection, version: int, where_sql: str, params: list) -> int:
        key = (self.path, self.table, version, where_sql, tuple(params))
        n = cached_count(key)
        if n is None:
            n = conn.execute(f'SELECT count(*) FROM "{self.table}"{where_sql}', params).fetchone()[0]
            remember_count(key, n)
        return n

    @staticmethod
    def _decode(blobs: list) -> np.ndarray:
        return gpkg_binary.decode(blobs)

    def __repr__(self) -> str:
        return f"<GpkgProvider> {self.path}#{self.table}"


@functools.lru_cache(maxsize=64)
def _table_fields_cached(path: str, table: str, mtime: float) -> dict:
    conn = _connection(path)
    rows = conn.execute(f'PRAGMA table_info("{table}")').fetchall()
    if not rows:
        raise ProviderConnectionError(f"table {table} not found in {path}")
    fields = {}
    for _, name, ctype, *_ in rows:
        if name in {"fid", GEOM}:
            continue
        ctype = (ctype or "TEXT").upper()
        spec = {"type": JSON_TYPES.get(ctype, "string")}
        if ctype in JSON_FORMATS:
            spec["format"] = JSON_FORMATS[ctype]
        fields[name] = spec
    return fields


def _table_fields(path: str, table: str) -> dict:
    try:
        mtime = Path(path).stat().st_mtime
    except OSError as exc:
        raise ProviderConnectionError(f"store not found: {path}") from exc
    return dict(_table_fields_cached(path, table, mtime))
