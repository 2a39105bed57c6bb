"""GeoPackage binary geometry, encoded and decoded without SpatiaLite.

Python's sqlite3 on these machines cannot load extensions, so the GeoPackage
functions that triggers and queries need (ST_MinX, ST_IsEmpty, …) are provided
here in plain Python, and geometries are (de)serialised with shapely's WKB.
"""
from __future__ import annotations

import sqlite3
import struct

import numpy as np
import shapely

from gdi.thread_cache import per_thread_lru_cache

_HEADER = struct.Struct("<2sBBi4d")          # magic, version, flags, srs_id, minx, maxx, miny, maxy
_HEADER_DTYPE = np.dtype([("magic", "S2"), ("version", "u1"), ("flags", "u1"), ("srs_id", "<i4"),
                          ("env", "<f8", (4,))])
_FLAGS_LE_ENVELOPE_XY = 0b0000_0011           # little endian, envelope [minx, maxx, miny, maxy]
_FLAGS_LE_EMPTY = 0b0001_0001                 # little endian, empty geometry, no envelope
_ENVELOPE_BYTES = {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}


def encode(geoms: np.ndarray, srs_id: int) -> list[bytes | None]:
    """Shapely geometries → GeoPackage blobs (with envelope, so readers never parse WKB for bounds).

    Headers are built for all rows at once in a numpy record array; only the
    final header + WKB concatenation is per row.
    """
    geoms = np.asarray(geoms, dtype=object)
    n = len(geoms)
    if n == 0:
        return []
    wkb = shapely.to_wkb(geoms, byte_order=1, flavor="iso", output_dimension=2)
    bounds = shapely.bounds(geoms)                  # NaN for None and empty geometries
    missing = shapely.is_missing(geoms)
    empty = ~missing & shapely.is_empty(geoms)
    head = np.zeros(n, dtype=_HEADER_DTYPE)
    head["magic"] = b"GP"
    head["flags"] = np.where(empty, _FLAGS_LE_EMPTY, _FLAGS_LE_ENVELOPE_XY)
    head["srs_id"] = srs_id
    head["env"] = bounds[:, [0, 2, 1, 3]]
    raw = head.tobytes()
    size = _HEADER.size
    out: list[bytes | None] = [None if w is None else raw[i * size:(i + 1) * size] + w
                               for i, w in enumerate(wkb.tolist())]
    for i in np.nonzero(empty)[0].tolist():       # empty: the 8-byte header without an envelope
        out[i] = out[i][:8] + out[i][size:]
    return out


def envelopes(geoms: np.ndarray) -> np.ndarray:
    """(minx, maxx, miny, maxy) per geometry, the R-tree's column order (NaN when None or empty)."""
    return shapely.bounds(np.asarray(geoms, dtype=object))[:, [0, 2, 1, 3]]


def _wkb_offset(blob: bytes) -> int:
    flags = blob[3]
    return 8 + _ENVELOPE_BYTES[(flags >> 1) & 0b111]


def wkb_of(blob: bytes) -> bytes:
    return blob[_wkb_offset(blob):]


_POINT_BYTES = _HEADER.size + 21               # our 2D points: header, envelope, WKB (order, type, x, y)
_POINT_DTYPE = np.dtype([("head", "S4"), ("srs_id", "<i4"), ("env", "<f8", (4,)), ("order", "u1"),
                         ("type", "<u4"), ("xy", "<f8", (2,))])


def point_xy(blobs: list[bytes]) -> np.ndarray | None:
    """(n, 2) coordinates of GeoPackage point blobs read straight from their bytes, or None unless every
    blob is a 2D point as this store writes it (little endian, XY envelope, ISO WKB point).

    Why: an overview tile of a million points needs only their positions; making a shapely point of
    each costs more than the rest of the tile together."""
    if not blobs or any(b is None or len(b) != _POINT_BYTES for b in blobs):
        return None
    rec = np.frombuffer(b"".join(blobs), dtype=_POINT_DTYPE)
    if not ((rec["head"] == b"GP\x00" + bytes([_FLAGS_LE_ENVELOPE_XY])).all() and (rec["order"] == 1).all()
            and (rec["type"] == 1).all()):
        return None
    return rec["xy"].copy()


def decode(blobs: list[bytes | None]) -> np.ndarray:
    """GeoPackage blobs → shapely geometries (vectorised WKB parse)."""
    wkbs = [None if b is None else b[_wkb_offset(b):] for b in blobs]
    return shapely.from_wkb(np.array(wkbs, dtype=object))


def envelope(blob: bytes | None) -> tuple[float, float, float, float] | None:
    """(minx, maxx, miny, maxy) from the header, or from the WKB when absent."""
    if blob is None:
        return None
    flags = blob[3]
    if flags & 0b1_0000:
        return None
    if (flags >> 1) & 0b111:
        endian = "<" if flags & 1 else ">"
        return struct.unpack_from(endian + "4d", blob, 8)
    g = shapely.from_wkb(wkb_of(blob))
    if g.is_empty:
        return None
    minx, miny, maxx, maxy = g.bounds
    return (minx, maxx, miny, maxy)


@per_thread_lru_cache(maxsize=4096)
def _geom(blob: bytes):
    """A stored geometry, decoded once per thread (GEOS objects are never shared between threads)."""
    return shapely.from_wkb(wkb_of(blob))


def register_functions(conn: sqlite3.Connection) -> None:
    """The SQL functions GeoPackage R-tree triggers and our queries call."""

    def part(i: int):
        def f(blob):
            env = envelope(blob)
            return None if env is None else env[i]
        return f

    conn.create_function("ST_MinX", 1, part(0), deterministic=True)
    conn.create_function("ST_MaxX", 1, part(1), deterministic=True)
    conn.create_function("ST_MinY", 1, part(2), deterministic=True)
    conn.create_function("ST_MaxY", 1, part(3), deterministic=True)
    def is_empty(blob):
        if blob is None:
            return None
        if blob[3] & 0b1_0000:
            return 1
        if (blob[3] >> 1) & 0b111 and (blob[3] >> 1) & 0b111 in _ENVELOPE_BYTES:
            # a header envelope with real numbers means a non-empty geometry (empty ones carry NaN)
            minx = struct.unpack_from("<d" if blob[3] & 1 else ">d", blob, 8)[0]
            if minx == minx:
                return 0
        return int(_geom(bytes(blob)).is_empty)

    conn.create_function("ST_IsEmpty", 1, is_empty, deterministic=True)
    conn.create_function(
        "ST_GeometryType", 1,
        lambda blob: None if blob is None else _geom(bytes(blob)).geom_type.upper(),
        deterministic=True,
    )
    conn.create_function("ST_SRID", 1, lambda blob: None if blob is None else struct.unpack_from("<i" if blob[3] & 1 else ">i", blob, 4)[0], deterministic=True)
