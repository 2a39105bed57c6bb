"""The supply picture in headless Chromium: analysis layers, table, CSV, ?ags=, ?lang=en,
every popup, and hostile names that must stay text.  All non-127.0.0.1 requests are blocked."""
from __future__ import annotations

import geopandas as gpd
import pandas as pd

from test_viewer_build import (  # noqa: F401  (fixtures)
    XSS_NAME,
    browser,
    collections,
    demo_frames,
    municipalities,
    open_page,
    points,
    site,
    vendored,
)

from gdi.viewer import build_viewer

XSS_TOWN = "<img src=x onerror=window.__xss=4>"


def _layer_on(page, label: str) -> None:
    page.locator(".leaflet-control-layers-overlays label", has_text=label).locator("input").check()


def test_served_demo_map_picture_popups_and_csv(browser, server) -> None:  # noqa: F811
    page, problems, blocked = open_page(browser, server.url + "/viewer")
    try:
        assert page.locator("path.gdi-boundary").count() == 32
        n = page.evaluate("gdiMap.stats.points")
        assert n == 84 and page.locator("path.gdi-county").count() == 2
        # every point's popup opens, with name/category and the publishing member
        opened = page.evaluate("""async () => {
            const out = [];
            for (let i = 0; i < gdiMap.markers.length; i++) {
                const elem = await gdiMap.openPoint(i);
                out.push(elem ? elem.querySelector('.gdi-popup').innerText : null);
                gdiMap.map.closePopup();
            }
            return out; }""")
        assert len(opened) == n and all(opened), [i for i, t in enumerate(opened) if not t]
        assert all("Mitglied" in t and "Datensatz" in t for t in opened)

        # the analysis layers: off at first, drawn when switched on, with their legend
        assert page.locator("path.gdi-density").count() == 0
        _layer_on(page, "Versorgungsdichte")
        _layer_on(page, "Entfernung zur nächsten Lebensmittelversorgung")
        page.wait_for_function("gdiMap.stats.bandsDrawn", timeout=10000)  # fetched when switched on
        assert page.locator("path.gdi-density").count() == 32
        assert page.locator("path.gdi-band").count() == page.evaluate("gdiMap.stats.bands") > 32
        legend = page.locator(".gdi-legend").inner_text()
        assert "mehr als 5 km" in legend and "Punkte je 1.000 Einwohner" in legend

        # the table beside the map, and its CSV
        rows = page.locator(".gdi-table tbody tr")
        assert rows.count() == 32
        assert "78.203" in page.locator(".gdi-table tr[data-key='06534014']").inner_text()
        with page.expect_download() as dl:
            page.locator("a.gdi-csv").click()
        csv = open(dl.value.path(), encoding="utf-8-sig").read().splitlines()
        assert len(csv) == 33 and csv[0].startswith("AGS;Gemeinde;Einwohner")
        marburg = next(line for line in csv if line.startswith("06534014;Marburg;78203;"))
        assert marburg.count(";") == csv[0].count(";")

        # the search finds a point by name and opens it
        name = page.evaluate("gdiMap.markers.find(m => m.gdiPoint.name).gdiPoint.name")
        page.locator(".search-button").click()
        page.locator("input.search-input").press_sequentially(name[:8], delay=10)
        page.locator(".search-tip", has_text=name).first.click()
        page.wait_for_selector(".gdi-popup h3", timeout=5000)
        assert name in page.locator(".gdi-popup h3").inner_text()
        page.screenshot(path=str(server.home / "viewer_picture.png"))
        assert problems == []
    finally:
        page.context.close()


def test_ags_parameter_and_english(browser, server) -> None:  # noqa: F811
    page, problems, _ = open_page(browser, server.url + "/viewer?ags=06534014&lang=en")
    try:
        assert page.evaluate("gdiMap.selected") == "06534014"
        inside = page.evaluate("""() => {
            let layer = null;
            gdiMap.layers.territory.eachLayer(l => { if (l.feature.properties.ags === '06534014') layer = l; });
            return gdiMap.map.getBounds().pad(0.01).contains(layer.getBounds()) && gdiMap.map.getZoom() >= 10; }""")
        assert inside
        assert page.locator(".gdi-table tr.selected").get_attribute("data-key") == "06534014"
        assert "Municipality" in page.locator(".gdi-table thead").inner_text()
        assert "Supply density" in page.locator(".leaflet-control-layers-overlays").inner_text()
        assert page.locator("html").get_attribute("lang") == "en"
        assert problems == []
    finally:
        page.context.close()
    # ?key= names the territory feature whatever its key field is called (?ags= above: the field's name)
    page, problems, _ = open_page(browser, server.url + "/viewer?key=06534014&embed=1")
    try:
        assert page.evaluate("gdiMap.selected") == "06534014"
        assert page.locator("#gdi-panel").is_hidden()
        assert problems == []
    finally:
        page.context.close()


def test_hostile_names_stay_text_everywhere(browser, site, municipalities, points, collections) -> None:  # noqa: F811
    root, base = site
    mun = municipalities.copy()
    ags = mun.loc[mun["name"] == "Wohratal", "ags"].iloc[0]
    mun.loc[mun["name"] == "Wohratal", "name"] = XSS_TOWN
    build_viewer(demo_frames(mun, points), collections, root / "xss" / "index.html")
    page, problems, _ = open_page(browser, f"{base}/xss/index.html")
    try:
        row = page.locator(".gdi-table tbody tr", has_text=XSS_TOWN)
        assert row.count() == 1 and page.locator(".gdi-table img, .gdi-panel img").count() == 0
        row.click()  # zooms there and outlines it
        assert page.evaluate("gdiMap.map.getZoom()") >= 10
        # the tooltip of the municipality
        box = page.evaluate("""(ags) => {
            let layer = null;
            gdiMap.layers.territory.eachLayer(l => { if (l.feature.properties.ags === ags) layer = l; });
            layer.openTooltip(layer.getBounds().getCenter());
            return layer.getTooltip().getElement().innerText; }""", ags)
        assert XSS_TOWN in box and page.locator(".leaflet-tooltip img").count() == 0
        # search results for the town and for the point
        page.locator(".search-button").click()
        page.locator("input.search-input").press_sequentially("<img src=x", delay=10)
        tips = page.locator(".search-tip")
        tips.first.wait_for(timeout=5000)
        texts = tips.all_inner_texts()
        assert any(XSS_TOWN in t for t in texts) and any(XSS_NAME in t for t in texts)
        assert page.locator(".search-tooltip img").count() == 0
        csv = page.evaluate("gdiMap.csv()")
        assert XSS_TOWN in csv
        assert page.evaluate("typeof window.__xss") == "undefined"
        assert problems == []
    finally:
        page.context.close()


def test_ten_thousand_points_publish_quickly(tmp_path, municipalities, collections) -> None:  # noqa: F811
    import time

    import numpy as np

    rng = np.random.default_rng(7)
    west, south, east, north = municipalities.total_bounds
    n = 10_000
    cats = list(collections["supply_points"].categories)
    many = gpd.GeoDataFrame(pd.DataFrame({"name": [f"P{i}" for i in range(n)],
                                          "category": [cats[i % len(cats)] for i in range(n)]}),
                            geometry=gpd.points_from_xy(rng.uniform(west, east, n), rng.uniform(south, north, n)),
                            crs=4326)
    started = time.perf_counter()
    out = build_viewer(demo_frames(municipalities, many), collections, tmp_path / "index.html")
    seconds = time.perf_counter() - started
    print(f"10k points: build {seconds:.2f} s, {out.stat().st_size / 1e6:.1f} MB")
    assert seconds < 8, seconds
