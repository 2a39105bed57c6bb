"""`gdi ingest` of the same real supply points (farm shops, Landkreis Marburg-Biedenkopf) in every
format members actually send: re-encoded, reprojected and renamed copies of the bundled real data."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely

from conftest import ingest_boundaries, run_gdi, store_text
from fixtures import GERMAN, farmshops_of, supply_frame_german, zipped_shapefile
from gdi.collections import get_collection
from gdi.crs import enable_grids, transformer
from gdi.store import open_store

MB = "vg250ew_gemeinden_marburg-biedenkopf.geojson"
CATEGORIES = {"farm": "farm_shop", "vending_machine": "vending_machine", "marketplace": "market",
              "beekeeper": "beekeeper"}


@pytest.fixture
def boundaries(gdi_home, request):
    ingest_boundaries(request, gdi_home, "--dataset", "vg250ew")
    return gdi_home


@pytest.fixture(scope="module")
def shops() -> gpd.GeoDataFrame:
    from conftest import DATA
    s = farmshops_of(DATA, "06534")
    assert len(s) == 42 and (s["farmshops_category"] != "unknown").all()
    assert s["name"].fillna("").str.contains("[äöüß]").any(), "the test data must contain umlauts"
    return s


def stored(home: Path) -> gpd.GeoDataFrame:
    """The current test's store (GDI_STORE as set by the gdi_home fixture)."""
    return open_store().read(get_collection("supply_points"))


def lonlat(shops: gpd.GeoDataFrame) -> tuple[np.ndarray, np.ndarray]:
    return shops.geometry.x.to_numpy(), shops.geometry.y.to_numpy()


def table(shops: gpd.GeoDataFrame) -> pd.DataFrame:
    """The attribute table a member's spreadsheet would hold (German column names and categories)."""
    return pd.DataFrame({
        "Bezeichnung": shops["name"],
        "Kategorie": shops["farmshops_category"].map(GERMAN),
        "Straße": shops["addr:street"],
        "Hausnummer": shops["addr:housenumber"],
        "PLZ": shops["addr:postcode"],
        "Ort": shops["addr:city"],
    })


