"""pygeoapi feature provider for the PostGIS store.

pygeoapi's own PostgreSQL provider breaks spatial CQL with a CRS84 storage CRS,
swaps axes with EPSG:4326, answers 500 to a non-integer id and to an empty
``sortby``. This one keeps the data in EPSG:25832, transforms output itself,
binds every literal as a parameter, and runs count and page in one
REPEATABLE READ snapshot from a small connection pool.
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
from gdi.publish.provider_base import StoreProvider, _count_cache, _count_lock

LOGGER = logging.getLogger(__name__)
SCHEMA = "gdi"
JSON_TYPES = {"text": "string", "bigint": "integer", "integer": "integer", "double precision": "number",
              "boolean": "boolean"}
_pools: dict[str, ConnectionPool] = {}
_pools_lock = threading.Lock()
_fields_cache: dict[tuple[str, str], dict] = {}


def _pool(url: str) -> ConnectionPool:
    with _pools_lock:
        pool = _pools.get(url)
        if pool is None:
            pool = ConnectionPool(url, min_size=1, max_size=8, open=True, timeout=30,
                                  kwargs={"autocommit": False, "connect_timeout": 10})
            _pools[url] = pool
        return pool


class PgFilter(SqlFilter):
    """CQL2 → PostGIS: same checks as the GeoPackage translation, PostGIS functions."""

    srid: int = 25832

    def _spatial_sql(self, op: str, other: shapely.Geometry, prefilter: bool) -> str:
        self.params.append(shapely.to_wkb(other))
        return f"ST_{op.capitalize()}(geom, ST_GeomFromWKB(?, {int(self.srid)}))"

    def _node(self, node) -> str:
        from pygeofilter import ast

        from gdi.publish.cql_sql import _like_pattern

        if isinstance(node, ast.Like):
            lhs = self._attr(node.lhs)
            self.params.append(_like_pattern(node))
            expr = f"({lhs}::text {'~*' if node.nocase else '~'} ?)"
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
            self._fields = dict(_fields_cache[key])
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
            with _pool(self.url).connection() as conn:
                conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
                conn.read_only = True
                try:
                    version = conn.execute(f"SELECT value FROM {SCHEMA}.state WHERE key = 'data_version'").fetchone()[0]
                    key = (self.url, self.table, version, where_sql, tuple(params))
                    with _count_lock:
                        matched = _count_cache.get(key)
                    if matched is None:
                        matched = conn.execute(_pg(f"SELECT count(*) FROM {table}{where_sql}"), params).fetchone()[0]
                        with _count_lock:
                            if len(_count_cache) > 10000:
                                _count_cache.clear()
                            _count_cache[key] = matched
                    features: list = []
                    if resulttype != "hits" and limit > 0:
                        geom = "NULL" if skip_geometry else "ST_AsBinary(geom)"
                        cols = "".join(f', "{c}"' for c in columns)
                        rows = conn.execute(
                            _pg(f"SELECT fid, {geom}{cols} FROM {table}{where_sql} ORDER BY {order} LIMIT ? OFFSET ?"),
                            [*params, int(limit), min(int(offset), matched)]).fetchall()
                        features = self._features(rows, columns, skip_geometry, crs_transform_spec)
                finally:
                    conn.rollback()
                    conn.read_only = False
                    conn.isolation_level = None
        except psycopg.Error as exc:
            LOGGER.error("query failed: %s", exc)
            raise ProviderQueryError(user_msg="query failed") from exc
        return {"type": "FeatureCollection", "features": features, "numberMatched": matched,
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
                      text_functions={"lower": "lower", "casei": "lower", "accenti": "gdi_unaccent"})
        sf.srid = self.srid
        return sf

    def get(self, identifier, crs_transform_spec=None, **kwargs) -> dict:
        fid = self._fid(identifier)
        columns = list(self.fields)
        cols = "".join(f', "{c}"' for c in columns)
        try:
            with _pool(self.url).connection() as conn:
                row = conn.execute(f'SELECT fid, ST_AsBinary(geom){cols} FROM {SCHEMA}."{self.table}" WHERE fid = %s',
                                   (fid,)).fetchone()
                conn.rollback()
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
