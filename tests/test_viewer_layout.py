"""The planners' map's layout in Chromium at 1366×900 and 390×844: nothing covers anything.

Built from the demo's real data (tests/test_viewer_build.py's frames) with one farm shop
renamed to a 2,000-character name, served with the language switch.  Measured with getBoundingClientRect: every visible
control and panel (zoom, full screen, search, language switch, table button, layer list, legend,
scale bar, attribution, the table beside the map) against every other and against the counties' box
on opening; popups are drawn above the controls and panned clear of them.  Screenshots go to
/tmp/gdi-shots/layout_*.png.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from test_viewer_build import (  # noqa: F401  (fixtures)
    browser,
    collections,
    demo_frames,
    municipalities,
    points,
    site,
    vendored,
)

from gdi.viewer import build_viewer
from gdi.viewer.data import bounds
from gdi.viewer.style import text

SHOTS = Path("/tmp/gdi-shots")
LONG_NAME = ("Hofladen " + "sehr lang " * 200)[:2000]
CAP = 300          # layout.js CAP: characters of a popup text before "mehr"

#: The rectangles (viewport px) of every visible control and panel, named.
RECTS = """() => {
    const out = [];
    const add = (name, el) => {
        const r = el.getBoundingClientRect();
        if (r.width > 0 && r.height > 0 && getComputedStyle(el).visibility !== 'hidden')
            out.push({name, left: r.left, top: r.top, right: r.right, bottom: r.bottom});
    };
    document.querySelectorAll('.leaflet-control-container .leaflet-control').forEach(el => {
        const name = ['zoom', 'search', 'layers', 'gdi-legend', 'scale', 'attribution', 'gdi-panel-toggle', 'gdi-lang']
            .find(n => el.className.includes(n)) || el.className;
        add(name, el);
    });
    const panel = document.getElementById('gdi-panel');
    if (panel && !panel.hidden) add('table', panel);
    document.querySelectorAll('.leaflet-popup').forEach(el => add('popup', el));
    return out; }"""

#: The counties' outlines as one box (viewport px).
COUNTIES = """() => {
    const boxes = Array.from(document.querySelectorAll('path.gdi-county'), p => p.getBoundingClientRect());
    return {left: Math.min(...boxes.map(b => b.left)), top: Math.min(...boxes.map(b => b.top)),
            right: Math.max(...boxes.map(b => b.right)), bottom: Math.max(...boxes.map(b => b.bottom))}; }"""

#: The element at the centre of a box (and of its part inside the map) is in the box's element.
ON_TOP = """([selector, box]) => {
    const x = (box.left + box.right) / 2, y = (box.top + box.bottom) / 2;
    const hit = document.elementFromPoint(x, y);
    return !!hit && !!hit.closest(selector); }"""


def overlap(a: dict, b: dict) -> bool:
    return a["left"] < b["right"] - 0.5 and b["left"] < a["right"] - 0.5 \
        and a["top"] < b["bottom"] - 0.5 and b["top"] < a["bottom"] - 0.5


def assert_apart(rects: list[dict]) -> None:
    """No two rectangles overlap."""
    hits = [(a["name"], b["name"]) for i, a in enumerate(rects) for b in rects[i + 1:] if overlap(a, b)]
    assert hits == [], (hits, rects)


def named(rects: list[dict], name: str) -> dict:
    found = [r for r in rects if r["name"] == name]
    assert len(found) == 1, (name, rects)
    return found[0]


def inside(box: dict, outer: dict) -> bool:
    return box["left"] >= outer["left"] - 0.5 and box["right"] <= outer["right"] + 0.5 \
        and box["top"] >= outer["top"] - 0.5 and box["bottom"] <= outer["bottom"] + 0.5


@pytest.fixture(scope="module")
def layout_map(site, municipalities, points, collections) -> tuple[str, list[list[float]]]:  # noqa: F811
    """The page's URL and the bounds it fits on opening (all the data: [[south, west], [north, east]])."""
    root, base = site
    pts = points.copy()
    first = pts.index[pts["name"].notna()][0]
    pts.loc[first, "name"] = LONG_NAME
    frames = demo_frames(municipalities, pts)
    build_viewer(frames, collections, root / "layout" / "index.html", lang_switch=True)
    return f"{base}/layout/index.html", bounds(*frames.values())


