"""Every collection declared in YAML gets a map layer: polygons, lines and points of new
collections next to the demo's two, built from the real data in data/ and opened in Chromium.

- polygons (lidl_zones): a 300 m circle around each Lidl store of data/poi/lidl_…, coloured
  by a `status` vocabulary (one value outside it, drawn as "Sonstige");
- lines (farm_routes): per municipality with at least two farm shops of data/poi/farmshops_…,
  a LineString joining them from west to east, dashed;
- points (lidl_stores): the Lidl stores themselves, declared `map: {show: false}`.

Screenshots at 1366×900 and 390×844 go to /tmp/gdi-shots/.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from shapely.geometry import LineString

from test_viewer_build import (  # noqa: F401  (fixtures)
    browser,
    demo_frames,
    municipalities,
    points,
    site,
    vendored,
)

from conftest import DATA, offline_page
from gdi.assets import repo_root
from gdi.collections import Collection, load_collections
from gdi.viewer import build_viewer

SHOTS = Path("/tmp/gdi-shots")
LIDL = DATA / "poi" / "lidl_marburg-biedenkopf_hoexter_umland.geojson"
FARMSHOPS = DATA / "poi" / "farmshops_marburg-biedenkopf_hoexter_umland.geojson"
STATUS = {"existing": ("Bestand", "#2e7d32"), "planned": ("Geplant", "#f9a825"), "closed": ("Geschlossen", "#c62828")}
OTHER_COLOUR = "#555555"        # gdi/viewer/style.py DEFAULT_COLOUR: values outside the vocabulary
ROUTE_COLOUR = "#1565c0"

ZONES_YML = """
id: lidl_zones
title: {de: Lidl-Umfeld, en: Lidl surroundings}
geometry_type: Polygon
storage_crs: EPSG:25832
title_field: name
properties:
  name: {type: string, required: true, title: {de: Name, en: Name}}
  status: {type: string, vocabulary: status, title: {de: Status, en: Status}}
  street: {type: string, title: {de: Straße, en: Street}}
  housenumber: {type: string, title: {de: Hausnummer, en: House number}}
  postcode: {type: string, title: {de: PLZ, en: Postcode}}
  city: {type: string, title: {de: Ort, en: City}}
  area_ha: {type: number, title: {de: Fläche (ha), en: Area (ha)}}
  website: {type: uri, title: {de: Webseite, en: Website}}
vocabularies:
  status:
    existing: {de: Bestand, en: Existing, colour: '#2e7d32', icon: store}
    planned: {de: Geplant, en: Planned, colour: '#f9a825', icon: compass-drafting}
    closed: {de: Geschlossen, en: Closed, colour: '#c62828', icon: ban}
map:
  label: name
  colour_by: status
  fill: {opacity: 0.3}
  popup:
    - {title: {de: Anschrift, en: Address}, join: [[street, housenumber], [postcode, city]]}
    - status
    - area_ha
    - website
    - member
    - dataset
  order: 20
"""

ROUTES_YML = """
id: farm_routes
title: {de: Hofladenrouten, en: Farm shop routes}
geometry_type: LineString
storage_crs: EPSG:25832
properties:
  name: {type: string, required: true, title: {de: Name, en: Name}}
  shops: {type: integer, title: {de: Hofläden, en: Farm shops}}
  length_km: {type: number, title: {de: Länge (km), en: Length (km)}}
  signposted: {type: boolean, title: {de: Beschildert, en: Signposted}}
map:
  label: name
  colour: '%s'
  line: {width: 4, dash: '8 4', opacity: 0.8}
  popup: [name, shops, length_km, signposted, member, dataset]
  order: 30
""" % ROUTE_COLOUR

STORES_YML = """
id: lidl_stores
title: {de: Lidl-Filialen, en: Lidl stores}
geometry_type: Point
storage_crs: EPSG:25832
properties:
  name: {type: string, title: {de: Name, en: Name}}
  opening_hours: {type: string, title: {de: Öffnungszeiten, en: Opening hours}}
