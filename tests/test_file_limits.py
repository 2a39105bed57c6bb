"""Declared limits (config/gdi.yml, ingest): per file — columns, features, nesting depth, line length — and
per text property (max_length, else ingest.max_text_length; `truncate: true` cuts and reports instead).

A file over a limit is refused whole in German and English, naming the limit; nothing published changes.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from conftest import DATA, REPO, run_gdi, store_text
from gdi.ingest.limits import nesting_depth

SMALL = {"max_columns": 12, "max_features": 6, "max_nesting_depth": 8, "max_line_bytes": 2048}
POINT = [8.77, 50.81]


@pytest.fixture
def home(gdi_home: Path, tmp_path: Path, monkeypatch) -> Path:
    """Boundaries of Marburg-Biedenkopf published, and a config with small per-file limits."""
    config = yaml.safe_load((REPO / "config" / "gdi.yml").read_text(encoding="utf-8"))
    config["ingest"].update(SMALL)
    path = tmp_path / "gdi.yml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    run_gdi("ingest", str(DATA / "boundaries" / "vg250ew_gemeinden_marburg-biedenkopf.geojson"), "--collection",
            "municipalities", "--member", "06534", "--admin", home=gdi_home, check=True)
    monkeypatch.setenv("GDI_CONFIG", str(path))
    return gdi_home


def feature(name: str, coords=POINT, **extra) -> dict:
    return {"type": "Feature", "properties": {"name": name, "category": "Hofladen", **extra},
            "geometry": {"type": "Point", "coordinates": coords}}


def geojson(path: Path, features: list[dict]) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8")
    return path


def refused(home: Path, path: Path, monkeypatch) -> tuple[str, str, dict]:
    """The German and English CLI line and the report of a refused upload; asserts nothing changed."""
    before = store_text()
    lines = {}
    for lang in ("de_DE.UTF-8", "C.UTF-8"):
        proc = run_gdi("ingest", str(path), "--collection", "supply_points", "--member", "06534014", home=home,
                       lang=lang)
        assert proc.returncode == 2, proc.stderr
        lines[lang[:2]] = proc.stderr.strip()
    assert store_text() == before
    report = json.loads(sorted((home / "reports").glob("*supply_points.json"))[-1].read_text(encoding="utf-8"))
    return lines["de"], lines["C."], report


def test_too_many_columns(home, tmp_path, monkeypatch):
    path = geojson(tmp_path / "wide.geojson", [feature("A", **{f"extra{i}": i for i in range(11)})])
    de, en, report = refused(home, path, monkeypatch)
    assert de == ("gdi: abgelehnt: wide.geojson hat 13 Spalten, mehr als die erlaubten 12 "
                  "(Grenze in config/gdi.yml, ingest.max_columns)")
    assert en == ("gdi: refused: wide.geojson has 13 columns, more than the limit of 12 "
                  "(limit in config/gdi.yml, ingest.max_columns)")
    assert report["refusal_de"] == de.removeprefix("gdi: abgelehnt: ")


def test_too_many_features(home, tmp_path, monkeypatch):
    path = geojson(tmp_path / "many.geojson", [feature(f"Laden {i}", [8.77 + i / 1000, 50.81]) for i in range(7)])
    de, en, _ = refused(home, path, monkeypatch)
    assert de.endswith("many.geojson enthält 7 Objekte, mehr als die erlaubten 6 "
                       "(Grenze in config/gdi.yml, ingest.max_features)")
    assert en.endswith("many.geojson holds 7 features, more than the limit of 6 "
                       "(limit in config/gdi.yml, ingest.max_features)")


def test_a_csv_line_over_the_limit(home, tmp_path, monkeypatch):
    path = tmp_path / "lang.csv"
    path.write_text("name;kategorie;lon;lat\nA;Hofladen;8.77;50.81\n" + "B" * 3000 + ";Hofladen;8.78;50.81\n",
                    encoding="utf-8")
    de, en, _ = refused(home, path, monkeypatch)
    assert de == ("gdi: abgelehnt: lang.csv: Zeile 3 ist 3.020 Bytes lang, mehr als die erlaubten 2.048 "
                  "(Grenze in config/gdi.yml, ingest.max_line_bytes)")
    assert en == ("gdi: refused: lang.csv: line 3 is 3,020 bytes long, more than the limit of 2,048 "
                  "(limit in config/gdi.yml, ingest.max_line_bytes)")


@pytest.mark.parametrize("depth", [9, 500, 200_000])
def test_nested_geojson_values(home, tmp_path, monkeypatch, depth):
    """9 levels: over the declared 8; 500: within GDAL, read as JSON text; 200,000: GDAL's own limit."""
    deep = json.loads("[" * 9 + "1" + "]" * 9) if depth == 9 else None
    path = tmp_path / "deep.geojson"
    if deep is not None:
        geojson(path, [feature("A", deep=deep)])
    else:
        path.write_text('{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"name":"A",'
                        '"category":"Hofladen","deep":' + "[" * depth + "1" + "]" * depth + '},'
                        '"geometry":{"type":"Point","coordinates":[8.77,50.81]}}]}', encoding="utf-8")
    de, en, _ = refused(home, path, monkeypatch)
    shown = {9: ("9", "9"), 500: ("500", "500"), 200_000: ("9", "9")}[depth]
    assert de == (f"gdi: abgelehnt: deep.geojson: Werte sind {shown[0]} Ebenen tief verschachtelt, mehr als die "
                  "erlaubten 8 (Grenze in config/gdi.yml, ingest.max_nesting_depth)")
    assert en == (f"gdi: refused: deep.geojson: values are nested {shown[1]} levels deep, more than the limit of 8 "
                  "(limit in config/gdi.yml, ingest.max_nesting_depth)")


