"""Coordinate reference systems: the BeTA2007 grid, inference, transformation.

Gauss-Krüger (DHDN) data must go through the official BeTA2007 NTv2 grid; PROJ
falls back to a Helmert shift 0.6–0.8 m off without it, so the grid ships with
the package and a transformation that would not use it is refused.
"""
from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyproj
from pyproj.transformer import TransformerGroup

from gdi.thread_cache import per_thread_lru_cache
from gdi.messages import Text, t

GRID_DIR = Path(__file__).resolve().parent / "grids"
DHDN_GK = {31466, 31467, 31468, 31469}
# The CRSs German municipalities actually deliver, in order of preference when ranges overlap.
CANDIDATES = (25832, 4326, 31467, 25833, 31466, 31468, 3857)


_grids_lock = threading.Lock()


def enable_grids() -> None:
    """Put the shipped grids on PROJ's search path (once per process).

    Under a lock: changing the data directory re-initialises PROJ's global context, which
    two request threads must never do at the same time (``functools.cache`` may run a
    function twice when two threads call it at once)."""
    with _grids_lock:
        if str(GRID_DIR) not in pyproj.datadir.get_data_dir().split(":"):
            pyproj.datadir.append_data_dir(str(GRID_DIR))


@functools.cache
def crs_of(code: int | str) -> pyproj.CRS:
    return pyproj.CRS.from_user_input(code)


def epsg_of(crs: pyproj.CRS | str | int | None) -> int | None:
    if crs is None:
        return None
    crs = crs if isinstance(crs, pyproj.CRS) else crs_of(crs)
    code = crs.to_epsg(min_confidence=70)
    if code is None and crs.is_geographic and "WGS" in crs.name and "84" in crs.name:
        return 4326
    return code


@per_thread_lru_cache(maxsize=64)
def transformer(src: int, dst: int) -> pyproj.Transformer:
    """Best available transformation, x/y order; DHDN only through BeTA2007.

    Kept per thread: a TransformerGroup's transformers are pyproj's non-thread-safe kind."""
    enable_grids()
    if src in DHDN_GK or dst in DHDN_GK:
        group = TransformerGroup(src, dst, always_xy=True)
        if not group.best_available or not group.transformers:
            raise RuntimeError(f"the BeTA2007 grid is not available for EPSG:{src} → EPSG:{dst}")
        return group.transformers[0]
    return pyproj.Transformer.from_crs(src, dst, always_xy=True)


def parse_crs_option(text: str) -> int:
    """'EPSG:31467', '31467', 'urn:ogc:def:crs:EPSG::31467' → 31467."""
    try:
        code = epsg_of(crs_of(text.strip() if not text.strip().isdigit() else int(text.strip())))
    except pyproj.exceptions.CRSError as exc:
        raise ValueError(t(f"unbekanntes Koordinatensystem ‚{text}‘", f"unknown CRS '{text}'")) from exc
    if code is None:
        raise ValueError(t(f"das Koordinatensystem ‚{text}‘ hat keinen EPSG-Code", f"CRS '{text}' has no EPSG code"))
    return code


@dataclass(frozen=True)
class Guess:
    epsg: int
    swapped: bool
    reason: Text


def _inside(x: np.ndarray, y: np.ndarray, box: tuple[float, float, float, float]) -> float:
    minx, miny, maxx, maxy = box
    ok = (x >= minx) & (x <= maxx) & (y >= miny) & (y <= maxy)
    return float(ok.mean()) if len(x) else 0.0


def infer_crs(x: np.ndarray, y: np.ndarray, territory_lonlat: tuple[float, float, float, float] | None) -> Guess | None:
    """Infer the CRS of undeclared coordinates from their ranges.

    Each candidate's coordinates are taken back to lon/lat and compared with the
    member's territory (or Germany, when unknown); the candidate that puts most
    points there wins. Latitude/longitude given as y/x is recognised too.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if not len(x):
        return None
    germany = (5.5, 47.0, 15.5, 55.5)
    target = territory_lonlat or germany
    pad = 0.05
    target = (target[0] - pad, target[1] - pad, target[2] + pad, target[3] + pad)
    best: Guess | None = None
    best_score = 0.0
    for code in CANDIDATES:
        for swapped in (False, True):
            if swapped and code != 4326:
                continue
            xs, ys = (y, x) if swapped else (x, y)
            area = crs_of(code).area_of_use
            if code == 4326:
                lon, lat = xs, ys
            else:
                if area and code != 3857:
                    pass
                with np.errstate(all="ignore"):
                    lon, lat = transformer(code, 4326).transform(xs, ys)
            score = _inside(np.asarray(lon), np.asarray(lat), target)
            # Gauss-Krüger zones carry their zone digit as the first digit of the easting.
            if code in DHDN_GK:
                zone = code - 31464
                score *= float(np.mean(np.floor(xs / 1_000_000) == zone))
            if score > best_score + 1e-9:
                best_score = score
                where = "the member's territory" if territory_lonlat else "Germany"
                wo = "im Gebiet des Mitglieds" if territory_lonlat else "in Deutschland"
                ranges = f"x {xs.min():.6g}…{xs.max():.6g}, y {ys.min():.6g}…{ys.max():.6g}"
                reason = t(f"kein Koordinatensystem angegeben; die Koordinaten {ranges} passen zu EPSG:{code} "
                           f"({crs_of(code).name}): {score:.0%} der Punkte liegen {wo}",
                           f"no CRS declared; coordinates {ranges} fit EPSG:{code} "
                           f"({crs_of(code).name}): {score:.0%} of points fall in {where}")
                best = Guess(code, swapped, reason)
    if best is None or best_score < 0.5:
        return None
    return best