#: The box (viewport px) of [[south, west], [north, east]] on the map.
FITTED = """(b) => {
    const map = gdiMap.map, r = map.getContainer().getBoundingClientRect();
    const sw = map.latLngToContainerPoint(b[0]), ne = map.latLngToContainerPoint(b[1]);
    return {left: r.left + sw.x, top: r.top + ne.y, right: r.left + ne.x, bottom: r.top + sw.y}; }"""


def open_at(browser, url: str, size: tuple[int, int]):  # noqa: F811
    from conftest import offline_page

    SHOTS.mkdir(parents=True, exist_ok=True)
    page, problems, _ = offline_page(browser, viewport=size)
    page.goto(url)
    page.wait_for_selector("html[data-gdi-ready='1']", timeout=15000)
    page.wait_for_timeout(200)
    return page, problems


def map_box(page) -> dict:  # type: ignore[no-untyped-def]
    return page.evaluate("""() => { const r = gdiMap.map.getContainer().getBoundingClientRect();
        return {left: r.left, top: r.top, right: r.right, bottom: r.bottom}; }""")


def assert_fully_visible(page, rects: list[dict], *names: str) -> None:  # type: ignore[no-untyped-def]
    """Inside the map and on top at its centre (nothing drawn over it)."""
    box = map_box(page)
    for name in names:
        r = named(rects, name)
        assert inside(r, box), (name, r, box)
        selector = {"scale": ".leaflet-control-scale", "attribution": ".leaflet-control-attribution"}[name]
        assert page.evaluate(ON_TOP, [selector, r]), name


def open_popup_at(page, where: dict, auto_pan: bool) -> dict:  # type: ignore[no-untyped-def]
    """A municipality's popup opened at the centre of the box where (viewport px); returns its box."""
    page.evaluate("""([where, autoPan]) => {
        const map = gdiMap.map, r = map.getContainer().getBoundingClientRect();
        const at = map.containerPointToLatLng([(where.left + where.right) / 2 - r.left, (where.top + where.bottom) / 2 - r.top]);
        let layer = null;
        gdiMap.layers.territory.eachLayer(l => { layer = layer || l; });
        layer.getPopup().options.autoPan = autoPan;
        layer.openPopup(at); }""", [where, auto_pan])
    page.wait_for_selector(".leaflet-popup .gdi-popup", timeout=5000)
    page.wait_for_timeout(400)                      # the auto-pan's animation
    return named(page.evaluate(RECTS), "popup")


def close_popup(page) -> None:  # type: ignore[no-untyped-def]
    page.evaluate("() => { gdiMap.map.closePopup(); }")      # (returning the map would serialise all of it)
    page.wait_for_function("document.querySelectorAll('.leaflet-popup').length === 0", timeout=5000)


CONTROLS = ["zoom", "search", "gdi-lang", "gdi-panel-toggle", "layers", "gdi-legend", "scale", "attribution"]


def assert_opening(page, fitted: list[list[float]], names: list[str], shot: str) -> None:  # type: ignore[no-untyped-def]
    """On opening: exactly these controls and panels, none over another, the scale bar and the
    attribution fully visible, and neither the counties nor all the data (fitted) covered by any."""
    page.screenshot(path=str(SHOTS / shot))
    rects = page.evaluate(RECTS)
    assert sorted(r["name"] for r in rects) == sorted(names)
    assert_apart(rects)
    assert_fully_visible(page, rects, "scale", "attribution")
    for area in (page.evaluate(COUNTIES), page.evaluate(FITTED, fitted)):
        assert [r["name"] for r in rects if overlap(r, area)] == [], area


