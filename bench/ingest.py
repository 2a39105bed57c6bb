"""Ingest speed and memory on many file shapes, each against ``ogr2ogr`` of the same file in the same run.

Shapes (bench/data.py, deterministic, cached under BENCH_WORK/ingest-data):

- ``points100k-2`` / ``points100k-20``: 100,000 points with 2 (NAME, KATEGORIE) or 20 attribute columns;
- ``polygons100k``: 100,000 copies of the 22 real municipality outlines, scaled down and moved, into a
  bench-only polygon collection (bench/collections/bench_areas.yml, found through ``GDI_COLLECTIONS``);
- each as a zipped Shapefile (EPSG:31467, CP1252 DBF, no .cpg), GeoJSON (EPSG:4326, RFC 7946),
  GeoPackage and FlatGeobuf (EPSG:25832);
- ``small``: 3 points as GeoJSON — the end-to-end time of a small upload;
- ``points1m-2`` / ``points1m-20`` (zipped Shapefile) with peak RSS, and ``points1500k-geojson``
  (1,500,000 points, 2 columns, GeoJSON, GeoPackage target only): time and peak RSS against ogr2ogr.

Targets: a GeoPackage (gdi: a fresh GDI_HOME with the municipalities loaded; ogr2ogr: a new .gpkg)
and the same throwaway PostGIS (gdi.devdb) for both (gdi: its store, schema reset per file; ogr2ogr: a
table in public). Per file and target, two rounds, ogr2ogr then gdi in each (interleaved, so a noisy
spell hits both): ogr2ogr's best of 2; gdi's 1st run is the first upload of the dataset, the 2nd a
re-upload of the same file as the same dataset (a new version); the ratio takes gdi's best and says
which run it was. gdi runs as a user runs it: ``python -m gdi.cli ingest`` (Python start-up, read,
normalise, validate, store, publish). Peak RSS of every run from its own VmHWM (bench/peak.py).

``BENCH_INGEST_SHAPES``: a comma list of the shape names above (default: all; the 1M shapes and the
1.5M GeoJSON only run with the full set or when named). ``BENCH_INGEST_FORMATS`` (shp.zip,geojson,
gpkg,fgb) and ``BENCH_INGEST_TARGETS`` (gpkg,postgis) narrow further. Alone: ``python -m bench.ingest``.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from bench import data, peak

REPO = Path(__file__).resolve().parent.parent
WORK = Path(os.environ.get("BENCH_WORK", "/tmp/gdi-bench"))
DATA_DIR = WORK / "ingest-data"
GDI = [sys.executable, "-m", "gdi.cli"]
COLLECTIONS = f"{REPO / 'collections'}{os.pathsep}{REPO / 'bench' / 'collections'}"
ALL_FORMATS = ("shp.zip", "geojson", "gpkg", "fgb")
FORMAT_LABEL = {"shp.zip": "SHP zip EPSG:31467 CP1252", "geojson": "GeoJSON EPSG:4326",
                "gpkg": "GeoPackage EPSG:25832", "fgb": "FlatGeobuf EPSG:25832"}
GOAL = {"gpkg": ("≤ 1.3×", 1.3), "postgis": ("≤ 1.5×", 1.5)}
RSS_LIMIT_MB = 1536


@dataclass(frozen=True)
class Shape:
    name: str
    label: str
    collection: str
    frame: Callable
    formats: tuple[str, ...] = ALL_FORMATS
    targets: tuple[str, ...] = ("gpkg", "postgis")
    large: bool = False             # only with the full set (or named)
    polygons: bool = False


SHAPES = [
    Shape("small", "3 pts", "supply_points", lambda: data.points_frame(3, 2), ("geojson",)),
    Shape("points100k-2", "100k pts, 2 cols", "supply_points", lambda: data.points_frame(100_000, 2)),
    Shape("points100k-20", "100k pts, 20 cols", "supply_points", lambda: data.points_frame(100_000, 20)),
    Shape("polygons100k", "100k polygons", "bench_areas", lambda: data.polygons_frame(100_000), polygons=True),
    Shape("points1m-2", "1M pts, 2 cols", "supply_points", lambda: data.points_frame(1_000_000, 2), ("shp.zip",),
          large=True),
    Shape("points1m-20", "1M pts, 20 cols", "supply_points", lambda: data.points_frame(1_000_000, 20),
          ("shp.zip",), large=True),
    Shape("points1500k-geojson", "1.5M pts, 2 cols", "supply_points", lambda: data.points_frame(1_500_000, 2),
          ("geojson",), ("gpkg",), large=True),
]


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def chosen() -> list[Shape]:
    given = [s for s in os.environ.get("BENCH_INGEST_SHAPES", "").split(",") if s]
    unknown = set(given) - {s.name for s in SHAPES}
    if unknown:
        raise SystemExit(f"bench: unknown BENCH_INGEST_SHAPES {sorted(unknown)}; one of {[s.name for s in SHAPES]}")
    return [s for s in SHAPES if s.name in given] if given else list(SHAPES)


def files(shape: Shape, formats: tuple[str, ...]) -> dict[str, Path]:
    """The shape's files, built once (the frame only when a file is missing)."""
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    out = {fmt: DATA_DIR / f"{shape.name}.{fmt}" for fmt in formats}
    missing = [fmt for fmt, p in out.items() if not p.exists()]
    if missing:
        log(f"building {shape.name}: {', '.join(missing)}")
        frame = shape.frame()
        for fmt in missing:
            data.write_format(frame, fmt, out[fmt])
    return out


