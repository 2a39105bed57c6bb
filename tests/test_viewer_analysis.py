"""The supply analysis (gdi/viewer/analysis.py): exact values on hand-made
geometries, and cross-checks against direct shapely computations on the real data."""
from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.geometry import Point, box

from gdi.assets import repo_root
from gdi.collections import load_collections
from gdi.viewer.analysis import (
    ANALYSIS_CRS,
    assign_territory,
    counts_by_territory,
    county_outlines,
    coverage,
    food_categories,
    per_thousand,
    reach,
    supply_picture,
)
from gdi.viewer.supply import density_classes, supply_table

RADII = (1000, 3000, 5000)
COLUMNS = {"key": "ags", "field": "category", "population": "population", "label": "name"}  # the demo's



def squares() -> gpd.GeoDataFrame:
    """Two 10 km x 10 km municipalities side by side, in one county, and one in another."""
    return gpd.GeoDataFrame({
        "ags": ["06534001", "06534002", "05762004"],
        "name": ["West", "Ost", "Fern"],
        "population": [2000, 0, 4000],
    }, geometry=[box(0, 0, 10_000, 10_000), box(10_000, 0, 20_000, 10_000), box(50_000, 0, 60_000, 10_000)],
        crs=ANALYSIS_CRS)


def pts(coords, cats) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"category": cats}, geometry=[Point(x, y) for x, y in coords], crs=ANALYSIS_CRS)


@pytest.fixture(scope="module")
def collections() -> dict:
    return load_collections(repo_root() / "collections")


# ---- hand-made geometries ------------------------------------------------------------

def test_food_categories_come_from_the_yaml(collections) -> None:
    assert food_categories(collections) == [
        "supermarket", "grocery", "bakery", "butcher", "farm_shop", "vending_machine", "market"]
    assert food_categories({}) == []


def test_counts_per_municipality_and_category() -> None:
    mun = squares()
    p = pts([(5000, 5000), (1000, 1000), (15000, 5000), (10_000, 5000), (55_000, 1), (99_000, 0)],
            ["bakery", "pharmacy", "bakery", "market", "unknown", "bakery"])
    table = counts_by_territory(mun, p, "category", ["bakery", "market", "pharmacy"])
    # the point on the shared edge (10000, 5000) counts once, for the first municipality
    assert table.to_dict("list") == {"bakery": [1, 1, 0], "market": [1, 0, 0], "pharmacy": [1, 0, 0],
                                     "total": [3, 1, 1]}
    assert assign_territory(mun, p).tolist() == [0, 0, 1, 0, 2, -1]


def test_per_thousand() -> None:
    assert per_thousand(3, 2000) == 1.5
    assert per_thousand(0, 4000) == 0.0
    assert per_thousand(2, 0) is None
    assert per_thousand(2, None) is None
    assert per_thousand(2, float("nan")) is None


def test_reach_is_the_union_of_buffers() -> None:
    one = reach(pts([(0, 0)], ["bakery"]), 1000)
    assert one.area == pytest.approx(math.pi * 1000 ** 2, rel=0.01)
    # two identical points draw one circle; two far apart points two
    assert reach(pts([(0, 0), (0, 0)], ["a", "a"]), 1000).area == pytest.approx(one.area)
    assert reach(pts([(0, 0), (10_000, 0)], ["a", "a"]), 1000).area == pytest.approx(2 * one.area)
    assert reach(pts([], []), 1000).is_empty


def test_coverage_shares_and_bands_on_squares() -> None:
    mun = squares()
    # one food point in the middle of "West": its 1 km disc lies fully inside West
    cov = coverage(mun, pts([(5000, 5000)], ["bakery"]), (1000, 3000, 5000))
    disc = math.pi * 1000 ** 2
    assert cov.shares.loc[0, 1000] == pytest.approx(disc / 1e8, rel=0.01)
    assert cov.shares.loc[0, 3000] == pytest.approx(math.pi * 9e6 / 1e8, rel=0.01)
    # 5 km disc: reaches every edge of West; its intersection with a 10 km square = the square minus corners
    assert cov.shares.loc[0, 5000] == pytest.approx(shapely.Point(5000, 5000).buffer(5000).intersection(
        box(0, 0, 10_000, 10_000)).area / 1e8, rel=0.01)
    assert cov.shares.loc[1].tolist() == [0.0, 0.0, 0.0]  # 5 km from the point is exactly Ost's west edge
    assert cov.shares.loc[2].tolist() == [0.0, 0.0, 0.0]
    assert ((cov.shares >= 0) & (cov.shares <= 1)).all().all()
    # bands partition each municipality: their areas add up to its area
    for i, geom in enumerate(mun.geometry):
        parts = cov.bands[cov.bands["position"] == i]
        assert parts["area_m2"].sum() == pytest.approx(geom.area, rel=1e-6)
        assert parts.geometry.within(geom.buffer(1e-6)).all()
    west = cov.bands[cov.bands["position"] == 0].set_index("band")["area_m2"]
    assert west[0] == pytest.approx(disc, rel=0.01)
    assert west[1] == pytest.approx(math.pi * 9e6 - disc, rel=0.01)
    assert cov.bands[cov.bands["position"] == 2]["band"].tolist() == [3]  # Fern: all beyond 5 km
    empty = coverage(mun, pts([], []), (1000, 3000, 5000))
    assert empty.shares.to_numpy().sum() == 0 and set(empty.bands["band"]) == {3}


