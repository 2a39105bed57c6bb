"""A collection above viewer.tiles_above is drawn from gdi's vector tiles, not embedded.

The demo data on each store, with the threshold lowered to 50 (the 84 supply points are tiled,
the 32 municipalities embedded as always), served by a real `gdi serve`: the page carries no
feature of the tiled collection, Chromium draws its tiles from the server, a click opens the
popup with the API's values, and the search finds a point by name through the API.  The
store aggregates the map build uses (count, value_counts) and the exact fast reach of many
points are checked here too.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import requests
import shapely
import yaml

from conftest import REPO, Server, free_port, fresh_store, home_store, launch_chromium, offline_page, run_gdi
from gdi.viewer.analysis import QUAD_SEGS, REACH_DIRECT_POINTS, reach, reach_many
from gdi.viewer.tiles import TiledCollection, api_base, tile_url

THRESHOLD = 50
SHOTS = Path("/tmp/gdi-shots")


@pytest.fixture(scope="module", params=["gpkg", "postgis"])
def tiled(request, tmp_path_factory):
    """A server with the demo data whose map tiles the supply points (threshold 50)."""
    port = free_port()
    config = yaml.safe_load((REPO / "config" / "gdi.yml").read_text(encoding="utf-8"))
    config["viewer"]["tiles_above"] = THRESHOLD
    config["viewer"]["basemap"] = "none"
    config["server"]["url"] = f"http://127.0.0.1:{port}"
    root = tmp_path_factory.mktemp(f"tiled-{request.param}")
    (root / "gdi.yml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    home = root / "home"
    home.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GDI_CONFIG", str(root / "gdi.yml"))
        store = fresh_store(request.param, request)
        (home / "store-url").write_text(store or "")
        run_gdi("demo", "--no-serve", home=home, check=True, store=store)
        srv = Server(home, port)
        srv.points = requests.get(f"{srv.url}/collections/supply_points/items?f=json&limit=1000",
                                  timeout=30).json()["features"]
        yield srv
        srv.stop()


def page_config(page: str) -> tuple[dict, dict]:
    """The map's config (the gdiMap.init argument) and its embedded data."""
    data = json.loads(re.search(r'<script type="application/json" id="gdi-data">(.*?)</script>', page, re.S)[1])
    layers = [json.loads(m) for m in re.findall(r"gdiMap\.tileOptions\((\{.*?\})\)\s*\)", page, re.S)]
    return {layer["id"]: layer for layer in layers}, data


def test_the_page_embeds_no_feature_of_the_tiled_collection(tiled, tmp_path) -> None:
    points = tiled.points
    assert len(points) == 84 > THRESHOLD
    page = (tiled.home / "viewer" / "index.html").read_text(encoding="utf-8")
    specs, data = page_config(page)
    assert set(specs) == {"supply_points"}                     # the municipalities (32) stay embedded
    assert data["layers"]["supply_points"] is None
    assert len(data["layers"]["municipalities"]["features"]) == 32
    for f in points:
        lon, lat = f["geometry"]["coordinates"]
        # neither as a GeoJSON position nor as the columns of embedded points ("lat": […], "lon": […])
        assert f"[{json.dumps(round(lon, 6))},{json.dumps(round(lat, 6))}]" not in page
        assert f"{json.dumps(round(lat, 6))},{json.dumps(round(lon, 6))}" not in page
        name = f["properties"]["name"]
        if name and len(name) > 12 and " " in name:          # a shop's own name, not a term's ("Hofladen")
            assert json.dumps(name, ensure_ascii=False)[1:-1].replace("&", "\\u0026") not in page, name
    spec = specs["supply_points"]
    # count and legend from the store's aggregates, equal to what the API has
    by_term: dict[str, int] = {}
    for f in points:
        by_term[f["properties"]["category"]] = by_term.get(f["properties"]["category"], 0) + 1
    assert spec["count"] == 84
    assert spec["present"] == [t for t in spec["terms"] if by_term.get(t)]
    assert spec["tiled"]["api"] == ""                         # the served page asks its own server
    assert "'/collections/supply_points/tiles/WebMercatorQuad/{z}/{y}/{x}?f=mvt'" in page
    # the same table and legend as with the points embedded (the analysis read them in batches), in a smaller page
    embedded = embedded_page(tiled, tmp_path)
    specs_embedded, data_embedded = page_config(embedded)
    assert data["table"] == data_embedded["table"] and len(data["table"]) == 32
    assert not specs_embedded and len(data_embedded["layers"]["supply_points"]["lat"]) == 84
    assert len(page.encode("utf-8")) < len(embedded.encode("utf-8")) - 10_000


