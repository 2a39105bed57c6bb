"""What the GeoPackage and PostGIS providers share: request semantics, not SQL dialects.

The bbox and BBOX literals as the client meant them, properties, sort order,
datetime intervals and the GeoJSON output with our own cached CRS transform
are the same for every store; each provider supplies its connection, its SQL
for spatial tests and how its geometries are decoded.
"""
from __future__ import annotations

import functools
import re
import threading
from datetime import UTC, datetime, timedelta

import numpy as np
import pyproj
import shapely
from pygeoapi.provider.base import BaseProvider, ProviderInvalidQueryError, ProviderItemNotFoundError
from shapely.geometry import mapping

from gdi.publish.cql_sql import DATE_FORMATS, FilterError
from gdi.thread_cache import per_thread_lru_cache

_count_cache: dict[tuple, int] = {}
_count_lock = threading.Lock()


def cached_count(key: tuple) -> int | None:
    """numberMatched remembered for (store, table, data version, WHERE, parameters)."""
    with _count_lock:
        return _count_cache.get(key)


def remember_count(key: tuple, n: int) -> None:
    with _count_lock:
        if len(_count_cache) > 10000:
            _count_cache.clear()
        _count_cache[key] = n


@functools.lru_cache(maxsize=64)
def _crs(text: str) -> pyproj.CRS:
    return pyproj.CRS.from_user_input(text)


@functools.lru_cache(maxsize=64)
def _wkt(srs: str) -> str:
    """A CRS's WKT by its definition text: ``CRS.to_wkt()`` costs ~0.2 ms, too much per request."""
    return pyproj.CRS.from_user_input(srs).to_wkt()


@functools.lru_cache(maxsize=64)
def _same_crs(a: str, b: str) -> bool:
    return _crs(a) == _crs(b)


@functools.lru_cache(maxsize=64)
def _decimals(wkt: str) -> int:
    """Output precision: ~1 cm in degrees, 1 mm in metres (no float noise)."""
    return 7 if _crs(wkt).is_geographic else 3


@functools.lru_cache(maxsize=64)
def _lon_first(wkt: str) -> bool:
    crs = _crs(wkt)
    return bool(crs.is_geographic and crs.axis_info and crs.axis_info[0].direction.lower() == "east")


@functools.lru_cache(maxsize=64)
def _area_of_use(wkt: str) -> tuple[float, float, float, float] | None:
    """(west, south, east, north); a plain tuple: a cached *prepared* geometry would be shared by
    request threads, and GEOS prepared geometries are not thread-safe."""
    aou = _crs(wkt).area_of_use
    return None if aou is None else (aou.west, aou.south, aou.east, aou.north)


def _storage_wkt(storage_crs) -> str | None:
    return _wkt(storage_crs.srs) if hasattr(storage_crs, "srs") else None


@per_thread_lru_cache(maxsize=64)
def _transformer(src_wkt: str, dst_wkt: str, always_xy: bool) -> pyproj.Transformer:
    """One transformer per thread and CRS pair: pyproj transformers are not thread-safe."""
    from gdi.crs import enable_grids

    enable_grids()
    return pyproj.Transformer.from_crs(pyproj.CRS.from_wkt(src_wkt), pyproj.CRS.from_wkt(dst_wkt), always_xy=always_xy)


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



def projected_box(box: shapely.Geometry, t: pyproj.Transformer) -> shapely.Geometry:
    """A rectangle as the area it covers in another CRS: its edges cut into 64 pieces each before
    transforming (a straight edge in one CRS is a curve in the other). The bbox of items and the box
    of a vector tile both go through here, so a tile holds what items returns for its box."""
    minx, miny, maxx, maxy = box.bounds
    ring = shapely.segmentize(box, max_segment_length=max(maxx - minx, maxy - miny) / 64 or 1)
    return shapely.transform(ring, lambda c: np.column_stack(t.transform(c[:, 0], c[:, 1])))