def test_county_outline_is_the_union_per_five_digit_key() -> None:
    counties = county_outlines(squares(), "ags")
    assert counties["kreis"].tolist() == ["05762", "06534"]
    assert counties.geometry.iloc[1].equals(box(0, 0, 20_000, 10_000).normalize()) or \
        counties.geometry.iloc[1].symmetric_difference(box(0, 0, 20_000, 10_000)).area < 1e-6


def test_supply_picture_and_table_on_squares() -> None:
    mun = squares().to_crs(4326)  # any CRS in, metric inside
    p = pts([(5000, 5000), (1000, 1000), (15000, 5000)], ["bakery", "pharmacy", "bakery"]).to_crs(4326)
    pic = supply_picture(mun, p, ["bakery", "pharmacy"], ["bakery"], RADII, **COLUMNS)
    assert pic.counts["total"].tolist() == [2, 1, 0]
    assert pic.rate == [1.0, None, 0.0]
    assert pic.unassigned == 0
    rows = supply_table(pic, ["bakery", "pharmacy"])
    assert [r[:6] for r in rows] == [["06534001", "West", 2000, 1, 1, 2], ["06534002", "Ost", 0, 1, 0, 1],
                                     ["05762004", "Fern", 4000, 0, 0, 0]]
    assert rows[0][6] == 1.0 and rows[1][6] is None and rows[2][6] == 0.0
    assert rows[2][-1] == pytest.approx(100.0, rel=1e-3)  # all 100 km² of Fern beyond 5 km
    classes, legend = density_classes(pic.rate, "de")
    assert classes[1] is None and legend[classes[2]]["label"] == "0" and classes[0] == 1


# ---- the real demo data ----------------------------------------------------------------

@pytest.fixture(scope="module")
def demo(demo_home):
    import os

    from gdi.collections import load_collections
    from gdi.store import open_store

    from conftest import home_store

    old = os.environ.get("GDI_HOME")
    old_store = os.environ.pop("GDI_STORE", None)
    os.environ["GDI_HOME"] = str(demo_home)
    if home_store(demo_home):
        os.environ["GDI_STORE"] = home_store(demo_home)
    try:
        cols = load_collections()
        store = open_store()
        return store.read(cols["municipalities"]), store.read(cols["supply_points"]), cols
    finally:
        os.environ.pop("GDI_STORE", None)
        if old_store is not None:
            os.environ["GDI_STORE"] = old_store
        if old is None:
            os.environ.pop("GDI_HOME", None)
        else:
            os.environ["GDI_HOME"] = old


def test_real_counts_match_a_direct_shapely_computation(demo) -> None:
    mun, points, raw = demo
    cats = list(raw["supply_points"].categories)
    pic = supply_picture(mun, points, cats, food_categories(raw), RADII, **COLUMNS)
    m = mun.to_crs(ANALYSIS_CRS).reset_index(drop=True)
    p = points.to_crs(ANALYSIS_CRS)
    assert len(m) == 32 and pic.counts["total"].sum() + pic.unassigned == len(p)
    for i, geom in enumerate(m.geometry):
        inside = p[p.geometry.intersects(geom)]
        assert pic.counts.at[i, "total"] == len(inside), m["name"].iloc[i]
        for cat in cats:
            assert pic.counts.at[i, cat] == int((inside["category"] == cat).sum())
    marburg = int(m.index[m["name"] == "Marburg"][0])
    assert int(m.at[marburg, "population"]) == 78203  # VG250-EW
    assert pic.rate[marburg] == pytest.approx(1000 * pic.counts.at[marburg, "total"] / 78203)


def test_real_coverage_is_consistent(demo) -> None:
    mun, points, raw = demo
    food = food_categories(raw)
    pic = supply_picture(mun, points, list(raw["supply_points"].categories), food, RADII, **COLUMNS)
    shares = pic.coverage.shares
    assert ((shares >= 0) & (shares <= 1)).all().all()
    assert (shares[1000] <= shares[3000] + 1e-12).all() and (shares[3000] <= shares[5000] + 1e-12).all()
    m = pic.territory
    fp = points.to_crs(ANALYSIS_CRS)
    fp = fp[fp["category"].isin(food)]
    direct = shapely.union_all([g.buffer(3000, quad_segs=8) for g in fp.geometry])
    for i, geom in enumerate(m.geometry):
        assert shares.at[i, 3000] == pytest.approx(geom.intersection(direct).area / geom.area, abs=1e-9)
        assert pic.coverage.bands[pic.coverage.bands["position"] == i]["area_m2"].sum() == \
            pytest.approx(geom.area, rel=1e-6)
    # a municipality with a food point inside has some area within 1 km
    for i in np.unique(assign_territory(m, fp)):
        if i >= 0:
            assert shares.at[int(i), 1000] > 0
    counties = pic.counties
    assert counties["kreis"].tolist() == ["05762", "06534"]
    assert counties.geometry.area.sum() == pytest.approx(m.geometry.area.sum(), rel=1e-3)
    pops = pd.Series([r for r in pic.rate if r is not None])
    assert len(pops) == 32 and (pops >= 0).all()