def ingest(path: Path, home: Path, tmp_path: Path, *extra: str) -> dict:
    report_file = tmp_path / f"report-{path.name}.json"
    proc = run_gdi("ingest", str(path), "--collection", "supply_points", "--member", "06534",
                   "--dataset", "shops", "--report", str(report_file), *extra, home=home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(report_file.read_text(encoding="utf-8"))


def check_stored(home: Path, shops: gpd.GeoDataFrame, report: dict, *, names: bool = True) -> gpd.GeoDataFrame:
    """Exact count, names letter for letter, categories, positions within 2 cm."""
    n = len(shops)
    assert report["counts"]["read"] == n
    assert report["counts"]["accepted"] == n, report["rejected"]
    g = stored(home)
    assert len(g) == n
    assert set(g["member"]) == {"06534"} and set(g["dataset"]) == {"shops"}
    if names:
        assert sorted(g["name"].dropna()) == sorted(shops["name"].dropna())
        joined = "".join(g["name"].dropna())
        assert not any(bad in joined for bad in ("Ã", "Â", "\ufffd"))
        assert any(ch in joined for ch in "äöüß")
    assert sorted(g["category"]) == sorted(shops["farmshops_category"].map(CATEGORIES))
    ex, ey = transformer(4326, 25832).transform(*lonlat(shops))
    expected = np.column_stack([ex, ey])
    got = np.column_stack([g.geometry.x.to_numpy(), g.geometry.y.to_numpy()])
    # Every stored point is within 2 cm of an original one, and every original one is matched.
    d = np.hypot(got[:, None, 0] - expected[None, :, 0], got[:, None, 1] - expected[None, :, 1])
    assert d.min(axis=1).max() < 0.02
    assert d.min(axis=0).max() < 0.02
    if names:
        # and the point of each name is that name's point
        t = transformer(4326, 25832)
        for _, row in g.dropna(subset=["name"]).iterrows():
            cands = shops[shops["name"] == row["name"]]
            cx, cy = t.transform(cands.geometry.x.to_numpy(), cands.geometry.y.to_numpy())
            assert np.hypot(np.asarray(cx) - row.geometry.x, np.asarray(cy) - row.geometry.y).min() < 0.02, row["name"]
    assert set(g["ags"].str[:5]) == {"06534"}
    return g


def comma(v: float, digits: int) -> str:
    return f"{v:.{digits}f}".replace(".", ",")


def test_csv_semicolon_decimal_comma_utm_cp1252(boundaries, shops, tmp_path):
    df = table(shops)
    x, y = transformer(4326, 25832).transform(*lonlat(shops))
    df["Rechtswert"] = [comma(v, 4) for v in x]
    df["Hochwert"] = [comma(v, 4) for v in y]
    path = tmp_path / "hofläden.csv"
    path.write_bytes(df.to_csv(sep=";", index=False).encode("cp1252"))
    assert b"\xe4" in path.read_bytes() or b"\xf6" in path.read_bytes() or b"\xfc" in path.read_bytes()
    report = ingest(path, boundaries, tmp_path)
    assert report["format"] == "CSV (separator ';')"
    assert report["crs"]["epsg"] == 25832 and report["crs"]["source"] == "inferred"
    assert any("CRS assumed: EPSG:25832" in w for w in report["warnings"])
    assert report["encoding"]["name"] == "cp1252"
    assert "Windows-1252" in report["encoding"]["source"]
    check_stored(boundaries, shops, report)


def test_csv_with_lon_lat_swapped(boundaries, shops, tmp_path):
    df = table(shops)
    lon, lat = lonlat(shops)
    df["lon"] = [repr(float(v)) for v in lat]     # the columns are labelled the wrong way round
    df["lat"] = [repr(float(v)) for v in lon]
    path = tmp_path / "swapped.csv"
    path.write_text(df.to_csv(index=False), encoding="utf-8")
    report = ingest(path, boundaries, tmp_path)
    assert report["format"] == "CSV (separator ',')"
    assert report["crs"]["epsg"] == 4326 and report["crs"]["source"] == "inferred"
    assert report["crs"].get("swapped") is True
    assert any("swapped" in w for w in report["warnings"])
    assert report["encoding"]["name"] == "utf-8"
    check_stored(boundaries, shops, report)


def test_csv_with_wkt_column(boundaries, shops, tmp_path):
    df = table(shops)
    df["WKT"] = [shapely.to_wkt(g, rounding_precision=-1) for g in shops.geometry]
    path = tmp_path / "wkt.csv"
    path.write_text(df.to_csv(index=False), encoding="utf-8")
    report = ingest(path, boundaries, tmp_path)
    assert report["format"] == "CSV (separator ',')"
    assert "geometry from the WKT column 'WKT'" in report["warnings"]
    assert report["crs"]["epsg"] == 4326 and report["crs"]["source"] == "inferred"
    assert not report["crs"].get("swapped")
    check_stored(boundaries, shops, report)


def test_excel_xlsx(boundaries, shops, tmp_path):
    df = table(shops)
    df["Längengrad"], df["Breitengrad"] = lonlat(shops)
    path = tmp_path / "hofläden.xlsx"
    df.to_excel(path, index=False)
    report = ingest(path, boundaries, tmp_path)
    assert report["format"] == "Excel"
    assert report["crs"]["epsg"] == 4326 and report["crs"]["source"] == "inferred"
    assert report["encoding"]["name"] is None
    check_stored(boundaries, shops, report)


def kml_frame(shops: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"name": shops["name"], "kategorie": shops["farmshops_category"].map(GERMAN)},
                            geometry=shops.geometry, crs=4326)


def test_kml_keeps_names(boundaries, shops, tmp_path):
    path = tmp_path / "hofläden.kml"
    pyogrio.write_dataframe(kml_frame(shops), path, driver="KML")
    assert "Hofladen" in path.read_text(encoding="utf-8")
    report = ingest(path, boundaries, tmp_path)
    assert report["format"] == "KML"
    assert report["crs"]["epsg"] == 4326 and report["crs"]["source"] == "declared in the file"
    check_stored(boundaries, shops, report)


def test_kmz(boundaries, shops, tmp_path):
    kml = tmp_path / "doc.kml"
    pyogrio.write_dataframe(kml_frame(shops), kml, driver="KML")
    path = tmp_path / "hofläden.kmz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(kml, "doc.kml")
    report = ingest(path, boundaries, tmp_path)
    assert report["format"] == "KML"
    assert report["archive_members"] == ["doc.kml"]
    assert report["crs"]["epsg"] == 4326
    check_stored(boundaries, shops, report)


def test_flatgeobuf_in_utm(boundaries, shops, tmp_path):
    frame = supply_frame_german(shops).to_crs(25832)
    path = tmp_path / "hofläden.fgb"
    pyogrio.write_dataframe(frame, path, driver="FlatGeobuf")
    report = ingest(path, boundaries, tmp_path)
    assert report["format"] == "FlatGeobuf"
    assert report["crs"]["epsg"] == 25832 and report["crs"]["source"] == "declared in the file"
    assert "transformation" not in report["crs"]
    check_stored(boundaries, shops, report)


