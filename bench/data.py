"""Benchmark data, built from the real points and boundaries bundled in data/.

The real farm shops and supermarkets inside Marburg-Biedenkopf (county 06534)
are scaled up to any number of points by jittering copies of them and keeping
only the copies that fall inside the county (rejection sampling, vectorised).
Written as a zipped Shapefile in EPSG:31467 (Gauss-Krüger zone 3) with a
CP1252 DBF and no .cpg, the way many municipal GIS exports arrive.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1] / "data"      # the bundled real data (data/SOURCES.md)
COUNTY = "06534"
CATEGORIES = ["Hofladen", "Supermarkt", "Bäckerei", "Metzgerei", "Dorfladen", "Wochenmarkt"]
STREETS = ["Hauptstraße", "Bahnhofstraße", "Kirchweg", "Am Mühlbach", "Gießener Straße", "Lahnstraße"]


def county_polygon():
    import geopandas as gpd

    # the member's territory as gdi sees it: the union of its municipalities, 100 m inside
    mun = gpd.read_file(municipalities_file())
    return mun.to_crs(25832).geometry.union_all().buffer(-100)


def seed_points():
    """Real points inside the county, EPSG:25832 coordinates (n, 2)."""
    import geopandas as gpd
    import shapely

    area = county_polygon()
    frames = [gpd.read_file(DATA / "poi" / f) for f in
              ("farmshops_marburg-biedenkopf_hoexter_umland.geojson", "lidl_marburg-biedenkopf_hoexter_umland.geojson")]
    pts = np.concatenate([shapely.get_coordinates(f.to_crs(25832).geometry.values) for f in frames])
    inside = shapely.contains_xy(area, pts[:, 0], pts[:, 1])
    return pts[inside], area


def scaled_points(n: int, seed: int = 7) -> np.ndarray:
    import shapely

    seeds, area = seed_points()
    shapely.prepare(area)
    rng = np.random.default_rng(seed)
    out = []
    have = 0
    while have < n:
        k = int((n - have) * 1.3) + 100
        base = seeds[rng.integers(0, len(seeds), k)]
        cand = base + rng.normal(0, 3000, (k, 2))          # ~3 km jitter around real shops
        ok = shapely.contains_xy(area, cand[:, 0], cand[:, 1])
        out.append(cand[ok])
        have += int(ok.sum())
    return np.concatenate(out)[:n]


def build_shapefile_zip(n: int, target: Path) -> Path:
    """n points as a zipped EPSG:31467 Shapefile with a CP1252 DBF and no .cpg."""
    import geopandas as gpd
    import pyogrio
    import pyproj

    if target.exists():
        return target
    xy = scaled_points(n)
    t = pyproj.Transformer.from_crs(25832, 31467, always_xy=True)
    x, y = t.transform(xy[:, 0], xy[:, 1])
    i = np.arange(n)
    frame = gpd.GeoDataFrame({
        "NAME": np.char.add("Laden Nr. ", i.astype(str)).astype(object),
        "KATEGORIE": np.array(CATEGORIES, dtype=object)[i % len(CATEGORIES)],
        "STRASSE": np.array(STREETS, dtype=object)[i % len(STREETS)],
        "HAUSNR": (i % 97 + 1).astype(str).astype(object),
        "PLZ": np.array(["35037", "35039", "35041", "35085", "35216"], dtype=object)[i % 5],
        "ORT": np.array(["Marburg", "Kirchhain", "Biedenkopf", "Gladenbach", "Stadtallendorf"], dtype=object)[i % 5],
    }, geometry=gpd.points_from_xy(x, y), crs=31467)
    work = target.with_suffix("")
    work.mkdir(parents=True, exist_ok=True)
    shp = work / "verkaufsstellen.shp"
    pyogrio.write_dataframe(frame, shp, driver="ESRI Shapefile", encoding="cp1252")
    for extra in work.glob("*.cpg"):
        extra.unlink()
    tmp = target.with_suffix(".part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for f in sorted(work.iterdir()):
            zf.write(f, f.name)
    tmp.replace(target)
    for f in work.iterdir():
        f.unlink()
    work.rmdir()
    return target


def municipalities_file() -> Path:
    return DATA / "boundaries" / "vg250ew_gemeinden_marburg-biedenkopf.geojson"


def county_bbox_lonlat() -> tuple[float, float, float, float]:
    import pyproj

    minx, miny, maxx, maxy = county_polygon().bounds
    t = pyproj.Transformer.from_crs(25832, 4326, always_xy=True)
    xs, ys = t.transform([minx, maxx, minx, maxx], [miny, miny, maxy, maxy])
    return min(xs), min(ys), max(xs), max(ys)
