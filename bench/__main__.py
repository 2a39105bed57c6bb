"""`make bench`: gdi side by side with ogr2ogr and tipg, one markdown table.

Everything runs on 127.0.0.1, one service at a time, with bounded durations:
1. data (bench/data.py): points from the real farm shops and supermarkets and polygons from the
   real municipality outlines, scaled up inside Marburg-Biedenkopf; the serving benches read 100,000
   points from a zipped EPSG:31467 Shapefile with a CP1252 DBF and no .cpg;
2. ingest: bench/ingest.py — ``gdi ingest`` (as a user runs it) vs ``ogr2ogr -t_srs EPSG:25832`` of the
   same file in the same run, into a GeoPackage and into PostGIS: 100k points with 2 and 20 columns and
   100k polygons, each as zipped Shapefile, GeoJSON, GeoPackage and FlatGeobuf; a 3-point upload; 1M
   points (time, peak RSS) and 1.5M points of GeoJSON (time and peak RSS against ogr2ogr's);
3. (memory: part of 2.)
4. serving: a throwaway PostGIS; gdi (gunicorn, workers = cores) and tipg
   (uvicorn[standard], workers = cores) on the same table and gdi on the
   GeoPackage store, all three running, measured in interleaved rounds (wrk,
   16 connections, 10 s each; random bboxes from bench/bbox.lua), medians;
5. tiles: bench/tiles.py — random MVT tiles of zoom 12–14 (bench/bbox.lua) from gdi on both
   stores and tipg on the same PostGIS table, interleaved rounds as in 4.;
6. viewer: bench.viewer.run() (first draw of 10,000 points in Chromium);
   map: bench/map_tiles.py — the map over BENCH_MAP_POINTS (1,500,000) points on the GeoPackage
   store, drawn from vector tiles: `gdi publish` time and peak RSS, page size, first draw;
7. soak: bench/soak.py — 16 readers of random bboxes and a member uploading
   every 10 s, SOAK_SECONDS (600) per store: errors, crash lines, p99.

Environment knobs: BENCH_SECONDS (default 10), BENCH_ROUNDS (3), BENCH_CONNECTIONS (16),
BENCH_INGEST_SHAPES / _FORMATS / _TARGETS (bench/ingest.py), BENCH_SKIP (comma list of
ingest,serve,tiles,viewer,map,soak), BENCH_MAP_POINTS (1500000),
SOAK_SECONDS (600).
"""
from __future__ import annotations

import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import requests

from bench import data