def test_geopackage_with_two_layers_needs_layer(boundaries, shops, real_data, tmp_path):
    path = tmp_path / "nahversorgung.gpkg"
    pyogrio.write_dataframe(supply_frame_german(shops).to_crs(25832), path, layer="hoflaeden")
    pyogrio.write_dataframe(gpd.read_file(real_data / "boundaries" / MB), path, layer="gemeinden", append=False)
    assert sorted(str(n) for n, _ in pyogrio.list_layers(path)) == ["gemeinden", "hoflaeden"]
    before = store_text()
    proc = run_gdi("ingest", str(path), "--collection", "supply_points", "--member", "06534", home=boundaries)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gdi: refused: "), proc.stderr
    assert "several layers" in lines[0] and "gemeinden" in lines[0] and "hoflaeden" in lines[0]
    assert "--layer" in lines[0]
    assert store_text() == before
    report = ingest(path, boundaries, tmp_path, "--layer", "hoflaeden")
    assert report["format"] == "GeoPackage" and report["layer"] == "hoflaeden"
    assert report["crs"]["epsg"] == 25832 and report["crs"]["source"] == "declared in the file"
    assert report["encoding"]["name"] == "utf-8"
    check_stored(boundaries, shops, report)


def test_zipped_shapefile_without_prj_in_gauss_krueger(boundaries, shops, tmp_path):
    path = zipped_shapefile(supply_frame_german(shops), tmp_path / "hofläden.zip", epsg=31467, prj=False)
    assert not any(n.upper().endswith(".PRJ") for n in zipfile.ZipFile(path).namelist())
    report = ingest(path, boundaries, tmp_path)
    assert report["format"] == "ESRI Shapefile"
    assert report["crs"]["epsg"] == 31467 and report["crs"]["source"] == "inferred"
    assert any("CRS assumed: EPSG:31467" in w for w in report["warnings"])
    assert report["encoding"]["name"] == "cp1252"
    check_stored(boundaries, shops, report)


def test_zipped_shapefile_utf8_with_cpg(boundaries, shops, tmp_path):
    path = zipped_shapefile(supply_frame_german(shops), tmp_path / "utf8.zip", epsg=25832, encoding="UTF-8",
                            cpg=True)
    assert any(n.upper().endswith(".CPG") for n in zipfile.ZipFile(path).namelist())
    report = ingest(path, boundaries, tmp_path)
    assert report["format"] == "ESRI Shapefile"
    assert report["crs"]["epsg"] == 25832 and report["crs"]["source"] == "declared in the file"
    assert report["encoding"] == {"name": "utf-8", "source": "declared in .cpg",
                                  "source_de": "in der .cpg-Datei angegeben"}
    check_stored(boundaries, shops, report)


def test_encoding_override(boundaries, shops, tmp_path):
    """A DOS-era CP850 CSV: not UTF-8, and read as CP1252 it would garble the umlauts; --encoding says so."""
    df = table(shops)
    df["lon"], df["lat"] = [repr(float(v)) for v in lonlat(shops)[0]], [repr(float(v)) for v in lonlat(shops)[1]]
    path = tmp_path / "dos.csv"
    path.write_bytes(df.to_csv(sep=";", index=False).encode("cp850"))
    report = ingest(path, boundaries, tmp_path, "--encoding", "CP850")
    assert report["encoding"] == {"name": "cp850", "source": "given (--encoding)",
                                  "source_de": "mit --encoding angegeben"}
    assert report["crs"]["epsg"] == 4326
    check_stored(boundaries, shops, report)


def test_crs_override(boundaries, shops, tmp_path):
    """x/y in ETRS89/UTM zone 33 (far west of its zone): given with --crs, not guessed."""
    enable_grids()
    df = table(shops)
    x, y = transformer(4326, 25833).transform(*lonlat(shops))
    df["x"], df["y"] = [f"{v:.4f}" for v in x], [f"{v:.4f}" for v in y]
    path = tmp_path / "utm33.csv"
    path.write_text(df.to_csv(index=False), encoding="utf-8")
    report = ingest(path, boundaries, tmp_path, "--crs", "EPSG:25833")
    assert report["crs"]["epsg"] == 25833 and report["crs"]["source"] == "given (--crs)"
    assert report["crs"]["source_de"] == "angegeben (--crs)"
    assert not any("CRS assumed" in w for w in report["warnings"])
    check_stored(boundaries, shops, report)
