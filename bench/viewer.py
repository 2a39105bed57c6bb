"""First-draw benchmark of the planners' map: 10,000 points, headless Chromium, offline.

run() builds the map from the real boundaries plus 10,000 random points, serves
it on 127.0.0.1 with the vendored assets, blocks every other host, and returns
build time, page size, the map script's own init time and navigation -> first
frame drawn (median and best of `runs` cold loads).
"""
from __future__ import annotations

import functools
import http.server
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

DATA = Path(__file__).resolve().parents[1] / "data"      # the bundled real data (data/SOURCES.md)


def run(n: int = 10_000, runs: int = 3) -> dict:
    import geopandas as gpd
    import numpy as np
    import pandas as pd
    from playwright.sync_api import sync_playwright

    from gdi.assets import repo_root, vendor_dir
    from gdi.collections import load_collections
    from gdi.viewer import build_viewer

    collections = load_collections(repo_root() / "collections")   # the demo's: municipalities, supply points
    mun = pd.concat([gpd.read_file(DATA / "boundaries" / f"vg250ew_gemeinden_{s}.geojson")
                     for s in ("marburg-biedenkopf", "hoexter")], ignore_index=True)
    mun = gpd.GeoDataFrame(mun.rename(columns={"pop": "population"}), crs=4326)
    rng = np.random.default_rng(42)
    west, south, east, north = mun.total_bounds
    cats = list(collections["supply_points"].categories)
    pts = gpd.GeoDataFrame({"name": [f"Punkt {i}" for i in range(n)], "category": [cats[i % len(cats)] for i in range(n)]},
                           geometry=gpd.points_from_xy(rng.uniform(west, east, n), rng.uniform(south, north, n)), crs=4326)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "vendor").symlink_to(vendor_dir(), target_is_directory=True)
        started = time.perf_counter()
        out = build_viewer({"municipalities": mun, "supply_points": pts}, collections, root / "index.html",
                           basemap="none")
        build_s = time.perf_counter() - started
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
        http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None  # type: ignore[method-assign]
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        errors: list[str] = []
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
                samples = [_load(browser, f"http://127.0.0.1:{server.server_address[1]}/index.html", errors)
                           for _ in range(runs)]
                browser.close()
        finally:
            server.shutdown()
            server.server_close()
        side = sum(f.stat().st_size for f in root.glob("*.json"))
        html_mb = out.stat().st_size / 1e6
    drawn = sorted(s["drawnMs"] for s in samples)
    median = drawn[len(drawn) // 2]
    points = samples[0]["points"]
    return {"points": points, "build_s": round(build_s, 2), "html_mb": round(html_mb, 2),
            "side_files_mb": round(side / 1e6, 2),
            "init_ms": round(sorted(s["initMs"] for s in samples)[len(samples) // 2]),
            "first_draw_ms": round(median), "first_draw_best_ms": round(drawn[0]),
            "first_draw_runs_ms": [round(s["drawnMs"]) for s in samples],
            # performance.now() read by Playwright after it saw the ready flag (includes its polling)
            "observed_ms": [round(s["observedMs"]) for s in samples],
            "html_parsed_ms": [round(s["domInteractive"]) for s in samples],
            "errors": errors, "ok": points == n and median < 1500 and not errors}


def _load(browser, url: str, errors: list[str]) -> dict:  # type: ignore[no-untyped-def]
    """One cold page load in a fresh context: the map's stats plus navigation timing.

    drawnMs is navigation start -> the first frame painted after gdiMap.init has
    put everything on the map (boundaries, clusters, controls, table), measured
    in the page (performance.now(), same clock as the navigation timeline).
    """
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.route("**/*", lambda r: r.continue_() if urlsplit(r.request.url).hostname == "127.0.0.1" else r.abort())
    page = context.new_page()
    page.on("pageerror", lambda e: errors.append(str(e)))
    # Wait for the load event, not with wait_for_selector: its polling runs
    # querySelectorAll in the page on every DOM change and costs the page ~100 ms.
    # gdiMap.init runs while the page is parsed, so it is done by then.
    page.goto(url, wait_until="load", timeout=20000)
    try:
        page.wait_for_selector("html[data-gdi-ready='1']", state="attached", timeout=20000)
        observed = page.evaluate("performance.now()")
        page.wait_for_function("gdiMap.stats.drawnMs !== null", timeout=20000)
    except Exception:
        raise RuntimeError(f"map not ready: {errors}") from None
    stats = page.evaluate("""() => Object.assign({}, gdiMap.stats,
        {domInteractive: performance.getEntriesByType('navigation')[0].domInteractive})""")
    stats["observedMs"] = observed
    context.close()
    return stats


if __name__ == "__main__":
    print(run())
