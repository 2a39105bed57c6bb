"""CQL2 text and JSON as OGC 21-065r2 writes them, read with pygeofilter's own grammar and parsers.

pygeofilter 0.4.0 (the newest release; its main branch is no different) parses temporal predicates
only in an infix form of its own (``updated T_AFTER TIMESTAMP(…)``), an ``INTERVAL`` only of two
timestamps, and maps ``T_INTERSECTS`` to ``T_OVERLAPS``. What clients send — Masterportal's filter
``T_INTERSECTS(attr,INTERVAL('2020-01-01','2020-12-31'))``, ``T_EQUALS(attr,DATE('…'))``, open ends
``'..'`` — fails as 'Bad CQL text'.

The text parser is pygeofilter's grammar file with three rules added or widened (checked at import: a
pygeofilter whose grammar no longer has them stops the start instead of parsing differently):

* the function form ``T_xxx(a, b)`` of every temporal predicate, with CQL2's final names
  (``T_STARTS``, ``T_STARTEDBY``, ``T_FINISHES``, ``T_FINISHEDBY``, ``T_DISJOINT``) besides the older ones;
* ``INTERVAL`` bounds as CQL2 allows them: ``'date'``, ``'timestamp'``, ``DATE(…)``, ``TIMESTAMP(…)``, ``'..'``;
* ``T_INTERSECTS`` as NOT ``T_DISJOINT`` (pygeofilter has no node of its own for it).

CQL2 JSON goes to pygeofilter's JSON parser after the temporal operators it lacks or misreads
(``t_intersects`` as ``t_overlaps``; ``t_disjoint``, ``t_starts``, … unknown) are renamed to what it
reads right. Everything else is pygeofilter's: the same ``ast`` nodes reach gdi/publish/cql_sql.py.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lark import Lark, v_args
from pygeofilter import ast
from pygeofilter.parsers.cql2_json import parse as parse_upstream_json
from pygeofilter.parsers.cql2_text import parser as upstream

GRAMMAR = Path(upstream.__file__).with_name("grammar.lark")

# (what pygeofilter's grammar says, what it says here)
CHANGES = [
    ('?interval: "INTERVAL" "("  "\'" DATETIME "\'" "," "\'" DATETIME "\'" ")"',
     '?interval: "INTERVAL"i "(" _instant_bound "," _instant_bound ")"\n'
     '_instant_bound: "\'" DATETIME "\'" | "\'" DATE "\'" | OPEN_END | timestamp | date\n'
     'OPEN_END: "\'..\'"'),
    ('?temporal_predicate: expression _binary_temporal_predicate_func expression -> binary_temporal_predicate',
     '?temporal_predicate: expression _binary_temporal_predicate_func expression -> binary_temporal_predicate\n'
     '                   | _binary_temporal_predicate_func "(" expression "," expression ")" -> temporal_function'),
    ('                        | "T_INTERSECTS"i',
     '                        | "T_INTERSECTS"i\n'
     '                        | "T_DISJOINT"i | "T_STARTS"i | "T_STARTEDBY"i | "T_FINISHES"i | "T_FINISHEDBY"i'),
]

TEMPORAL = {
    "t_before": ast.TimeBefore, "t_after": ast.TimeAfter, "t_meets": ast.TimeMeets, "t_metby": ast.TimeMetBy,
    "t_overlaps": ast.TimeOverlaps, "t_overlappedby": ast.TimeOverlappedBy, "t_during": ast.TimeDuring,
    "t_contains": ast.TimeContains, "t_equals": ast.TimeEquals, "t_disjoint": ast.TimeDisjoint,
    "t_starts": ast.TimeBegins, "t_begins": ast.TimeBegins, "t_startedby": ast.TimeBegunBy,
    "t_begunby": ast.TimeBegunBy, "t_finishes": ast.TimeEnds, "t_ends": ast.TimeEnds,
    "t_finishedby": ast.TimeEndedBy, "t_endedby": ast.TimeEndedBy,
}


def temporal(op: str, lhs, rhs) -> ast.Node:
    """The node of a temporal predicate by its CQL2 name (T_INTERSECTS: not disjoint)."""
    name = op.lower()
    if name == "t_intersects":
        return ast.Not(ast.TimeDisjoint(lhs, rhs))
    return TEMPORAL[name](lhs, rhs)


def grammar_text() -> str:
    """pygeofilter's grammar with CHANGES made; refused when a rule to change is not there exactly once."""
    text = GRAMMAR.read_text(encoding="utf-8")
    for old, new in CHANGES:
        if text.count(old) != 1:
            raise RuntimeError(f"pygeofilter changed: its CQL2 text grammar ({GRAMMAR}) no longer has {old!r}, "
                               "which gdi/publish/cql2_parse.py extends; review the extension for this version")
        text = text.replace(old, new)
    return text


@v_args(meta=False, inline=True)
class Transformer(upstream.CQLTransformer):
    def binary_temporal_predicate(self, lhs, op, rhs):
        return temporal(str(op), lhs, rhs)

    def temporal_function(self, op, lhs, rhs):
        return temporal(str(op), lhs, rhs)

    def OPEN_END(self, _token):
        return None


PARSER = Lark(grammar_text(), parser="lalr", maybe_placeholders=False, transformer=Transformer(),
              import_paths=[str(GRAMMAR.parent.parent)], source_path=str(GRAMMAR))


def parse_text(text: str) -> ast.Node:
    """A CQL2 text filter as pygeofilter's syntax tree."""
    return PARSER.parse(text)


# CQL2 JSON temporal operators pygeofilter's JSON parser reads under another name
JSON_RENAMED = {"t_starts": "t_begins", "t_startedby": "t_begunby", "t_finishes": "t_ends",
                "t_finishedby": "t_endedby"}


def _json_temporal(node: Any) -> Any:
    """The CQL2 JSON document with t_intersects and t_disjoint as t_before/t_after (disjoint: one
    of them; intersects: neither) and CQL2's final names as pygeofilter's."""
    if isinstance(node, list):
        return [_json_temporal(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _json_temporal(v) for k, v in node.items()}
    op = out.get("op")
    if not isinstance(op, str):
        return out
    name = op.lower()
    if name in {"t_intersects", "t_disjoint"}:
        args = out.get("args")
        disjoint = {"op": "or", "args": [{"op": "t_before", "args": args}, {"op": "t_after", "args": args}]}
        return {"op": "not", "args": [disjoint]} if name == "t_intersects" else disjoint
    if name in JSON_RENAMED:
        out["op"] = JSON_RENAMED[name]
    return out


def parse_json(text: str | dict) -> ast.Node:
    """A CQL2 JSON filter (text or already decoded) as pygeofilter's syntax tree."""
    doc = json.loads(text) if isinstance(text, (str, bytes)) else text
    return parse_upstream_json(_json_temporal(doc))


def parse(text: str) -> ast.Node:
    """A filter as the ``filter`` parameter carries it: CQL2 JSON when it starts with ``{`` (CQL2 text
    never does), else CQL2 text."""
    if isinstance(text, str) and text.lstrip().startswith("{"):
        return parse_json(text)
    return parse_text(text)
