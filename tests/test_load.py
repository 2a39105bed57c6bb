"""16 concurrent readers for a bounded time while ingests keep replacing a dataset.

Readers must see the old or the new version, never a mix, and no request may
fail — not even while every publish reloads the server's workers.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import requests

from conftest import Server, free_port, fresh_store, run_gdi

CLIENTS = 16
SECONDS = 60           # bounded, and long enough to span a dozen publishes (the hours-long soak is in make bench)
SIZES = {"A": 300, "B": 500}


def version_file(real_data: Path, tmp: Path, label: str, n: int) -> Path:
    g = gpd.read_file(real_data / "poi" / "farmshops_marburg-biedenkopf_hoexter_umland.geojson")
    g = g[g["ags"].fillna("").str.startswith("06534")]
    rng = np.random.default_rng(n)
    idx = rng.integers(0, len(g), n)
    pts = gpd.points_from_xy(g.geometry.x.values[idx] + rng.uniform(-5e-4, 5e-4, n),
                             g.geometry.y.values[idx] + rng.uniform(-5e-4, 5e-4, n))
    path = tmp / f"{label}.geojson"
    gpd.GeoDataFrame({"name": [f"{label}-{i}" for i in range(n)], "category": ["Hofladen"] * n},
                     geometry=pts, crs=4326).to_file(path, driver="GeoJSON")
    return path


@pytest.mark.parametrize("kind", ["gpkg", "postgis"])
def test_readers_never_see_a_mix_or_an_error(kind, request, tmp_path, real_data):
    home = tmp_path / "home"
    home.mkdir()
    store = fresh_store(kind, request)
    (home / "store-url").write_text(store or "")
    run_gdi("ingest", str(real_data / "boundaries" / "vg250ew_gemeinden_marburg-biedenkopf.geojson"),
            "--collection", "municipalities", "--member", "06534", "--admin", home=home, store=store, check=True)
    files = {label: version_file(real_data, tmp_path, label, n) for label, n in SIZES.items()}
    run_gdi("ingest", str(files["A"]), "--collection", "supply_points", "--member", "06534", "--dataset", "wechsel",
            home=home, store=store, check=True)
    srv = Server(home, free_port())
    stop = threading.Event()
    stats = {"requests": 0, "errors": [], "mixes": [], "seen": set(), "ingests": 0}
    lock = threading.Lock()
    queries = [
        {"dataset": "wechsel", "limit": 1000},
        {"filter": "dataset = 'wechsel'", "limit": 1000},
        {"dataset": "wechsel", "bbox": "8.3,50.5,9.3,51.1", "limit": 1000},
        {"filter": "dataset = 'wechsel' AND S_INTERSECTS(geometry, POLYGON((8.3 50.5, 9.3 50.5, 9.3 51.1, 8.3 51.1, 8.3 50.5)))",
         "limit": 1000, "sortby": "-name"},
    ]

    def reader(i: int) -> None:
        session = requests.Session()
        k = i
        while not stop.is_set():
            params = dict(queries[k % len(queries)], f="json")
            k += 1
            try:
                r = session.get(f"{srv.url}/collections/supply_points/items", params=params, timeout=30)
            except requests.RequestException as exc:
                with lock:
                    stats["errors"].append(repr(exc))
                continue
            with lock:
                stats["requests"] += 1
            if r.status_code != 200:
                with lock:
                    stats["errors"].append(f"{r.status_code} {r.text[:200]}")
                continue
            body = r.json()
            labels = {f["properties"]["name"].split("-")[0] for f in body["features"]}
            n = body["numberMatched"]
            ok = len(labels) == 1 and n == SIZES[next(iter(labels))] == body["numberReturned"]
            with lock:
                stats["seen"] |= labels
                if not ok:
                    stats["mixes"].append((sorted(labels), n, body["numberReturned"]))

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(CLIENTS)]
    try:
        [t.start() for t in threads]
        deadline = time.time() + SECONDS
        label = "B"
        while time.time() < deadline or stats["ingests"] < 4:
            run_gdi("ingest", str(files[label]), "--collection", "supply_points", "--member", "06534",
                    "--dataset", "wechsel", home=home, store=store, check=True)
            stats["ingests"] += 1
            label = "A" if label == "B" else "B"
        stop.set()
        [t.join(60) for t in threads]
    finally:
        stop.set()
        srv.stop()
    assert stats["ingests"] >= 4
    assert stats["requests"] > 200
    assert stats["errors"] == []
    assert stats["mixes"] == []
    assert stats["seen"] == {"A", "B"}
    assert srv.crash_lines() == []
    print(f"\n{kind}: {stats['requests']} requests, {stats['ingests']} ingests, 0 errors, 0 mixes")