def _geojson_geometries(geoms: np.ndarray, t: pyproj.Transformer | None = None,
                        decimals: int | None = None) -> list[dict | None]:
    """GeoJSON geometry objects, transformed by t (rounded to decimals) when given.

    Points (most of what we serve) go straight from one coordinate array through one
    transform call into dicts; other geometries through shapely (``transform``, ``mapping``).
    """
    def fn(c: np.ndarray) -> np.ndarray:
        x, y = t.transform(c[:, 0], c[:, 1])
        return np.round(np.column_stack([x, y]), decimals)

    out: list[dict | None] = [None] * len(geoms)
    present = ~shapely.is_missing(geoms)
    points = present & (shapely.get_type_id(geoms) == 0) & ~shapely.is_empty(geoms) & ~shapely.has_z(geoms)
    if points.any():
        xy = shapely.get_coordinates(geoms[points])
        if t is not None:
            xy = fn(xy)
        for i, c in zip(np.nonzero(points)[0].tolist(), xy.tolist()):
            out[i] = {"type": "Point", "coordinates": c}
    others = np.nonzero(present & ~points)[0]
    if len(others):
        shaped = shapely.transform(geoms[others], fn) if t is not None else geoms[others]
        for i, g in zip(others.tolist(), shaped):
            out[i] = mapping(g)
    return out


