"""Every refusal and rejection reason of the ingest exists in German and English (gdi.messages).

The source is checked for messages still made as bare strings; real `gdi` runs show the German and
the English line as the terminal's locale asks; the report keeps both languages, and a report of
an upload from the web names the form field where the command line names the flag.
"""
from __future__ import annotations

import ast
import json
import zipfile
from pathlib import Path

import pyogrio
import pytest

from conftest import REPO, ingest_boundaries, run_gdi, store_text
from fixtures import farmshops_of

GDI = REPO / "gdi"
TEXT_MAKERS = {"t", "join", "text_of", "Text"}      # gdi.messages: what makes (or finds) a Text


# -- the source: no message of the ingest is a bare string ---------------------------------------

def _modules(*patterns: str) -> list[Path]:
    return sorted({p for pattern in patterns for p in GDI.glob(pattern)})


def _text_functions(tree: ast.Module) -> set[str]:
    """The module's own functions declared to return a Text (``def _not_given(name) -> Text``)."""
    return {f.name for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)
            and isinstance(f.returns, ast.Name) and f.returns.id == "Text"}


def _name(func: ast.expr) -> str | None:
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None


def _bare(node: ast.expr, makers: set[str]) -> bool:
    """True for a message built as a plain string: a literal, an f-string, a concatenation, str(…),
    '…'.format/join, as_text(…) (which would give the same text in both languages) or any other call."""
    if isinstance(node, (ast.Constant, ast.JoinedStr, ast.BinOp)):
        return True
    if isinstance(node, ast.Call):      # t(…) or messages.join(…), never '; '.join(…)
        return _name(node.func) not in makers or (isinstance(node.func, ast.Attribute)
                                                  and not isinstance(node.func.value, ast.Name))
    return False            # a Text held in a variable, an attribute (exc.text) or an item (notes[row])


def _violations(paths: list[Path], calls: set[str], position: int = 0, keyword: str | None = None) -> list[str]:
    found = []
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        makers = TEXT_MAKERS | _text_functions(tree)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and _name(node.func) in calls):
                continue
            args = [*node.args[position:position + 1], *(k.value for k in node.keywords if k.arg == keyword)]
            for arg in args:
                if _bare(arg, makers):
                    found.append(f"{path.relative_to(REPO)}:{node.lineno}: {ast.unparse(node)[:100]}")
    return found


def test_every_refusal_is_made_from_a_text():
    assert _violations(_modules("**/*.py"), {"IngestRefused"}) == []


def test_every_feature_reason_is_made_from_a_text():
    assert _violations(_modules("**/*.py"), {"FeatureNote"}, position=1, keyword="reason") == []


def test_the_errors_that_become_refusals_are_texts():
    """The ValueErrors the ingest turns into refusals (member key, CRS, encoding, dataset name, a
    value that is not of its type) and the store's missing versions carry both languages too."""
    sources = _modules("ingest/*.py", "datasets.py", "crs.py")
    assert _violations(sources, {"ValueError", "DatasetNameError"}) == []
    assert _violations(_modules("store/*.py"), {"VersionNotFound"}) == []


