"""Member layers the way municipal GIS offices send them, built from the real data in data/.

Two layers of Landkreis Marburg-Biedenkopf (06534), deterministic to the byte of every value:

- development plans (Bebauungspläne): a 150 m x 250 m rectangle around each Lidl store of
  data/poi/lidl_… that lies in one of the county's municipalities (data/boundaries/vg250ew_…), as the
  retail zone ("Sondergebiet Einzelhandel") a plan would designate there; a zipped Shapefile in
  EPSG:25832 with a CP1252 DBF and no .cpg, fields NUMMER, TITEL, RECHTSSTAND (in the DBF RECHTSSTAN:
  10 characters at most), IN_KRAFT (a date; none while the plan is "Im Verfahren");
- cycle routes (Radrouten): per municipality, LineStrings joining its farm shops (data/poi/farmshops_…)
  nearest first from the westernmost, each leg inside the municipality; a GeoPackage in EPSG:4326,
  fields NAME, LAENGE_KM, BESCHILDERT ("ja"/"nein").

Each layer says which AGS every feature belongs to (``Layer.ags``), so a test can upload the whole
county (member 06534) or one municipality's part (``member="06534014"``) and know what to expect.
"""
from __future__ import annotations

import datetime as dt
import zipfile
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import pyogrio
import shapely

DATA = Path(__file__).resolve().parent.parent / "data"
COUNTY = "06534"
BOUNDARIES = "boundaries/vg250ew_gemeinden_marburg-biedenkopf.geojson"
LIDL = "poi/lidl_marburg-biedenkopf_hoexter_umland.geojson"
FARMSHOPS = "poi/farmshops_marburg-biedenkopf_hoexter_umland.geojson"
LEGAL_STATUS = ("Rechtskräftig", "Rechtskräftig", "Im Verfahren", "Rechtskräftig", "Aufgehoben")   # by plan, cyclic
ROUTES_LAYER = "radrouten"
SHAPEFILE_STATUS = "RECHTSSTAN"     # RECHTSSTAND in a DBF (field names: 10 characters at most)


@dataclass(frozen=True)
class Layer:
    """A member layer: the features as the file holds them, and the AGS each one belongs to."""

    frame: gpd.GeoDataFrame
    ags: tuple[str, ...]            # per feature (same order as frame)

    @property
    def members(self) -> list[str]:
        return sorted(set(self.ags))

    def of(self, member: str) -> gpd.GeoDataFrame:
        """The features of member (an 8-digit AGS, or 06534 for all)."""
        keep = [a.startswith(member) for a in self.ags]
        return self.frame[keep].reset_index(drop=True)

    def ags_of(self, member: str) -> list[str]:
        return [a for a in self.ags if a.startswith(member)]


def municipalities(data: Path = DATA) -> gpd.GeoDataFrame:
    """The 22 municipalities of the county (AGS, name), in EPSG:25832."""
    g = gpd.read_file(data / BOUNDARIES)
    g = g[g["ags"].str.startswith(COUNTY)]
    return g[["ags", "name", "geometry"]].to_crs(25832).sort_values("ags").reset_index(drop=True)


def _in_municipalities(points: gpd.GeoDataFrame, data: Path) -> gpd.GeoDataFrame:
    """The points inside one of the county's municipalities, with its ags and town (spatial join)."""
    towns = municipalities(data).rename(columns={"name": "town"})
    pts = points.to_crs(25832).drop(columns=[c for c in ("ags", "gemeinde") if c in points.columns])
    joined = gpd.sjoin(pts, towns, predicate="within", how="inner").drop(columns="index_right")
    return joined.sort_values(["ags", "id"]).reset_index(drop=True)


def _street_titles(stores: gpd.GeoDataFrame) -> list[str]:
    """TITEL: the zone after the store's street; stores without an address after the town, north to south."""
    titles = []
    for _, s in stores.iterrows():
        street = s.get("addr:street")
        if isinstance(street, str) and street:
            titles.append(f"Sondergebiet Einzelhandel {street}")
            continue
        same = stores[(stores["ags"] == s["ags"]) & stores["addr:street"].isna()]
        if len(same) == 1:
            titles.append(f"Sondergebiet Einzelhandel {s['town']}")
            continue
        rank = sorted(same.index, key=lambda j: -same.geometry[j].y).index(s.name)
        part = ("Nord", "Süd") if len(same) == 2 else tuple(str(k) for k in range(1, len(same) + 1))
        titles.append(f"Sondergebiet Einzelhandel {s['town']}-{part[rank]}")
    return titles