class StoreProvider(BaseProvider):
    """Shared behaviour of our feature providers."""

    NULLS = {False: "", True: ""}      # how NULLs sort, per direction (descending?)

    TEXT_CONTAINS = ""                 # SQL testing that column {col} contains the bound term

    def _declared(self, stored: dict) -> dict:
        """The stored columns typed as the collection declares them (``options.properties`` in the
        provider config, written by gdi.publish.config): a date column is a string of format date,
        not just text. Columns the definition does not know keep the type read from the table."""
        declared = (self.options or {}).get("properties") or {}
        return {name: dict(declared.get(name, spec)) for name, spec in stored.items()}

    def _temporal_fields(self) -> dict[str, str]:
        """The properties CQL2's temporal predicates may name: the date and date-time ones, by format."""
        return {n: f["format"] for n, f in self.fields.items() if f.get("format") in DATE_FORMATS}

    @staticmethod
    def _decode(blobs: list) -> np.ndarray:
        raise NotImplementedError

    def _bbox_clause(self, area: shapely.Geometry) -> tuple[list[str], list]:
        raise NotImplementedError

    def _filter(self):
        raise NotImplementedError

    @staticmethod
    def _fid(identifier) -> int:
        """The 64-bit integer id an item URL names; anything else is an unknown item (404, never 500)."""
        try:
            fid = int(str(identifier))
        except ValueError:
            raise ProviderItemNotFoundError(user_msg=f"item {identifier} not found") from None
        if not -2**63 <= fid < 2**63:
            raise ProviderItemNotFoundError(user_msg=f"item {identifier} not found")
        return fid

    def _property_clause(self, name: str, value) -> tuple[str, list]:
        return f'"{name}" = ?', [value]

    def _where(self, bbox, properties, datetime_, filterq, q) -> tuple[str, list]:
        """The WHERE clause (with ? placeholders) and its parameters for one items request."""
        where: list[str] = []
        params: list = []
        if bbox:
            area = self._bbox_area(bbox)
            if area.is_empty:
                where.append("FALSE")
            else:
                clauses, args = self._bbox_clause(area)
                where += clauses
                params += args
        for name, value in properties or []:
            if name not in self.fields:
                raise ProviderInvalidQueryError(user_msg=f"unknown property '{name}'")
            clause, args = self._property_clause(name, value)
            where.append(clause)
            params += args
        if datetime_:
            clause, args = self._datetime(datetime_)
            where.append(clause)
            params += args
        if filterq is not None:
            sf = self._filter()
            try:
                where.append(sf.where(filterq))
            except FilterError as exc:
                raise ProviderInvalidQueryError(user_msg=f"invalid filter: {exc}") from exc
            params += sf.params
        if q:
            text_fields = [n for n, f in self.fields.items() if f["type"] == "string"]
            if text_fields:
                for term in [t for t in re.split(r"\s+", q.strip()) if t]:
                    where.append("(" + " OR ".join(self.TEXT_CONTAINS.format(col=n) for n in text_fields) + ")")
                    params += [term] * len(text_fields)
        return (" WHERE " + " AND ".join(where)) if where else "", params

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
            src_wkt = _wkt(src)
        except (ValueError, IndexError, pyproj.exceptions.CRSError):
            return storage_box
        dst_wkt = _storage_wkt(self.storage_crs)
        if dst_wkt is None or _same_crs(src_wkt, dst_wkt):
            return shapely.box(*raw[:4])
        t = _transformer(src_wkt, dst_wkt, False)   # axis order of bbox-crs, as OGC API says
        boxes = [shapely.box(*raw[:4])]
        if _lon_first(src_wkt):
            if raw[0] > raw[2]:       # crossing the antimeridian (OGC API Features 1, 7.15.3)
                boxes = [shapely.box(raw[0], raw[1], 180, raw[3]), shapely.box(-180, raw[1], raw[2], raw[3])]
            aou = _area_of_use(dst_wkt)
            if aou is not None:       # outside its area of use a projection returns nonsense or inf
                w, s_, e, n = aou
                if not all(w <= b.bounds[0] and s_ <= b.bounds[1] and b.bounds[2] <= e and b.bounds[3] <= n
                           for b in boxes):
                    use = shapely.box(w, s_, e, n)
                    boxes = [b.intersection(use) for b in boxes]
                    boxes = [b for b in boxes if not b.is_empty and b.area > 0]
        parts = []
        for box in boxes:
            part = projected_box(box, t)
            if np.isfinite(shapely.get_coordinates(part)).all():
                parts.append(part)
        if len(parts) == 1:
            return parts[0]
        return shapely.union_all(parts) if parts else shapely.Polygon()

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
            src_wkt = _wkt(src)
        except pyproj.exceptions.CRSError as exc:
            raise ProviderInvalidQueryError(user_msg=f"invalid filter-crs '{src}'") from exc
        dst_wkt = _storage_wkt(self.storage_crs)
        if dst_wkt is None or _same_crs(src_wkt, dst_wkt):
            return box
        return projected_box(box, _transformer(src_wkt, dst_wkt, False))

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
            desc = item.get("order") == "-"
            parts.append(f"{col} {'DESC' if desc else 'ASC'}{self.NULLS[desc]}")
        parts.append("fid ASC")
        return ", ".join(parts)

    def _datetime(self, value: str) -> tuple[str, list]:
        field = self.time_field
        if not field or field not in self.fields:
            raise ProviderInvalidQueryError(user_msg="this collection has no time property for datetime")
        days = self.fields[field].get("format") == "date"      # stored YYYY-MM-DD: compare whole days

        def instant(text: str, *, end: bool) -> str:
            full = _instant(text, end=end)
            return full[:10] if days else full

        if "/" in value:
            start, end = value.split("/", 1)
            clauses, args = [], []
            if start not in {"", ".."}:
                clauses.append(f'"{field}" >= ?')
                args.append(instant(start, end=False))
            if end not in {"", ".."}:
                clauses.append(f'"{field}" <= ?')
                args.append(instant(end, end=True))
            return ("(" + " AND ".join(clauses) + ")" if clauses else "(TRUE)"), args
        return f'("{field}" >= ? AND "{field}" <= ?)', [instant(value, end=False), instant(value, end=True)]

    def _features(self, rows: list, columns: list[str], skip_geometry: bool, spec) -> list[dict]:
        shapes: list = [None] * len(rows)
        if not skip_geometry and rows:
            geoms = self._decode([r[1] for r in rows])
            t = decimals = None
            if spec is not None:
                t = _transformer(spec.source_crs_wkt, spec.target_crs_wkt, bool(spec.always_xy))
                decimals = _decimals(spec.target_crs_wkt)
            shapes = _geojson_geometries(geoms, t, decimals)
        return [{"type": "Feature", "id": row[0], "geometry": shape, "properties": dict(zip(columns, row[2:]))}
                for row, shape in zip(rows, shapes)]