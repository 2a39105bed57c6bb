"""pygeoapi feature provider for the PostGIS store.

pygeoapi's own PostgreSQL provider breaks spatial CQL with a CRS84 storage CRS,
swaps axes with EPSG:4326, answers 500 to a non-integer id and to an empty
``sortby``. This one keeps the data in EPSG:25832, transforms output itself,
binds every literal as a parameter, and answers a page with its count and the
data version in one statement (one snapshot); the rare rest (hits, pages past
the end) runs count and page in one REPEATABLE READ transaction.

Reads go to the read replica (``GDI_STORE_READ``) when there is one: every read
returns the data version of its snapshot, and one older than the version the
HTTP layer stamps the answer with is read again from the primary (gdi.store.replica).
"""
from __future__ import annotations

import logging
import re
import threading

import numpy as np
import psycopg
import shapely
from psycopg_pool import ConnectionPool
from pygeoapi.provider.base import (
    ProviderConnectionError, ProviderInvalidQueryError, ProviderItemNotFoundError, ProviderQueryError,
)

from gdi.publish.cql_sql import SqlFilter
from gdi.publish.provider_base import StoreProvider, cached_count, remember_count
from gdi.store import replica

LOGGER = logging.getLogger(__name__)
SCHEMA = "gdi"
JSON_TYPES = {"text": "string", "bigint": "integer", "integer": "integer", "double precision": "number",
              "boolean": "boolean"}
_pools: dict[tuple[str, bool], ConnectionPool] = {}
_pools_lock = threading.Lock()
_fields_cache: dict[tuple[str, str], dict] = {}
_last_version: dict[str, int] = {}      # per store: the data version the previous request saw
VERSION = f"(SELECT value FROM {SCHEMA}.state WHERE key = 'data_version')"
READ_APPLICATION = "gdi-read"           # application_name of the connections to the read replica
APPLICATION = "gdi"


def _pool(url: str, autocommit: bool = False) -> ConnectionPool:
    """Connections per store; autocommit ones answer single statements without BEGIN/ROLLBACK
    (two round trips less, ~0.3 ms per request). A replica's connections are named ``gdi-read`` in
    pg_stat_activity and wait 2 s, not 30, for a connection (with up to 8 server.threads no thread waits
    for one otherwise): the primary answers when the replica is down."""
    with _pools_lock:
        pool = _pools.get((url, autocommit))
        if pool is None:
            read_only = replica.is_replica(url)
            pool = ConnectionPool(url, min_size=1, max_size=8, open=True, timeout=2 if read_only else 30,
                                  kwargs={"autocommit": autocommit, "connect_timeout": 2 if read_only else 10,
                                          "application_name": READ_APPLICATION if read_only else APPLICATION})
            _pools[(url, autocommit)] = pool
        return pool


class PgFilter(SqlFilter):
    """CQL2 → PostGIS: same checks as the GeoPackage translation, PostGIS functions."""

    srid: int = 25832

    def _spatial_sql(self, op: str, other: shapely.Geometry, prefilter: bool) -> str:
        self.params.append(shapely.to_wkb(other))
        return f"ST_{op.capitalize()}(geom, ST_GeomFromWKB(?, {int(self.srid)}))"

    def _node(self, node) -> str:
        from pygeofilter import ast

        if isinstance(node, ast.Like):
            lhs, pattern, nocase = self._like_parts(node)
            self.params.append(pattern)
            expr = f"({lhs}::text {'~*' if nocase else '~'} ?)"
            return f"(NOT {expr})" if node.not_ else expr
        return super()._node(node)


def _pg(sql: str) -> str:
    """Our SQL uses ? placeholders; psycopg wants %s."""
    return sql.replace("%", "%%").replace("?", "%s")


