"""Vector tiles under load: random WebMercatorQuad tiles of zoom 12–14 over 100,000 points.

gdi on PostGIS, tipg (its own ST_AsMVT tiles) on the same table and gdi on the GeoPackage store run
side by side and are measured in interleaved rounds (wrk, BENCH_CONNECTIONS clients, BENCH_SECONDS
each, bench/bbox.lua); ratios against tipg and, for the GeoPackage store, against gdi on PostGIS.
Part of `make bench`; alone: ``.venv/bin/python -m bench.tiles``.

The county holds only about 1,100 tiles of zoom 12–14, which gdi's response cache keeps after their
first request (as a map panning back and forth gets them); so gdi is measured twice: "cut", with a
random query parameter that no cache has seen (every tile is cut from the store, as tipg, which has
no cache, always does), and "cached", the same URLs as a map sends them.
"""
from __future__ import annotations

import statistics
import subprocess
import sys

from bench import data
from bench.__main__ import (CONNECTIONS, CORES, ROUNDS, WORK, gdi, load_boundaries, log, new_home, row, serve_gdi,
                            serve_tipg, stop, table, wrk)

GDI_TILE = "/collections/supply_points/tiles/WebMercatorQuad/{z}/{y}/{x}?f=mvt"
GDI_CUT = GDI_TILE + "&nocache={r}"
TIPG_TILE = "/collections/gdi.supply_points/tiles/WebMercatorQuad/{z}/{x}/{y}"


def ingest_points(zip100k, store: str | None):
    home = new_home(f"tiles-{'postgis' if store else 'gpkg'}")
    load_boundaries(home, store)
    gdi("ingest", "--collection", "supply_points", "--member", data.COUNTY, "--dataset", "points",
        str(zip100k), home=home, store=store)
    return home


def measure(targets: dict[str, tuple[str, str]]) -> dict:
    """Median req/s and p99, summed errors per target over ROUNDS interleaved rounds."""
    bbox = [f"{v:.5f}" for v in data.county_bbox_lonlat()]
    runs: dict[str, list[dict]] = {name: [] for name in targets}
    for name, (base, path) in targets.items():          # warm up
        wrk(base, lua=(path, *bbox), seconds=2)
    for r in range(ROUNDS):
        for name, (base, path) in targets.items():
            result = wrk(base, lua=(path, *bbox))
            runs[name].append(result)
            log(f"round {r + 1} tiles {name:14s} {result['rps']:7.0f} req/s, p99 {result['p99']:.1f} ms, "
                f"{result['errors']} errors")
    return {name: {"rps": statistics.median(x["rps"] for x in rs), "p99": statistics.median(x["p99"] for x in rs),
                   "errors": sum(x["errors"] for x in rs)} for name, rs in runs.items()}


def run(zip100k, gpkg_home=None, report=row) -> None:
    """report: how a table row is recorded (`make bench` passes its own: it runs as __main__)."""
    from gdi import devdb

    db = devdb.start()
    procs: list[subprocess.Popen] = []
    try:
        home = ingest_points(zip100k, db.url)
        subprocess.run(["psql", db.url, "-qc", "ANALYZE"], check=True, capture_output=True)
        gpkg_home = gpkg_home or ingest_points(zip100k, None)
        proc, gdi_pg = serve_gdi(home, db.url)
        procs.append(proc)
        proc, tipg = serve_tipg(db.url)
        procs.append(proc)
        proc, gdi_gpkg = serve_gdi(gpkg_home, None)
        procs.append(proc)
        result = measure({"gdi/PostGIS": (gdi_pg, GDI_CUT), "tipg": (tipg, TIPG_TILE),
                          "gdi/GeoPackage": (gdi_gpkg, GDI_CUT), "gdi/PostGIS cached": (gdi_pg, GDI_TILE),
                          "gdi/GeoPackage cached": (gdi_gpkg, GDI_TILE)})
    finally:
        for proc in procs:
            stop(proc)
        db.stop()
    ours, peer, mine = result["gdi/PostGIS"], result["tipg"], result["gdi/GeoPackage"]
    label = f"random MVT tiles z12–14, 100k points, {CONNECTIONS} clients, {CORES} workers"
    report(f"PostGIS {label}, every tile cut (req/s)", f"{ours['rps']:.0f}", f"{peer['rps']:.0f} (tipg)",
           f"{ours['rps'] / peer['rps']:.2f}×", "≥ 1.5×")
    report(f"PostGIS {label}, cut: p99 ms / errors", f"{ours['p99']:.1f} / {ours['errors']}",
           f"{peer['p99']:.1f} / {peer['errors']}", "–", "< 100 ms / 0")
    report(f"GeoPackage {label}, cut (req/s; p99 ms / errors)", f"{mine['rps']:.0f}; {mine['p99']:.1f} / {mine['errors']}",
           f"{ours['rps']:.0f} (gdi on PostGIS)", f"{mine['rps'] / ours['rps']:.2f}×", "≥ 0.5× (within 2×)")
    for store in ("PostGIS", "GeoPackage"):
        cached = result[f"gdi/{store} cached"]
        report(f"{store} {label}, response cache (req/s; p99 ms / errors)",
               f"{cached['rps']:.0f}; {cached['p99']:.1f} / {cached['errors']}", f"{peer['rps']:.0f} (tipg)",
               f"{cached['rps'] / peer['rps']:.2f}×", "–")


def main() -> int:
    WORK.mkdir(parents=True, exist_ok=True)
    run(data.build_shapefile_zip(100_000, WORK / "points-100k.zip"))
    print(table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