map:
  show: false
  label: name
  colour: '#0050aa'
  icon: store
  popup: [name, opening_hours, member]
  order: 40
"""


# ---- data: frames made from the real data ------------------------------------------------

def _lidl() -> gpd.GeoDataFrame:
    return gpd.read_file(LIDL).to_crs(25832)


@pytest.fixture(scope="module")
def zones() -> gpd.GeoDataFrame:
    """300 m around every Lidl store; status cycles through the vocabulary, every 10th is 'unbekannt'."""
    lidl = _lidl()
    ids = list(STATUS)
    status = ["unbekannt" if i % 10 == 9 else ids[i % 3] for i in range(len(lidl))]
    geometry = lidl.geometry.buffer(300)
    return gpd.GeoDataFrame({
        "name": [f"Lidl-Umfeld {i + 1:03d}" for i in range(len(lidl))],
        "status": status,
        "street": lidl["addr:street"], "housenumber": lidl["addr:housenumber"],
        "postcode": lidl["addr:postcode"], "city": lidl["addr:city"],
        "area_ha": (geometry.area / 1e4).round(2),
        "website": lidl["website"].fillna(lidl["contact:website"]),
        "member": "06534", "dataset": "lidl_umfeld.gpkg",
    }, geometry=geometry, crs=25832)


@pytest.fixture(scope="module")
def routes() -> gpd.GeoDataFrame:
    """Per municipality with two or more farm shops: a line through them, west to east."""
    shops = gpd.read_file(FARMSHOPS).to_crs(25832)
    shops = shops[shops["ags"].notna()]
    rows = []
    for k, (ags, group) in enumerate(sorted(shops.groupby("ags"), key=lambda item: item[0])):
        if len(group) < 2:
            continue
        group = group.assign(x=group.geometry.x).sort_values(["x", "id"])
        line = LineString([(p.x, p.y) for p in group.geometry])
        rows.append({"name": f"Hofladenroute {group['gemeinde'].iloc[0]}", "shops": len(group),
                     "length_km": round(line.length / 1000, 1), "signposted": k % 2 == 0,
                     "member": str(ags)[:5], "dataset": "hofladenrouten.gpkg", "geometry": line})
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=25832)


@pytest.fixture(scope="module")
def stores() -> gpd.GeoDataFrame:
    lidl = _lidl()
    return gpd.GeoDataFrame({"name": lidl["name"], "opening_hours": lidl["opening_hours"], "member": "06534"},
                            geometry=lidl.geometry, crs=25832)


@pytest.fixture(scope="module")
def layer_collections(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Collection]:
    """The demo's two YAMLs from collections/ and the three above, in one folder."""
    folder = tmp_path_factory.mktemp("collections")
    for path in (repo_root() / "collections").glob("*.yml"):
        shutil.copy(path, folder / path.name)
    for name, text in (("lidl_zones", ZONES_YML), ("farm_routes", ROUTES_YML), ("lidl_stores", STORES_YML)):
        (folder / f"{name}.yml").write_text(text, encoding="utf-8")
    return load_collections(folder)


@pytest.fixture(scope="module")
def frames(municipalities, points, zones, routes, stores) -> dict[str, gpd.GeoDataFrame]:  # noqa: F811
    return {**demo_frames(municipalities, points), "lidl_zones": zones, "farm_routes": routes, "lidl_stores": stores}


def open_map(browser, url: str, viewport=(1366, 900)):  # type: ignore[no-untyped-def]
    SHOTS.mkdir(parents=True, exist_ok=True)
    page, problems, blocked = offline_page(browser, viewport=viewport)
    page.goto(url)
    page.wait_for_selector("html[data-gdi-ready='1']", timeout=15000)
    return page, problems


def german(value: float) -> str:
    """A number as the map writes it in German (Intl.NumberFormat('de'): 28,23 and 11, not 11,0)."""
    return f"{value:g}".replace(".", ",")


