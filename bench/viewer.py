"""First-draw benchmark of the planners' map: 10,000 points, headless Chromium, offline.

run() builds the map from the real boundaries plus 10,000 random points, serves
it on 127.0.0.1 with the vendored assets, blocks every other host, and returns
build time, page size, the map script's own init time and navigation -> ready.
"""
from __future__ import annotations

import functools
import http.server
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

DATA = Path("/work/shared/data") if Path("/work/shared/data").is_dir() else Path(__file__).resolve().parents[2] / "shared" / "data"


def run(n: int = 10_000) -> dict:
    import geopandas as gpd
    import numpy as np
    import pandas as pd
    import yaml
    from playwright.sync_api import sync_playwright

    from gdi.assets import repo_root, vendor_dir
    from gdi.viewer import build_viewer

    collections = {p.stem: yaml.safe_load(p.read_text(encoding="utf-8"))
                   for p in sorted((repo_root() / "collections").glob("*.yml"))}
    mun = pd.concat([gpd.read_file(DATA / "boundaries" / f"vg250ew_gemeinden_{s}.geojson")
                     for s in ("marburg-biedenkopf", "hoexter")], ignore_index=True)
    mun = gpd.GeoDataFrame(mun.rename(columns={"pop": "population"}), crs=4326)
    rng = np.random.default_rng(42)
    west, south, east, north = mun.total_bounds
    cats = list(collections["supply_points"]["categories"])
    pts = gpd.GeoDataFrame({"name": [f"Punkt {i}" for i in range(n)], "category": [cats[i % len(cats)] for i in range(n)]},
                           geometry=gpd.points_from_xy(rng.uniform(west, east, n), rng.uniform(south, north, n)), crs=4326)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "vendor").symlink_to(vendor_dir(), target_is_directory=True)
        started = time.perf_counter()
        out = build_viewer(mun, pts, collections, root / "index.html", basemap="none")
        build_s = time.perf_counter() - started
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
        http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None  # type: ignore[method-assign]
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
                context = browser.new_context(viewport={"width": 1280, "height": 860})
                context.route("**/*", lambda r: r.continue_() if urlsplit(r.request.url).hostname == "127.0.0.1"
                              else r.abort())
                page = context.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.goto(f"http://127.0.0.1:{server.server_address[1]}/index.html")
                try:
                    page.wait_for_selector("html[data-gdi-ready='1']", state="attached", timeout=20000)
                except Exception:
                    raise RuntimeError(f"map not ready: {errors}") from None
                ready_ms = page.evaluate("performance.now()")
                stats = page.evaluate("gdiMap.stats")
                browser.close()
        finally:
            server.shutdown()
        return {"points": stats["points"], "build_s": round(build_s, 2), "html_mb": round(out.stat().st_size / 1e6, 2),
                "init_ms": round(stats["initMs"]), "first_draw_ms": round(ready_ms), "errors": errors,
                "ok": stats["points"] == n and ready_ms < 1500 and not errors}


if __name__ == "__main__":
    print(run())
