"""No native object is shared between request threads.

A GEOS prepared geometry builds its indexes lazily on first use; two threads
doing that at once on one object corrupt the heap. The GeoPackage provider kept
the request areas it prepares in a process-wide cache, so concurrent requests
with the same area (the same bbox, or the same CQL2 geometry) shared one, and
workers aborted with ``malloc(): unaligned tcache chunk detected``. The stress
test below aborted in four runs out of four before the caches went per thread.
"""
from __future__ import annotations

import subprocess
import sys
import threading

import shapely

from gdi import crs
from gdi.publish import provider
from gdi.store import gpkg_binary

STRESS = """
import threading, numpy as np, shapely
from gdi.publish import provider
from gdi.store import gpkg_binary
rng = np.random.default_rng(3)
points = shapely.points(rng.uniform(0, 100, (2400, 2)))
blobs = gpkg_binary.encode(points, 25832)
for r in range(100):
    # a new area each round, so every round has its first use of a new prepared geometry
    area = shapely.buffer(shapely.Point(50 + r * 1e-6, 50), 30, quad_segs=512)
    wkb = shapely.to_wkb(area)
    barrier = threading.Barrier(8)
    hits = [0] * 8
    def work(k):
        barrier.wait()
        for b in blobs[k * 300:(k + 1) * 300]:
            hits[k] += provider._spatial("intersects", b, wkb)
    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sum(hits) == int(shapely.intersects(area, points).sum()), (r, sum(hits))
print("rounds", r + 1)
"""


def objects_seen_by(n_threads: int, fn) -> list:
    seen: list = [None] * n_threads

    def work(i: int) -> None:
        seen[i] = (fn(), fn())

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return seen


def assert_per_thread(fn) -> None:
    seen = objects_seen_by(4, fn)
    assert all(a is b for a, b in seen), "a thread gets its own object back (the cache works)"
    assert len({id(a) for a, _ in seen}) == 4, "no two threads get the same object"


def test_prepared_areas_are_per_thread():
    wkb = shapely.to_wkb(shapely.box(0, 0, 10, 10))
    assert_per_thread(lambda: provider._prepared(wkb))


def test_decoded_geometries_are_per_thread():
    blob = gpkg_binary.encode(shapely.points([[1.0, 2.0]]), 25832)[0]
    assert_per_thread(lambda: gpkg_binary._geom(blob))


def test_gauss_krueger_transformers_are_per_thread():
    assert_per_thread(lambda: crs.transformer(31467, 25832))


def test_eight_threads_using_new_areas_at_once_do_not_corrupt_the_heap():
    """glibc's MALLOC_CHECK_=3 aborts at the first corrupted chunk."""
    proc = subprocess.run([sys.executable, "-X", "faulthandler", "-c", STRESS], capture_output=True, text=True,
                          timeout=300, env={"MALLOC_CHECK_": "3", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "tcache" not in proc.stderr and "corruption" not in proc.stderr
    assert proc.stdout.split() == ["rounds", "100"]     # every round's answers matched a one-thread count


def test_feature_and_tile_transformers_are_per_thread():
    """pyproj transformers are not thread-safe: the providers' (items output, bbox areas, vector tiles)
    are kept per thread."""
    from gdi.publish.provider_base import _transformer, _wkt

    src, dst = _wkt("http://www.opengis.net/def/crs/EPSG/0/25832"), _wkt("http://www.opengis.net/def/crs/EPSG/0/3857")
    assert_per_thread(lambda: _transformer(src, dst, False))