def development_plans(data: Path = DATA) -> Layer:
    """Bebauungspläne around the county's Lidl stores (EPSG:25832), as a municipal GIS names them."""
    stores = _in_municipalities(gpd.read_file(data / LIDL), data)
    towns = municipalities(data).set_index("ags")
    numbers, status, in_force, geoms = [], [], [], []
    per_town: dict[str, int] = {}
    for i, s in stores.iterrows():
        k = per_town[s["ags"]] = per_town.get(s["ags"], 0) + 1
        numbers.append(f"B-{int(s['ags'][-3:])}/{k}")
        st = LEGAL_STATUS[i % len(LEGAL_STATUS)]
        status.append(st)
        in_force.append(None if st == "Im Verfahren" else dt.date(1994 + 3 * i, 1 + (5 * i) % 12, 1 + (11 * i) % 28))
        x, y = s.geometry.x, s.geometry.y
        rect = shapely.box(round(x) - 75, round(y) - 125, round(x) + 75, round(y) + 125)
        assert towns.loc[s["ags"], "geometry"].covers(rect), f"plan {numbers[-1]} leaves {s['ags']}"
        geoms.append(rect)
    frame = gpd.GeoDataFrame({
        "NUMMER": numbers,
        "TITEL": _street_titles(stores),
        "RECHTSSTAND": status,
        "IN_KRAFT": in_force,
    }, geometry=geoms, crs="EPSG:25832")
    return Layer(frame, tuple(stores["ags"]))


def write_development_plans(target: Path, member: str = COUNTY, data: Path = DATA) -> Path:
    """The plans of member as a Windows GIS exports them: a zipped Shapefile (Bauleitplanung/BPLAENE.*,
    upper-case extensions) in EPSG:25832, CP1252 DBF without .cpg, IN_KRAFT a DBF date field (type D).

    Byte for byte the same on every run (fixed DBF update date and zip entry times). A DBF field name
    has at most 10 characters: RECHTSSTAND arrives as RECHTSSTAN, as from any Shapefile export.
    """
    target = Path(target)
    frame = development_plans(data).of(member)
    work = target.parent / (target.stem + "_shp")
    work.mkdir(parents=True, exist_ok=True)
    shp = work / "BPLAENE.shp"
    # the Arrow path writes a date column as a DBF date field (the row-wise one would write text)
    pyogrio.write_dataframe(frame.rename(columns={"RECHTSSTAND": SHAPEFILE_STATUS}), shp, encoding="cp1252",
                            use_arrow=True)
    dbf = shp.with_suffix(".dbf")
    head = bytearray(dbf.read_bytes())
    head[1:4] = bytes([125, 1, 1])        # "last update" 2025-01-01, not today
    dbf.write_bytes(bytes(head))
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for ext in (".shp", ".shx", ".dbf", ".prj"):       # no .cpg, as Windows exports arrive
            info = zipfile.ZipInfo(f"Bauleitplanung/BPLAENE{ext.upper()}", date_time=(2025, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, shp.with_suffix(ext).read_bytes())
    return target


def _route_orders(points: list[shapely.Point], area) -> list[list[int]]:
    """Routes through the points: from the westernmost, always to the nearest point not yet visited whose
    leg stays inside area; when none is left, a new route from the westernmost remaining point."""
    shapely.prepare(area)
    left = sorted(range(len(points)), key=lambda k: (points[k].x, points[k].y))
    routes: list[list[int]] = []
    while len(left) >= 2:
        route = [left.pop(0)]
        while True:
            here = points[route[-1]]
            reachable = [k for k in left if area.covers(shapely.LineString([here, points[k]]))]
            if not reachable:
                break
            nxt = min(reachable, key=lambda k: (here.distance(points[k]), k))
            route.append(nxt)
            left.remove(nxt)
        if len(route) >= 2:
            routes.append(route)
    return routes


def cycle_routes(data: Path = DATA) -> Layer:
    """Radrouten joining the farm shops of each municipality (EPSG:4326, lengths from EPSG:25832)."""
    shops = _in_municipalities(gpd.read_file(data / FARMSHOPS), data)
    towns = municipalities(data).set_index("ags")
    names, lengths, signed, geoms, ags = [], [], [], [], []
    for key, group in shops.groupby("ags", sort=True):
        pts = list(group.geometry)
        orders = _route_orders(pts, towns.loc[key, "geometry"])
        for k, order in enumerate(orders, start=1):
            line = shapely.LineString([(round(pts[j].x, 2), round(pts[j].y, 2)) for j in order])
            town = towns.loc[key, "name"]
            names.append(f"Hofladen-Radroute {town}" + (f" {k}" if len(orders) > 1 else ""))
            lengths.append(round(line.length / 1000, 2))
            signed.append("nein" if len(names) % 3 == 0 else "ja")
            geoms.append(line)
            ags.append(str(key))
    frame = gpd.GeoDataFrame({"NAME": names, "LAENGE_KM": lengths, "BESCHILDERT": signed},
                             geometry=geoms, crs="EPSG:25832").to_crs(4326)
    return Layer(frame, tuple(ags))


def write_cycle_routes(target: Path, member: str = COUNTY, data: Path = DATA, layer: str = ROUTES_LAYER) -> Path:
    """The routes of member as a GeoPackage (layer radrouten, EPSG:4326)."""
    target = Path(target)
    before = pyogrio.get_gdal_config_option("OGR_CURRENT_DATE")
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": "2025-01-01T00:00:00.000Z"})   # gpkg_contents.last_change
    try:
        pyogrio.write_dataframe(cycle_routes(data).of(member), target, layer=layer, driver="GPKG")
    finally:
        pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": before})
    return target
