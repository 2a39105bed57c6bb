"""Bulk loading of a GeoPackage R-tree (SQLite's rtree module), written node by node.

Inserting into an SQLite R-tree costs about 8-9 µs per entry and deleting as
much again, so replacing 100,000 points spent ~2 s in the R-tree alone. Like
GDAL's bulk loader, large writes therefore build the whole tree in memory
(Sort-Tile-Recursive packing, numpy) and write SQLite's three shadow tables
directly, in exactly the format the rtree module writes itself:

* ``<name>_node(nodeno, data)``: blobs of the size rtree.c chose (1228 bytes,
  51 cells of 2 dimensions, for pages of 1292 bytes and more);
  bytes 0-1 the tree depth (root only), 2-3 the cell count, then per cell a
  big-endian int64 (row id, or child node) and four big-endian float32;
* ``<name>_rowid(rowid, nodeno)``: the leaf holding each entry;
* ``<name>_parent(nodeno, parentnode)``: every non-root node's parent.

Coordinates are rounded outwards to float32 the way rtree.c does (a minimum
never above, a maximum never below the double), so a bulk-loaded tree answers
exactly like one filled by INSERTs; ``rtreecheck()`` verifies the structure.
"""
from __future__ import annotations

import math
import sqlite3

import numpy as np

MAX_CELLS = 51                              # RTREE_MAXCELLS in rtree.c (fewer when pages < 1292 bytes)
CELL_BYTES = 24                             # int64 id + 4 float32
_RND_TOWARDS = 1.0 - 1.0 / 8388608.0        # rtree.c: RNDTOWARDS / RNDAWAY
_RND_AWAY = 1.0 + 1.0 / 8388608.0
_CELL = np.dtype([("id", ">i8"), ("box", ">f4", (4,))])


def round_down(d: np.ndarray) -> np.ndarray:
    """float32 no greater than d (rtreeValueDown)."""
    d = np.asarray(d, dtype=np.float64)
    f = d.astype(np.float32)
    over = f.astype(np.float64) > d
    if over.any():
        f[over] = (d[over] * np.where(d[over] < 0, _RND_AWAY, _RND_TOWARDS)).astype(np.float32)
    return f


def round_up(d: np.ndarray) -> np.ndarray:
    """float32 no smaller than d (rtreeValueUp)."""
    d = np.asarray(d, dtype=np.float64)
    f = d.astype(np.float32)
    under = f.astype(np.float64) < d
    if under.any():
        f[under] = (d[under] * np.where(d[under] < 0, _RND_TOWARDS, _RND_AWAY)).astype(np.float32)
    return f


