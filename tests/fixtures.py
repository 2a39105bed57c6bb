"""Messy member uploads built from the bundled real data."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio

from gdi.crs import enable_grids


def read_geojson(path: Path) -> gpd.GeoDataFrame:
    return gpd.read_file(path)


def farmshops_of(real_data: Path, ags_prefix: str) -> gpd.GeoDataFrame:
    g = read_geojson(real_data / "poi" / "farmshops_marburg-biedenkopf_hoexter_umland.geojson")
    return g[g["ags"].fillna("").str.startswith(ags_prefix)].reset_index(drop=True)


GERMAN = {"farm": "Hofladen", "vending_machine": "Verkaufsautomat", "marketplace": "Wochenmarkt",
          "beekeeper": "Imkerei", "unknown": "Sonstiges"}


def zipped_shapefile(frame: gpd.GeoDataFrame, target: Path, *, epsg: int, encoding: str = "cp1252",
                     cpg: bool = False, prj: bool = True, upper: bool = True, folder: str = "Export/Daten") -> Path:
    """A zipped Shapefile the way Windows GIS exports arrive: CP1252 DBF, no .cpg, upper-case names."""
    enable_grids()
    work = target.parent / (target.stem + "_shp")
    work.mkdir(parents=True, exist_ok=True)
    shp = work / "layer.shp"
    pyogrio.write_dataframe(frame.to_crs(epsg), shp, encoding=encoding)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(work.iterdir()):
            ext = f.suffix.lower()
            if ext == ".cpg" and not cpg:
                continue
            if ext == ".prj" and not prj:
                continue
            name = f"{folder}/NAHVERSORGUNG{ext.upper() if upper else ext}"
            zf.write(f, name)
    return target


def supply_frame_german(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Farm shops with German field names as a member's own system would name them."""
    out = gpd.GeoDataFrame({
        "BEZEICHNUNG": frame["name"],
        "KATEGORIE": frame["farmshops_category"].map(GERMAN),
        "STRASSE": frame.get("addr:street"),
        "HAUSNR": frame.get("addr:housenumber"),
        "PLZ": frame.get("addr:postcode"),
        "ORT": frame.get("addr:city"),
        "OSM_ID": frame["osm_id"].astype("int64"),
    }, geometry=frame.geometry, crs=frame.crs)
    return out


def feature_collection(features: list[dict]) -> dict:
    return {"type": "FeatureCollection", "features": features}


def write_json(obj: dict, path: Path) -> Path:
    path.write_text(json.dumps(obj, ensure_ascii=False), encoding="utf-8")
    return path


FARMSHOP_CATEGORIES = {"farm": "farm_shop", "vending_machine": "vending_machine", "marketplace": "market",
                       "beekeeper": "beekeeper"}


def published_supply_points(real_data: Path) -> gpd.GeoDataFrame:
    """The supply points as the demo publishes them, from the source files: inside both counties, of a
    known category (name, category, geometry; EPSG:4326 as the files are)."""
    counties = ["06534", "05762"]
    farm = read_geojson(real_data / "poi" / "farmshops_marburg-biedenkopf_hoexter_umland.geojson")
    farm = farm[farm["ags"].fillna("").str[:5].isin(counties)].assign(
        category=lambda f: f["farmshops_category"].map(FARMSHOP_CATEGORIES)).dropna(subset=["category"])
    lidl = read_geojson(real_data / "poi" / "lidl_marburg-biedenkopf_hoexter_umland.geojson")
    lidl = lidl[lidl["ags"].fillna("").str[:5].isin(counties)].assign(category="supermarket")
    both = pd.concat([farm[["name", "category", "geometry"]], lidl[["name", "category", "geometry"]]])
    return gpd.GeoDataFrame(both, geometry="geometry", crs=farm.crs).reset_index(drop=True)


def same_points(served: list[dict], frame: gpd.GeoDataFrame, tolerance: float) -> bool:
    """The served Point features are exactly the frame's points (each within ``tolerance`` in the
    frame's CRS, which the features are served in): compared as sorted coordinate lists."""
    got = sorted(tuple(f["geometry"]["coordinates"]) for f in served)
    want = sorted((p.x, p.y) for p in frame.geometry)
    return len(got) == len(want) and all(abs(a[0] - b[0]) <= tolerance and abs(a[1] - b[1]) <= tolerance
                                         for a, b in zip(got, want))
