"""The collection model: everything about a layer is declared in its YAML, nothing in gdi/ names one."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from gdi.collections import definition_files, load_collections, parse

REPO = Path(__file__).resolve().parent.parent
DEFINITION_DIRS = [REPO / "collections", REPO / "tests" / "layers"]


def _ids() -> list[str]:
    import yaml

    return sorted({yaml.safe_load(f.read_text(encoding="utf-8"))["id"]
                   for f in definition_files([d for d in DEFINITION_DIRS if d.exists()])})


def _mentions(text: str, cid: str) -> list[int]:
    """Line numbers naming cid: anywhere for ids that are no plain word (supply_points), quoted or as a
    path segment for ids that are (municipalities: the word itself may appear in prose)."""
    rx = re.compile(rf"\b{cid}\b" if "_" in cid else rf"""["'/]{cid}["'/]""")
    return [n for n, line in enumerate(text.splitlines(), 1) if rx.search(line)]


def test_no_module_under_gdi_names_a_collection():
    ids = _ids()
    assert {"municipalities", "supply_points"} <= set(ids)
    found = []
    for path in sorted((REPO / "gdi").rglob("*")):
        if path.suffix not in {".py", ".js", ".html", ".css"} or "vendor" in path.parts:
            continue
        text = path.read_text(encoding="utf-8")
        found += [f"{path.relative_to(REPO)}:{n}: {cid}" for cid in ids for n in _mentions(text, cid)]
    assert found == []


def test_the_check_itself_finds_a_named_collection():
    assert _mentions('x = store.read(colls["municipalities"])', "municipalities") == [1]
    assert _mentions("# supply_points are points", "supply_points") == [1]
    assert _mentions("the member municipalities upload", "municipalities") == []
    assert _mentions("f'/collections/municipalities/items'", "municipalities") == [1]


def test_roles_and_rights_of_the_demo_collections():
    colls = load_collections(REPO / "collections")
    mun, pts = colls["municipalities"], colls["supply_points"]
    assert (mun.territory.key, mun.territory.population, mun.write) == ("ags", "population", "county")
    assert (pts.territory, pts.write, pts.time_field) == (None, "members", "updated")
    assert pts.computed("territory_key") == ["ags"] and pts.computed("publish_time") == ["updated"]
    assert pts.supply.food == ("supermarket", "grocery", "bakery", "butcher", "farm_shop", "vending_machine", "market")
    assert pts.supply.distance_bands_m == (1000, 3000, 5000)
    assert pts.properties["website"].type == "uri" and pts.properties["website"].max_length == 2000
    assert (mun.kind, pts.kind) == ("polygon", "point")


BASE = {"id": "schools", "title": {"de": "Schulen"}, "geometry_type": "Point",
        "properties": {"name": {"type": "string"}}}


@pytest.mark.parametrize("change,problem", [
    ({"geometry_type": "Pointy"}, "geometry_type: 'Pointy' is not one of LineString, MultiLineString, MultiPoint, "
                                  "MultiPolygon, Point, Polygon"),
    ({"properties": {"name": {"type": "text"}}}, "properties.name: unknown type 'text' (one of boolean, date, "
                                                  "datetime, integer, number, string, uri)"),
    ({"properties": {"name": {"max_length": 0}}}, "properties.name: max_length must be a positive whole number"),
    ({"properties": {"name": {"computed": "magic"}}}, "properties.name: computed must be one of territory_key, "
                                                       "publish_time, not 'magic'"),
    ({"write": "everyone"}, "write: 'everyone' is not one of county (admin tokens only), members (each in its "
                            "territory)"),
    ({"role": "territory", "territory": {"key": "name"}, "geometry_type": "Polygon"},
     "territory.key: 'name' must be required"),
    ({"map": {"colour_by": "name"}}, "map.colour_by: 'name' has no vocabulary to colour by"),
    ({"map": {"colour": "red"}}, "map.colour: 'red' is not #rgb or #rrggbb"),
    ({"map": {"popup": ["nme"]}}, "map.popup[0]: 'nme' is not a property of the collection"),
    ({"time_field": "name"}, "time_field: 'name' must be of type date or datetime"),
    ({"colour": "#fff"}, "document: unknown key 'colour' (known: analysis, attribution, description, geometry_type, "
                         "id, keywords, licence, map, metadata, properties, role, storage_crs, territory, tiles, "
                         "time_field, title, title_field, vocabularies, write)"),
    ({"tiles": {"properties": ["nme"]}}, "tiles.properties: 'nme' is not a property of the collection"),
    ({"tiles": {"zoom": {"min": 9, "max": 4}}}, "tiles.zoom: min and max must be whole zoom levels from 0 to 24, "
                                                "min ≤ max"),
    ({"tiles": {"simplify": {3: 1.0}}}, "tiles.simplify: points are not simplified (thin them instead)"),
    ({"tiles": {"zoom": {"min": 5, "max": 14}, "thin": {"below": 15}}},
     "tiles.thin.below: must be a zoom level from 6 to 14 (the highest zoom holds every point)"),
    ({"tiles": {"thin": {"below": 12, "cell": 0}}}, "tiles.thin.cell: must be a whole number of pixels from 1 to 256"),
    ({"tiles": {"thin": {"below": 12, "every": 3}}}, "tiles.thin: unknown key 'every' (known: below, cell)"),
    ({"geometry_type": "Polygon", "tiles": {"zoom": {"max": 14}, "simplify": {14: 1.0}}},
     "tiles.simplify: 14 must be a zoom level from 0 to 13 (the highest zoom is never simplified)"),
    ({"geometry_type": "Polygon", "tiles": {"thin": {"below": 12}}},
     "tiles.thin: only points are thinned (simplify lines and polygons instead)"),
])
def test_each_problem_of_a_definition_is_one_line(change, problem):
    coll, problems = parse({**BASE, **change}, "schools.yml")
    assert coll is None and problems == [f"schools.yml: {problem}"]


def test_tiles_carry_what_the_map_needs_by_default():
    """Without a tiles block: the title field, the colouring and the label property, zooms 0–16,
    neither simplified nor thinned; the highest zoom is never generalised."""
    coll, problems = parse({**BASE, "title_field": "name", "properties": {
        "name": {}, "kind": {"vocabulary": "kinds"}}, "vocabularies": {"kinds": {"a": {"de": "A"}}},
        "map": {"colour_by": "kind", "label": "name"}}, "schools.yml")
    assert problems == []
    assert coll.tiles.properties == ("name", "kind") and (coll.tiles.zoom_min, coll.tiles.zoom_max) == (0, 16)
    assert coll.tiles.tolerance(10) == 0.0 and not coll.tiles.thinned(0)
    declared, _ = parse({**BASE, "geometry_type": "Polygon",
                         "tiles": {"zoom": {"min": 4, "max": 14}, "simplify": {4: 2, 10: 0.5}}}, "s.yml")
    assert [declared.tiles.tolerance(z) for z in (4, 9, 10, 13, 14)] == [2.0, 2.0, 0.5, 0.5, 0.0]
