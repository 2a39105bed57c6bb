"""`gdi ingest` end to end on real data: formats, replace semantics, refusals."""
from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pyogrio
import pytest
import shapely

from conftest import ingest_boundaries, run_gdi, store_text
from fixtures import farmshops_of, supply_frame_german, zipped_shapefile
from gdi.collections import get_collection
from gdi.crs import transformer
from gdi.store import open_store

MB = "vg250ew_gemeinden_marburg-biedenkopf.geojson"
HX = "vg250ew_gemeinden_hoexter.geojson"


def stored(home: Path, collection: str) -> gpd.GeoDataFrame:
    """What the store of the current test (GDI_STORE as set by the gdi_home fixture) publishes."""
    return open_store().read(get_collection(collection))


@pytest.fixture
def boundaries(gdi_home, request):
    ingest_boundaries(request, gdi_home, "--dataset", "vg250ew")
    return gdi_home


def test_geojson_boundaries_are_stored_exactly(boundaries, real_data):
    g = stored(boundaries, "municipalities")
    assert len(g) == 22
    assert g["population"].sum() == 250_441
    row = g[g["ags"] == "06534001"].iloc[0]
    assert row["name"] == "Amöneburg"
    assert row["member"] == "06534" and row["dataset"] == "vg250ew"
    assert g.crs.to_epsg() == 25832
    src = gpd.read_file(real_data / "boundaries" / MB)
    x, y = shapely.get_coordinates(src[src["ags"] == "06534001"].geometry.iloc[0])[0]
    ex, ey = transformer(4326, 25832).transform(x, y)
    sx, sy = shapely.get_coordinates(row.geometry)[0]
    assert abs(sx - ex) < 0.001 and abs(sy - ey) < 0.001
    assert sorted(g["name"])[:3] == ["Amöneburg", "Angelburg", "Bad Endbach"]


def test_geopackage_in_utm_with_own_field_names(gdi_home, real_data, tmp_path):
    src = gpd.read_file(real_data / "boundaries" / HX)
    own = gpd.GeoDataFrame({"GEN": src["name"], "AGS": src["ags"], "EWZ": src["pop"]},
                           geometry=src.geometry, crs=4326).to_crs(25832)
    path = tmp_path / "hoexter.gpkg"
    pyogrio.write_dataframe(own, path, layer="gemeinden")
    proc = run_gdi("ingest", str(path), "--collection", "municipalities", "--member", "05762", "--admin", home=gdi_home)
    assert proc.returncode == 0, proc.stderr
    assert "10 accepted" in proc.stdout
    g = stored(gdi_home, "municipalities")
    assert sorted(g["name"]) == sorted(src["name"])
    assert "Höxter" in set(g["name"])
    assert set(g["dataset"]) == {"hoexter"}
    assert g["population"].sum() == 141_883


def test_zipped_cp1252_shapefile_in_gauss_krueger(boundaries, real_data, tmp_path):
    shops = farmshops_of(real_data, "06534")
    frame = supply_frame_german(shops)
    path = zipped_shapefile(frame, tmp_path / "hofläden.zip", epsg=31467)
    report_file = tmp_path / "report.json"
    proc = run_gdi("ingest", str(path), "--collection", "supply_points", "--member", "06534",
                   "--dataset", "hoflaeden", "--report", str(report_file), home=boundaries)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(report_file.read_text(encoding="utf-8"))
    assert report["format"] == "ESRI Shapefile"
    assert report["crs"]["epsg"] == 31467 and report["crs"]["source"] == "declared in the file"
    assert "BETA2007" in report["crs"]["transformation"] or "(8)" in report["crs"]["transformation"]
    assert report["encoding"]["name"] == "cp1252"
    assert report["field_mapping"]["name"] == ["BEZEICHNUN"]
    assert report["unknown_fields"] == ["OSM_ID"]
    unknown = int((shops["farmshops_category"] == "unknown").sum())
    assert report["counts"]["accepted"] == len(shops) - unknown
    g = stored(boundaries, "supply_points")
    assert len(g) == len(shops) - unknown
    names = set(g["name"].dropna())
    expected = set(shops["name"].dropna())
    assert names <= expected
    assert any(ch in "".join(names) for ch in "äöüß"), "umlauts must survive CP1252 letter for letter"
    assert not any("Ã" in n for n in names)
    # Positions: lon/lat → GK3 (file) → ETRS89/UTM32 (store) equals lon/lat → UTM32 within 2 cm.
    by_name = shops.dropna(subset=["name"]).drop_duplicates("name").set_index("name")
    t = transformer(4326, 25832)
    for _, row in g.dropna(subset=["name"]).iterrows():
        lon, lat = by_name.loc[row["name"]].geometry.coords[0]
        ex, ey = t.transform(lon, lat)
        assert abs(row.geometry.x - ex) < 0.02 and abs(row.geometry.y - ey) < 0.02, row["name"]
    assert set(g["category"]) <= {"farm_shop", "vending_machine", "market", "beekeeper"}
    assert set(g["ags"].str[:5]) == {"06534"}


