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
    """n points with six address columns as a zipped EPSG:31467 Shapefile with a CP1252 DBF and no
    .cpg (the serving and tile benches' data)."""
    import geopandas as gpd

    if target.exists():
        return target
    xy = scaled_points(n)
    i = np.arange(n)
    frame = gpd.GeoDataFrame({
        "NAME": np.char.add("Laden Nr. ", i.astype(str)).astype(object),
        "KATEGORIE": np.array(CATEGORIES, dtype=object)[i % len(CATEGORIES)],
        "STRASSE": np.array(STREETS, dtype=object)[i % len(STREETS)],
        "HAUSNR": (i % 97 + 1).astype(str).astype(object),
        "PLZ": np.array(["35037", "35039", "35041", "35085", "35216"], dtype=object)[i % 5],
        "ORT": np.array(["Marburg", "Kirchhain", "Biedenkopf", "Gladenbach", "Stadtallendorf"], dtype=object)[i % 5],
    }, geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]), crs=25832)
    return write_format(frame, "shp.zip", target)


def municipalities_file() -> Path:
    return DATA / "boundaries" / "vg250ew_gemeinden_marburg-biedenkopf.geojson"


def county_bbox_lonlat() -> tuple[float, float, float, float]:
    import pyproj

    minx, miny, maxx, maxy = county_polygon().bounds
    t = pyproj.Transformer.from_crs(25832, 4326, always_xy=True)
    xs, ys = t.transform([minx, maxx, minx, maxx], [miny, miny, maxy, maxy])
    return min(xs), min(ys), max(xs), max(ys)


# -- the ingest bench's shapes (bench/ingest.py) ------------------------------------------------
# One GeoDataFrame per shape in EPSG:25832, written once per format and cached by file name.
CITIES = [("35037", "Marburg"), ("35260", "Stadtallendorf"), ("35216", "Biedenkopf"), ("35274", "Kirchhain"),
          ("35075", "Gladenbach"), ("35085", "Ebsdorfergrund"), ("35091", "Cölbe"), ("35117", "Münchhausen")]
OPENING = ["Mo-Fr 08:00-18:00", "Mo-Sa 07:00-20:00", "Di,Do 14:00-18:00; Sa 09:00-12:00", "", "nach Vereinbarung"]
OPERATORS = ["Familie Müller", "Lahntal eG", "Hofgut Weißenborn", "REWE Markt GmbH", "", "Bäckerei Schäfer"]
USES = ["Wohnbaufläche", "Gewerbefläche", "Grünfläche", "Fläche für Landwirtschaft", "Wald", "Sondergebiet Einzelhandel"]
REMARK = ("Verkauf von regionalen Erzeugnissen aus eigener Herstellung; Parkplätze vor dem Haus, "
          "barrierefreier Zugang über die Hofeinfahrt. Öffnungszeiten an Feiertagen abweichend, "
          "bitte telefonisch erfragen. Lieferung im Umkreis von {km} km möglich.")


def _cycle(values: list, i: np.ndarray) -> np.ndarray:
    return np.array(values, dtype=object)[i % len(values)]


def _dates(i: np.ndarray, german: bool) -> np.ndarray:
    """Dates as text, the way spreadsheets and DBF exports carry them (ISO or German day.month.year)."""
    import pandas as pd

    days = pd.Series(np.datetime64("2015-01-01") + (i * 37 % 3650).astype("timedelta64[D]"))
    return days.dt.strftime("%d.%m.%Y" if german else "%Y-%m-%d").to_numpy(dtype=object)


def points_frame(n: int, columns: int, seed: int = 7):
    """n points inside the county (EPSG:25832) with 2 (NAME, KATEGORIE) or 20 attribute columns.

    The 20 are what a municipal export of shops carries: address, contact, numbers, dates as text,
    a "ja"/"nein" flag, a long remark, and empty values where a field is often left blank."""
    import geopandas as gpd

    if columns not in (2, 20):
        raise ValueError("columns: 2 or 20")
    xy = scaled_points(n, seed)
    i = np.arange(n)
    cols = {"NAME": np.char.add("Laden Nr. ", i.astype(str)).astype(object), "KATEGORIE": _cycle(CATEGORIES, i)}
    if columns == 20:
        plz = _cycle([c[0] for c in CITIES], i)
        empty_every = (i % 7 == 3)                       # some values left blank, as members leave them
        phone = np.char.add("06421 ", (100000 + i * 7919 % 900000).astype(str)).astype(object)
        phone[empty_every] = None
        web = np.char.add("https://laden-", np.char.add(i.astype(str), ".example.de/")).astype(object)
        web[i % 3 != 0] = None
        cols.update({
            "STRASSE": _cycle(STREETS, i), "HAUSNR": (i % 97 + 1).astype(str).astype(object),
            "PLZ": plz, "ORT": _cycle([c[1] for c in CITIES], i), "TELEFON": phone, "WEBSEITE": web,
            "OFFEN": _cycle(OPENING, i), "BETREIBER": _cycle(OPERATORS, i),
            "FLAECHE_M2": (i * 13 % 2400 + 40).astype(np.int32), "MITARBEIT": (i % 45).astype(np.int32),
            "PARKPLAETZ": (i * 3 % 120).astype(np.int32), "UMSATZ_MIO": np.round((i % 997) * 0.0137, 3),
            "BEWERTUNG": np.round(1 + (i * 31 % 400) / 100, 2), "ERFASST": _dates(i, german=False),
            "GEPRUEFT": _dates(i + 11, german=True), "BIO": _cycle(["ja", "nein", "nein"], i),
            "BEMERKUNG": np.array([REMARK.format(km=k) for k in range(5, 30)], dtype=object)[i % 25],
            "OBJ_ID": (1_000_000 + i).astype(np.int64),
        })
        cols["BEMERKUNG"][i % 5 == 1] = None
    return gpd.GeoDataFrame(cols, geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]), crs=25832)


