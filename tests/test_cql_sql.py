"""CQL2 text (gdi/publish/cql2_parse.py) → SQL (gdi/publish/cql_sql.py), run on a real SQLite file with
the GeoPackage provider's SQL functions; expectations written out by hand from the rows below."""
from __future__ import annotations

import sqlite3

import pytest

from gdi.publish.cql2_parse import parse_json, parse_text
from gdi.publish.cql_sql import FilterError, SqlFilter
from gdi.publish.provider import _connection

ROWS = [  # fid, name, updated (date-time, UTC text as stored), opened (date)
    (1, "Hofladen Müller", "2019-12-31T23:59:59Z", "2019-12-31"),
    (2, "Hof_Laden 2", "2020-01-01T00:00:00Z", "2020-01-01"),
    (3, "hofcafé", "2020-01-01T12:30:00Z", "2020-01-01"),
    (4, "Wochenmarkt Hofgeismar", "2021-06-15T08:00:00Z", "2021-06-15"),
    (5, "St. Marien", None, None),
]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path = tmp_path_factory.mktemp("cql") / "t.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute('CREATE TABLE t (fid INTEGER PRIMARY KEY, name TEXT, updated TEXT, opened TEXT)')
        conn.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", ROWS)
    conn.close()

    def ids(cql: str, *, json: bool = False) -> list[int]:
        sf = SqlFilter("t", {"name", "updated", "opened"}, "rtree_t_geom",
                       temporal={"updated": "date-time", "opened": "date"})
        where = sf.where(parse_json(cql) if json else parse_text(cql))
        return [r[0] for r in _connection(str(path)).execute(f"SELECT fid FROM t WHERE {where} ORDER BY fid",
                                                               sf.params)]
    return ids


@pytest.mark.parametrize("cql,expected", [
    ("name LIKE 'Hof%'", [1, 2]),
    ("name LIKE 'Hof_Laden%'", [2]),                      # _ is one character
    ("name LIKE 'Hof\\_%'", [2]),                          # \_ is the character itself
    ("name LIKE 'St. %'", [5]),
    ("name LIKE 'St_ %'", [5]),
    ("name LIKE 'Sta%'", []),
    ("name NOT LIKE 'Hof%'", [3, 4, 5]),
    ("CASEI(name) LIKE CASEI('hof%')", [1, 2, 3]),
    ("CASEI(name) LIKE 'HOF%'", [1, 2, 3]),
    ("ACCENTI(name) LIKE ACCENTI('hofcafe')", [3]),
    ("name IN ('hofcafé', 'St. Marien')", [3, 5]),
    ("name NOT IN ('hofcafé', 'St. Marien')", [1, 2, 4]),
    ("fid BETWEEN 2 AND 4", [2, 3, 4]),
    ("updated IS NULL", [5]),
    ("updated IS NOT NULL", [1, 2, 3, 4]),
])
def test_comparisons(run, cql, expected):
    assert run(cql) == expected


