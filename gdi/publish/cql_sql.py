"""CQL2 (as parsed by pygeofilter) → SQLite WHERE clause with parameters.

Literals are always bound parameters, attribute names are checked against the
collection's fields, and spatial predicates use the R-tree as a prefilter and
shapely (registered as SQL functions) for the exact test.

Temporal predicates (T_AFTER, T_INTERSECTS, …) compare a date or date-time property — an instant,
stored as text (``YYYY-MM-DD``, ``YYYY-MM-DDTHH:MM:SSZ``, UTC, to the second) — with an instant or an
interval (open ends ``..``), endpoint by endpoint as CQL2 defines them (Allen's relations). Where one
side is a date, both are compared as dates (``T_EQUALS(updated, DATE('2026-03-01'))`` is that day).
"""
from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import shapely
from pygeofilter import ast, values
from shapely.geometry import shape


class FilterError(ValueError):
    pass


SPATIAL = {
    ast.GeometryIntersects: ("intersects", True),
    ast.GeometryWithin: ("within", True),
    ast.GeometryContains: ("contains", True),
    ast.GeometryEquals: ("equals", True),
    ast.GeometryTouches: ("touches", True),
    ast.GeometryCrosses: ("crosses", True),
    ast.GeometryOverlaps: ("overlaps", True),
    ast.GeometryDisjoint: ("disjoint", False),
}
COMPARE = {ast.Equal: "=", ast.NotEqual: "<>", ast.LessThan: "<", ast.LessEqual: "<=",
           ast.GreaterThan: ">", ast.GreaterEqual: ">="}
GEOMETRY_NAMES = {"geometry", "geom"}
# CASEI (pygeofilter: lower) and ACCENTI; both SQL functions are registered by the provider
# (SQLite's own lower() folds ASCII only)
TEXT_FUNCTIONS = {"lower": "gdi_casei", "casei": "gdi_casei", "accenti": "gdi_unaccent"}
CASEI = {"lower", "casei"}

# CQL2's temporal predicates for a = the property (an instant: start = end), b = the other side, as
# comparisons of endpoints (a's, operator, b's), all of which must hold (21-065r2, "Temporal functions")
ALLEN: dict[type, list[tuple[str, str, str]]] = {
    ast.TimeBefore: [("end", "<", "start")],
    ast.TimeAfter: [("start", ">", "end")],
    ast.TimeMeets: [("end", "=", "start")],
    ast.TimeMetBy: [("start", "=", "end")],
    ast.TimeOverlaps: [("start", "<", "start"), ("end", ">", "start"), ("end", "<", "end")],
    ast.TimeOverlappedBy: [("start", ">", "start"), ("start", "<", "end"), ("end", ">", "end")],
    ast.TimeBegins: [("start", "=", "start"), ("end", "<", "end")],
    ast.TimeBegunBy: [("start", "=", "start"), ("end", ">", "end")],
    ast.TimeDuring: [("start", ">", "start"), ("end", "<", "end")],
    ast.TimeContains: [("start", "<", "start"), ("end", ">", "end")],
    ast.TimeEnds: [("start", ">", "start"), ("end", "=", "end")],
    ast.TimeEndedBy: [("start", "<", "start"), ("end", "=", "end")],
    ast.TimeEquals: [("start", "=", "start"), ("end", "=", "end")],
}
FLIPPED = {"<": ">", ">": "<", "=": "="}
DATE_FORMATS = {"date", "date-time"}


def unaccent(value):
    """Text without its accents (ACCENTI): decomposed, combining marks dropped; other values as they are."""
    if not isinstance(value, str):
        return value
    return "".join(c for c in unicodedata.normalize("NFKD", value) if not unicodedata.combining(c))