# -- runs ---------------------------------------------------------------------------------------
@dataclass
class Run:
    seconds: float
    peak_mb: float
    note: str = ""


def env_for(home: Path, store: str | None, shape: Shape) -> dict:
    """The bench's polygon collection joins the configured ones only for the polygons: an extra
    collection is published on every ingest, which the point shapes should not pay for."""
    env = dict(os.environ, GDI_HOME=str(home))
    env.pop("GDI_COLLECTIONS", None)
    if shape.polygons:
        env["GDI_COLLECTIONS"] = COLLECTIONS
    env.pop("GDI_STORE", None)
    if store:
        env["GDI_STORE"] = store
    return env


def measured(args: list[str], env: dict, what: str) -> tuple[Run, str]:
    took, mb, code, out = peak.run(args, env)
    if code != 0:
        raise RuntimeError(f"{what} failed ({code}):\n{out[-3000:]}")
    return Run(took, mb), out


COUNTS = re.compile(r"(\d+) accepted, (\d+) repaired, (\d+) rejected of (\d+)")


def gdi_ingest(path: Path, shape: Shape, home: Path, store: str | None) -> Run:
    run, out = measured([*GDI, "ingest", "--collection", shape.collection, "--member", data.COUNTY,
                         "--dataset", shape.name.replace("-", "_"), str(path)], env_for(home, store, shape), "gdi ingest")
    m = COUNTS.search(out)
    if not m:
        raise RuntimeError(f"gdi ingest printed no counts:\n{out[-2000:]}")
    accepted, _, rejected, read = map(int, m.groups())
    if rejected or accepted != read:
        run.note = f"{rejected} of {read} rejected"
    return run


def new_home(store: str | None, shape: Shape) -> Path:
    """A fresh GDI_HOME (and, for PostGIS, an empty gdi schema) with the municipalities loaded."""
    home = WORK / f"ingest-home-{'postgis' if store else 'gpkg'}"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    if store:
        subprocess.run(["psql", store, "-qc", "DROP SCHEMA IF EXISTS gdi CASCADE"], check=True, capture_output=True)
    measured([*GDI, "ingest", "--collection", "municipalities", "--member", data.COUNTY, "--admin", "--dataset",
              "vg250ew", str(data.municipalities_file())], env_for(home, store, shape), "loading the municipalities")
    return home


def ogr_table(shape: Shape, fmt: str) -> str:
    return "ogr_" + re.sub(r"[^0-9A-Za-z_]", "_", f"{shape.name}_{fmt}")


def ogr2ogr(path: Path, fmt: str, shape: Shape, target: str, db_url: str | None) -> Run:
    src = f"/vsizip/{path}" if fmt == "shp.zip" else str(path)
    extra = ["-oo", "ENCODING=CP1252"] if fmt == "shp.zip" else []
    if shape.polygons:              # a Shapefile says Polygon; PostGIS' typed column refuses the multi-part ones
        extra += ["-nlt", "PROMOTE_TO_MULTI"]
    if target == "gpkg":
        out = WORK / "ingest-ogr2ogr.gpkg"
        out.unlink(missing_ok=True)
        args = ["ogr2ogr", "-f", "GPKG", str(out), src, "-t_srs", "EPSG:25832", *extra]
    else:
        args = ["ogr2ogr", "-f", "PostgreSQL", f"PG:{db_url}", src, "-t_srs", "EPSG:25832",
                "-nln", ogr_table(shape, fmt), "-overwrite",
                "-lco", "SPATIAL_INDEX=GIST", *extra]
    run, _ = measured(args, dict(os.environ), "ogr2ogr")
    return run


@dataclass
class Result:
    shape: Shape
    fmt: str
    target: str
    gdi: list[Run]                  # [first upload, re-upload]
    ogr: list[Run]

    @property
    def best(self) -> tuple[Run, str]:
        first, again = self.gdi
        return (first, "1st upload") if first.seconds <= again.seconds else (again, "re-upload")

    @property
    def ogr_best(self) -> Run:
        return min(self.ogr, key=lambda r: r.seconds)