def control_entry(page, layer_id: str):  # type: ignore[no-untyped-def]
    """The layer-control label of a layer (its name carries data-gdi-layer)."""
    return page.locator(".leaflet-control-layers-overlays label", has=page.locator(f"[data-gdi-layer='{layer_id}']"))


def popup_rows(page) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return [tuple(r) for r in page.evaluate("""() => Array.from(
        document.querySelectorAll('.leaflet-popup-content .gdi-popup tr'),
        tr => [tr.querySelector('th').innerText, tr.querySelector('td').innerText])""")]


def close_popup(page) -> None:  # type: ignore[no-untyped-def]
    """Close the open popup and wait until Leaflet's fade-out removed it (else two are in the page)."""
    page.locator(".leaflet-popup-close-button").click()
    page.wait_for_function("document.querySelectorAll('.leaflet-popup').length === 0", timeout=5000)


def focus_feature(page, layer_id: str, name: str) -> None:  # type: ignore[no-untyped-def]
    page.evaluate("""([id, name]) => {
        let hit = null;
        gdiMap.layers.byId[id].eachLayer(l => { if (l.feature.properties.name === name) hit = l; });
        gdiMap.focus(gdiMap.map, hit); }""", [layer_id, name])
    page.wait_for_selector(f".gdi-popup h3:text-is('{name}')", timeout=5000)


# ---- tests ----------------------------------------------------------------------------------

