"""The planners' map at a million features: `gdi publish` time and peak memory, page size, first draw.

run(n) loads the real boundaries and n random points in Marburg-Biedenkopf (bench/data.py: the
real shops jittered, a zipped Shapefile as members send it) into a GeoPackage home, then
measures, for each map mode asked for:

* `gdi publish` (it rebuilds the map): wall time and peak resident size of that process;
* the page: index.html and the distance bands beside it;
* the first draw in headless Chromium, served by `gdi serve`, offline: navigation start ->
  the map script done and a frame painted (drawnMs), and, for tiled layers, -> every tile of
  the first view drawn (tilesMs); median of `runs` cold loads.

Modes: "tiled" (the shipped threshold, viewer.tiles_above) and "embedded" (the threshold
raised above n: the code path before vector tiles, every feature in the page).  The embedded
mode at 1,500,000 points needs about 10 GB and minutes (measured before: 159 s, 9,983 MB,
87 MB page, 6.2 s first draw), so by default it runs only up to EMBEDDED_MAX points.

    .venv/bin/python -m bench.map_tiles [N ...]        # default 200000 1500000
    BENCH_MAP_MODES=tiled,embedded BENCH_WORK=/tmp/gdi-bench
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import requests
import yaml

from bench import data, peak

REPO = Path(__file__).resolve().parent.parent
GDI = [sys.executable, "-m", "gdi.cli"]      # as bench/__main__.py: the checkout's code with PYTHONPATH
WORK = Path(os.environ.get("BENCH_WORK", "/tmp/gdi-bench"))
EMBEDDED_MAX = int(os.environ.get("BENCH_MAP_EMBEDDED_MAX", "200000"))
MODES = [m for m in os.environ.get("BENCH_MAP_MODES", "tiled,embedded").split(",") if m]
PORT = int(os.environ.get("BENCH_MAP_PORT", "18391"))


def log(msg: str) -> None:
    print(f"bench.map_tiles: {msg}", file=sys.stderr, flush=True)


def _env(home: Path, config: Path) -> dict:
    env = dict(os.environ, GDI_HOME=str(home), GDI_CONFIG=str(config))
    env.pop("GDI_STORE", None)
    return env


def timed(args: list[str], env: dict) -> tuple[float, float]:
    """(seconds, peak resident MB) of one command (bench/peak.py: its own VmHWM, not the bench's)."""
    took, peak_mb, code, out = peak.run(args, env)
    if code != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({code}):\n{out[-3000:]}")
    return took, peak_mb


def home_with_points(n: int) -> Path:
    """A GeoPackage home with the county's boundaries and n points (kept between runs)."""
    home = WORK / f"map-home-{n}"
    if (home / "loaded").exists():
        return home
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    config = write_config(home, "tiled", n)
    env = _env(home, config)
    subprocess.run([*GDI, "ingest", "--collection", "municipalities", "--member", data.COUNTY, "--admin",
                    "--dataset", "vg250ew", str(data.municipalities_file())], env=env, check=True, capture_output=True)
    points = data.build_shapefile_zip(n, WORK / f"points-{n}.zip")
    log(f"ingesting {n:,} points")
    took, rss = timed([*GDI, "ingest", "--collection", "supply_points", "--member", data.COUNTY,
                       "--dataset", "points", str(points)], env)
    log(f"ingest {took:.1f} s, {rss:.0f} MB")
    (home / "loaded").write_text(str(n))
    return home


def write_config(home: Path, mode: str, n: int) -> Path:
    config = yaml.safe_load((REPO / "config" / "gdi.yml").read_text(encoding="utf-8"))
    config["viewer"]["basemap"] = "none"
    config["server"]["url"] = f"http://127.0.0.1:{PORT}"
    if mode == "embedded":
        config["viewer"]["tiles_above"] = n + 1
    path = home.parent / f"{home.name}-{mode}.yml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


def first_draw(url: str, runs: int) -> dict:
    from playwright.sync_api import sync_playwright

    samples, errors = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
        for _ in range(runs):
            context = browser.new_context(viewport={"width": 1366, "height": 900})
            context.route("**/*", lambda r: r.continue_() if urlsplit(r.request.url).hostname == "127.0.0.1"
                          else r.abort())
            page = context.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url, wait_until="load", timeout=120_000)
            page.wait_for_function("window.gdiMap && gdiMap.stats && gdiMap.stats.drawnMs !== null", timeout=120_000)
            page.wait_for_function("!gdiMap.tiled.length || gdiMap.stats.tilesMs !== null", timeout=120_000)
            samples.append(page.evaluate("Object.assign({}, gdiMap.stats)"))
            context.close()
        browser.close()
    drawn = [max(s["drawnMs"], s["tilesMs"] or 0) for s in samples]
    return {"first_draw_ms": round(statistics.median(drawn)), "runs_ms": [round(d) for d in drawn],
            "script_ms": round(statistics.median(s["drawnMs"] for s in samples)), "errors": errors}


def measure(n: int, mode: str, runs: int = 3) -> dict:
    home = home_with_points(n)
    config = write_config(home, mode, n)
    env = _env(home, config)
    log(f"{n:,} points, {mode}: gdi publish")
    publish_s, publish_mb = timed([*GDI, "publish"], env)
    viewer = home / "viewer"
    page_mb = (viewer / "index.html").stat().st_size / 1e6
    bands_mb = (viewer / "index.bands.json").stat().st_size / 1e6 if (viewer / "index.bands.json").exists() else 0.0
    server_log = home / "bench-serve.log"
    with open(server_log, "w") as out:
        server = subprocess.Popen([*GDI, "serve", "--host", "127.0.0.1", "--port", str(PORT)], env=env,
                                  stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # gdi serve rebuilds the map once at start (in a child): measure after it, not beside it
        deadline = time.time() + 600
        while time.time() < deadline and "map rebuilt" not in server_log.read_text(errors="replace"):
            time.sleep(0.5)
        while time.time() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{PORT}/viewer", timeout=30).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.5)
        draw = first_draw(f"http://127.0.0.1:{PORT}/viewer", runs)
    finally:
        os.killpg(server.pid, 15)
        server.wait(30)
    result = {"points": n, "mode": mode, "publish_s": round(publish_s, 1), "publish_peak_mb": round(publish_mb),
              "page_mb": round(page_mb, 2), "bands_mb": round(bands_mb, 2), **draw}
    log(json.dumps(result))
    return result


def run(sizes: list[int]) -> list[dict]:
    WORK.mkdir(parents=True, exist_ok=True)
    results = []
    for n in sizes:
        for mode in MODES:
            if mode == "embedded" and n > EMBEDDED_MAX:
                continue
            results.append(measure(n, mode))
    return results


def table(results: list[dict]) -> str:
    lines = ["| points | map | `gdi publish` (s) | peak RSS (MB) | page (MB) | bands (MB) | first draw (ms) |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['points']:,} | {r['mode']} | {r['publish_s']} | {r['publish_peak_mb']} | {r['page_mb']} | "
                     f"{r['bands_mb']} | {r['first_draw_ms']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sizes = [int(a) for a in sys.argv[1:]] or [200_000, 1_500_000]
    res = run(sizes)
    text = table(res)
    (WORK / "map_tiles.md").write_text(text + "\n")
    (WORK / "map_tiles.json").write_text(json.dumps(res, indent=1))
    print(text)