class PostgisProvider(StoreProvider):
    NULLS = {False: " NULLS FIRST", True: " NULLS LAST"}   # as SQLite sorts them

    def __init__(self, provider_def: dict):
        super().__init__(provider_def)
        self.table = provider_def.get("table") or provider_def["name"]
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", self.table):
            raise ProviderConnectionError(f"invalid table name {self.table!r}")
        self.url = self.data
        self.id_field = "fid"
        self.srid = int(str(provider_def.get("storage_crs", "25832")).rstrip("/").split("/")[-1])
        self.get_fields()

    def get_fields(self) -> dict:
        if not self._fields:
            key = (self.url, self.table)
            if key not in _fields_cache:
                try:
                    with _pool(self.url).connection() as conn:
                        rows = conn.execute(
                            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = %s "
                            "AND table_name = %s ORDER BY ordinal_position", (SCHEMA, self.table)).fetchall()
                        conn.rollback()
                except psycopg.Error as exc:
                    raise ProviderConnectionError(f"cannot read table {self.table}") from exc
                if not rows:
                    raise ProviderConnectionError(f"table {SCHEMA}.{self.table} not found")
                fields = {}
                for name, dtype in rows:
                    if name in {"fid", "geom"}:
                        continue
                    fields[name] = {"type": JSON_TYPES.get(dtype, "string")}
                _fields_cache[key] = fields
            self._fields = self._declared(_fields_cache[key])
        return self._fields

    def query(self, offset: int = 0, limit: int = 10, resulttype: str = "results", bbox: list | None = None,
              datetime_: str | None = None, properties: list | None = None, sortby: list | None = None,
              select_properties: list | None = None, skip_geometry: bool = False, q: str | None = None,
              filterq=None, crs_transform_spec=None, **kwargs) -> dict:
        where_sql, params = self._where(bbox, properties, datetime_, filterq, q)
        if any(isinstance(p, str) and "\x00" in p for p in params):   # PostgreSQL text cannot hold NUL
            raise ProviderInvalidQueryError(user_msg="query values must not contain NUL (0x00) characters")
        order = self._order(sortby)
        columns = self._columns(select_properties)
        table = f'{SCHEMA}."{self.table}"'
        try:
            if resulttype != "hits" and limit > 0:
                found = replica.read(self.url, lambda url: self._page_at_once(
                    url, table, where_sql, params, order, columns, int(limit), int(offset), skip_geometry,
                    crs_transform_spec))
                if found is not None:
                    return found
            matched, features = replica.read(self.url, lambda url: self._counted(
                url, table, where_sql, params, order, columns, resulttype, int(limit), int(offset), skip_geometry,
                crs_transform_spec))
        except psycopg.Error as exc:
            LOGGER.error("query failed: %s", exc)
            raise ProviderQueryError(user_msg="query failed") from exc
        return {"type": "FeatureCollection", "features": features, "numberMatched": matched,
                "numberReturned": len(features)}

    def _counted(self, url: str, table: str, where_sql: str, params: list, order: str, columns: list[str],
                 resulttype: str, limit: int, offset: int, skip_geometry: bool, spec) -> tuple[int, tuple[int, list]]:
        """(data version, (numberMatched, features)): count and page in one REPEATABLE READ transaction."""
        with _pool(url).connection() as conn:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            try:
                version = conn.execute(f"SELECT value FROM {SCHEMA}.state WHERE key = 'data_version'").fetchone()[0]
                key = (self.url, self.table, version, where_sql, tuple(params))
                matched = cached_count(key)
                if matched is None:
                    matched = conn.execute(_pg(f"SELECT count(*) FROM {table}{where_sql}"), params).fetchone()[0]
                    remember_count(key, matched)
                features: list = []
                if resulttype != "hits" and limit > 0:
                    geom = "NULL" if skip_geometry else "ST_AsBinary(geom)"
                    cols = "".join(f', "{c}"' for c in columns)
                    rows = conn.execute(
                        _pg(f"SELECT fid, {geom}{cols} FROM {table}{where_sql} ORDER BY {order} LIMIT ? OFFSET ?"),
                        [*params, limit, min(offset, matched)]).fetchall()
                    features = self._features(rows, columns, skip_geometry, spec)
            finally:
                conn.rollback()
                conn.read_only = False
                conn.isolation_level = None
        return version, (matched, features)

    def _page_at_once(self, url: str, table: str, where_sql: str, params: list, order: str, columns: list[str],
                      limit: int, offset: int, skip_geometry: bool, spec) -> tuple[int | None, dict | None]:
        """(data version, page): the page, its numberMatched and the data version in one statement (one
        snapshot, one round trip, autocommit). The count is a window over the matches, computed unless
        the count for the data version the previous request saw is cached; the page is None when the
        answer needs the full path (no rows on this page — the version is None then, nothing was read —
        or the data changed and the count was not computed)."""
        if offset > 2**53:          # beyond bigint arithmetic: the full path answers with the count
            return None, None
        assumed = _last_version.get(self.url)
        cached = cached_count((self.url, self.table, assumed, where_sql, tuple(params)))
        geom = "NULL" if skip_geometry else "ST_AsBinary(geom)"
        cols = "".join(f', "{c}"' for c in columns)
        if cached is not None:
            sql = (f"SELECT {VERSION}, NULL::bigint, fid, {geom}{cols} FROM {table}{where_sql} "
                   f"ORDER BY {order} LIMIT ? OFFSET ?")
        else:   # count and choose the page on (fid, geom) only; fetch the other columns for the page alone
            sql = (f"SELECT {VERSION}, gdi_matched, fid, {geom}{cols} FROM (SELECT fid, count(*) OVER () AS gdi_matched "
                   f"FROM {table}{where_sql} ORDER BY {order} LIMIT ? OFFSET ?) AS page JOIN {table} USING (fid) "
                   f"ORDER BY {order}")
        with _pool(url, autocommit=True).connection() as conn:
            rows = conn.execute(_pg(sql), [*params, limit, offset]).fetchall()
        if not rows:
            return None, None
        version, counted = rows[0][0], rows[0][1]
        _last_version[self.url] = version
        if counted is not None:
            matched = int(counted)
            remember_count((self.url, self.table, version, where_sql, tuple(params)), matched)
        elif version == assumed:
            matched = cached
        else:
            return version, None
        features = self._features([r[2:] for r in rows], columns, skip_geometry, spec)
        return version, {"type": "FeatureCollection", "features": features, "numberMatched": matched,
                         "numberReturned": len(features)}

    # -- SQL of this store (the request semantics are in StoreProvider._where) -------------
    TEXT_CONTAINS = 'strpos(lower("{col}"), lower(?)) > 0'

    def _bbox_clause(self, area: shapely.Geometry) -> tuple[list[str], list]:
        return ([f"(geom && ST_GeomFromWKB(?, {self.srid}) AND ST_Intersects(geom, ST_GeomFromWKB(?, {self.srid})))"],
                [shapely.to_wkb(shapely.box(*area.bounds)), shapely.to_wkb(area)])

    def _property_clause(self, name: str, value) -> tuple[str, list]:
        return f'"{name}"::text = ?', [str(value)]

    def _filter(self) -> SqlFilter:
        sf = PgFilter(self.table, set(self.fields), "", "geom", envelope_to_storage=self._filter_envelope,
                      text_functions={"lower": "lower", "casei": "lower", "accenti": "gdi_unaccent"},
                      temporal=self._temporal_fields())
        sf.srid = self.srid
        return sf

    def get(self, identifier, crs_transform_spec=None, **kwargs) -> dict:
        fid = self._fid(identifier)
        columns = list(self.fields)
        cols = "".join(f', f."{c}"' for c in columns)

        def read(url: str) -> tuple[int, tuple | None]:
            """(data version, the feature's row or None): the version row joined with the feature, so a
            missing feature still tells the version of the snapshot that found it missing."""
            with _pool(url, autocommit=True).connection() as conn:
                row = conn.execute(f'SELECT s.value, f.fid, ST_AsBinary(f.geom){cols} FROM {SCHEMA}.state s '
                                   f'LEFT JOIN {SCHEMA}."{self.table}" f ON f.fid = %s WHERE s.key = %s',
                                   (fid, "data_version")).fetchone()
            if row is None:             # no data version at all: nothing was ever published
                return None, None
            return row[0], (row[1:] if row[1] is not None else None)

        try:
            row = replica.read(self.url, read)
        except psycopg.Error as exc:
            raise ProviderQueryError(user_msg="query failed") from exc
        if row is None:
            raise ProviderItemNotFoundError(user_msg=f"item {identifier} not found")
        return self._features([row], columns, False, crs_transform_spec)[0]

    @staticmethod
    def _decode(blobs: list) -> np.ndarray:
        return shapely.from_wkb(np.array([None if b is None else bytes(b) for b in blobs], dtype=object))

    def __repr__(self) -> str:
        return f"<PostgisProvider> {self.table}"