def test_nesting_with_a_bad_number_in_the_lenient_reader(home, tmp_path, monkeypatch):
    """A NaN sends the file to Python's json, which gives up on deep nesting with a RecursionError."""
    path = tmp_path / "deep.geojson"
    path.write_text('{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"name":"A",'
                    '"category":"Hofladen","x":NaN,"deep":' + "[" * 100_000 + "]" * 100_000 + '},'
                    '"geometry":{"type":"Point","coordinates":[8.77,50.81]}}]}', encoding="utf-8")
    _, en, _ = refused(home, path, monkeypatch)
    assert en.startswith("gdi: refused: deep.geojson: values are nested 9 levels deep, more than the limit of 8")


def test_nested_kml(home, tmp_path, monkeypatch):
    path = tmp_path / "tief.kml"
    inner = "<Folder>" * 8 + "<Placemark><name>A</name><Point><coordinates>8.77,50.81</coordinates></Point>" \
        "</Placemark>" + "</Folder>" * 8
    path.write_text(f'<?xml version="1.0"?><kml xmlns="http://www.opengis.net/kml/2.2"><Document>{inner}'
                    "</Document></kml>", encoding="utf-8")
    _, en, _ = refused(home, path, monkeypatch)
    assert en == ("gdi: refused: tief.kml: values are nested 9 levels deep, more than the limit of 8 "
                  "(limit in config/gdi.yml, ingest.max_nesting_depth)")


def test_text_over_the_default_length_rejects_its_feature(home, tmp_path, monkeypatch):
    path = geojson(tmp_path / "lang.geojson", [feature("A" * 100_000), feature("Hofladen Ok", [8.78, 50.81])])
    proc = run_gdi("ingest", str(path), "--collection", "supply_points", "--member", "06534014", home=home,
                   check=True)
    assert "1 accepted, 0 repaired, 1 rejected of 2" in proc.stdout
    report = json.loads(sorted((home / "reports").glob("*supply_points.json"))[-1].read_text(encoding="utf-8"))
    (note,) = report["rejected"]
    assert (note["index"], note["reason"], note["reason_de"]) == (
        0, "name is longer than 2,000 characters (100,000)", "name ist länger als 2.000 Zeichen (100.000)")
    assert note["values"]["name"] == "A" * 40 + "…"
    html = sorted((home / "reports").glob("*supply_points.html"))[-1].read_text(encoding="utf-8")
    assert "name ist länger als 2.000 Zeichen (100.000)" in html