def test_polygon_and_line_layers(browser, site, frames, layer_collections, zones, routes) -> None:  # noqa: F811
    root, base = site
    build_viewer(frames, layer_collections, root / "layers" / "index.html")
    page, problems = open_map(browser, f"{base}/layers/index.html")
    try:
        page.wait_for_timeout(300)
        assert problems == []
        # listed by title (with the feature count), in map.order after the demo's layers
        overlays = page.locator(".leaflet-control-layers-overlays")
        assert control_entry(page, "lidl_zones").inner_text().strip() == f"Lidl-Umfeld ({len(zones)})"
        assert control_entry(page, "farm_routes").inner_text().strip() == f"Hofladenrouten ({len(routes)})"
        text = overlays.inner_text()
        assert text.index("Gemeindegrenzen") < text.index("Nahversorgung") < text.index("Lidl-Umfeld") \
            < text.index("Hofladenrouten") < text.index("Lidl-Filialen")
        assert control_entry(page, "lidl_zones").locator("input").is_checked()

        # one SVG path per feature and layer
        assert len(zones) == 100 and len(routes) == 16
        assert page.locator("path.gdi-layer-lidl_zones").count() == len(zones)
        assert page.locator("path.gdi-layer-farm_routes").count() == len(routes)
        assert page.locator("path.gdi-boundary").count() == 32
        assert page.evaluate("gdiMap.stats.layers") == {"municipalities": 32, "supply_points": len(frames["supply_points"]),
                                                        "lidl_zones": 100, "farm_routes": 16, "lidl_stores": 100}

        # the term colours (outline and fill), OTHER grey for the value outside the vocabulary
        drawn = page.evaluate("""() => {
            const out = [];
            gdiMap.layers.byId.lidl_zones.eachLayer(l => out.push([l.feature.properties.status,
                l._path.getAttribute('stroke'), l._path.getAttribute('fill'), l._path.getAttribute('fill-opacity')]));
            return out; }""")
        colours = {term: colour for term, (_, colour) in STATUS.items()}
        assert len(drawn) == 100
        for status, stroke, fill, opacity in drawn:
            assert stroke == fill == colours.get(status, OTHER_COLOUR), status
            assert opacity == "0.3"
        assert sorted({d[0] for d in drawn}) == ["closed", "existing", "planned", "unbekannt"]
        lines = page.evaluate("""() => Array.from(document.querySelectorAll('path.gdi-layer-farm_routes'),
            p => [p.getAttribute('stroke'), p.getAttribute('stroke-width'), p.getAttribute('stroke-dasharray'),
                  p.getAttribute('stroke-opacity'), p.getAttribute('fill')])""")
        assert lines == [[ROUTE_COLOUR, "4", "8 4", "0.8", "none"]] * len(routes)

        # a polygon's popup: heading = label, the status badge, then the declared rows in order
        zone = zones[zones["street"].notna() & zones["postcode"].notna() & zones["city"].notna()
                     & zones["website"].notna()].iloc[0]
        focus_feature(page, "lidl_zones", zone["name"])
        badge = page.locator(".gdi-popup .gdi-popup-category")
        label, colour = STATUS.get(zone["status"], ("Sonstige", OTHER_COLOUR))
        assert badge.inner_text().strip() == label
        expected = [
            ("Anschrift", f"{zone['street']} {zone['housenumber']}, {zone['postcode']} {zone['city']}"
             if pd.notna(zone["housenumber"]) else f"{zone['street']}, {zone['postcode']} {zone['city']}"),
            ("Status", label),
            ("Fläche (ha)", german(zone["area_ha"])),
            ("Webseite", zone["website"]),
            ("Mitglied", "06534"),
            ("Datensatz", "lidl_umfeld.gpkg"),
        ]
        assert popup_rows(page) == expected
        link = page.locator(".gdi-popup a")
        assert link.count() == 1 and link.get_attribute("href") == zone["website"]
        assert link.get_attribute("target") == "_blank"
        page.screenshot(path=str(SHOTS / "layers_polygon_popup.png"))

        # a line's popup: integer and number formatted, the boolean in words; tooltip = the label
        route = routes.iloc[3]
        close_popup(page)
        focus_feature(page, "farm_routes", route["name"])
        assert popup_rows(page) == [
            ("Name", route["name"]), ("Hofläden", str(route["shops"])),
            ("Länge (km)", german(route["length_km"])),
            ("Beschildert", "ja" if route["signposted"] else "nein"),
            ("Mitglied", route["member"]), ("Datensatz", "hofladenrouten.gpkg"),
        ]
        assert page.locator(".gdi-popup .gdi-popup-category").count() == 0   # no colour_by: no badge
        tooltip = page.evaluate("""(name) => {
            let hit = null;
            gdiMap.layers.byId.farm_routes.eachLayer(l => { if (l.feature.properties.name === name) hit = l; });
            hit.openTooltip(hit.getCenter());
            return hit.getTooltip().getElement().innerText; }""", route["name"])
        assert tooltip == route["name"]

        # the legend: a section per layer, term swatches for colour_by, a dashed line swatch
        zones_legend = page.locator(".gdi-legend-layer[data-gdi-layer='lidl_zones']")
        assert zones_legend.inner_text().split("\n") == ["Lidl-Umfeld", "Bestand", "Geplant", "Geschlossen", "Sonstige"]
        swatches = zones_legend.locator(".gdi-swatch-shape").evaluate_all(
            "els => els.map(e => getComputedStyle(e).borderTopColor)")
        assert swatches == ["rgb(46, 125, 50)", "rgb(249, 168, 37)", "rgb(198, 40, 40)", "rgb(85, 85, 85)"]
        route_legend = page.locator(".gdi-legend-layer[data-gdi-layer='farm_routes']")
        assert route_legend.inner_text().strip() == "Hofladenrouten"
        assert route_legend.locator(".gdi-swatch-line.gdi-swatch-dashed").evaluate(
            "e => getComputedStyle(e).borderTopColor") == "rgb(21, 101, 192)"

        # the search covers the new layers' labels, and opens what it finds
        close_popup(page)
        page.locator(".search-button").click()
        page.locator("input.search-input").press_sequentially("Hofladenroute", delay=10)
        tips = page.locator(".search-tip")
        tips.first.wait_for(timeout=5000)
        assert tips.count() == len(routes)
        assert all(t.endswith(" – Hofladenrouten") for t in tips.all_inner_texts())
        page.locator(".search-tip", has_text=route["name"]).first.click()
        page.wait_for_selector(f".gdi-popup h3:text-is('{route['name']}')", timeout=5000)
        page.screenshot(path=str(SHOTS / "layers_1366x900.png"))
        assert problems == []
    finally:
        page.context.close()

    page, problems = open_map(browser, f"{base}/layers/index.html", viewport=(390, 844))
    try:
        page.wait_for_timeout(300)
        assert page.locator("#gdi-panel").is_hidden()   # narrow: the table starts hidden
        assert page.locator("path.gdi-layer-lidl_zones").count() == len(zones)
        # a phone: the layer list is Leaflet's layers button, the legend folded to its heading
        assert page.locator(".leaflet-control-layers-expanded").count() == 0
        assert page.locator(".gdi-legend-layer").first.is_hidden()
        page.screenshot(path=str(SHOTS / "layers_390x844.png"))
        page.locator(".gdi-legend-toggle").click()
        assert page.locator(".gdi-legend-layer[data-gdi-layer='farm_routes']").is_visible()
        page.locator(".gdi-legend-toggle").click()
        focus_feature(page, "lidl_zones", zones["name"].iloc[10])
        page.wait_for_timeout(400)
        box = page.locator(".leaflet-popup").bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390     # the popup fits the phone's width
        page.screenshot(path=str(SHOTS / "layers_390x844_popup.png"))
        assert problems == []
    finally:
        page.context.close()