REPO = Path(__file__).resolve().parent.parent
# `gdi` as `python -m gdi.cli` of this interpreter: the same as the console script for an installed gdi,
# and the checkout's code when run with PYTHONPATH pointing at it (the script is bound to the install).
GDI = [sys.executable, "-m", "gdi.cli"]
WORK = Path(os.environ.get("BENCH_WORK", "/tmp/gdi-bench"))
TIPG_VENV = Path(os.environ.get("BENCH_TIPG_VENV", WORK / "venv-tipg"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "16"))
SKIP = set(filter(None, os.environ.get("BENCH_SKIP", "").split(",")))
CORES = os.cpu_count() or 2
ROWS: list[tuple[str, str, str, str, str]] = []


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def row(figure: str, gdi: str, peer: str, ratio: str, goal: str) -> None:
    ROWS.append((figure, gdi, peer, ratio, goal))
    log(" | ".join((figure, gdi, peer, ratio, goal)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env_for(home: Path, store: str | None) -> dict:
    env = dict(os.environ, GDI_HOME=str(home))
    env.pop("GDI_STORE", None)
    if store:
        env["GDI_STORE"] = store
    return env


def gdi(*args: str, home: Path, store: str | None = None, quiet: bool = True) -> float:
    started = time.perf_counter()
    proc = subprocess.run([*GDI, *args], env=env_for(home, store), capture_output=True, text=True)
    took = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"gdi {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return took


def new_home(name: str) -> Path:
    home = WORK / name
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    return home


def load_boundaries(home: Path, store: str | None = None) -> None:
    gdi("ingest", "--collection", "municipalities", "--member", data.COUNTY, "--admin", "--dataset", "vg250ew",
        str(data.municipalities_file()), home=home, store=store)


# -- the serving benches' data ----------------------------------------------------------------
def serving_home(zip100k: Path) -> Path:
    """The GeoPackage home the serving and tile benches read: the municipalities and the 100k points
    (the ingest figures are bench/ingest.py's, on homes of their own)."""
    home = new_home("home-gpkg")
    load_boundaries(home)
    gdi("ingest", "--collection", "supply_points", "--member", data.COUNTY, "--dataset", "points", str(zip100k),
        home=home)
    return home


# -- serving ----------------------------------------------------------------
def wrk(url: str, lua: tuple[str, ...] | None = None, seconds: int = SECONDS) -> dict:
    cmd = ["wrk", "-t", "2", "-c", str(CONNECTIONS), "-d", f"{seconds}s", "--latency", "--timeout", "5s"]
    if lua:
        cmd += ["-s", str(REPO / "bench" / "bbox.lua"), url.split("/collections")[0], "--", *lua]
    else:
        cmd.append(url)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        errors += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors += sum(int(g) for g in m.groups())
    return {"rps": rps, "p99": p99, "errors": errors}


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[unit]


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}) before answering {url}")
        try:
            if requests.get(url, timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"no answer from {url} in {timeout} s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def measure_rounds(targets: dict[str, tuple[str, str]], bbox: tuple[float, float, float, float]) -> dict:
    """wrk on every target in turn, ROUNDS times over (interleaved, so a slow spell of a shared
    machine hits every server alike); per target and kind the median req/s, p99 and total errors.
    targets: name → (base URL, items path)."""
    runs: dict = {name: {"items": [], "bbox": []} for name in targets}
    for name, (base, path) in targets.items():          # warm up: pools, caches, code paths
        wrk(base + path, seconds=2)
        wrk(base, lua=(path, *(f"{v:.5f}" for v in bbox)), seconds=2)
    for r in range(ROUNDS):
        for kind in ("items", "bbox"):
            for name, (base, path) in targets.items():
                if kind == "items":
                    result = wrk(base + path)
                else:
                    result = wrk(base, lua=(path, *(f"{v:.5f}" for v in bbox)))
                runs[name][kind].append(result)
                log(f"round {r + 1} {kind:5s} {name:12s} {result['rps']:7.0f} req/s, p99 {result['p99']:.1f} ms, "
                    f"{result['errors']} errors")
    out: dict = {}
    for name, kinds in runs.items():
        out[name] = {kind: {"rps": statistics.median(x["rps"] for x in results),
                            "p99": statistics.median(x["p99"] for x in results),
                            "errors": sum(x["errors"] for x in results)} for kind, results in kinds.items()}
    return out


def serve_gdi(home: Path, store: str | None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([*GDI, "serve", "--host", "127.0.0.1", "--port", str(port)], env=env_for(home, store),
                            stdout=subprocess.DEVNULL, stderr=open(WORK / f"gdi-{port}.log", "w"),
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/collections/supply_points/items?limit=1&f=json", proc)
    return proc, base


def tipg_python() -> Path:
    py = TIPG_VENV / "bin" / "python"
    if not py.exists():
        log(f"installing tipg into {TIPG_VENV}")
        subprocess.run([sys.executable, "-m", "venv", str(TIPG_VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "tipg", "uvicorn[standard]"], check=True)
    return py


def serve_tipg(db_url: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = dict(os.environ, DATABASE_URL=db_url, TIPG_DB_SCHEMAS='["gdi"]', TIPG_DB_EXCLUDE_FUNCTION_SCHEMAS='["*"]',
               TIPG_MAX_FEATURES_PER_QUERY="10000")
    proc = subprocess.Popen([str(tipg_python()), "-m", "uvicorn", "tipg.main:app", "--host", "127.0.0.1",
                             "--port", str(port), "--workers", str(CORES), "--no-access-log", "--log-level", "warning"],
                            env=env, stdout=subprocess.DEVNULL, stderr=open(WORK / f"tipg-{port}.log", "w"),
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/collections/gdi.supply_points/items?limit=1", proc)
    return proc, base


def bench_serving(zip100k: Path, gpkg_home: Path | None) -> None:
    """gdi on PostGIS, tipg on the same table and gdi on the GeoPackage store, all running at once
    and measured in interleaved rounds."""
    from gdi import devdb

    bbox = data.county_bbox_lonlat()
    items = "/collections/supply_points/items?limit=100&f=json"
    db = devdb.start()
    procs: list[subprocess.Popen] = []
    try:
        home = new_home("home-postgis")
        load_boundaries(home, db.url)
        gdi("ingest", "--collection", "supply_points", "--member", data.COUNTY, "--dataset", "points",
            str(zip100k), home=home, store=db.url)
        subprocess.run(["psql", db.url, "-qc", "ANALYZE"], check=True, capture_output=True)
        proc, gdi_pg = serve_gdi(home, db.url)
        procs.append(proc)
        proc, tipg = serve_tipg(db.url)
        procs.append(proc)
        targets = {"gdi/PostGIS": (gdi_pg, items), "tipg": (tipg, "/collections/gdi.supply_points/items?limit=100")}
        if gpkg_home is not None:
            proc, gdi_gpkg = serve_gdi(gpkg_home, None)
            procs.append(proc)
            targets["gdi/GeoPackage"] = (gdi_gpkg, items)
        result = measure_rounds(targets, bbox)
    finally:
        for proc in procs:
            stop(proc)
        db.stop()
    ours, peer = result["gdi/PostGIS"], result["tipg"]
    for kind, label in (("items", "`items?limit=100`"), ("bbox", "random `bbox`, limit 100")):
        a, b = ours[kind], peer[kind]
        row(f"PostGIS {label}, {CONNECTIONS} clients, {CORES} workers (req/s)", f"{a['rps']:.0f}",
            f"{b['rps']:.0f} (tipg)", f"{a['rps'] / b['rps']:.2f}×", "≥ 1.5×")
        row(f"PostGIS {label}: p99 ms / errors", f"{a['p99']:.1f} / {a['errors']}", f"{b['p99']:.1f} / {b['errors']}",
            "–", "< 100 ms / 0")
    if "gdi/GeoPackage" not in result:
        return
    mine = result["gdi/GeoPackage"]
    for kind, label in (("items", "`items?limit=100`"), ("bbox", "random `bbox`, limit 100")):
        a, b = mine[kind], ours[kind]
        row(f"GeoPackage {label} (req/s; p99 ms / errors)",
            f"{a['rps']:.0f}; {a['p99']:.1f} / {a['errors']}", f"{b['rps']:.0f} (gdi on PostGIS)",
            f"{a['rps'] / b['rps']:.2f}×", "≥ 0.5× (within 2×)")


def bench_viewer() -> None:
    try:
        from bench import viewer

        result = viewer.run()
        ms = float(result["first_draw_ms"])
        row("viewer: first draw, 10,000 points, headless Chromium (ms)", f"{ms:.0f}", "–",
            f"{ms / 1500:.2f} of limit", "< 1500 ms")
    except Exception as exc:  # noqa: BLE001 — the viewer is another helper's; report, don't abort
        row("viewer: first draw, 10,000 points, headless Chromium (ms)", f"n/a ({type(exc).__name__})", "–", "–",
            "< 1500 ms")


def bench_map() -> None:
    """The map over a large collection, drawn from vector tiles (bench/map_tiles.py)."""
    from bench import map_tiles

    n = int(os.environ.get("BENCH_MAP_POINTS", "1500000"))
    try:
        result = map_tiles.measure(n, "tiled")
    except Exception as exc:  # noqa: BLE001 — report, don't abort the other figures
        row(f"map over {n:,} points: `gdi publish` (s) / peak RSS (MB)", f"n/a ({type(exc).__name__})", "–", "–",
            "≤ 30 s / ≤ 1024 MB")
        return
    row(f"map over {n:,} points (tiled): `gdi publish` (s) / peak RSS (MB)",
        f"{result['publish_s']} / {result['publish_peak_mb']}", "159 / 9983 (embedded, before)", "–",
        "≤ 30 s / ≤ 1024 MB")
    row(f"map over {n:,} points (tiled): page + bands (MB) / first draw with tiles (ms)",
        f"{result['page_mb'] + result['bands_mb']:.2f} / {result['first_draw_ms']}", "87 / 6200 (embedded, before)",
        "–", "≤ 2 MB / ≤ 1500 ms")


def table() -> str:
    lines = ["| figure | gdi | peer | ratio | goal |", "|---|---|---|---|---|"]
    lines += ["| " + " | ".join(r) + " |" for r in ROWS]
    return "\n".join(lines)


def machine() -> str:
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{CORES} cores ({cpu}), {mem:.1f} GiB RAM, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def main() -> int:
    WORK.mkdir(parents=True, exist_ok=True)
    for tool in ("wrk", "ogr2ogr"):
        if not shutil.which(tool):
            print(f"bench: {tool} is needed (Debian: apt-get install -y {'wrk' if tool == 'wrk' else 'gdal-bin'})",
                  file=sys.stderr)
            return 2
    started = time.perf_counter()
    log("building data")
    zip100k = data.build_shapefile_zip(100_000, WORK / "points-100k.zip")
    if "ingest" not in SKIP:
        from bench import ingest

        ingest.run(report=row)
    gpkg_home = serving_home(zip100k) if not {"serve", "tiles"} <= SKIP else None
    if "serve" not in SKIP:
        bench_serving(zip100k, gpkg_home)
    if "tiles" not in SKIP:
        from bench import tiles

        tiles.run(zip100k, gpkg_home, report=row)
    if "viewer" not in SKIP:
        bench_viewer()
    if "map" not in SKIP:
        bench_map()
    if "soak" not in SKIP:
        from bench import soak

        soak.run(soak.SECONDS, ["gpkg", "postgis"], debug=False)
    out = table()
    stamp = time.strftime("%Y-%m-%d")
    text = f"{out}\n\nMachine: {machine()}; run {stamp}, {time.perf_counter() - started:.0f} s.\n"
    (WORK / "results.md").write_text(text)
    (WORK / "results.json").write_text(json.dumps(ROWS, ensure_ascii=False, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