def test_truncate_cuts_and_reports(home, tmp_path, monkeypatch):
    """A collection that declares `truncate: true` keeps the feature with its text cut to the limit."""
    folder = tmp_path / "collections"
    folder.mkdir()
    for f in (REPO / "collections").glob("*.yml"):
        doc = yaml.safe_load(f.read_text(encoding="utf-8"))
        if doc["id"] == "supply_points":
            doc["properties"]["opening_hours"].update(max_length=50, truncate=True)
        (folder / f.name).write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("GDI_COLLECTIONS", str(folder))
    hours = "Mo-Fr 08:00-18:00; " * 10           # 190 characters, 189 without the last blank
    path = geojson(tmp_path / "lang.geojson", [feature("Hofladen Lang", opening_hours=hours)])
    proc = run_gdi("ingest", str(path), "--collection", "supply_points", "--member", "06534014", home=home,
                   check=True)
    assert "1 accepted, 1 repaired, 0 rejected of 1" in proc.stdout
    report = json.loads(sorted((home / "reports").glob("*supply_points.json"))[-1].read_text(encoding="utf-8"))
    (note,) = report["repaired"]
    assert (note["reason"], note["reason_de"]) == ("opening_hours cut to 50 characters (was 189)",
                                                   "opening_hours auf 50 Zeichen gekürzt (waren 189)")
    from test_ingest import stored   # noqa: PLC0415 — the features as the store of this home holds them
    assert stored(home, "supply_points")["opening_hours"].tolist() == [hours[:50]]