def test_desktop_nothing_covers_anything(browser, layout_map) -> None:  # noqa: F811
    url, fitted = layout_map
    page, problems = open_at(browser, url, (1366, 900))
    try:
        assert_opening(page, fitted, CONTROLS + ["table"], "layout_1366x900.png")
        assert page.locator(".leaflet-control-layers-expanded").count() == 1     # room: the list is open
        assert page.locator(".gdi-legend-layer").first.is_visible()               # and the legend
        assert page.locator(".gdi-lang a").get_attribute("href") == "?lang=en"        # on the map, not in the table
        assert page.locator(".gdi-lang a").inner_text() == "English"
        # the counties and all the data the map opens on lie inside the map, not shrunk to a stamp
        box = map_box(page)
        for area in (page.evaluate(COUNTIES), page.evaluate(FITTED, fitted)):
            assert inside(area, box), (area, box)
        area = page.evaluate(FITTED, fitted)
        assert area["bottom"] - area["top"] >= 0.5 * (box["bottom"] - box["top"]), area

        # folding the layer list: a labelled button, which opens it again (keyboard: Enter, Escape)
        de = text("de")
        fold = page.locator(".gdi-layers-fold")
        assert fold.inner_text().strip() == de["layers"] and fold.get_attribute("aria-label") == de["layers_hide"]
        fold.click()
        toggle = page.locator(".leaflet-control-layers-toggle")
        assert page.locator(".leaflet-control-layers-expanded").count() == 0
        assert toggle.is_visible() and toggle.inner_text().strip() == de["layers"]
        assert toggle.get_attribute("aria-label") == de["layers_show"] and toggle.get_attribute("aria-expanded") == "false"
        assert page.evaluate("document.activeElement.classList.contains('leaflet-control-layers-toggle')")
        page.keyboard.press("Enter")
        page.wait_for_selector(".leaflet-control-layers-expanded", timeout=2000)
        assert toggle.get_attribute("aria-expanded") == "true"
        page.keyboard.press("Escape")
        assert page.locator(".leaflet-control-layers-expanded").count() == 0
        toggle.click()
        assert page.locator(".leaflet-control-layers-expanded").count() == 1

        # a popup opened under the layer list: Leaflet pans it clear of every control
        layers = named(page.evaluate(RECTS), "layers")
        open_popup_at(page, layers, auto_pan=True)
        rects = page.evaluate(RECTS)
        assert_apart(rects)
        assert page.evaluate(ON_TOP, [".leaflet-popup", named(rects, "popup")])
        close_popup(page)
        # and one that may not pan is drawn above the list (z-order)
        popup = open_popup_at(page, layers, auto_pan=False)
        assert overlap(popup, layers)
        both = {"left": max(popup["left"], layers["left"]), "right": min(popup["right"], layers["right"]),
                "top": max(popup["top"], layers["top"]), "bottom": min(popup["bottom"], layers["bottom"])}
        assert page.evaluate(ON_TOP, [".leaflet-popup", both])
        assert page.evaluate(ON_TOP, [".leaflet-popup", popup])
        page.screenshot(path=str(SHOTS / "layout_1366x900_popup_above.png"))
        close_popup(page)

        # a 2,000-character name: capped in its popup, all of it behind "mehr", folded again by "weniger"
        i = page.evaluate("(name) => gdiMap.markers.findIndex(m => m.gdiPoint.name === name)", LONG_NAME)
        assert i >= 0
        page.evaluate("(i) => { gdiMap.openPoint(i); }", i)
        heading = page.locator(".leaflet-popup .gdi-popup h3")
        heading.wait_for(timeout=5000)
        shown = heading.locator(".gdi-capped > span").first
        assert len(shown.inner_text()) <= CAP + 2 and shown.inner_text().endswith("…")
        assert LONG_NAME.startswith(shown.inner_text()[:-2])
        more = heading.locator("button.gdi-more")
        assert more.inner_text() == de["more"] and more.get_attribute("aria-expanded") == "false"
        page.wait_for_timeout(400)
        rects = page.evaluate(RECTS)
        assert_apart(rects)                               # the capped popup is panned clear of the controls
        more.click()
        assert shown.inner_text() == LONG_NAME and more.inner_text() == de["less"]
        assert page.locator(".leaflet-popup").count() == 1    # the click did not close the popup
        content = page.evaluate("""() => { const c = document.querySelector('.leaflet-popup-content');
            return [c.clientHeight, c.scrollHeight]; }""")
        assert content[0] <= 320 < content[1], content    # all of it scrolls inside the popup
        page.screenshot(path=str(SHOTS / "layout_1366x900_long_name.png"))
        more.click()
        assert shown.inner_text().endswith("…") and more.inner_text() == de["more"]
        close_popup(page)

        # the analysis layers switched on: the legend grows by their sections, the list yields
        for label in ("Versorgungsdichte", "Entfernung zur nächsten"):
            page.locator(".leaflet-control-layers-overlays label", has_text=label).locator("input").check()
        page.wait_for_function("gdiMap.stats.bandsDrawn", timeout=10000)
        assert page.locator(".gdi-legend-distance").is_visible()
        rects = page.evaluate(RECTS)
        assert_apart(rects)
        assert_fully_visible(page, rects, "scale", "attribution")
        page.screenshot(path=str(SHOTS / "layout_1366x900_analysis.png"))
        assert problems == []
    finally:
        page.context.close()