def measure(shape: Shape, fmt: str, path: Path, target: str, db_url: str | None) -> Result:
    store = db_url if target == "postgis" else None
    home = new_home(store, shape)
    result = Result(shape, fmt, target, [], [])
    for _ in range(2):              # interleaved: ogr2ogr, then gdi (1st upload; then the re-upload)
        result.ogr.append(ogr2ogr(path, fmt, shape, target, db_url))
        result.gdi.append(gdi_ingest(path, shape, home, store))
    g, which = result.best
    log(f"{shape.name} {fmt} → {target}: gdi {result.gdi[0].seconds:.2f} / {result.gdi[1].seconds:.2f} s "
        f"({g.peak_mb:.0f} MB), ogr2ogr {' / '.join(f'{r.seconds:.2f}' for r in result.ogr)} s "
        f"({result.ogr_best.peak_mb:.0f} MB)")
    if db_url and target == "postgis":
        subprocess.run(["psql", db_url, "-qc", f"DROP TABLE IF EXISTS public.{ogr_table(shape, fmt)}"],
                       check=True, capture_output=True)
    shutil.rmtree(home, ignore_errors=True)
    return result


# -- rows ---------------------------------------------------------------------------------------
TARGET_LABEL = {"gpkg": "GeoPackage", "postgis": "PostGIS"}


def report_rows(r: Result, report: Callable) -> None:
    g, which = r.best
    first, again = r.gdi
    o = r.ogr_best
    notes = "; ".join(n for n in (first.note, again.note) if n)
    cell = f"{g.seconds:.2f} ({which}; 1st {first.seconds:.2f}, re-upload {again.seconds:.2f}){'; ' + notes if notes else ''}"
    peer = f"{o.seconds:.2f} (ogr2ogr{', -oo ENCODING=CP1252' if r.fmt == 'shp.zip' else ''})"
    where = TARGET_LABEL[r.target]
    if r.shape.name == "small":
        report(f"small ingest: {r.shape.label}, {FORMAT_LABEL[r.fmt]} → {where}, `gdi ingest` end to end (s)",
               cell, peer, f"{g.seconds / o.seconds:.1f}×", "≤ 0.4 s")
        return
    if r.shape.name == "points1500k-geojson":
        report(f"ingest {r.shape.label}, {FORMAT_LABEL[r.fmt]} → {where} (s)", cell, peer,
               f"{g.seconds / o.seconds:.2f}× ({which})", "≤ 2×")
        report(f"ingest {r.shape.label}, {FORMAT_LABEL[r.fmt]} → {where}: peak RSS (MB)",
               f"{g.peak_mb:.0f} ({which}; 1st {first.peak_mb:.0f}, re-upload {again.peak_mb:.0f})",
               f"{o.peak_mb:.0f} (ogr2ogr)", f"{g.peak_mb / o.peak_mb:.1f}×", "≤ 2×")
        return
    text, limit = GOAL[r.target]
    report(f"ingest {r.shape.label}, {FORMAT_LABEL[r.fmt]} → {where} (s)", cell, peer,
           f"{g.seconds / o.seconds:.2f}× ({which})", text)
    if r.shape.large:
        peak_mb = max(first.peak_mb, again.peak_mb)
        report(f"ingest {r.shape.label}, {FORMAT_LABEL[r.fmt]} → {where}: peak RSS (MB)",
               f"{peak_mb:.0f} (1st {first.peak_mb:.0f}, re-upload {again.peak_mb:.0f})",
               f"{o.peak_mb:.0f} (ogr2ogr)", f"{peak_mb / RSS_LIMIT_MB:.2f} of limit", f"≤ {RSS_LIMIT_MB} MB")


def run(report: Callable) -> None:
    """Every chosen shape × format × target; report(figure, gdi, peer, ratio, goal) per table row
    (`make bench` passes its own row: it runs as __main__)."""
    from gdi import devdb

    for tool in ("ogr2ogr", "psql"):
        if not shutil.which(tool):
            raise SystemExit(f"bench: {tool} is needed")
    formats = tuple(f for f in os.environ.get("BENCH_INGEST_FORMATS", ",".join(ALL_FORMATS)).split(",") if f)
    targets = tuple(t for t in os.environ.get("BENCH_INGEST_TARGETS", "gpkg,postgis").split(",") if t)
    started = time.perf_counter()
    db = devdb.start() if "postgis" in targets else None
    try:
        for shape in chosen():
            paths = files(shape, tuple(f for f in shape.formats if f in formats))
            for fmt, path in paths.items():
                for target in (t for t in shape.targets if t in targets):
                    try:
                        report_rows(measure(shape, fmt, path, target, db.url if db else None), report)
                    except RuntimeError as exc:     # a refusal (e.g. a size limit) is a figure too; go on
                        last = [x for x in str(exc).splitlines() if x.strip()][-1]
                        report(f"ingest {shape.label}, {FORMAT_LABEL[fmt]} → {TARGET_LABEL[target]} (s)",
                               f"failed: {last[:200]}", "–", "–", GOAL.get(target, ("–",))[0])
    finally:
        if db:
            db.stop()
    log(f"ingest part: {time.perf_counter() - started:.0f} s")


def main() -> int:
    rows: list[tuple[str, ...]] = []

    def report(*cells: str) -> None:
        rows.append(cells)
        log(" | ".join(cells))

    WORK.mkdir(parents=True, exist_ok=True)
    run(report)
    print("| figure | gdi | peer | ratio | goal |\n|---|---|---|---|---|")
    for cells in rows:
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