def test_hidden_collection_is_listed_but_not_drawn(browser, site, frames, layer_collections, stores) -> None:  # noqa: F811
    root, base = site
    build_viewer(frames, layer_collections, root / "hidden" / "index.html")
    page, problems = open_map(browser, f"{base}/hidden/index.html")
    try:
        entry = control_entry(page, "lidl_stores")
        assert entry.inner_text().strip() == f"Lidl-Filialen ({len(stores)})"
        assert not entry.locator("input").is_checked()
        group = "gdiMap.layers.groups.lidl_stores['*']"
        assert page.evaluate(f"gdiMap.map.hasLayer({group})") is False
        blue = "span[style*='background:#0050aa']"     # this layer's markers and clusters
        assert page.locator(f".gdi-marker {blue}, .gdi-cluster {blue}").count() == 0
        assert "Lidl-Filialen" in page.locator(".gdi-legend").inner_text()   # the legend explains it anyway
        entry.locator("input").check()
        page.wait_for_timeout(300)
        assert page.evaluate(f"gdiMap.map.hasLayer({group})") is True
        assert page.evaluate(f"{group}.getLayers().length") == len(stores)
        assert page.locator(f".gdi-marker {blue}, .gdi-cluster {blue}").count() > 0
        assert problems == []
    finally:
        page.context.close()


def test_hidden_line_layer_draws_when_switched_on(browser, site, routes, tmp_path) -> None:  # noqa: F811
    """Without territory and supply analysis: no table, no analysis layers; a hidden line layer."""
    county = "storage_crs: EPSG:25832\nwrite: county\n"   # without a territory only the county writes
    (tmp_path / "farm_routes.yml").write_text(ROUTES_YML.replace("  label: name\n", "  label: name\n  show: false\n")
                                              .replace("storage_crs: EPSG:25832\n", county), encoding="utf-8")
    (tmp_path / "lidl_zones.yml").write_text(ZONES_YML.replace("storage_crs: EPSG:25832\n", county), encoding="utf-8")
    colls = load_collections(tmp_path)
    root, base = site
    build_viewer({"farm_routes": routes}, colls, root / "lines" / "index.html", lang="en")
    page, problems = open_map(browser, f"{base}/lines/index.html")
    try:
        assert page.locator("#gdi-panel").count() == 0
        text = page.locator(".leaflet-control-layers-overlays").inner_text()
        assert "Supply density" not in text and "Lidl surroundings (0)" in text
        assert page.title() == "Planners' map"
        entry = control_entry(page, "farm_routes")
        assert entry.inner_text().strip() == f"Farm shop routes ({len(routes)})"
        assert page.locator("path.gdi-layer-farm_routes").count() == 0
        entry.locator("input").check()
        assert page.locator("path.gdi-layer-farm_routes").count() == len(routes)
        assert problems == []
    finally:
        page.context.close()


