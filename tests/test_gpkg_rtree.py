"""The packed R-tree written straight into SQLite's shadow tables equals one filled by INSERTs."""
from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from gdi.store import gpkg_rtree


@pytest.mark.parametrize("page_size", [512, 1024, 4096])
@pytest.mark.parametrize("n", [0, 1, 39, 40, 51, 52, 2602, 30000])
def test_bulk_loaded_rtree_equals_inserted_one(page_size, n):
    rng = np.random.default_rng(n + page_size)
    x, y = rng.uniform(460000, 520000, n), rng.uniform(5600000, 5660000, n)
    width = rng.uniform(0, 50, n) * (rng.random(n) < 0.3)          # points and small boxes
    envelopes = np.column_stack([x, x + width, y - width, y])
    ids = np.arange(10, 10 + n) * 3
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute(f"PRAGMA page_size = {page_size}")
    conn.execute("CREATE VIRTUAL TABLE inserted USING rtree(id, minx, maxx, miny, maxy)")
    conn.executemany("INSERT INTO inserted VALUES (?,?,?,?,?)", zip(ids.tolist(), *envelopes.T.tolist()))
    conn.execute("BEGIN")
    gpkg_rtree.rebuild(conn, "packed", *gpkg_rtree.as_cells(ids, envelopes))
    conn.execute("COMMIT")
    assert conn.execute("SELECT rtreecheck('packed')").fetchone()[0] == "ok"
    everything = "SELECT * FROM {} ORDER BY id"
    assert conn.execute(everything.format("packed")).fetchall() == conn.execute(everything.format("inserted")).fetchall()
    box = "SELECT id FROM {} WHERE minx <= 480000 AND maxx >= 470000 AND miny <= 5630000 AND maxy >= 5620000 ORDER BY id"
    assert conn.execute(box.format("packed")).fetchall() == conn.execute(box.format("inserted")).fetchall()
    read_ids, read_boxes = gpkg_rtree.entries(conn, "packed")
    order = np.argsort(read_ids)
    assert read_ids[order].tolist() == ids.tolist()
    # and SQLite keeps maintaining it afterwards
    conn.execute("INSERT INTO packed VALUES (1, 470000, 470001, 5620000, 5620001)")
    for i in ids[:300:3].tolist():
        conn.execute("DELETE FROM packed WHERE id = ?", (i,))
    assert conn.execute("SELECT rtreecheck('packed')").fetchone()[0] == "ok"