def embedded_page(srv, tmp_path: Path) -> str:
    """The served map of the same store built with the shipped threshold (everything embedded)."""
    from gdi.collections import load_collections
    from gdi.publish.map_build import build_from_store
    from gdi.store import open_store

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GDI_CONFIG", str(REPO / "config" / "gdi.yml"))
        mp.setenv("GDI_HOME", str(srv.home))
        if srv.store:
            mp.setenv("GDI_STORE", srv.store)
        else:
            mp.delenv("GDI_STORE", raising=False)
        out = build_from_store(open_store(), load_collections(), tmp_path / "index.html", all_languages=False)
        return out.read_text(encoding="utf-8")


def test_the_single_file_points_at_the_configured_server(tiled, tmp_path) -> None:
    out = tmp_path / "karte.html"
    env_store = home_store(tiled.home)
    run_gdi("viewer", "--out", str(out), home=tiled.home, check=True, store=env_store)
    page = out.read_text(encoding="utf-8")
    assert f"'{tiled.url}/collections/supply_points/tiles/WebMercatorQuad/{{z}}/{{y}}/{{x}}?f=mvt'" in page
    specs, data = page_config(page)
    assert specs["supply_points"]["tiled"]["api"] == tiled.url and data["layers"]["supply_points"] is None
    assert "<script src=" not in page


def _open(browser, url: str, viewport=(1366, 900)):  # type: ignore[no-untyped-def]
    page, problems, blocked = offline_page(browser, viewport=viewport)
    requests_seen: list[str] = []
    page.on("request", lambda r: requests_seen.append(r.url))
    page.goto(url, wait_until="load")
    page.wait_for_selector("html[data-gdi-ready='1']", state="attached")
    # tiles drawn: features in the VectorGrid's tiles and their SVG paths
    page.wait_for_function("""() => { var g = gdiMap.tiled[0]; if (!g || !g._vectorTiles) return false;
        var n = 0; for (var k in g._vectorTiles) n += Object.keys(g._vectorTiles[k]._features || {}).length;
        return n > 0 && document.querySelectorAll('.leaflet-gdiTiles-pane svg path').length > 0; }""", timeout=15000)
    return page, problems, blocked, requests_seen


def test_tiles_are_drawn_and_a_click_opens_the_popup_with_the_apis_values(tiled) -> None:
    from playwright.sync_api import sync_playwright

    by_fid = {f["id"]: f for f in tiled.points}
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            for viewport in ((1366, 900), (390, 844)):
                page, problems, blocked, seen = _open(browser, f"{tiled.url}/viewer", viewport)
                assert any("/collections/supply_points/tiles/WebMercatorQuad/" in u and "f=mvt" in u for u in seen)
                drawn = page.evaluate("""() => { var g = gdiMap.tiled[0], ids = [];
                    for (var k in g._vectorTiles) ids = ids.concat(Object.keys(g._vectorTiles[k]._features));
                    return ids.map(Number); }""")
                assert drawn and set(drawn) <= set(by_fid)
                SHOTS.mkdir(exist_ok=True)
                page.screenshot(path=str(SHOTS / f"tiled-{tiled.store and 'postgis' or 'gpkg'}-{viewport[0]}.png"))
                if viewport[0] == 1366:
                    # a named point clear of the controls, clicked where it is drawn
                    target = page.evaluate("""() => { var g = gdiMap.tiled[0], m = gdiMap.map.getContainer().getBoundingClientRect();
                        for (var k in g._vectorTiles) { var fs = g._vectorTiles[k]._features;
                          for (var id in fs) { var f = fs[id].feature, r = f._path.getBoundingClientRect();
                            var x = r.left + r.width / 2, y = r.top + r.height / 2;
                            if (f.properties.name && x > m.left + 80 && x < m.left + 300 && y > m.top + 200 && y < m.bottom - 80
                                && document.elementFromPoint(x, y) === f._path) return [Number(id), x, y]; } }
                        return null; }""")
                    assert target, "no clickable tile point"
                    fid, x, y = target
                    page.mouse.click(x, y)
                    page.wait_for_selector(".leaflet-popup-content .gdi-popup h3", timeout=10000)
                    assert any(re.search(rf"/collections/supply_points/items/{fid}\?f=json", u) for u in seen)
                    props = requests.get(f"{tiled.url}/collections/supply_points/items/{fid}?f=json",
                                         timeout=30).json()["properties"]
                    assert page.inner_text(".leaflet-popup-content h3") == props["name"]
                    rows = dict(r.split("\t", 1) for r in page.inner_text(".leaflet-popup-content table").split("\n"))
                    assert rows["Mitglied"] == props["member"] and rows["Datensatz"] == props["dataset"]
                    assert rows["Aktualisiert"] == props["updated"][:10] + " " + props["updated"][11:16]
                    page.screenshot(path=str(SHOTS / "tiled-popup.png"))
                assert not problems and not blocked, (problems, blocked)
                page.context.close()
        finally:
            browser.close()


