"""Numbers that are none, and a CRS that is probably wrong: the feature is rejected, not the file,
and a refused file says which CRS would have fitted — on both stores."""
from __future__ import annotations

import json
from pathlib import Path

import pyogrio
import pytest

from conftest import DATA, ingest_boundaries, run_gdi, store_text
from fixtures import farmshops_of

NOT_A_NUMBER = "a coordinate is not a number (NaN, Infinity or beyond ±1.8e308)"


@pytest.fixture
def boundaries(gdi_home: Path, request) -> Path:
    ingest_boundaries(request, gdi_home)
    return gdi_home


def report_of(home: Path) -> dict:
    return json.loads(sorted((home / "reports").glob("*supply_points.json"))[-1].read_text(encoding="utf-8"))


def test_nan_infinity_and_1e309_reject_their_features_only(boundaries, tmp_path):
    path = tmp_path / "hoflaeden.geojson"
    path.write_text("""{"type": "FeatureCollection", "features": [
 {"type": "Feature", "properties": {"name": "A", "category": "Hofladen"}, "geometry": {"type": "Point", "coordinates": [8.77, 50.81]}},
 {"type": "Feature", "properties": {"name": "B", "category": "Hofladen"}, "geometry": {"type": "Point", "coordinates": [1e309, 50.81]}},
 {"type": "Feature", "properties": {"name": "C", "category": "Hofladen"}, "geometry": {"type": "Point", "coordinates": [NaN, 50.81]}},
 {"type": "Feature", "properties": {"name": "D", "category": "Hofladen"}, "geometry": {"type": "Point", "coordinates": [8.78, -Infinity]}}
]}""", encoding="utf-8")
    proc = run_gdi("ingest", str(path), "--collection", "supply_points", "--member", "06534014", home=boundaries,
                   check=True)
    assert "1 accepted, 0 repaired, 3 rejected of 4" in proc.stdout
    report = report_of(boundaries)
    assert [(n["index"], n["reason"], n["values"]["name"]) for n in report["rejected"]] == [
        (1, NOT_A_NUMBER, "B"), (2, NOT_A_NUMBER, "C"), (3, NOT_A_NUMBER, "D")]
    assert report["crs"]["epsg"] == 4326 and report["warnings"] == [
        "the file holds numbers GDAL cannot read (NaN, Infinity or beyond ±1.8e308); it was read feature by feature"]


def test_a_wrong_declared_crs_is_named_with_the_one_that_fits(boundaries, tmp_path):
    """Marburg's farm shops in EPSG:25832, exported with the .prj of New York Long Island (EPSG:2263)."""
    shops = farmshops_of(DATA, "06534014").to_crs(25832)[["name", "shop", "geometry"]]
    shp = tmp_path / "hoflaeden.shp"
    pyogrio.write_dataframe(shops.set_crs(2263, allow_override=True), shp)
    before = store_text()
    proc = run_gdi("ingest", str(shp), "--collection", "supply_points", "--member", "06534014", home=boundaries)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"gdi: refused: none of the {len(shops)} features could be accepted (see the rejected list); the coordinates "
        "lie inside the territory in EPSG:25832 (ETRS89 / UTM zone 32N), not in EPSG:2263 as declared: give that "
        "CRS with --crs")
    assert store_text() == before


def test_a_wrong_given_crs_is_named_too(boundaries):
    shops = DATA / "poi" / "farmshops_marburg-biedenkopf_hoexter_umland.geojson"
    proc = run_gdi("ingest", str(shops), "--collection", "supply_points", "--member", "06534014", "--crs",
                   "EPSG:31467", home=boundaries)
    assert proc.returncode == 2
    assert proc.stderr.strip().endswith(
        "; the coordinates lie in Germany in EPSG:4326 (WGS 84), not in EPSG:31467 as given: give that "
        "CRS with --crs")