def test_supply_analysis_follows_its_declaration(tmp_path, municipalities, points) -> None:  # noqa: F811
    """Distance bands and food terms come from analysis.supply, not from the code."""
    from gdi.viewer.supply import compute_picture, supply_config

    for path in (repo_root() / "collections").glob("*.yml"):
        text = path.read_text(encoding="utf-8")
        text = text.replace("distance_bands_m: [1000, 3000, 5000]", "distance_bands_m: [500, 2000]")
        text = text.replace("food: [supermarket, grocery, bakery, butcher, farm_shop, vending_machine, market]",
                            "food: [farm_shop]")
        (tmp_path / path.name).write_text(text, encoding="utf-8")
    colls = load_collections(tmp_path)
    assert colls["supply_points"].supply.distance_bands_m == (500, 2000)
    frames = demo_frames(municipalities, points)
    picture = compute_picture(frames, colls)
    assert picture.coverage.radii == (500, 2000) and picture.food == ["farm_shop"]
    assert list(picture.coverage.shares.columns) == [500, 2000]
    config, table, classes = supply_config(picture, colls, {"farm_shop": 1, "market": 2}, "de")
    assert config["bandLabels"] == ["bis 500 m", "500 m bis 2 km", "mehr als 2 km"]
    assert config["shareLabels"] == ["Fläche bis 500 m", "Fläche bis 2 km"]
    assert config["beyondLabel"] == "Fläche über 2 km"
    assert len(config["bandColours"]) == 3 and config["bandColours"][0] == "#1a9850"
    assert config["tableNote"].startswith("Lebensmittel: Hofladen.")
    assert config["tableTerms"] == ["farm_shop", "market"]
    # key, name, population, 2 terms, total, rate, 2 shares, km² beyond
    assert len(table) == len(classes) == 32 and all(len(row) == 10 for row in table)
    # without a territory there is nothing to analyse
    assert compute_picture(frames, {"supply_points": colls["supply_points"]}) is None


def test_a_long_text_scrolls_inside_its_popup(browser, site, routes, tmp_path) -> None:  # noqa: F811
    """A 2,000-character text (the longest a text property takes by default) keeps its popup within
    320 px: the text scrolls inside, the map, its buttons and the popup's close button stay usable."""
    (tmp_path / "farm_routes.yml").write_text(ROUTES_YML.replace(
        "storage_crs: EPSG:25832\n", "storage_crs: EPSG:25832\nwrite: county\n"), encoding="utf-8")
    colls = load_collections(tmp_path)
    long_routes = routes.copy()
    name = long_routes["name"].iloc[0]
    long_routes.loc[long_routes.index[0], "name"] = name + " " + "lang " * 400
    root, base = site
    build_viewer({"farm_routes": long_routes}, colls, root / "long" / "index.html", lang="en")
    page, problems = open_map(browser, f"{base}/long/index.html")
    try:
        page.evaluate("""(start) => {
            let hit = null;
            gdiMap.layers.byId['farm_routes'].eachLayer(l => { if (l.feature.properties.name.startsWith(start)) hit = l; });
            gdiMap.focus(gdiMap.map, hit); }""", name)
        page.wait_for_selector(".gdi-popup h3", timeout=5000)
        # Leaflet pans the map (animated) until the whole popup, close button included, is in view
        page.wait_for_function("""() => { const b = document.querySelector('.leaflet-popup-close-button')
            .getBoundingClientRect(); return b.top >= 0 && b.bottom <= innerHeight; }""", timeout=5000)
        box = page.evaluate("""() => { const c = document.querySelector('.leaflet-popup-content');
            return [c.clientHeight, c.scrollHeight]; }""")
        assert box[0] <= 320 and box[1] > box[0], box
        assert problems == []
    finally:
        page.context.close()
