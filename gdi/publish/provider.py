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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyproj
import shapely
from pygeoapi.provider.base import (
    BaseProvider, ProviderConnectionError, ProviderInvalidQueryError, ProviderItemNotFoundError,
    ProviderQueryError,
)
from shapely.geometry import mapping

from gdi.publish.cql_sql import FilterError, SqlFilter
from gdi.store import gpkg_binary

LOGGER = logging.getLogger(__name__)
GEOM = "geom"
JSON_TYPES = {"TEXT": "string", "INTEGER": "integer", "DOUBLE": "number", "REAL": "number",
              "BOOLEAN": "boolean", "DATE": "string", "DATETIME": "string"}
JSON_FORMATS = {"DATE": "date", "DATETIME": "date-time"}

_local = threading.local()
_count_cache: dict[tuple, int] = {}
_count_lock = threading.Lock()


@functools.lru_cache(maxsize=512)
def _prepared(wkb: bytes) -> shapely.Geometry:
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


def _unaccent(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    import unicodedata

    return "".join(c for c in unicodedata.normalize("NFKD", value) if not unicodedata.combining(c))


def _connection(path: str) -> sqlite3.Connection:
    """One read-only connection per thread and file (providers are created per request)."""
    conns = getattr(_local, "conns", None)
    if conns is None:
        conns = _local.conns = {}
    conn = conns.get(path)
    if conn is None:
        if not Path(path).exists():
            raise ProviderConnectionError(f"store not found: {path}")
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False,
                               isolation_level=None, timeout=30)
        conn.execute("PRAGMA query_only = 1")
        gpkg_binary.register_functions(conn)
        conn.create_function("gdi_spatial", 3, _spatial, deterministic=True)
        conn.create_function("gdi_like", 3, _like, deterministic=True)
        conn.create_function("gdi_casei", 1, _casei, deterministic=True)
        conn.create_function("gdi_unaccent", 1, _unaccent, deterministic=True)
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


@functools.lru_cache(maxsize=64)
def _crs(text: str) -> pyproj.CRS:
    return pyproj.CRS.from_user_input(text)


@functools.lru_cache(maxsize=64)
def _transformer(src_wkt: str, dst_wkt: str, always_xy: bool) -> pyproj.Transformer:
    from gdi.ingest.crs import enable_grids

    enable_grids()
    return pyproj.Transformer.from_crs(pyproj.CRS.from_wkt(src_wkt), pyproj.CRS.from_wkt(dst_wkt), always_xy=always_xy)