def test_upload_replaces_only_its_own_collection_member_dataset(boundaries, real_data, tmp_path):
    run_gdi("ingest", str(real_data / "boundaries" / HX), "--collection", "municipalities", "--member", "05762", "--admin",
            "--dataset", "vg250ew", home=boundaries, check=True)
    shops = farmshops_of(real_data, "06534")
    full = tmp_path / "full.geojson"
    shops.to_file(full, driver="GeoJSON")
    for dataset in ("farm", "other"):
        run_gdi("ingest", str(full), "--collection", "supply_points", "--member", "06534", "--dataset", dataset,
                home=boundaries, check=True)
    hx_shops = farmshops_of(real_data, "05762")
    hx_file = tmp_path / "hx.geojson"
    hx_shops.to_file(hx_file, driver="GeoJSON")
    run_gdi("ingest", str(hx_file), "--collection", "supply_points", "--member", "05762", "--dataset", "farm",
            home=boundaries, check=True)
    before = stored(boundaries, "supply_points")
    counts = before.groupby(["member", "dataset"]).size().to_dict()
    n_mb = len(shops) - int((shops["farmshops_category"] == "unknown").sum())
    n_hx = len(hx_shops) - int((hx_shops["farmshops_category"] == "unknown").sum())
    assert counts == {("06534", "farm"): n_mb, ("06534", "other"): n_mb, ("05762", "farm"): n_hx}

    small = tmp_path / "small.geojson"
    shops[shops["farmshops_category"] == "farm"].head(5).to_file(small, driver="GeoJSON")
    run_gdi("ingest", str(small), "--collection", "supply_points", "--member", "06534", "--dataset", "farm",
            home=boundaries, check=True)
    after = stored(boundaries, "supply_points")
    counts = after.groupby(["member", "dataset"]).size().to_dict()
    assert counts == {("06534", "farm"): 5, ("06534", "other"): n_mb, ("05762", "farm"): n_hx}
    untouched = lambda g: g[g["dataset"] == "other"].drop(columns=["fid"]).reset_index(drop=True)  # noqa: E731
    assert untouched(before).equals(untouched(after))
    assert len(stored(boundaries, "municipalities")) == 32


def test_points_outside_the_territory_are_rejected_with_reason(boundaries, real_data, tmp_path):
    report_file = tmp_path / "r.json"
    run_gdi("ingest", str(real_data / "poi" / "lidl_marburg-biedenkopf_hoexter_umland.geojson"),
            "--collection", "supply_points", "--member", "06534", "--report", str(report_file),
            home=boundaries, check=True)
    report = json.loads(report_file.read_text(encoding="utf-8"))
    src = gpd.read_file(real_data / "poi" / "lidl_marburg-biedenkopf_hoexter_umland.geojson")
    inside = int(src["ags"].fillna("").str.startswith("06534").sum())
    assert report["counts"] == {"read": 100, "accepted": inside, "repaired": 0, "rejected": 100 - inside}
    assert all("outside the territory of member 06534" in n["reason"] for n in report["rejected"])
    g = stored(boundaries, "supply_points")
    assert set(g["category"]) == {"supermarket"}
    assert sorted(g["ags"]) == sorted(src.loc[src["ags"].fillna("").str.startswith("06534"), "ags"])