def test_phone_nothing_covers_anything(browser, layout_map) -> None:  # noqa: F811
    url, fitted = layout_map
    page, problems = open_at(browser, url, (390, 844))
    try:
        assert_opening(page, fitted, CONTROLS, "layout_390x844.png")      # the table hidden
        # no room: the layer list and the legend start folded
        assert page.locator(".leaflet-control-layers-expanded").count() == 0
        assert page.locator(".gdi-legend-layer").first.is_hidden()

        # the open layer list stays clear of the zoom, full-screen and search buttons and of the legend
        page.locator(".leaflet-control-layers-toggle").click()
        page.wait_for_selector(".leaflet-control-layers-expanded", timeout=2000)
        rects = page.evaluate(RECTS)
        assert_apart(rects)
        assert_fully_visible(page, rects, "scale", "attribution")
        assert page.locator(".leaflet-control-layers-overlays label", has_text="Hofladen").is_visible()
        page.screenshot(path=str(SHOTS / "layout_390x844_layers.png"))

        # opening the legend folds the list (one at a time), and the legend keeps clear too
        page.locator(".gdi-legend-toggle").click()
        assert page.locator(".leaflet-control-layers-expanded").count() == 0
        assert page.locator(".gdi-legend-layer").first.is_visible()
        rects = page.evaluate(RECTS)
        assert_apart(rects)
        assert_fully_visible(page, rects, "scale", "attribution")
        page.screenshot(path=str(SHOTS / "layout_390x844_legend.png"))
        # and opening the list folds the legend
        page.locator(".leaflet-control-layers-toggle").click()
        assert page.locator(".gdi-legend-layer").first.is_hidden()
        page.mouse.click(200, 450)                         # a tap on the map folds the list
        assert page.locator(".leaflet-control-layers-expanded").count() == 0

        # a popup opened under the layers button is panned clear of every control, and on top
        popup = open_popup_at(page, named(page.evaluate(RECTS), "layers"), auto_pan=True)
        assert popup["left"] >= 0 and popup["right"] <= 390
        rects = page.evaluate(RECTS)
        assert_apart(rects)
        assert page.evaluate(ON_TOP, [".leaflet-popup", popup])
        page.screenshot(path=str(SHOTS / "layout_390x844_popup.png"))
        close_popup(page)

        # the table, when shown, goes under the map (beside it there is no room), covering nothing
        page.locator(".gdi-panel-toggle").click()
        page.wait_for_timeout(200)
        rects = page.evaluate(RECTS)
        assert_apart(rects)
        assert_fully_visible(page, rects, "scale", "attribution")
        assert named(rects, "table")["top"] >= map_box(page)["bottom"] - 0.5
        page.screenshot(path=str(SHOTS / "layout_390x844_table.png"))
        assert problems == []
    finally:
        page.context.close()