def as_cells(ids: np.ndarray, envelopes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ids, float32 boxes minx, maxx, miny, maxy) for entries given as doubles."""
    boxes = np.empty((len(ids), 4), dtype=np.float32)
    boxes[:, 0], boxes[:, 2] = round_down(envelopes[:, 0]), round_down(envelopes[:, 2])
    boxes[:, 1], boxes[:, 3] = round_up(envelopes[:, 1]), round_up(envelopes[:, 3])
    return np.asarray(ids, dtype=np.int64), boxes


def _str_groups(boxes: np.ndarray, cells: int) -> list[np.ndarray]:
    """Sort-Tile-Recursive: index groups of at most ``cells`` boxes that lie close together."""
    n = len(boxes)
    nodes = math.ceil(n / cells)
    slices = math.ceil(math.sqrt(nodes))
    cx = (boxes[:, 0].astype(np.float64) + boxes[:, 1]) / 2
    cy = (boxes[:, 2].astype(np.float64) + boxes[:, 3]) / 2
    by_x = np.argsort(cx, kind="stable")
    per_slice = slices * cells
    groups = []
    for s in range(0, n, per_slice):
        part = by_x[s:s + per_slice]
        part = part[np.argsort(cy[part], kind="stable")]
        groups += [part[k:k + cells] for k in range(0, len(part), cells)]
    return groups


def _blob(depth: int, ids: np.ndarray, boxes: np.ndarray, node_bytes: int) -> bytes:
    cells = np.zeros(len(ids), dtype=_CELL)
    cells["id"], cells["box"] = ids, boxes
    head = depth.to_bytes(2, "big") + len(ids).to_bytes(2, "big")
    body = cells.tobytes()
    return head + body + bytes(node_bytes - 4 - len(body))


def build(ids: np.ndarray, boxes: np.ndarray, node_bytes: int = 4 + MAX_CELLS * CELL_BYTES
          ) -> tuple[list[tuple[int, bytes]], list[tuple[int, int]], list[tuple[int, int]]]:
    """(node rows, rowid rows, parent rows) of a packed tree over float32 boxes, in nodes of node_bytes."""
    cells = (node_bytes - 4) // CELL_BYTES
    nodes: list[tuple[int, bytes]] = []
    parents: list[tuple[int, int]] = []
    if len(ids) <= cells:                    # the root is the only leaf
        nodes.append((1, _blob(0, ids, boxes, node_bytes)))
        return nodes, [(int(i), 1) for i in ids.tolist()], parents
    next_no = 2
    level_ids, level_boxes, depth = ids, boxes, 0
    rowids = np.empty(len(ids), dtype=np.int64)
    while True:
        groups = _str_groups(level_boxes, cells)
        if len(groups) == 1:                 # these cells fit in the root
            nodes.append((1, _blob(depth, level_ids[groups[0]], level_boxes[groups[0]], node_bytes)))
            if depth > 0:
                parents += [(int(c), 1) for c in level_ids[groups[0]].tolist()]
            else:
                rowids[groups[0]] = 1
            break
        numbers = np.arange(next_no, next_no + len(groups), dtype=np.int64)
        next_no += len(groups)
        up = np.empty((len(groups), 4), dtype=np.float32)
        for no, g in zip(numbers.tolist(), groups):
            b = level_boxes[g]
            nodes.append((no, _blob(0, level_ids[g], b, node_bytes)))
            up[no - numbers[0]] = (b[:, 0].min(), b[:, 1].max(), b[:, 2].min(), b[:, 3].max())
            if depth == 0:
                rowids[g] = no
            else:
                parents += [(int(c), no) for c in level_ids[g].tolist()]
        level_ids, level_boxes, depth = numbers, up, depth + 1
    return nodes, list(zip(ids.tolist(), rowids.tolist())), parents


def rebuild(conn: sqlite3.Connection, name: str, ids: np.ndarray, boxes: np.ndarray) -> None:
    """Replace the content of R-tree ``name`` by a tree packed from (ids, float32 boxes).

    The virtual table is dropped and created again first, so no rtree state
    cached by this connection can refer to the old nodes.
    """
    if hasattr(conn, "setconfig"):           # shadow tables are read-only in defensive mode
        conn.setconfig(sqlite3.SQLITE_DBCONFIG_DEFENSIVE, False)
    conn.execute(f'DROP TABLE IF EXISTS "{name}"')
    conn.execute(f'CREATE VIRTUAL TABLE "{name}" USING rtree(id, minx, maxx, miny, maxy)')
    # the node size rtree.c chose for this database's page size (1228 bytes from 1292-byte pages up)
    node_bytes = conn.execute(f'SELECT length(data) FROM "{name}_node" WHERE nodeno = 1').fetchone()[0]
    nodes, rowids, parents = build(ids, boxes, node_bytes)
    conn.executemany(f'INSERT OR REPLACE INTO "{name}_node" (nodeno, data) VALUES (?, ?)', nodes)
    conn.executemany(f'INSERT INTO "{name}_rowid" (rowid, nodeno) VALUES (?, ?)', rowids)
    conn.executemany(f'INSERT INTO "{name}_parent" (nodeno, parentnode) VALUES (?, ?)', parents)


def entries(conn: sqlite3.Connection, name: str) -> tuple[np.ndarray, np.ndarray]:
    """All (ids, float32 boxes) of R-tree ``name``, read from its leaves (not entry by entry)."""
    depth_row = conn.execute(f'SELECT data FROM "{name}_node" WHERE nodeno = 1').fetchone()
    if depth_row is None:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 4), dtype=np.float32)
    depth = int.from_bytes(depth_row[0][:2], "big")
    if depth == 0:
        blobs = [depth_row[0]]
    else:
        blobs = [r[0] for r in conn.execute(
            f'SELECT data FROM "{name}_node" WHERE nodeno IN (SELECT DISTINCT nodeno FROM "{name}_rowid")')]
    parts = [np.frombuffer(b, dtype=_CELL, count=int.from_bytes(b[2:4], "big"), offset=4) for b in blobs]
    cells = np.concatenate(parts) if parts else np.zeros(0, dtype=_CELL)
    return cells["id"].astype(np.int64), cells["box"].astype(np.float32)