def polygons_frame(n: int, seed: int = 11):
    """n polygons: the county's real municipality outlines, each copied at 1–3 % of its size (length)
    to a random spot, keeping only copies wholly inside the territory (100 m inside, as
    county_polygon()) so the territory check accepts every one; EPSG:25832 MultiPolygons.

    The outlines are simplified at 100 m first (1–3 m at the copy's size): the 22 VG250 outlines
    have 230 vertices on average, which at 100,000 copies makes a GeoJSON over gdi's 500 MB file
    limit; 83 on average still keeps each copy a real, irregular outline."""
    import geopandas as gpd
    import shapely

    mun = gpd.read_file(municipalities_file()).to_crs(25832)
    bases = shapely.simplify(mun.geometry.values, 100, preserve_topology=True)
    centres = shapely.get_coordinates(shapely.centroid(bases))
    names = mun["name"].to_numpy(dtype=object)
    area = county_polygon()
    shapely.prepare(area)
    minx, miny, maxx, maxy = area.bounds
    rng = np.random.default_rng(seed)
    kept, which = [], []
    have = 0
    while have < n:
        k = int((n - have) * 1.6) + 100
        b = rng.integers(0, len(bases), k)
        scale = rng.uniform(0.01, 0.03, k)
        pos = np.column_stack([rng.uniform(minx, maxx, k), rng.uniform(miny, maxy, k)])
        geoms = bases[b]
        _, idx = shapely.get_coordinates(geoms, return_index=True)
        cand = shapely.transform(geoms, lambda c: (c - centres[b][idx]) * scale[idx][:, None] + pos[idx])
        ok = shapely.contains(area, cand)
        kept.append(cand[ok])
        which.append(b[ok])
        have += int(ok.sum())
    geoms = shapely.multipolygons(np.concatenate(kept)[:n].reshape(-1, 1))
    b = np.concatenate(which)[:n]
    i = np.arange(n)
    return gpd.GeoDataFrame({
        "NAME": np.char.add("Fläche ", i.astype(str)).astype(object), "NUTZUNG": _cycle(USES, i),
        "GEMEINDE": names[b], "FLAECHE_M2": np.round(shapely.area(geoms), 1), "ERFASST": _dates(i, german=False),
    }, geometry=geoms, crs=25832)


FORMATS = {"shp.zip": "ESRI Shapefile", "geojson": "GeoJSON", "gpkg": "GPKG", "fgb": "FlatGeobuf"}


def write_format(frame, fmt: str, target: Path) -> Path:
    """frame in one of FORMATS as members send it: a zipped Shapefile in EPSG:31467 with a CP1252 DBF
    and no .cpg, GeoJSON in EPSG:4326 (RFC 7946), GeoPackage and FlatGeobuf in EPSG:25832."""
    import pyogrio

    tmp = target.with_name("part-" + target.name)       # the same extension: FlatGeobuf reads it
    if fmt == "shp.zip":
        work = target.with_name(target.name + ".d")
        work.mkdir(parents=True, exist_ok=True)
        layer = "flaechen" if frame.geom_type.iloc[0] == "MultiPolygon" else "verkaufsstellen"
        pyogrio.write_dataframe(frame.to_crs(31467), work / f"{layer}.shp", driver="ESRI Shapefile", encoding="cp1252")
        for extra in work.glob("*.cpg"):
            extra.unlink()
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
            for f in sorted(work.iterdir()):
                zf.write(f, f.name)
        for f in work.iterdir():
            f.unlink()
        work.rmdir()
    elif fmt == "geojson":
        pyogrio.write_dataframe(frame.to_crs(4326), tmp, driver="GeoJSON", layer_options={"RFC7946": "YES"})
    elif fmt in ("gpkg", "fgb"):
        tmp.unlink(missing_ok=True)
        pyogrio.write_dataframe(frame, tmp, driver=FORMATS[fmt], layer=target.name.split(".")[0])
    else:
        raise ValueError(f"unknown format {fmt}")
    tmp.replace(target)
    return target