def _utc_text(value: datetime) -> str:
    """A timestamp as stored: UTC, to the second (a time without offset is taken as UTC)."""
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _endpoints(node) -> tuple[date | datetime | None, date | datetime | None]:
    """(start, end) of a temporal literal: an instant is both; None is an open end."""
    if isinstance(node, values.Interval):
        bounds = (node.start, node.end)
    elif isinstance(node, (date, datetime)):
        bounds = (node, node)
    else:
        raise FilterError(f"expected a date, timestamp or interval, got {node!r}")
    for b in bounds:
        if b is not None and not isinstance(b, (date, datetime)):
            raise FilterError(f"interval bounds must be dates or timestamps (or '..'), got {b!r}")
    return bounds


@dataclass
class SqlFilter:
    table: str
    fields: set[str]
    rtree: str
    geom: str = "geom"
    params: list = field(default_factory=list)
    # Envelopes (CQL2 BBOX literals) come in filter-crs; pygeoapi transforms only
    # geometry literals to the storage CRS, so envelopes are transformed here.
    envelope_to_storage: Callable[[shapely.Geometry], shapely.Geometry] | None = None
    text_functions: dict = field(default_factory=lambda: dict(TEXT_FUNCTIONS))
    # the properties temporal predicates may name: name -> "date" or "date-time"
    temporal: dict[str, str] = field(default_factory=dict)
    day: str = 'substr({col}, 1, 10)'     # SQL of a date-time column's day (its first ten characters)

    def where(self, node) -> str:
        return self._node(node)

    # -- helpers ------------------------------------------------------------
    def _attr(self, node) -> str:
        if isinstance(node, ast.Attribute):
            name = node.name
            if name in GEOMETRY_NAMES:
                raise FilterError("the geometry can only be used in spatial predicates")
            if name in {"id", "fid"}:
                return "fid"
            if name not in self.fields:
                raise FilterError(f"unknown queryable '{name}'")
            return f'"{name}"'
        raise FilterError(f"expected a property name, got {node!r}")

    def _value(self, node) -> str:
        if isinstance(node, ast.Attribute):
            return self._attr(node)
        if isinstance(node, bool):
            self.params.append(node)        # SQLite stores it as 1/0, PostgreSQL compares it with a boolean
        elif isinstance(node, int) and not -2**63 <= node < 2**63:
            self.params.append(float(node) if abs(node) < 2**1023 else (1 if node > 0 else -1) * float("inf"))
        elif isinstance(node, (int, float, str)):
            self.params.append(node)
        elif isinstance(node, datetime):
            self.params.append(_utc_text(node))
        elif isinstance(node, date):
            self.params.append(node.isoformat())
        elif isinstance(node, values.Timestamp if hasattr(values, "Timestamp") else ()):
            self.params.append(str(node))
        elif isinstance(node, ast.Function) and node.name.lower() in self.text_functions and len(node.arguments) == 1:
            return f"{self.text_functions[node.name.lower()]}({self._value(node.arguments[0])})"
        elif isinstance(node, ast.Arithmetic):
            op = {ast.Add: "+", ast.Sub: "-", ast.Mul: "*", ast.Div: "/"}[type(node)]
            return f"({self._value(node.lhs)} {op} {self._value(node.rhs)})"
        else:
            raise FilterError(f"unsupported value {node!r}")
        return "?"

    def _geometry(self, node) -> shapely.Geometry:
        if isinstance(node, values.Geometry):
            geo = {k: v for k, v in node.geometry.items() if k != "crs"}
            return shape(geo)
        if isinstance(node, ast.Function) and node.name.lower() == "bbox" and len(node.arguments) in (4, 6):
            a = [float(v) for v in node.arguments]
            a = [a[0], a[1], a[3], a[4]] if len(a) == 6 else a
            node = values.Envelope(*a)   # same field layout as pygeofilter's CQL2-JSON bbox (see below)
        if isinstance(node, values.Envelope):
            # pygeofilter's CQL2-JSON parser builds Envelope(*bbox) from [minx, miny, maxx, maxy],
            # so its fields x1, x2, y1, y2 hold minx, miny, maxx, maxy (CQL2 text gives a 'bbox' function).
            minx, miny, maxx, maxy = node.x1, node.x2, node.y1, node.y2
            box = shapely.box(min(minx, maxx), min(miny, maxy), max(minx, maxx), max(miny, maxy))
            return self.envelope_to_storage(box) if self.envelope_to_storage else box
        raise FilterError(f"expected a geometry literal, got {node!r}")

    def _is_geom_attr(self, node) -> bool:
        return isinstance(node, ast.Attribute) and node.name in GEOMETRY_NAMES | {self.geom}

    def _spatial(self, op: str, lhs, rhs, prefilter: bool) -> str:
        """The feature's geometry on either side: as (feature op literal)."""
        if self._is_geom_attr(lhs):
            other = self._geometry(rhs)
        elif self._is_geom_attr(rhs):
            other = self._geometry(lhs)
            op = {"within": "contains", "contains": "within"}.get(op, op)
        else:
            raise FilterError("spatial predicates need the queryable 'geometry' on one side")
        return self._spatial_sql(op, other, prefilter)

    def _spatial_sql(self, op: str, other: shapely.Geometry, prefilter: bool) -> str:
        minx, miny, maxx, maxy = other.bounds
        sql = f'gdi_spatial(?, "{self.geom}", ?)'
        self.params.extend([op, shapely.to_wkb(other)])
        if prefilter:
            pre = (f"fid IN (SELECT id FROM {self.rtree} WHERE minx <= ? AND maxx >= ? "
                   f"AND miny <= ? AND maxy >= ?)")
            # parameters of the prefilter come first in the text: re-order
            geom_params = self.params[-2:]
            del self.params[-2:]
            self.params.extend([maxx, minx, maxy, miny, *geom_params])
            return f"({pre} AND {sql})"
        return sql

    def _like_parts(self, node: ast.Like) -> tuple[str, str, bool]:
        """(SQL of the compared value, regular expression, case-insensitive?) of a LIKE.

        ``CASEI(name) LIKE CASEI('hof%')`` compares case-insensitively, ``ACCENTI(…)`` without accents;
        the functions may wrap the property, the pattern or both."""
        lhs, pattern, nocase, accents = node.lhs, node.pattern, bool(node.nocase), False
        for side in ("lhs", "pattern"):
            value = lhs if side == "lhs" else pattern
            while isinstance(value, ast.Function) and len(value.arguments) == 1 and \
                    value.name.lower() in TEXT_FUNCTIONS:
                nocase |= value.name.lower() in CASEI
                accents |= value.name.lower() == "accenti"
                value = value.arguments[0]
            if side == "lhs":
                lhs = value
            else:
                pattern = value
        if not isinstance(pattern, str):
            raise FilterError(f"LIKE needs a text pattern, got {pattern!r}")
        column = self._attr(lhs)
        if accents:
            column = f"{self.text_functions['accenti']}({column})"
            pattern = unaccent(pattern)
        return column, _like_pattern(pattern), nocase

    def _temporal(self, node) -> str:
        """A temporal predicate between a date/date-time property and a literal (either side)."""
        if isinstance(node.lhs, ast.Attribute):
            prop, other, flip = node.lhs, node.rhs, False
        elif isinstance(node.rhs, ast.Attribute):
            prop, other, flip = node.rhs, node.lhs, True
        else:
            raise FilterError("temporal predicates need a date or timestamp property on one side")
        if prop.name not in self.temporal:
            self._attr(prop)                        # an unknown queryable or the geometry: their own message
            raise FilterError(f"'{prop.name}' is no date or timestamp property")
        kind = self.temporal[prop.name]
        start, end = _endpoints(other)
        bounds = {"start": start, "end": end}
        disjoint = isinstance(node, ast.TimeDisjoint)       # a.end < b.start or a.start > b.end
        relation = [("end", "<", "start"), ("start", ">", "end")] if disjoint else ALLEN[type(node)]
        clauses = []
        for a_point, op, b_point in relation:
            if flip:      # the literal is a: (literal's a_point op property) is (property flipped-op it)
                which, op = a_point, FLIPPED[op]
            else:
                which = b_point
            clauses.append(self._endpoint(prop.name, kind, op, bounds[which], which))
        return "(" + (" OR " if disjoint else " AND ").join(clauses) + ")"

    def _endpoint(self, name: str, kind: str, op: str, bound, which: str) -> str:
        """(property op bound). An open end (None) is −∞ as a start, +∞ as an end: the comparison is
        decided here, written so that a NULL property still gives NULL as every comparison does."""
        column = f'"{name}"'
        if bound is None:
            holds = (op == ">" and which == "start") or (op == "<" and which == "end")
            return f"({column} = {column})" if holds else f"({column} <> {column})"
        if isinstance(bound, datetime) and kind == "date-time":
            self.params.append(_utc_text(bound))
            return f"({column} {op} ?)"
        if isinstance(bound, datetime):               # a timestamp against a date: its UTC day
            bound = (bound.astimezone(UTC) if bound.tzinfo else bound).date()
        self.params.append(bound.isoformat())
        day = column if kind == "date" else self.day.format(col=column)
        return f"({day} {op} ?)"

    def _node(self, node) -> str:
        if isinstance(node, ast.And):
            return f"({self._node(node.lhs)} AND {self._node(node.rhs)})"
        if isinstance(node, ast.Or):
            return f"({self._node(node.lhs)} OR {self._node(node.rhs)})"
        if isinstance(node, ast.Not):
            return f"(NOT {self._node(node.sub_node)})"
        if type(node) in COMPARE:
            lhs = self._value(node.lhs)
            return f"({lhs} {COMPARE[type(node)]} {self._value(node.rhs)})"
        if isinstance(node, ast.Between):
            lhs = self._value(node.lhs)
            low = self._value(node.low)
            high = self._value(node.high)
            return f"({lhs} {'NOT ' if node.not_ else ''}BETWEEN {low} AND {high})"
        if isinstance(node, ast.Like):
            lhs, pattern, nocase = self._like_parts(node)
            self.params.append(pattern)
            expr = f"gdi_like({lhs}, ?, {1 if nocase else 0})"
            return f"(NOT {expr})" if node.not_ else expr
        if isinstance(node, ast.In):
            lhs = self._value(node.lhs)
            items = ", ".join(self._value(v) for v in node.sub_nodes)
            return f"({lhs} {'NOT ' if node.not_ else ''}IN ({items}))"
        if isinstance(node, ast.IsNull):
            return f"({self._value(node.lhs)} IS {'NOT ' if node.not_ else ''}NULL)"
        if type(node) in SPATIAL:
            op, prefilter = SPATIAL[type(node)]
            return self._spatial(op, node.lhs, node.rhs, prefilter)
        if isinstance(node, ast.BBox):
            # in the field layout _geometry reads (x1, x2, y1, y2 = minx, miny, maxx, maxy, as pygeofilter's
            # CQL2-JSON parser fills them); BBOX(geometry, 8.7, 50.8, 8.8, 50.9) once searched x 8.7–50.8
            box = values.Envelope(node.minx, node.miny, node.maxx, node.maxy)
            return self._spatial("intersects", node.lhs, box, True)
        if type(node) in ALLEN or isinstance(node, ast.TimeDisjoint):
            return self._temporal(node)
        if isinstance(node, ast.Include):
            return "(FALSE)" if node.not_ else "(TRUE)"
        if isinstance(node, bool):
            return "(TRUE)" if node else "(FALSE)"
        raise FilterError(f"unsupported filter expression: {type(node).__name__}")


def _like_pattern(pattern: str) -> str:
    """CQL2 LIKE → a regular expression for gdi_like: ``%`` any text, ``_`` one character, ``\\``
    escapes. CQL2 fixes these three (text and JSON alike); pygeofilter's nodes say ``.`` for the one
    character, an ECQL habit, so the node's own wildcard fields are not read."""
    import re

    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if ch == "%":
            out.append(".*")
        elif ch == "_":
            out.append(".")
        else:
            out.append(re.escape(ch))
        i += 1
    return "^" + "".join(out) + "$"
