"""Coordinates to the centimetre, legacy CRS members, Z, duplicates, repairs — on real data."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import geopandas as gpd
import pyogrio
import pyproj
import pytest
import shapely
from pyproj.transformer import TransformerGroup

from conftest import run_gdi
from gdi.collections import get_collection
from gdi.crs import GRID_DIR, enable_grids
from gdi.store import open_store

MB = "boundaries/vg250ew_gemeinden_marburg-biedenkopf.geojson"
# DHDN / 3-degree Gauss-Krüger zone 3 → ETRS89 / UTM 32N, written out step by step with the official grid:
# an independent path to the truth, not the one gdi uses.
BETA2007_PIPELINE = (
    "+proj=pipeline +step +inv +proj=tmerc +lat_0=0 +lon_0=9 +k=1 +x_0=3500000 +y_0=0 +ellps=bessel "
    f"+step +proj=hgridshift +grids={GRID_DIR / 'BETA2007.gsb'} "
    "+step +proj=utm +zone=32 +ellps=GRS80")


def report_of(tmp_path: Path, name: str = "r.json") -> dict:
    return json.loads((tmp_path / name).read_text(encoding="utf-8"))


def test_official_bkg_gauss_krueger_shapefile_lands_within_centimetres(gdi_home, real_data, tmp_path):
    """The BKG's own VG5000 Shapefile (EPSG:31467, UTF-8 .cpg), zipped as a member sends it."""
    src = real_data / "boundaries" / "vg5000_gk3"
    gem = pyogrio.read_dataframe(src / "VG5000_GEM.shp")
    mine = gem[gem["AGS"].str.startswith("06534")]
    work = tmp_path / "shp"
    work.mkdir()
    pyogrio.write_dataframe(mine, work / "VG5000_GEM.shp", encoding="UTF-8")
    (work / "VG5000_GEM.prj").write_text((src / "VG5000_GEM.prj").read_text())
    (work / "VG5000_GEM.cpg").write_text("UTF-8")
    archive = tmp_path / "vg5000.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in work.iterdir():
            zf.write(f, f"vg5000/{f.name}")
    run_gdi("ingest", str(archive), "--collection", "municipalities", "--member", "06534", "--admin", "--report",
            str(tmp_path / "r.json"), home=gdi_home, check=True)
    rep = report_of(tmp_path)
    assert rep["crs"]["epsg"] == 31467 and rep["encoding"]["name"] == "utf-8"
    assert rep["field_mapping"]["ags"][0] == "AGS" and rep["field_mapping"]["name"][0] == "GEN"
    stored = open_store().read(get_collection("municipalities"))
    assert len(stored) == len(mine) and "Amöneburg" in set(stored["name"])
    truth = pyproj.Transformer.from_pipeline(BETA2007_PIPELINE)
    enable_grids()
    helmert = [t for t in TransformerGroup(31467, 25832, always_xy=True).transformers if "BETA" not in t.description
               and "(8)" not in t.description][0]
    for ags in ("06534014", "06534001"):
        x, y = shapely.get_coordinates(mine[mine["AGS"] == ags].geometry.iloc[0])[0]
        tx, ty = truth.transform(x, y)
        sx, sy = shapely.get_coordinates(stored[stored["ags"] == ags].geometry.iloc[0])[0]
        assert abs(sx - tx) < 0.02 and abs(sy - ty) < 0.02, (ags, sx - tx, sy - ty)
        hx, hy = helmert.transform(x, y)
        assert ((hx - tx) ** 2 + (hy - ty) ** 2) ** 0.5 > 0.3, "the grid must matter here, else this test proves nothing"


def _boundaries(home, real_data):
    run_gdi("ingest", str(real_data / MB), "--collection", "municipalities", "--member", "06534", "--admin", home=home, check=True)


