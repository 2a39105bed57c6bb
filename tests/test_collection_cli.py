"""`gdi collection new|check`: a definition drafted from a member's real file, and definitions checked.

The member files are built from the bundled real data (tests/layer_data.py); the reviewed definitions
in tests/layers/ are what the county's GIS team made of the drafts.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import zipfile

import geopandas as gpd
import pytest
import shapely
import yaml

from conftest import DATA, GDI, REPO
from fixtures import GERMAN, farmshops_of
from layer_data import (COUNTY, cycle_routes, development_plans, write_cycle_routes, write_development_plans)
from gdi.collections import parse
from gdi import settings
from gdi.ingest.limits import FileLimits
from gdi.ingest.read import read_upload

LAYERS = REPO / "tests" / "layers"
CONFIGURED = REPO / "collections"
TOGETHER = f"(with the configured ones in {CONFIGURED})"


def gdi(*args: str, home) -> subprocess.CompletedProcess:
    """The real command, with the repository's collections/ as the configured definitions."""
    env = dict(os.environ, GDI_HOME=str(home))
    env.pop("GDI_COLLECTIONS", None)
    return subprocess.run([GDI, "collection", *args], env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("collection-cli")


@pytest.fixture(scope="module")
def files(work):
    return {"plans": write_development_plans(work / "bplaene.zip"),
            "routes": write_cycle_routes(work / "radrouten.gpkg")}


@pytest.fixture(scope="module")
def drafts(files, work):
    """(text, document, stdout) of the draft of each layer, as `gdi collection new` writes it."""
    out = {}
    for key, cid, title in (("plans", "development_plans", "Bebauungspläne"), ("routes", "cycle_routes", "Radrouten")):
        target = work / f"{cid}.yml"
        proc = gdi("new", cid, "--from", str(files[key]), "--title", title, "--out", str(target), home=work / "home")
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == ""
        text = target.read_text(encoding="utf-8")
        out[key] = (text, yaml.safe_load(text), proc.stdout, target)
    return out


# -- the member files -----------------------------------------------------------------------------

def test_layer_files_are_deterministic_and_split_by_member(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    for d in (a, b):
        write_development_plans(d / "bplaene.zip")
        write_cycle_routes(d / "radrouten.gpkg")
        write_development_plans(d / "marburg.zip", member="06534014")
    for name in ("bplaene.zip", "radrouten.gpkg", "marburg.zip"):
        assert hashlib.sha256((a / name).read_bytes()).digest() == hashlib.sha256((b / name).read_bytes()).digest()
    plans, routes = development_plans(), cycle_routes()
    assert plans.ags == ("06534003", "06534004", "06534007", "06534010", "06534011",
                         "06534014", "06534014", "06534014", "06534016", "06534018")
    assert routes.ags == ("06534006", "06534007", "06534008", "06534009", "06534010",
                          "06534011", "06534013", "06534014", "06534020")
    assert list(plans.of("06534014")["NUMMER"]) == ["B-14/1", "B-14/2", "B-14/3"]
    assert len(plans.of(COUNTY)) == 10 and len(routes.of(COUNTY)) == 9
    assert list(plans.frame["RECHTSSTAND"]).count("Rechtskräftig") == 6
    # each feature lies in the municipality it is said to belong to
    towns = gpd.read_file(DATA / "boundaries" / "vg250ew_gemeinden_marburg-biedenkopf.geojson").set_index("ags")
    for layer in (plans, routes):
        geoms = layer.frame.to_crs(4326).geometry
        for g, key in zip(geoms, layer.ags):
            assert towns.loc[key, "geometry"].buffer(0.0005).covers(g)
    with zipfile.ZipFile(a / "marburg.zip") as zf:     # as Windows exports arrive: upper case, no .cpg
        assert zf.namelist() == [f"Bauleitplanung/BPLAENE.{ext}" for ext in ("SHP", "SHX", "DBF", "PRJ")]
    marburg = read_upload(a / "marburg.zip", workdir=tmp_path / "w", limits=FileLimits.of(settings.get().ingest))
    assert list(marburg.frame.columns) == ["NUMMER", "TITEL", "RECHTSSTAN", "IN_KRAFT", "geometry"]
    assert (marburg.declared_epsg, marburg.encoding) == (25832, "cp1252")
    assert list(marburg.frame["TITEL"]) == ["Sondergebiet Einzelhandel Marburg-Nord",
                                            "Sondergebiet Einzelhandel Marburg-Süd",
                                            "Sondergebiet Einzelhandel Tom-Mutters-Straße"]
    assert routes.frame.crs.to_epsg() == 4326


# -- gdi collection new ----------------------------------------------------------------------------

def test_draft_of_the_development_plans(drafts):
    text, doc, stdout, target = drafts["plans"]
    assert text.splitlines()[0] == ("# Draft by `gdi collection new` from BPLAENE in bplaene.zip "
                                    "(ESRI Shapefile, 10 features, EPSG:25832, text cp1252).")
    assert list(doc) == ["id", "title", "geometry_type", "storage_crs", "title_field", "write", "properties", "map",
                         "vocabularies"]
    assert doc["id"] == "development_plans"
    assert doc["title"] == {"de": "Bebauungspläne", "en": "Bebauungspläne"}
    assert doc["geometry_type"] == "Polygon"
    assert doc["storage_crs"] == "EPSG:25832"
    assert doc["write"] == "members"
    assert doc["properties"] == {
        "nummer": {"type": "string", "max_length": 50, "title": {"de": "NUMMER", "en": "NUMMER"},
                   "aliases": ["NUMMER", "nummer"]},
        "titel": {"type": "string", "max_length": 100, "title": {"de": "TITEL", "en": "TITEL"},
                  "aliases": ["TITEL", "titel"]},
        "rechtsstan": {"type": "string", "vocabulary": "rechtsstan", "title": {"de": "RECHTSSTAN", "en": "RECHTSSTAN"},
                       "aliases": ["RECHTSSTAN", "rechtsstan"]},
        "in_kraft": {"type": "date", "title": {"de": "IN_KRAFT", "en": "IN_KRAFT"},
                     "aliases": ["IN_KRAFT", "in_kraft"]},
    }
    assert doc["vocabularies"] == {"rechtsstan": {
        "aufgehoben": {"de": "Aufgehoben", "en": "Aufgehoben", "colour": "#1f77b4", "spellings": ["Aufgehoben"]},
        "im_verfahren": {"de": "Im Verfahren", "en": "Im Verfahren", "colour": "#ff7f0e",
                         "spellings": ["Im Verfahren"]},
        "rechtskraeftig": {"de": "Rechtskräftig", "en": "Rechtskräftig", "colour": "#2ca02c",
                           "spellings": ["Rechtskräftig"]},
    }}
    assert doc["map"] == {"label": "titel", "colour_by": "rechtsstan",
                          "popup": ["nummer", "titel", "rechtsstan", "in_kraft"]}
    assert doc["title_field"] == "titel"
    # what the GIS team decides is said in the file
    lines = text.splitlines()
    assert "  colour_by: rechtsstan    # drafted from the vocabulary rechtsstan: one colour per value; " \
           "or one colour for all, e.g. colour: '#1f77b4'" in lines
    assert "    vocabulary: rechtsstan    # drafted: 3 distinct values in 10 features; keep it, or delete it and " \
           "the vocabulary below" in lines
    assert "  rechtsstan:    # Shapefile field names have at most 10 characters: RECHTSSTAN may be cut off " \
           "(a property may be renamed; keep the alias)" in lines
    assert "# time_field: in_kraft        # the date the API's datetime= parameter filters on" in lines
    assert any(ln.startswith("# licence: {name: Datenlizenz Deutschland") for ln in lines)
    assert "# attribution: © <who must be named>" in lines
    assert any(ln.startswith("# metadata: {topic_category: location, inspire_theme: ") for ln in lines)
    assert stdout.splitlines() == [
        f"gdi: wrote {target}: Polygon from 10 features; properties nummer (string), titel (string), "
        "rechtsstan (string), in_kraft (date)",
        "gdi: note: RECHTSSTAN drafted as the vocabulary rechtsstan (Aufgehoben, Im Verfahren, Rechtskräftig) "
        "and map.colour_by",
        f"gdi: review the title, description, licence, attribution and required fields, then: "
        f"gdi collection check {target}",
    ]


def test_draft_of_the_cycle_routes(drafts):
    text, doc, stdout, target = drafts["routes"]
    assert text.splitlines()[0] == ("# Draft by `gdi collection new` from radrouten.gpkg "
                                    "(GeoPackage, 9 features, EPSG:4326, text utf-8).")     # its one layer: radrouten
    assert doc["geometry_type"] == "LineString"
    assert doc["storage_crs"] == "EPSG:25832"
    assert doc["title"] == {"de": "Radrouten", "en": "Radrouten"}
    assert doc["properties"] == {
        "name": {"type": "string", "max_length": 100, "title": {"de": "NAME", "en": "NAME"},
                 "aliases": ["NAME", "name"]},
        "laenge_km": {"type": "number", "title": {"de": "LAENGE_KM", "en": "LAENGE_KM"},
                      "aliases": ["LAENGE_KM", "laenge_km"]},
        "beschildert": {"type": "boolean", "title": {"de": "BESCHILDERT", "en": "BESCHILDERT"},
                        "aliases": ["BESCHILDERT", "beschildert"]},
    }
    assert "vocabularies" not in doc
    assert doc["map"] == {"label": "name", "colour": "#1f77b4", "popup": ["name", "laenge_km", "beschildert"]}
    assert "time_field" not in text
    assert stdout.splitlines()[0] == (f"gdi: wrote {target}: LineString from 9 features; properties name (string), "
                                      "laenge_km (number), beschildert (boolean)")


def test_any_multi_feature_makes_the_type_multi(tmp_path):
    routes = cycle_routes().frame
    first, second = routes.geometry.iloc[0], routes.geometry.iloc[1]
    routes.loc[0, "geometry"] = shapely.MultiLineString([first, second])
    src = tmp_path / "radrouten.geojson"
    routes.to_file(src, driver="GeoJSON")
    proc = gdi("new", "cycle_routes", "--from", str(src), "--out", str(tmp_path / "r.yml"), home=tmp_path / "home")
    assert proc.returncode == 0, proc.stderr
    doc = yaml.safe_load((tmp_path / "r.yml").read_text(encoding="utf-8"))
    assert doc["geometry_type"] == "MultiLineString"
    assert doc["title"] == {"de": "cycle_routes", "en": "cycle_routes"}        # no --title: the id


def test_types_from_the_text_of_a_csv(tmp_path):
    """A CSV holds only text: web addresses, ja/nein, German dates, postcodes and umlaut field names."""
    shops = farmshops_of(DATA, COUNTY)
    shops = shops[shops["farmshops_category"] != "beekeeper"].reset_index(drop=True)     # 41: 25, 14 and 2
    table = gpd.pd.DataFrame({
        "Name": shops["name"], "Kategorie": shops["farmshops_category"].map(GERMAN),
        "Straße": shops["addr:street"], "PLZ": shops["addr:postcode"], "Webseite": shops["website"],
        "Automat": (shops["farmshops_category"] == "vending_machine").map({True: "ja", False: "nein"}),
        "Stand": "21.01.2024", "lon": shops.geometry.x.round(6), "lat": shops.geometry.y.round(6),
    })
    src = tmp_path / "hoflaeden.csv"
    table.to_csv(src, sep=";", index=False, encoding="cp1252")
    proc = gdi("new", "farm_shops", "--from", str(src), "--out", str(tmp_path / "h.yml"), home=tmp_path / "home")
    assert proc.returncode == 0, proc.stderr
    doc = yaml.safe_load((tmp_path / "h.yml").read_text(encoding="utf-8"))
    assert doc["geometry_type"] == "Point"
    assert {n: (p["type"], p.get("max_length"), p["aliases"]) for n, p in doc["properties"].items()} == {
        "name": ("string", 200, ["Name", "name"]),
        "kategorie": ("string", None, ["Kategorie", "kategorie"]),
        "strasse": ("string", 50, ["Straße", "strasse"]),
        "plz": ("string", 50, ["PLZ", "plz"]),
        "webseite": ("uri", 2000, ["Webseite", "webseite"]),
        "automat": ("boolean", None, ["Automat", "automat"]),
        "stand": ("date", None, ["Stand", "stand"]),
    }
    assert {t: (v["de"], v["colour"]) for t, v in doc["vocabularies"]["kategorie"].items()} == {
        "hofladen": ("Hofladen", "#1f77b4"), "verkaufsautomat": ("Verkaufsautomat", "#ff7f0e"),
        "wochenmarkt": ("Wochenmarkt", "#2ca02c")}
    assert doc["map"]["label"] == "name" and doc["map"]["colour_by"] == "kategorie"
    assert gdi("check", str(tmp_path / "h.yml"), home=tmp_path / "home").returncode == 0


# -- the drafts pass check, and the review kept what was inferred ------------------------------------

def test_the_drafts_pass_check(drafts, work):
    plans, routes = drafts["plans"][3], drafts["routes"][3]
    proc = gdi("check", str(plans), str(routes), home=work / "home")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, f"4 definitions OK {TOGETHER}\n", "")
    # alone, two collections written by members have no territory their rights rest on
    proc = gdi("check", "--alone", str(plans), str(routes), home=work / "home")
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == [
        "development_plans, cycle_routes are written by members, whose rights rest on a territory: "
        "declare one collection with role: territory",
        "2 of 2 definitions OK, 1 problem",
    ]


def inferred(doc: dict) -> tuple:
    """What `gdi collection new` infers from the file: geometry type, property names (in order), types, aliases."""
    props = [(name, p["type"], p["aliases"]) for name, p in doc["properties"].items() if not p.get("computed")]
    return doc["geometry_type"], props


@pytest.mark.parametrize("key,name", [("plans", "development_plans"), ("routes", "cycle_routes")])
def test_the_reviewed_definition_keeps_the_inferred_part(drafts, key, name):
    draft = drafts[key][1]
    reviewed = yaml.safe_load((LAYERS / f"{name}.yml").read_text(encoding="utf-8"))
    assert inferred(reviewed) == inferred(draft)
    assert reviewed["id"] == draft["id"] and reviewed["storage_crs"] == draft["storage_crs"]
    assert reviewed["write"] == draft["write"] == "members"
    # the review changed titles, texts, licence, required, the vocabulary, the time field and the map, and added
    # the computed properties and the vector tiles; nothing else
    changed = {k for k in set(draft) | set(reviewed) if draft.get(k) != reviewed.get(k)}
    assert changed <= {"title", "description", "keywords", "licence", "attribution", "time_field", "properties",
                       "map", "vocabularies", "tiles"}
    for prop, spec in reviewed["properties"].items():
        if prop in draft["properties"]:
            kept = {k: v for k, v in spec.items() if k not in {"title", "required", "vocabulary"}}
            assert kept == {k: v for k, v in draft["properties"][prop].items() if k not in {"title", "vocabulary"}}
    computed = {p: s["computed"] for p, s in reviewed["properties"].items() if s.get("computed")}
    assert computed == {"ags": "territory_key", "updated": "publish_time"}


def test_the_reviewed_definitions(work):
    proc = gdi("check", str(LAYERS), home=work / "home")
    assert (proc.returncode, proc.stdout) == (0, f"4 definitions OK {TOGETHER}\n")
    plans, problems = parse(yaml.safe_load((LAYERS / "development_plans.yml").read_text(encoding="utf-8")), "p")
    assert problems == []
    assert plans.title == {"de": "Bebauungspläne", "en": "Development plans"}
    assert plans.licence == {"name": "Datenlizenz Deutschland – Namensnennung – Version 2.0",
                             "url": "https://www.govdata.de/dl-de/by-2-0"}
    assert plans.attribution == "© GeoBasis-DE / BKG (2025); Mitgliedskommunen"
    assert plans.time_field == "in_kraft"
    assert [p.name for p in plans.properties.values() if p.required] == ["nummer", "titel"]
    assert plans.properties["rechtsstan"].vocabulary == "legal_status"
    assert {t.id: (t.de, t.en) for t in plans.terms("rechtsstan").values()} == {
        "in_force": ("Rechtskräftig", "In force"), "in_progress": ("Im Verfahren", "In progress"),
        "repealed": ("Aufgehoben", "Repealed")}
    assert plans.map.colour_by == "rechtsstan" and plans.map.fill_opacity == 0.3
    routes, problems = parse(yaml.safe_load((LAYERS / "cycle_routes.yml").read_text(encoding="utf-8")), "r")
    assert problems == []
    assert routes.attribution == plans.attribution and routes.licence == plans.licence
    assert (routes.map.colour, routes.map.line_width, routes.map.line_dash) == ("#1565c0", 4.0, "8 4")
    assert [p.name for p in routes.properties.values() if p.required] == ["name"]
    assert routes.computed("territory_key") == ["ags"] and plans.computed("publish_time") == ["updated"]


# -- gdi collection check on broken definitions ------------------------------------------------------

GOOD = """id: {id}
title: {{de: {id}, en: {id}}}
geometry_type: Point
properties:
  name: {{type: string}}
"""
TERRITORY = """id: {id}
title: {{de: Gebiete, en: Areas}}
geometry_type: MultiPolygon
role: territory
territory: {{key: key}}
write: county
properties:
  key: {{type: string, required: true}}
"""


def test_check_prints_one_line_per_problem(tmp_path):
    d = tmp_path / "broken"
    d.mkdir()
    (d / "a_unknown_type.yml").write_text(GOOD.replace("type: string", "type: text").format(id="unknown_type"))
    (d / "b_colour_by.yml").write_text(GOOD.format(id="colour_by") + "map: {colour_by: name}\n")
    (d / "c_territory.yml").write_text(TERRITORY.format(id="areas"))
    (d / "d_territory.yml").write_text(TERRITORY.format(id="districts"))
    (d / "e_syntax.yml").write_text(GOOD.format(id="syntax") + "   title: {de: Name}\n")
    (d / "f_dup.yml").write_text(GOOD.format(id="dup"))
    (d / "g_dup.yml").write_text(GOOD.format(id="dup"))
    (d / "h_twice.yml").write_text(GOOD.format(id="twice") + "map: {label: name}\nmap: {order: 3}\n")
    (d / "i_supply.yml").write_text((CONFIGURED / "supply_points.yml").read_text(encoding="utf-8"))
    proc = gdi("check", str(d), home=tmp_path / "home")
    assert proc.returncode == 1
    assert proc.stderr == ""
    assert proc.stdout.splitlines() == [
        f"{d}/a_unknown_type.yml: properties.name: unknown type 'text' "
        "(one of boolean, date, datetime, integer, number, string, uri)",
        f"{d}/b_colour_by.yml: map.colour_by: 'name' has no vocabulary to colour by",
        f"{d}/e_syntax.yml: line 6, column 4: YAML syntax error: did not find expected key "
        "(while parsing a block mapping)",
        f"{d}/g_dup.yml: id: collection 'dup' is also defined in {d}/f_dup.yml",
        f"{d}/h_twice.yml: line 7: key 'map' given twice (the second replaces the first)",
        f"{d}/i_supply.yml: id: collection 'supply_points' is also defined in {CONFIGURED}/supply_points.yml",
        "only one collection may have role: territory, not municipalities, areas, districts",
        "5 of 11 definitions OK, 7 problems",
    ]
    # the same folder by itself: the configured territory is not counted, nor the configured supply points
    proc = gdi("check", "--alone", str(d), home=tmp_path / "home")
    assert proc.stdout.splitlines()[-2:] == ["only one collection may have role: territory, not areas, districts",
                                             "4 of 9 definitions OK, 6 problems"]


def test_check_without_paths_checks_the_configured_folders(tmp_path):
    proc = gdi("check", home=tmp_path / "home")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "2 definitions OK\n", "")
    proc = gdi("check", str(tmp_path / "missing.yml"), home=tmp_path / "home")
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == [f"{tmp_path}/missing.yml: file: not found", "2 of 3 definitions OK, 1 problem"]


