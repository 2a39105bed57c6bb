"""Soak: 16 readers of random bboxes while a member uploads every 10 s, on each store.

What it proves (issue: workers aborting with heap corruption under concurrent
reads): over SOAK_SECONDS (default 600) per store, wrk's 16 connections see no
socket error and no non-2xx answer, the server log shows no crash line
(``was sent SIG…``, ``tcache``, ``double free``, ``Segmentation``, ``Fatal
Python error``), and the p99 latency is reported. A member (the town of
Marburg, 06534014) replaces one dataset every 10 s throughout, so reads run
across publishes. ``--debug`` runs the servers with glibc's ``MALLOC_CHECK_=3``
and ``PYTHONMALLOC=debug``, which abort at the first corrupted chunk instead of
minutes later; faulthandler is always on, so an abort prints every thread's
Python stack into the log.

    python -m bench.soak [--seconds N] [--stores gpkg,postgis] [--debug]
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from bench import data
from bench.__main__ import (CONNECTIONS, GDI, REPO, WORK, env_for, free_port, gdi, load_boundaries, log,
                            new_home, row, stop, wait_http)

CRASH = re.compile(r"was sent SIG|tcache|double free|Segmentation|Fatal Python error|corrupted|munmap_chunk|free\(\)")
UPLOAD_EVERY = 10.0
SECONDS = int(os.environ.get("SOAK_SECONDS", "600"))     # per store
MEMBER = "06534014"          # Marburg: a municipality uploading its own points
POINTS = 100_000


def member_file(target: Path, n: int, seed: int) -> Path:
    """n real-looking points inside Marburg as GeoJSON (what the member re-uploads)."""
    import geopandas as gpd

    mun = gpd.read_file(data.municipalities_file()).to_crs(25832)
    town = mun[mun["ags"] == MEMBER].geometry.iloc[0].buffer(-100)
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = town.bounds
    import shapely

    xy = rng.uniform((minx, miny), (maxx, maxy), (n * 3, 2))
    xy = xy[shapely.contains_xy(town, xy[:, 0], xy[:, 1])][:n]
    gpd.GeoDataFrame({"Name": [f"Verkaufsstelle {seed}-{i}" for i in range(len(xy))],
                      "Kategorie": ["Bäckerei"] * len(xy)},
                     geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]), crs=25832).to_crs(4326).to_file(
        target, driver="GeoJSON")
    return target


def wrk_soak(base: str, seconds: int, bbox: tuple[float, float, float, float]) -> dict:
    cmd = ["wrk", "-t", "2", "-c", str(CONNECTIONS), "-d", f"{seconds}s", "--latency", "--timeout", "5s",
           "-s", str(REPO / "bench" / "bbox.lua"), base, "--", "/collections/supply_points/items?limit=100&f=json",
           *(f"{v:.5f}" for v in bbox)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    requests_ = int(re.search(r"(\d+) requests in", out).group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    socket_errors = sum(int(g) for g in m.groups()) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    non2xx = int(m.group(1)) if m else 0
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)", out, re.M)
    p99_ms = float(p99.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[p99.group(2)]
    return {"requests": requests_, "socket_errors": socket_errors, "non2xx": non2xx, "p99": p99_ms, "raw": out}


def soak_store(kind: str, seconds: int, debug: bool, zip100k: Path, db_url: str | None,
               upload_every: float = UPLOAD_EVERY) -> dict:
    home = new_home(f"soak-{kind}")
    store = db_url if kind == "postgis" else None
    load_boundaries(home, store)
    gdi("ingest", "--collection", "supply_points", "--member", data.COUNTY, "--dataset", "points", str(zip100k),
        home=home, store=store)
    files = [member_file(WORK / f"soak-member-{i}.geojson", 300 + 50 * i, i) for i in range(2)]
    env = env_for(home, store)
    env["PYTHONFAULTHANDLER"] = "1"
    if debug:
        env.update(MALLOC_CHECK_="3", PYTHONMALLOC="debug")
    port = free_port()
    logfile = WORK / f"soak-{kind}{'-debug' if debug else ''}.log"
    with open(logfile, "w") as log_out:
        proc = subprocess.Popen([*GDI, "serve", "--host", "127.0.0.1", "--port", str(port)], env=env,
                                stdout=log_out, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    uploads = {"done": 0, "failed": 0}
    halt = threading.Event()

    def member() -> None:
        i = 0
        while upload_every > 0 and not halt.wait(upload_every):
            r = subprocess.run([*GDI, "ingest", "--collection", "supply_points", "--member", MEMBER,
                                "--dataset", "eigene_erhebung", str(files[i % 2])], env=env_for(home, store),
                               capture_output=True, text=True)
            uploads["done" if r.returncode == 0 else "failed"] += 1
            i += 1

    try:
        wait_http(base + "/collections/supply_points/items?limit=1&f=json", proc)
        uploader = threading.Thread(target=member, daemon=True)
        uploader.start()
        result = wrk_soak(base, seconds, data.county_bbox_lonlat())
        halt.set()
        uploader.join(120)
    finally:
        halt.set()
        stop(proc)
    crashes = [line for line in logfile.read_text(errors="replace").splitlines() if CRASH.search(line)]
    result.update(uploads=uploads["done"], upload_failures=uploads["failed"], crash_lines=crashes[:20],
                  crashes=len(crashes), log=str(logfile))
    return result


def run(seconds: int, stores: list[str], debug: bool, upload_every: float = UPLOAD_EVERY) -> list[dict]:
    from gdi import devdb

    WORK.mkdir(parents=True, exist_ok=True)
    zip100k = data.build_shapefile_zip(POINTS, WORK / "points-100k.zip")
    db = devdb.start() if "postgis" in stores else None
    results = []
    try:
        for kind in stores:
            log(f"soak {kind}: {seconds} s, {CONNECTIONS} readers, an upload every {upload_every:.0f} s (0: none)"
                f"{' (MALLOC_CHECK_=3, PYTHONMALLOC=debug)' if debug else ''}")
            r = soak_store(kind, seconds, debug, zip100k, db.url if db else None, upload_every)
            r["store"] = kind
            results.append(r)
            label = "GeoPackage" if kind == "gpkg" else "PostGIS"
            row(f"soak {label} {seconds} s{' (debug allocators)' if debug else ''}: requests; socket errors / "
                f"non-2xx / crash lines; uploads ok/failed",
                f"{r['requests']:,}; {r['socket_errors']} / {r['non2xx']} / {r['crashes']}; "
                f"{r['uploads']}/{r['upload_failures']}", "–", "–", "0 / 0 / 0")
            row(f"soak {label}: p99 (ms)", f"{r['p99']:.1f}", "–", f"{r['p99'] / 100:.2f} of limit", "< 100 ms")
            for line in r["crash_lines"]:
                log(f"  crash line: {line}")
    finally:
        if db is not None:
            db.stop()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak")
    parser.add_argument("--seconds", type=int, default=SECONDS)
    parser.add_argument("--stores", default="gpkg,postgis")
    parser.add_argument("--debug", action="store_true", help="MALLOC_CHECK_=3 and PYTHONMALLOC=debug in the server")
    parser.add_argument("--upload-every", type=float, default=UPLOAD_EVERY, help="seconds; 0: readers only")
    args = parser.parse_args()
    results = run(args.seconds, [s for s in args.stores.split(",") if s], args.debug, args.upload_every)
    from bench.__main__ import table

    print(table())
    bad = [r for r in results if r["socket_errors"] or r["non2xx"] or r["crashes"] or r["upload_failures"]]
    return 1 if bad else 0


if __name__ == "__main__":
    started = time.perf_counter()
    code = main()
    print(f"soak: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    sys.exit(code)