@pytest.mark.parametrize("cql,expected", [
    ("T_INTERSECTS(updated, INTERVAL('2020-01-01T00:00:00Z','..'))", [2, 3, 4]),
    ("T_INTERSECTS(updated, INTERVAL('..','2020-01-01T00:00:00Z'))", [1, 2]),
    ("T_INTERSECTS(updated, INTERVAL('..','..'))", [1, 2, 3, 4]),          # a NULL time intersects nothing
    ("T_INTERSECTS(updated, INTERVAL('2020-01-01','2020-01-01'))", [2, 3]),  # dates: whole days
    ("T_INTERSECTS(updated, TIMESTAMP('2020-01-01T12:30:00Z'))", [3]),
    ("T_INTERSECTS(INTERVAL('2020-01-01','..'), updated)", [2, 3, 4]),
    ("T_DISJOINT(updated, INTERVAL('2020-01-01T00:00:00Z','2020-12-31T23:59:59Z'))", [1, 4]),
    ("T_AFTER(updated, TIMESTAMP('2020-01-01T00:00:00Z'))", [3, 4]),
    ("T_AFTER(updated, TIMESTAMP('2020-01-01T01:00:00+02:00'))", [1, 2, 3, 4]),  # 2019-12-31T23:00:00Z
    ("T_AFTER(updated, TIMESTAMP('2020-01-01T02:00:00+02:00'))", [3, 4]),    # = 2020-01-01T00:00:00Z
    ("T_AFTER(updated, DATE('2020-01-01'))", [4]),
    ("T_AFTER(updated, INTERVAL('..','2020-01-01T00:00:00Z'))", [3, 4]),
    ("T_AFTER(updated, INTERVAL('2020-01-01T00:00:00Z','..'))", []),
    ("T_BEFORE(updated, TIMESTAMP('2020-01-01T00:00:00Z'))", [1]),
    ("T_BEFORE(updated, DATE('2020-01-01'))", [1]),
    ("T_BEFORE(TIMESTAMP('2020-01-01T00:00:00Z'), updated)", [3, 4]),         # literal first: the converse
    ("T_DURING(updated, INTERVAL('2020-01-01T00:00:00Z','2021-06-15T08:00:00Z'))", [3]),  # open interval
    ("T_DURING(updated, INTERVAL('2019-01-01','..'))", [1, 2, 3, 4]),
    ("T_EQUALS(updated, TIMESTAMP('2020-01-01T00:00:00Z'))", [2]),
    ("T_EQUALS(updated, DATE('2020-01-01'))", [2, 3]),                      # Masterportal's date EQ
    ("T_EQUALS(opened, DATE('2020-01-01'))", [2, 3]),
    ("T_INTERSECTS(opened, INTERVAL('2020-01-01','2021-06-15'))", [2, 3, 4]),  # Masterportal's range
    ("T_AFTER(opened, TIMESTAMP('2020-01-01T10:00:00Z'))", [4]),             # a timestamp against a date: its day
    ("T_MEETS(updated, INTERVAL('2020-01-01T00:00:00Z','..'))", [2]),
    ("T_METBY(updated, INTERVAL('..','2020-01-01T12:30:00Z'))", [3]),
    ("T_STARTS(updated, INTERVAL('2020-01-01T00:00:00Z','2020-02-01T00:00:00Z'))", [2]),
    ("T_FINISHES(updated, INTERVAL('2020-01-01T00:00:00Z','2020-01-01T12:30:00Z'))", [3]),
    ("T_OVERLAPS(updated, INTERVAL('2019-01-01T00:00:00Z','2022-01-01T00:00:00Z'))", []),  # an instant overlaps nothing
    ("T_CONTAINS(updated, TIMESTAMP('2020-01-01T00:00:00Z'))", []),
    ("updated T_AFTER TIMESTAMP('2020-01-01T00:00:00Z')", [3, 4]),          # pygeofilter's infix form still reads
    ("updated > TIMESTAMP('2020-01-01T02:00:00+02:00')", [3, 4]),            # offsets are converted to UTC
    ("NOT T_INTERSECTS(updated, INTERVAL('2020-01-01T00:00:00Z','..')) AND name LIKE 'Hof%'", [1]),
])
def test_temporal_predicates(run, cql, expected):
    assert run(cql) == expected


@pytest.mark.parametrize("doc,expected", [
    ('{"op": "t_intersects", "args": [{"property": "updated"}, {"interval": ["2020-01-01T00:00:00Z", ".."]}]}',
     [2, 3, 4]),
    ('{"op": "t_disjoint", "args": [{"property": "updated"}, {"interval": ["2020-01-01", "2020-12-31"]}]}', [1, 4]),
    ('{"op": "t_after", "args": [{"property": "updated"}, {"timestamp": "2020-01-01T00:00:00Z"}]}', [3, 4]),
    ('{"op": "t_starts", "args": [{"property": "updated"}, '
     '{"interval": ["2020-01-01T00:00:00Z", "2020-02-01T00:00:00Z"]}]}', [2]),
    ('{"op": "like", "args": [{"property": "name"}, "Hof_Laden%"]}', [2]),
])
def test_cql2_json_temporal_and_like(run, doc, expected):
    assert run(doc, json=True) == expected


@pytest.mark.parametrize("cql,message", [
    ("T_AFTER(name, TIMESTAMP('2020-01-01T00:00:00Z'))", "'name' is no date or timestamp property"),
    ("T_AFTER(nosuch, TIMESTAMP('2020-01-01T00:00:00Z'))", "unknown queryable 'nosuch'"),
    ("T_AFTER(geometry, TIMESTAMP('2020-01-01T00:00:00Z'))", "the geometry can only be used in spatial predicates"),
    ("T_AFTER(updated, 'yesterday')", "expected a date, timestamp or interval, got 'yesterday'"),
    ("T_AFTER(TIMESTAMP('2020-01-01T00:00:00Z'), TIMESTAMP('2021-01-01T00:00:00Z'))",
     "temporal predicates need a date or timestamp property on one side"),
])
def test_bad_temporal_filters_are_named(run, cql, message):
    with pytest.raises(FilterError) as err:
        run(cql)
    assert str(err.value) == message


def test_a_changed_pygeofilter_grammar_stops_the_start(tmp_path, monkeypatch):
    from gdi.publish import cql2_parse

    changed = tmp_path / "grammar.lark"
    changed.write_text(cql2_parse.GRAMMAR.read_text(encoding="utf-8").replace('"T_INTERSECTS"i', '"T_CROSSES"i'),
                       encoding="utf-8")
    monkeypatch.setattr(cql2_parse, "GRAMMAR", changed)
    with pytest.raises(RuntimeError, match="pygeofilter changed: its CQL2 text grammar"):
        cql2_parse.grammar_text()