# -- refusals: in German and English, and --out is never overwritten ---------------------------------

def test_new_refuses_an_existing_out_and_never_overwrites(files, tmp_path):
    out = tmp_path / "development_plans.yml"
    out.write_text("# the GIS team's reviewed definition\n", encoding="utf-8")
    before = out.stat().st_mtime_ns
    proc = gdi("new", "development_plans", "--from", str(files["plans"]), "--out", str(out), home=tmp_path / "home")
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == (f"gdi: refused: {out} gibt es schon – einen anderen Pfad angeben oder die Datei "
                           f"löschen / {out} already exists – use another path or delete it\n")
    assert out.read_text(encoding="utf-8") == "# the GIS team's reviewed definition\n"
    assert out.stat().st_mtime_ns == before
    # a draft written once is not replaced by the next one either
    fresh = tmp_path / "draft.yml"
    assert gdi("new", "development_plans", "--from", str(files["plans"]), "--out", str(fresh),
               home=tmp_path / "home").returncode == 0
    text = fresh.read_text(encoding="utf-8")
    proc = gdi("new", "cycle_routes", "--from", str(files["routes"]), "--out", str(fresh), home=tmp_path / "home")
    assert proc.returncode == 2 and "already exists" in proc.stderr
    assert fresh.read_text(encoding="utf-8") == text