class GpkgProvider(BaseProvider):
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
            self._fields = _table_fields(self.path, self.table)
        return self._fields

    # -- queries ------------------------------------------------------------
    def query(self, offset: int = 0, limit: int = 10, resulttype: str = "results", bbox: list | None = None,
              datetime_: str | None = None, properties: list | None = None, sortby: list | None = None,
              select_properties: list | None = None, skip_geometry: bool = False, q: str | None = None,
              filterq=None, crs_transform_spec=None, **kwargs) -> dict:
        where: list[str] = []
        params: list = []
        rtree = f"rtree_{self.table}_{self.geom}"
        if bbox:
            area = self._bbox_area(bbox)
            if area.is_empty:
                where.append("0")
            else:
                minx, miny, maxx, maxy = area.bounds
                inner = _inner_box(area)
                if inner is None:
                    where.append(f"fid IN (SELECT id FROM {rtree} WHERE minx <= ? AND maxx >= ? AND miny <= ? AND maxy >= ?)")
                    params += [maxx, minx, maxy, miny]
                    where.append(f'gdi_spatial(\'intersects\', "{self.geom}", ?)')
                    params.append(shapely.to_wkb(area))
                else:
                    # Envelopes inside a rectangle inscribed in the area match without decoding a
                    # geometry (nearly all of them); only those near the edges run the exact test.
                    where.append(
                        f"fid IN (SELECT id FROM {rtree} WHERE minx >= ? AND maxx <= ? AND miny >= ? AND maxy <= ?"
                        f' UNION ALL SELECT r.id FROM {rtree} r JOIN "{self.table}" e ON e.fid = r.id'
                        f" WHERE r.minx <= ? AND r.maxx >= ? AND r.miny <= ? AND r.maxy >= ?"
                        f" AND NOT (r.minx >= ? AND r.maxx <= ? AND r.miny >= ? AND r.maxy <= ?)"
                        f' AND gdi_spatial(\'intersects\', e."{self.geom}", ?))')
                    params += [inner[0], inner[2], inner[1], inner[3], maxx, minx, maxy, miny,
                               inner[0], inner[2], inner[1], inner[3], shapely.to_wkb(area)]
        for name, value in properties or []:
            if name not in self.fields:
                raise ProviderInvalidQueryError(user_msg=f"unknown property '{name}'")
            where.append(f'"{name}" = ?')
            params.append(value)
        if datetime_:
            clause, args = self._datetime(datetime_)
            where.append(clause)
            params += args
        if filterq is not None:
            sf = SqlFilter(self.table, set(self.fields), rtree, self.geom, envelope_to_storage=self._filter_envelope)
            try:
                where.append(sf.where(filterq))
            except FilterError as exc:
                raise ProviderInvalidQueryError(user_msg=f"invalid filter: {exc}") from exc
            params += sf.params
        if q:
            text_fields = [n for n, f in self.fields.items() if f["type"] == "string"]
            if text_fields:
                terms = [t for t in re.split(r"\s+", q.strip()) if t]
                for term in terms:
                    where.append("(" + " OR ".join(f'instr(lower("{n}"), lower(?)) > 0' for n in text_fields) + ")")
                    params += [term] * len(text_fields)
        where_sql = (" WHERE " + " AND ".join(where)) if where else ""
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

    def get(self, identifier, crs_transform_spec=None, **kwargs) -> dict:
        try:
            fid = int(str(identifier))
        except ValueError:
            raise ProviderItemNotFoundError(user_msg=f"item {identifier} not found")
        if not -2**63 <= fid < 2**63:
            raise ProviderItemNotFoundError(user_msg=f"item {identifier} not found")
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
    def _bbox_area(self, bbox: list) -> shapely.Geometry:
        """The bbox as the area the client meant, in the storage CRS.

        pygeoapi hands providers a bbox whose two corners were transformed to the
        storage CRS; a lon/lat rectangle is no rectangle in UTM, so the request's
        own bbox and bbox-crs are used when available and the rectangle's edges
        are densified before transforming.
        """
        b = [float(v) for v in bbox]
        storage_box = shapely.box(*((b[0], b[1], b[3], b[4]) if len(b) == 6 else b[:4]))
        try:
            from flask import has_request_context, request
        except ImportError:
            return storage_box
        if not has_request_context() or "bbox" not in request.args:
            return storage_box
        try:
            raw = [float(v) for v in request.args["bbox"].split(",")]
            raw = [raw[0], raw[1], raw[3], raw[4]] if len(raw) == 6 else raw
            src = request.args.get("bbox-crs") or "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
            src_crs = _crs(src)
        except (ValueError, IndexError, pyproj.exceptions.CRSError):
            return storage_box
        dst_crs = _crs(self.storage_crs.to_wkt()) if hasattr(self.storage_crs, "to_wkt") else None
        if dst_crs is None or src_crs == dst_crs:
            return shapely.box(*raw[:4])
        t = _transformer(src_crs.to_wkt(), dst_crs.to_wkt(), False)   # axis order of bbox-crs, as OGC API says
        boxes = [shapely.box(*raw[:4])]
        lon_first = src_crs.is_geographic and src_crs.axis_info and src_crs.axis_info[0].direction.lower() == "east"
        if lon_first:
            if raw[0] > raw[2]:       # crossing the antimeridian (OGC API Features 1, 7.15.3)
                boxes = [shapely.box(raw[0], raw[1], 180, raw[3]), shapely.box(-180, raw[1], raw[2], raw[3])]
            aou = dst_crs.area_of_use
            if aou is not None:       # outside its area of use a projection returns nonsense or inf
                use = shapely.box(aou.west, aou.south, aou.east, aou.north)
                boxes = [b.intersection(use) for b in boxes]
                boxes = [b for b in boxes if not b.is_empty and b.area > 0]
        parts = []
        for box in boxes:
            bx = box.bounds
            ring = shapely.segmentize(box, max_segment_length=max(bx[2] - bx[0], bx[3] - bx[1]) / 64 or 1)
            part = shapely.transform(ring, lambda c: np.column_stack(t.transform(c[:, 0], c[:, 1])))
            if np.isfinite(shapely.get_coordinates(part)).all():
                parts.append(part)
        return shapely.union_all(parts) if parts else shapely.Polygon()

    def _storage_crs(self) -> pyproj.CRS | None:
        return _crs(self.storage_crs.to_wkt()) if hasattr(self.storage_crs, "to_wkt") else None

    def _filter_envelope(self, box: shapely.Geometry) -> shapely.Geometry:
        """A CQL2 BBOX literal, given in filter-crs (default CRS84), as an area in the storage CRS."""
        src = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
        try:
            from flask import has_request_context, request

            if has_request_context():
                src = request.args.get("filter-crs") or src
        except ImportError:
            pass
        try:
            src_crs = _crs(src)
        except pyproj.exceptions.CRSError as exc:
            raise ProviderInvalidQueryError(user_msg=f"invalid filter-crs '{src}'") from exc
        dst_crs = self._storage_crs()
        if dst_crs is None or src_crs == dst_crs:
            return box
        t = _transformer(src_crs.to_wkt(), dst_crs.to_wkt(), False)
        minx, miny, maxx, maxy = box.bounds
        ring = shapely.segmentize(box, max_segment_length=max(maxx - minx, maxy - miny) / 64 or 1)
        return shapely.transform(ring, lambda c: np.column_stack(t.transform(c[:, 0], c[:, 1])))

    def _columns(self, select_properties: list | None) -> list[str]:
        names = list(self.fields)
        if select_properties:
            unknown = [p for p in select_properties if p not in self.fields]
            if unknown:
                raise ProviderInvalidQueryError(user_msg=f"unknown properties: {', '.join(unknown)}")
            names = [n for n in names if n in select_properties]
        return names

    def _order(self, sortby: list | None) -> str:
        parts = []
        for item in sortby or []:
            name = item.get("property")
            if name in {"id", "fid"}:
                col = "fid"
            elif name in self.fields:
                col = f'"{name}"'
            else:
                raise ProviderInvalidQueryError(user_msg=f"cannot sort by unknown property '{name}'")
            direction = "DESC" if item.get("order") == "-" else "ASC"
            parts.append(f"{col} {direction}")
        parts.append("fid ASC")
        return ", ".join(parts)

    def _count(self, conn: sqlite3.Connection, version: int, where_sql: str, params: list) -> int:
        key = (self.path, self.table, version, where_sql, tuple(params))
        with _count_lock:
            if key in _count_cache:
                return _count_cache[key]
        n = conn.execute(f'SELECT count(*) FROM "{self.table}"{where_sql}', params).fetchone()[0]
        with _count_lock:
            if len(_count_cache) > 10000:
                _count_cache.clear()
            _count_cache[key] = n
        return n

    def _datetime(self, value: str) -> tuple[str, list]:
        field = self.time_field
        if not field or field not in self.fields:
            raise ProviderInvalidQueryError(user_msg="this collection has no time property for datetime")
        if "/" in value:
            start, end = value.split("/", 1)
            clauses, args = [], []
            if start not in {"", ".."}:
                clauses.append(f'"{field}" >= ?')
                args.append(_instant(start, end=False))
            if end not in {"", ".."}:
                clauses.append(f'"{field}" <= ?')
                args.append(_instant(end, end=True))
            return ("(" + " AND ".join(clauses) + ")" if clauses else "(1)"), args
        return f'("{field}" >= ? AND "{field}" <= ?)', [_instant(value, end=False), _instant(value, end=True)]

    def _features(self, rows: list, columns: list[str], skip_geometry: bool, spec) -> list[dict]:
        geoms = None
        if not skip_geometry and rows:
            geoms = gpkg_binary.decode([r[1] for r in rows])
            if spec is not None:
                t = _transformer(spec.source_crs_wkt, spec.target_crs_wkt, bool(spec.always_xy))
                decimals = 7 if t.target_crs.is_geographic else 3   # ~1 cm / 1 mm: no float noise

                def fn(c: np.ndarray) -> np.ndarray:
                    x, y = t.transform(c[:, 0], c[:, 1])
                    return np.round(np.column_stack([x, y]), decimals)

                ok = np.array([g is not None for g in geoms])
                if ok.any():
                    geoms[ok] = shapely.transform(geoms[ok], fn)
        out = []
        for i, row in enumerate(rows):
            props = {c: v for c, v in zip(columns, row[2:])}
            geometry = None
            if geoms is not None and geoms[i] is not None:
                geometry = mapping(geoms[i])
            out.append({"type": "Feature", "id": row[0], "geometry": geometry, "properties": props})
        return out

    def __repr__(self) -> str:
        return f"<GpkgProvider> {self.path}#{self.table}"


def _instant(text: str, *, end: bool) -> str:
    """An RFC 3339 date or date-time as the stored UTC text form; a date covers its whole day."""
    text = text.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            d = datetime.fromisoformat(text).replace(tzinfo=UTC)
            if end:
                d = d + timedelta(days=1) - timedelta(seconds=1)
        else:
            d = datetime.fromisoformat(text.replace("z", "Z"))
            d = d.replace(tzinfo=UTC) if d.tzinfo is None else d.astimezone(UTC)
    except ValueError as exc:
        raise ProviderInvalidQueryError(user_msg=f"invalid datetime '{text}'") from exc
    return d.strftime("%Y-%m-%dT%H:%M:%SZ")


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