def test_the_search_finds_a_tiled_point_through_the_api(tiled) -> None:
    from playwright.sync_api import sync_playwright

    wanted = next(f for f in tiled.points if f["properties"]["name"] == "Pfeiffer's Hofladen")
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page, problems, blocked, seen = _open(browser, f"{tiled.url}/viewer")
            page.click(".leaflet-control-search .search-button")
            # LIKE's wildcards are literal in the search, as in the embedded one: "s_hof" would match "s Hof"
            page.type(".leaflet-control-search input", "s_hof", delay=20)
            for _ in range(100):
                if any("filter=" in u and "%5C_hof" in u for u in seen):
                    break
                page.wait_for_timeout(100)
            assert any("filter=" in u and "%5C_hof" in u for u in seen), seen
            page.wait_for_timeout(500)
            assert page.query_selector_all(".search-tooltip .search-tip") == []
            page.fill(".leaflet-control-search input", "")
            page.type(".leaflet-control-search input", "pfeiffer", delay=20)
            page.wait_for_selector(".search-tooltip .search-tip", timeout=10000)
            assert page.eval_on_selector_all(".search-tooltip .search-tip", "els => els.map(e => e.textContent)") \
                == ["Pfeiffer's Hofladen – Hofladen"]
            assert any("/collections/supply_points/items?" in u and "filter=" in u for u in seen)
            page.click(".search-tooltip .search-tip")
            page.wait_for_selector(".leaflet-popup-content .gdi-popup h3", timeout=10000)
            assert page.inner_text(".leaflet-popup-content h3") == "Pfeiffer's Hofladen"
            at = page.evaluate("(() => { var c = gdiMap.map.getCenter(); return [c.lng, c.lat, gdiMap.map.getZoom()]; })()")
            lon, lat = wanted["geometry"]["coordinates"]
            assert at[2] >= 15 and abs(at[0] - lon) < 1e-4 and abs(at[1] - lat) < 1e-4
            assert not problems and not blocked, (problems, blocked)
        finally:
            browser.close()


def test_store_aggregates_match_the_features(tiled) -> None:
    from gdi.collections import get_collection
    from gdi.store import open_store

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GDI_HOME", str(tiled.home))
        if tiled.store:
            mp.setenv("GDI_STORE", tiled.store)
        else:
            mp.delenv("GDI_STORE", raising=False)
        store = open_store()
        coll = get_collection("supply_points")
        frame = store.read(coll)
        assert store.count(coll) == len(frame) == 84
        assert store.value_counts(coll, "category") == frame["category"].value_counts().to_dict()
        assert store.count(get_collection("municipalities")) == 32
        # what the supply analysis reads of a tiled collection: positions and its field only
        with store.read_batches(coll, batch_size=50, columns=["category"]) as (_version, batches):
            got = [batch for batch in batches]
        assert [len(b) for b in got] == [3, 3] and [len(b[0]) for b in got] == [50, 34]
        fids = [fid for b in got for fid in b[0]]
        assert fids == sorted(frame["fid"].tolist())
        assert [v for b in got for v in b[2]] == frame.sort_values("fid")["category"].tolist()
        assert shapely.from_wkb(got[0][1][0]).equals(frame.sort_values("fid").geometry.iloc[0])
        with pytest.raises(Exception, match="no column"):
            with store.read_batches(coll, batch_size=50, columns=["name; DROP TABLE x"]) as (_v, batches):
                list(batches)


def test_the_reach_of_many_points_equals_the_union_of_their_circles() -> None:
    rng = np.random.default_rng(7)
    coords = np.unique(rng.uniform(0, 6000, (REACH_DIRECT_POINTS + 5000, 2)).round(1), axis=0)
    direct = shapely.union_all(shapely.buffer(shapely.points(coords), 1000, quad_segs=QUAD_SEGS))
    fast = reach_many(coords, 1000)
    assert fast.area == pytest.approx(direct.area, rel=1e-9)
    assert shapely.symmetric_difference(fast, direct).area < 1e-3
    assert reach(shapely.points(coords), 1000).area == pytest.approx(direct.area, rel=1e-9)


def test_tiled_summaries_and_urls() -> None:
    summary = TiledCollection(5, None, {"category": {"farm_shop": 3, "bakery": 1, None: 1}})
    assert summary.term_counts("category", {"farm_shop": 1, "supermarket": 1, "_other": 1}) \
        == {"farm_shop": 3, "_other": 2}
    assert tile_url("http://127.0.0.1:5000/", "supply_points") == \
        "http://127.0.0.1:5000/collections/supply_points/tiles/WebMercatorQuad/{z}/{y}/{x}?f=mvt"
    assert api_base("/gdi/") == "/gdi" and api_base("") == ""
    for bad in ("javascript:alert(1)", "http://x/'+alert(1)+'", "//evil.example"):
        with pytest.raises(ValueError):
            api_base(bad)
