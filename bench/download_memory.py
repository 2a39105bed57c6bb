"""Peak memory of whole-collection downloads (gdi/publish/download.py) on a large collection.

    .venv/bin/python -m bench.download_memory [--points 200000] [--postgis]

Builds the points as `make bench` does (the real farm shops and supermarkets scaled up inside
Marburg-Biedenkopf), ingests them into a fresh GDI_HOME (the GeoPackage store, or a throwaway
PostGIS with ``--postgis``) and writes each format in EPSG:25832 and in CRS84, each in a process of
its own, whose peak resident size (VmHWM) is printed beside that of a process that only
imports everything and opens the store (the baseline). Not part of `make test`.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from bench import data

WORK = Path(os.environ.get("BENCH_WORK", "/tmp/gdi-bench"))
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
UTM = "http://www.opengis.net/def/crs/EPSG/0/25832"


def child(fmt: str, crs: str, out: Path) -> None:
    """One download in this process (fmt ``none``: imports and the store only, the baseline)."""
    import pyogrio  # noqa: F401 — in the baseline too: GDAL's and Arrow's libraries are no download's cost

    from gdi import settings
    from gdi.collections import get_collection
    from gdi.publish.download import output_crs, write_download
    from gdi.store import open_store

    collection, store = get_collection("supply_points"), open_store()
    if fmt != "none":
        write_download(collection, store, fmt, output_crs(crs), out,
                       batch_size=settings.get().downloads.batch_features)
    # VmHWM, not the parent's ru_maxrss: Linux carries a forked parent's high-water mark across exec
    status = Path("/proc/self/status").read_text()
    print(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")), flush=True)


def measure(home: Path, store: str | None, fmt: str, crs: str) -> tuple[float, float, int]:
    """(peak RSS in MB, seconds, file size) of one download in a child process."""
    out = WORK / f"download.{fmt}"
    out.unlink(missing_ok=True)
    env = dict(os.environ, GDI_HOME=str(home), PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    env.pop("GDI_STORE", None)
    env.update({"GDI_STORE": store} if store else {})
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "bench.download_memory", "--child", fmt, crs, str(out)], env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"the download {fmt} {crs} failed:\n{proc.stderr}")
    size = out.stat().st_size if out.exists() else 0
    out.unlink(missing_ok=True)
    return int(proc.stdout.split()[-1]) / 1024, time.perf_counter() - started, size


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=200_000)
    ap.add_argument("--postgis", action="store_true")
    ap.add_argument("--formats", nargs="+", default=["gpkg", "fgb", "csv"])
    ap.add_argument("--child", nargs=3, metavar=("FORMAT", "CRS", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], args.child[1], Path(args.child[2]))
        return 0
    WORK.mkdir(parents=True, exist_ok=True)
    archive = data.build_shapefile_zip(args.points, WORK / f"points-{args.points}.zip")
    home = WORK / "home-download-memory"
    subprocess.run(["rm", "-rf", str(home)], check=True)
    home.mkdir(parents=True)
    db = None
    if args.postgis:
        from gdi import devdb

        db = devdb.start()
    store = db.url if db else None
    try:
        env = dict(os.environ, GDI_HOME=str(home), **({"GDI_STORE": store} if store else {}))
        for cmd in (["ingest", "--collection", "municipalities", "--member", data.COUNTY, "--admin", "--dataset",
                     "vg250ew", str(data.municipalities_file())],
                    ["ingest", "--collection", "supply_points", "--member", data.COUNTY, "--dataset", "points",
                     str(archive)]):
            subprocess.run([sys.executable, "-m", "gdi.cli", *cmd], env=env, check=True, stdout=subprocess.DEVNULL)
        base, _, _ = measure(home, store, "none", UTM)
        print(f"{args.points:,} points, {'PostGIS' if db else 'GeoPackage'} store; baseline (imports, store) "
              f"{base:.0f} MB peak RSS")
        print("| format | CRS | peak RSS (MB) | over baseline (MB) | seconds | file (MB) |\n|---|---|---|---|---|---|")
        for fmt in args.formats:
            for crs in (UTM, CRS84):
                rss, took, size = measure(home, store, fmt, crs)
                print(f"| {fmt} | {crs.rsplit('/', 1)[1]} | {rss:.0f} | {rss - base:+.0f} | {took:.1f} | "
                      f"{size / 2**20:.1f} |", flush=True)
    finally:
        if db:
            db.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