def test_texts_name_options_only_as_markers():
    """A Text names an option as ⟨--flag⟩, which the web shows as its form field: a bare ``--flag``
    in a Text would reach the upload page (the CRS hint once said "command line: --crs")."""
    import re

    found = []
    for path in _modules("**/*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and _name(node.func) in {"t", "Text"}:
                for part in ast.walk(node):
                    if isinstance(part, ast.Constant) and isinstance(part.value, str) and re.search(
                            r"(?<![⟨\w-])--[a-z]", part.value):
                        found.append(f"{path.relative_to(REPO)}:{node.lineno}: {part.value[:80]}")
    assert found == []


def test_geometry_reasons_and_read_notes_are_texts():
    """conform() returns its repair note and rejection reason as Texts; what the readers note
    (Raw.messages) and what the field mapping finds (problems) are appended as Texts."""
    found = []
    for path in _modules("ingest/geometry.py", "ingest/read.py", "ingest/fields.py", "ingest/validate.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if path.name == "geometry.py" and isinstance(node, ast.Return) and isinstance(node.value, ast.Tuple):
                values = node.value.elts
            elif isinstance(node, ast.Call) and _name(node.func) in {"append", "extend", "insert"}:
                values = node.args[-1:]
            else:
                continue
            found += [f"{path.name}:{node.lineno}: {ast.unparse(node)[:100]}"
                      for v in values if isinstance(v, (ast.Constant, ast.JoinedStr)) and isinstance(
                          getattr(v, "value", ""), str)]
    assert found == []


# -- the command line: German or English, as the terminal's locale says -------------------------

GERMAN, ENGLISH = "de_DE.UTF-8", "C.UTF-8"


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """An empty GDI_HOME on the GeoPackage store: the refusals come before anything is stored."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("GDI_HOME", str(home))
    monkeypatch.delenv("GDI_STORE", raising=False)
    return home


def point(x: float, y: float, name: str, category: str = "Hofladen") -> dict:
    return {"type": "Feature", "properties": {"name": name, "category": category},
            "geometry": {"type": "Point", "coordinates": [x, y]}}


def geojson(*features: dict) -> str:
    return json.dumps({"type": "FeatureCollection", "features": list(features)})


def two_data_sets(tmp_path: Path) -> Path:
    path = tmp_path / "lieferung.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("hofladen.geojson", geojson(point(8.77, 50.81, "A")))
        zf.writestr("wochenmarkt.geojson", geojson(point(8.78, 50.81, "B")))
    return path


def no_crs(tmp_path: Path) -> Path:
    """A CSV whose coordinates fit none of the usual CRS anywhere in Germany."""
    path = tmp_path / "punkte.csv"
    path.write_text("x;y;name;category\n1;1;A;Hofladen\n2;2;B;Hofladen\n", encoding="utf-8")
    return path


def refusal(home: Path, lang: str, *args: str) -> str:
    before = store_text()
    proc = run_gdi(*args, home=home, lang=lang)
    assert proc.returncode == 2, proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert store_text() == before
    return lines[0]


def ingest_args(path: Path | str, *extra: str) -> tuple[str, ...]:
    return ("ingest", str(path), "--collection", "supply_points", "--member", "06534", *extra)


def test_a_folder_is_refused_in_german_and_english(home, tmp_path):
    folder = tmp_path / "Lieferung"
    folder.mkdir()
    assert refusal(home, GERMAN, *ingest_args(folder)) == (
        f"gdi: abgelehnt: keine gewöhnliche Datei (ein Ordner, Gerät oder eine Pipe): {folder}")
    assert refusal(home, ENGLISH, *ingest_args(folder)) == (
        f"gdi: refused: not a regular file (a directory, device or pipe): {folder}")


def test_an_archive_with_two_data_sets_names_the_layer_option(home, tmp_path):
    path = two_data_sets(tmp_path)
    assert refusal(home, GERMAN, *ingest_args(path)) == (
        "gdi: abgelehnt: das Archiv enthält mehrere Datensätze (hofladen, wochenmarkt); wählen Sie einen mit --layer")
    assert refusal(home, ENGLISH, *ingest_args(path)) == (
        "gdi: refused: the archive holds several data sets (hofladen, wochenmarkt); choose one with --layer")


def test_coordinates_without_a_crs_name_the_crs_option(home, tmp_path):
    path = no_crs(tmp_path)
    assert refusal(home, GERMAN, *ingest_args(path)) == (
        "gdi: abgelehnt: kein Koordinatensystem angegeben, und die Koordinaten passen in keinem von EPSG:4326, "
        "25832, 25833, 31466, 31467, 31468, 3857 in das Gebiet des Mitglieds; geben Sie das Koordinatensystem "
        "mit --crs an")
    assert refusal(home, ENGLISH, *ingest_args(path)) == (
        "gdi: refused: no CRS declared and the coordinates fit none of EPSG:4326, 25832, 25833, 31466, 31467, "
        "31468, 3857 inside the member's territory; give the CRS with --crs")


def test_a_bad_dataset_name_is_refused_in_german_and_english(home, tmp_path):
    path = no_crs(tmp_path)
    assert refusal(home, GERMAN, *ingest_args(path, "--dataset", "a b")) == (
        "gdi: abgelehnt: der Datensatzname ‚a b‘ ist nicht zulässig: 1 bis 100 Buchstaben, Ziffern, ‚.‘, ‚_‘ "
        "oder ‚-‘, nicht nur Punkte")
    assert refusal(home, ENGLISH, *ingest_args(path, "--dataset", "a b")) == (
        "gdi: refused: dataset name 'a b' refused: 1 to 100 letters, digits, '.', '_' or '-', not only dots")


def test_history_and_rollback_speak_the_terminal_language(home):
    de = run_gdi("history", "--collection", "supply_points", "--member", "0653", home=home, lang=GERMAN)
    en = run_gdi("history", "--collection", "supply_points", "--member", "0653", home=home, lang=ENGLISH)
    assert de.returncode != 0 and de.stderr.strip() == (
        "gdi: der Mitgliedsschlüssel ‚0653‘ ist fehlerhaft: geben Sie den achtstelligen AGS einer Gemeinde "
        "(z. B. 06534014) oder den fünfstelligen Schlüssel des Kreises (z. B. 06534) an")
    assert en.returncode != 0 and en.stderr.strip() == (
        "gdi: member key '0653' is malformed: give the 8-digit AGS of a municipality (e.g. 06534014) or the "
        "5-digit key of the county (e.g. 06534)")
    rollback = ("rollback", "--collection", "supply_points", "--member", "06534", "--dataset", "hof")
    assert refusal(home, GERMAN, *rollback) == "gdi: abgelehnt: keine Versionen von supply_points/06534/hof"
    assert refusal(home, ENGLISH, *rollback) == "gdi: refused: no versions of supply_points/06534/hof"


# -- the report: both languages, and the web's own words ---------------------------------------

MB = "vg250ew_gemeinden_marburg-biedenkopf.geojson"


@pytest.fixture
def boundaries(gdi_home, request):
    ingest_boundaries(request, gdi_home, "--dataset", "vg250ew")
    return gdi_home


def test_the_report_keeps_the_refusal_and_the_reasons_in_german(boundaries, tmp_path):
    path = tmp_path / "hoflaeden.geojson"
    path.write_text(geojson(point(8.77, 50.81, "A", category="Raumhafen"),
                            dict(point(8.78, 50.81, "B"), geometry=None)), encoding="utf-8")
    out = tmp_path / "bericht.json"
    proc = run_gdi(*ingest_args(path, "--report", str(out)), home=boundaries, lang=GERMAN)
    assert proc.returncode == 2
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["refusal"] == "none of the 2 features could be accepted (see the rejected list)"
    assert report["refusal_de"] == "keines der 2 Objekte konnte angenommen werden (siehe die Liste der abgewiesenen)"
    assert proc.stderr.strip() == "gdi: abgelehnt: " + report["refusal_de"]
    rejected = {n["values"]["name"]: (n["reason"], n["reason_de"]) for n in report["rejected"]}
    assert rejected["A"][0].endswith("'Raumhafen' is not in the vocabulary")
    assert rejected["A"][1].endswith("‚Raumhafen‘ steht nicht in der Werteliste")
    assert rejected["B"] == ("no geometry", "keine Geometrie")
    assert report["encoding"] == {"name": "utf-8", "source": "GeoJSON is UTF-8 (RFC 7946)",
                                  "source_de": "GeoJSON ist UTF-8 (RFC 7946)"}
    german = sorted(boundaries.glob("reports/*supply_points.html"))[-1].read_text(encoding="utf-8")
    assert "keines der 2 Objekte" in german and "steht nicht in der Werteliste" in german


def test_the_crs_that_would_fit_is_named_in_german(boundaries, real_data, tmp_path):
    """Marburg's farm shops in EPSG:25832 with the .prj of New York Long Island (EPSG:2263), as in
    test_bad_numbers_and_crs, read in a German terminal."""
    shops = farmshops_of(real_data, "06534014").to_crs(25832)[["name", "shop", "geometry"]]
    shp = tmp_path / "hoflaeden.shp"
    pyogrio.write_dataframe(shops.set_crs(2263, allow_override=True), shp)
    assert refusal(boundaries, GERMAN, "ingest", str(shp), "--collection", "supply_points", "--member",
                   "06534014") == (
        f"gdi: abgelehnt: keines der {len(shops)} Objekte konnte angenommen werden (siehe die Liste der "
        "abgewiesenen); die Koordinaten liegen im Gebiet, wenn man sie in EPSG:25832 (ETRS89 / UTM zone 32N) "
        "liest, nicht in EPSG:2263 wie in der Datei angegeben: geben Sie dieses Koordinatensystem mit --crs an")


def test_a_web_upload_names_the_form_field_not_the_flag(gdi_home, tmp_path):
    from gdi.ingest.pipeline import Options, ingest

    web = ingest(two_data_sets(tmp_path), Options(collection="supply_points", member="06534", surface="web"))
    assert web.status == "refused"
    assert web.refusal == ("the archive holds several data sets (hofladen, wochenmarkt); "
                           "choose one with the field “Layer”")
    assert web.refusal_de == ("das Archiv enthält mehrere Datensätze (hofladen, wochenmarkt); "
                              "wählen Sie einen mit dem Feld „Ebene“")
    cli = ingest(two_data_sets(tmp_path), Options(collection="supply_points", member="06534"))
    assert cli.refusal.endswith("choose one with --layer") and cli.refusal_de.endswith("wählen Sie einen mit --layer")
    for page in gdi_home.glob(f"reports/{web.id}*"):
        assert "--layer" not in page.read_text(encoding="utf-8")