def test_legacy_geojson_crs_member_z_and_duplicates(gdi_home, real_data, tmp_path):
    _boundaries(gdi_home, real_data)
    t = pyproj.Transformer.from_crs(4326, 25832, always_xy=True)
    x, y = t.transform(8.7705, 50.8098)
    feats = [
        {"type": "Feature", "properties": {"Bezeichnung": "Marktplatz Marburg", "Art": "Wochenmarkt"},
         "geometry": {"type": "Point", "coordinates": [x, y, 187.5]}},
        {"type": "Feature", "properties": {"Bezeichnung": "Marktplatz Marburg", "Art": "Wochenmarkt"},
         "geometry": {"type": "Point", "coordinates": [x, y, 187.5]}},
        {"type": "Feature", "properties": {"Bezeichnung": "Bäckerei Ölmühle", "Art": "Bäckerei"},
         "geometry": {"type": "Point", "coordinates": [x + 100, y + 50, 190.0]}},
    ]
    doc = {"type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::25832"}},
           "features": feats}
    path = tmp_path / "markt.geojson"
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    run_gdi("ingest", str(path), "--collection", "supply_points", "--member", "06534", "--report",
            str(tmp_path / "r.json"), home=gdi_home, check=True)
    rep = report_of(tmp_path)
    assert rep["crs"] == {"epsg": 25832, "source": "declared in the file", "source_de": "in der Datei angegeben",
                          "reason": None}
    assert rep["counts"] == {"read": 3, "accepted": 2, "repaired": 0, "rejected": 1}
    assert rep["rejected"][0]["index"] == 1 and rep["rejected"][0]["reason"] == "exact duplicate of feature 0"
    g = open_store().read(get_collection("supply_points")).sort_values("name")
    assert list(g["name"]) == ["Bäckerei Ölmühle", "Marktplatz Marburg"]
    assert list(g["category"]) == ["bakery", "market"]
    assert not g.geometry.has_z.any()
    assert g.geometry.iloc[1].x == pytest.approx(x, abs=1e-6) and g.geometry.iloc[1].y == pytest.approx(y, abs=1e-6)
    assert set(g["ags"]) == {"06534014"}


def test_invalid_polygon_is_repaired_and_reported(gdi_home, real_data, tmp_path):
    src = gpd.read_file(real_data / MB)
    row = src[src["ags"] == "06534001"].iloc[0]
    minx, miny, maxx, maxy = row.geometry.bounds
    bowtie = shapely.Polygon([(minx, miny), (maxx, maxy), (maxx, miny), (minx, maxy), (minx, miny)])
    broken = gpd.GeoDataFrame({"ags": [row["ags"]], "name": [row["name"]], "pop": [row["pop"]]},
                              geometry=[bowtie], crs=4326)
    path = tmp_path / "kaputt.geojson"
    broken.to_file(path, driver="GeoJSON")
    run_gdi("ingest", str(path), "--collection", "municipalities", "--member", "06534", "--admin", "--report",
            str(tmp_path / "r.json"), home=gdi_home, check=True)
    rep = report_of(tmp_path)
    assert rep["counts"] == {"read": 1, "accepted": 1, "repaired": 1, "rejected": 0}
    assert rep["repaired"][0]["reason"].startswith("invalid geometry repaired (Self-intersection")
    g = open_store().read(get_collection("municipalities"))
    geom = g.geometry.iloc[0]
    assert geom.is_valid and geom.geom_type == "MultiPolygon" and len(geom.geoms) == 2


def test_columnar_text_cleaning_equals_the_per_value_rule():
    """Text columns are cleaned in Arrow (ASCII) and per value (the rest); the result must be exactly
    coerce(v, 'string') of each value, whitespace of every kind, NFC and blanks included."""
    import pandas as pd

    from gdi.collections import get_collection
    from gdi.ingest.fields import coerce, map_columns, plan_mapping

    samples = ["Hofladen", "  Hofladen\t", "\x1cX\x1f", " \n ", "", None, "Cafe\u0301", " Cafe\u0301\u00a0",
               "\u00a0", "Stra\u00dfe 1", "a \u0301", "\u3000b\u3000", "x\x0b", "35037", " 35037 ", "3503", "ß"]
    frame = pd.DataFrame({"NAME": pd.Series(samples * 3, dtype="str"),
                          "PLZ": pd.Series((samples[::-1]) * 3, dtype="str"),
                          "KATEGORIE": "Hofladen"})
    collection = get_collection("supply_points")
    cols = map_columns(frame, collection, plan_mapping(list(frame.columns), collection), 2000)
    expected_name = [coerce(v, "string") for v in frame["NAME"].astype(object).tolist()]
    assert cols.values["name"].tolist() == expected_name
    expected_plz = [coerce(v, "string") for v in frame["PLZ"].astype(object).tolist()]
    assert cols.values["postcode"].tolist() == expected_plz
    assert sum(v is None for v in expected_name) == 3 * 4 and cols.problems == {}

    # a pattern (the AGS of municipalities) is checked on the cleaned text, as before
    samples += ["06534014", " 06534014 ", "0653401", "06534014\u00a0"]
    towns = pd.DataFrame({"AGS": pd.Series(samples, dtype="str"), "GEN": "Marburg"})
    municipalities = get_collection("municipalities")
    cols = map_columns(towns, municipalities, plan_mapping(list(towns.columns), municipalities), 2000)
    expected = [coerce(v, "string") for v in samples]
    assert cols.values["ags"].tolist() == expected
    pattern = municipalities.properties["ags"].pattern
    bad = {i: [f"ags '{v}' does not match the required form"] for i, v in enumerate(expected)
           if v is not None and not __import__("re").fullmatch(pattern, v)}
    bad.update({i: ["no ags given"] for i, v in enumerate(expected) if v is None})
    assert cols.problems == bad and [expected[i] for i in range(len(expected)) if i not in bad] == ["06534014"] * 3