def test_unmappable_category_is_rejected_and_named(boundaries, real_data, tmp_path):
    shops = farmshops_of(real_data, "06534")
    path = tmp_path / "shops.geojson"
    shops.to_file(path, driver="GeoJSON")
    report_file = tmp_path / "r.json"
    run_gdi("ingest", str(path), "--collection", "supply_points", "--member", "06534", "--report", str(report_file),
            home=boundaries, check=True)
    report = json.loads(report_file.read_text(encoding="utf-8"))
    reasons = [n["reason"] for n in report["rejected"]]
    assert reasons == ["category 'unknown' is not in the vocabulary"] * int((shops["farmshops_category"] == "unknown").sum())


def test_dry_run_publishes_nothing(boundaries, real_data):
    before = store_text()
    proc = run_gdi("ingest", str(real_data / "boundaries" / HX), "--collection", "municipalities", "--member", "05762", "--admin",
                   "--dry-run", home=boundaries)
    assert proc.returncode == 0 and "dry run" in proc.stdout
    assert store_text() == before


@pytest.mark.parametrize("args,message", [
    (["/nonexistent/gemeinden.geojson", "--collection", "municipalities", "--member", "06534", "--admin"], "file not found"),
    (["{MB}", "--collection", "parcels", "--member", "06534"], "unknown collection 'parcels'"),
    (["{MB}", "--collection", "municipalities", "--member", "6534", "--admin"], "member key '6534' is malformed"),
    (["{MB}", "--collection", "municipalities", "--member", "0653401X", "--admin"], "member key '0653401X' is malformed"),
    (["{MB}", "--collection", "municipalities", "--member", "05762", "--admin"], "none of the 22 features could be accepted"),
])
def test_refusals_are_one_clear_line_and_change_nothing(boundaries, real_data, args, message):
    before = store_text()
    args = [a.replace("{MB}", str(real_data / "boundaries" / MB)) for a in args]
    proc = run_gdi("ingest", *args, home=boundaries)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gdi: refused: "), proc.stderr
    assert message in lines[0]
    assert store_text() == before


def test_points_before_boundaries_are_refused_clearly(gdi_home, real_data):
    proc = run_gdi("ingest", str(real_data / "poi" / "lidl_marburg-biedenkopf_hoexter_umland.geojson"),
                   "--collection", "supply_points", "--member", "06534", home=gdi_home)
    assert proc.returncode != 0
    assert "territory of member 06534 is unknown" in proc.stderr


def test_report_html_escapes_upload_values(boundaries, tmp_path):
    evil = {"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {"name": "<img src=x onerror=alert(1)>", "category": "Hofladen"},
        "geometry": {"type": "Point", "coordinates": [8.77, 50.81]}}, {
        "type": "Feature", "properties": {"name": "<script>x</script>", "category": "Spaceport"},
        "geometry": {"type": "Point", "coordinates": [8.78, 50.81]}}]}
    path = tmp_path / "evil.geojson"
    path.write_text(json.dumps(evil), encoding="utf-8")
    html_file = tmp_path / "r.html"
    run_gdi("ingest", str(path), "--collection", "supply_points", "--member", "06534", "--report", str(html_file),
            home=boundaries, check=True)
    text = html_file.read_text(encoding="utf-8")
    assert "<img src=x" not in text and "<script>x" not in text
    assert "&lt;script&gt;x&lt;/script&gt;" in text
    g = stored(boundaries, "supply_points")
    assert list(g["name"]) == ["<img src=x onerror=alert(1)>"]
    assert list(g["ags"]) == ["06534014"]