def test_nesting_depth_ignores_brackets_in_strings():
    assert [nesting_depth(s) for s in ('[[1]]', '{"a": "[[[["}', '["\\"[[", [1]]', "1", '[{"a": [1, [2]]}]')] == [
        2, 1, 2, 0, 4]


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory):
    """A real server whose config has the small limits, with Marburg-Biedenkopf's boundaries and a member token."""
    from conftest import Server, free_port
    from test_uploads import token

    root = tmp_path_factory.mktemp("limits")
    home = root / "home"
    home.mkdir()
    (home / "store-url").write_text("")
    run_gdi("ingest", str(DATA / "boundaries" / "vg250ew_gemeinden_marburg-biedenkopf.geojson"), "--collection",
            "municipalities", "--member", "06534", "--admin", home=home, check=True, store=None)
    config = yaml.safe_load((REPO / "config" / "gdi.yml").read_text(encoding="utf-8"))
    config["ingest"].update(SMALL)
    (root / "gdi.yml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    secret = token(home, "06534014")
    old = os.environ.get("GDI_CONFIG")
    os.environ["GDI_CONFIG"] = str(root / "gdi.yml")
    try:
        srv = Server(home, free_port())
    finally:
        os.environ.pop("GDI_CONFIG") if old is None else os.environ.__setitem__("GDI_CONFIG", old)
    srv.secret = secret
    yield srv
    srv.stop()


def http_files(tmp: Path) -> dict[str, tuple[Path, str, str]]:
    """name → (file, German refusal, English refusal) for the per-file limits."""
    wide = geojson(tmp / "wide.geojson", [feature("A", **{f"extra{i}": i for i in range(11)})])
    many = geojson(tmp / "many.geojson", [feature(f"Laden {i}", [8.77 + i / 1000, 50.81]) for i in range(7)])
    line = tmp / "lang.csv"
    line.write_text("name;kategorie;lon;lat\n" + "B" * 3000 + ";Hofladen;8.78;50.81\n", encoding="utf-8")
    deep = geojson(tmp / "deep.geojson", [feature("A", deep=json.loads("[" * 9 + "1" + "]" * 9))])
    return {
        "columns": (wide, "wide.geojson hat 13 Spalten, mehr als die erlaubten 12 (Grenze in config/gdi.yml, "
                          "ingest.max_columns)",
                    "wide.geojson has 13 columns, more than the limit of 12 (limit in config/gdi.yml, ingest.max_columns)"),
        "features": (many, "many.geojson enthält 7 Objekte, mehr als die erlaubten 6 (Grenze in config/gdi.yml, "
                           "ingest.max_features)",
                     "many.geojson holds 7 features, more than the limit of 6 (limit in config/gdi.yml, "
                     "ingest.max_features)"),
        "line": (line, "lang.csv: Zeile 2 ist 3.020 Bytes lang, mehr als die erlaubten 2.048 (Grenze in config/gdi.yml, "
                       "ingest.max_line_bytes)",
                 "lang.csv: line 2 is 3,020 bytes long, more than the limit of 2,048 (limit in config/gdi.yml, "
                 "ingest.max_line_bytes)"),
        "depth": (deep, "deep.geojson: Werte sind 9 Ebenen tief verschachtelt, mehr als die erlaubten 8 (Grenze in "
                        "config/gdi.yml, ingest.max_nesting_depth)",
                  "deep.geojson: values are nested 9 levels deep, more than the limit of 8 (limit in config/gdi.yml, "
                  "ingest.max_nesting_depth)"),
    }


@pytest.mark.parametrize("case", ["columns", "features", "line", "depth"])
def test_limits_over_http(limited_server, tmp_path, case):
    """The same limits through the upload service: the job is refused, the report says why in both
    languages, and the published features and the versions stay as they were."""
    import requests

    from test_uploads import bearer, items, report_of, upload, wait

    srv = limited_server
    path, de, en = http_files(tmp_path)[case]
    before = (items(srv)["numberMatched"],
              requests.get(f"{srv.url}/datasets/supply_points/06534014/versions", headers=bearer(srv.secret),
                           timeout=30).json())
    r = upload(srv, srv.secret, path)
    assert r.status_code == 202, r.text
    job = wait(srv, srv.secret, r.json()["id"])
    assert job["status"] == "rejected"
    report = report_of(srv, srv.secret, job)
    assert (report["refusal_de"], report["refusal"]) == (de, en)
    after = (items(srv)["numberMatched"],
             requests.get(f"{srv.url}/datasets/supply_points/06534014/versions", headers=bearer(srv.secret),
                          timeout=30).json())
    assert after == before


def test_a_text_of_12_million_characters(home, tmp_path):
    """GDAL refuses a text this long ("Too many characters in number"); the file is read by Python's json,
    the note says what GDAL said, and the feature is rejected for its length, the other one published."""
    path = geojson(tmp_path / "riesig.geojson", [feature("x" * 12_000_000), feature("Hofladen Ok", [8.78, 50.81])])
    proc = run_gdi("ingest", str(path), "--collection", "supply_points", "--member", "06534014", home=home,
                   check=True)
    assert "1 accepted, 0 repaired, 1 rejected of 2" in proc.stdout
    report = json.loads(sorted((home / "reports").glob("*supply_points.json"))[-1].read_text(encoding="utf-8"))
    assert report["rejected"][0]["reason"] == "name is longer than 2,000 characters (12,000,000)"
    (note,) = report["warnings"]
    assert note.startswith("GDAL could not read the file (Failed to read GeoJSON data; At line 1, character ")
    assert note.endswith(": Too many characters in number); it was read feature by feature")
    assert report["warnings_de"][0].startswith("GDAL konnte die Datei nicht lesen (")