@pytest.mark.parametrize("cid", ["Bebauungspläne", "1plans", "development-plans", "b" * 64, ""])
def test_new_refuses_a_malformed_id(files, tmp_path, cid):
    out = tmp_path / "x.yml"
    proc = gdi("new", cid, "--from", str(files["plans"]), "--out", str(out), home=tmp_path / "home")
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == (
        f"gdi: refused: ungültige Collection-ID '{cid}': Kleinbuchstaben, Ziffern und _, am Anfang ein Buchstabe "
        f"(z. B. flaechennutzung) / invalid collection id '{cid}': lower-case letters, digits and _, starting with "
        "a letter (e.g. land_use_plans)\n")
    assert not out.exists()


def test_new_refuses_an_unreadable_file(tmp_path):
    out = tmp_path / "x.yml"
    broken = tmp_path / "kaputt.gpkg"
    broken.write_bytes(b"SQLite format 3\x00 but then nothing")
    proc = gdi("new", "plans", "--from", str(broken), "--out", str(out), home=tmp_path / "home")
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr.startswith("gdi: refused: kaputt.gpkg ist nicht lesbar / kaputt.gpkg could not be read as "
                                  "GeoPackage: ")
    assert proc.stderr.count("\n") == 1
    notes = tmp_path / "notizen.txt"
    notes.write_text("kein Geodatensatz\n", encoding="utf-8")
    proc = gdi("new", "plans", "--from", str(notes), "--out", str(out), home=tmp_path / "home")
    assert proc.returncode == 2
    assert proc.stderr == "gdi: refused: notizen.txt ist nicht lesbar / notizen.txt: no column separator found " \
                          "in the header line\n"
    missing = tmp_path / "fehlt.zip"
    proc = gdi("new", "plans", "--from", str(missing), "--out", str(out), home=tmp_path / "home")
    assert proc.returncode == 2
    assert proc.stderr == f"gdi: refused: {missing} gibt es nicht / {missing} does not exist\n"
    assert not out.exists()
