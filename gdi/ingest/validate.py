"""Which features of an upload are accepted, repaired or rejected, and why.

Pure functions over arrays: the geometries (already in the storage CRS), the mapped
values and the member's published territory go in; the accepted source rows, their
geometries and one note per rejected or repaired feature come out. Nothing here
reads a file or touches the store, so every rule can be tested on its own.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import shapely

from gdi.collections import Collection
from gdi.ingest.fields import MappedColumns
from gdi.ingest.geometry import conform_many
from gdi.ingest.report import FeatureNote
from gdi.ingest.territory import inside
from gdi.messages import de_number, join, t


@dataclass
class Checked:
    """The features that passed so far: source row indexes and their (repaired) geometries."""

    accepted: np.ndarray
    geoms: np.ndarray
    rejected: list[FeatureNote] = field(default_factory=list)
    repaired: list[FeatureNote] = field(default_factory=list)

    def keep(self, mask: np.ndarray) -> None:
        """Only the accepted features where mask is true stay (their repair notes with them)."""
        self.accepted, self.geoms = self.accepted[mask], self.geoms[mask]
        kept = set(self.accepted.tolist())
        self.repaired = [n for n in self.repaired if n.index in kept]


def shown(values: dict) -> dict:
    """A feature's values as a report shows them (absent ones left out)."""
    return {k: v for k, v in values.items() if v is not None}


def check_features(geoms: np.ndarray, cols: MappedColumns, geometry_type: str) -> Checked:
    """Geometry first, then values (one message per feature), then exact duplicates."""
    fixed, notes, reasons = conform_many(geoms, geometry_type)
    out = Checked(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=object))
    bad = np.zeros(len(geoms), dtype=bool)
    for i in sorted(set(np.nonzero(np.not_equal(reasons, None))[0].tolist()) | set(cols.problems)):
        problems = list(cols.problems.get(i, []))
        if reasons[i]:
            problems.insert(0, reasons[i])
        out.rejected.append(FeatureNote(i, join(problems), shown(cols.row(i))))
        bad[i] = True
    candidates = np.nonzero(~bad)[0]
    duplicate_of = duplicates(fixed[candidates], {k: v[candidates] for k, v in cols.values.items()})
    for j in np.nonzero(duplicate_of >= 0)[0].tolist():
        i = int(candidates[j])
        first = int(candidates[duplicate_of[j]])
        out.rejected.append(FeatureNote(i, t(f"genaue Kopie von Objekt {first}", f"exact duplicate of feature {first}"),
                                        shown(cols.row(i))))
    out.accepted = candidates[duplicate_of < 0]
    geometry_repaired = set(out.accepted[np.not_equal(notes[out.accepted], None)].tolist())
    accepted = set(out.accepted.tolist())
    for row in sorted(geometry_repaired | (set(cols.repairs) & accepted)):
        found = ([notes[row]] if row in geometry_repaired else []) + cols.repairs.get(row, [])
        out.repaired.append(FeatureNote(row, join(found), shown(cols.row(row))))
    out.geoms = fixed[out.accepted]
    return out


def check_keys_of_member(checked: Checked, cols: MappedColumns, collection: Collection, member: str) -> list[str]:
    """Territory features: each key must start with the member's key. Returns the accepted keys."""
    key = collection.territory.key
    values = cols.values.get(key, np.full(len(cols), None, dtype=object))[checked.accepted]
    text = pd.Series(values, dtype=object).fillna("").astype(str)
    ok = text.str.startswith(member).to_numpy(dtype=bool)
    for j in np.nonzero(~ok)[0].tolist():
        i = int(checked.accepted[j])
        checked.rejected.append(FeatureNote(i, t(f"{key} {text.iloc[j]} liegt nicht im Gebiet des Mitglieds {member}",
                                                 f"{key} {text.iloc[j]} is not in the territory of member {member}"),
                                            shown(cols.row(i))))
    checked.keep(ok)
    return text[ok].tolist()


def check_inside(checked: Checked, cols: MappedColumns, member: str, area, tolerance: float) -> None:
    """Members' features: inside the member's published territory (plus the tolerance)."""
    ok = inside(checked.geoms, area, tolerance) if len(checked.geoms) else np.zeros(0, bool)
    for j in np.nonzero(~ok)[0].tolist():
        i = int(checked.accepted[j])
        checked.rejected.append(FeatureNote(
            i, t(f"außerhalb des Gebiets des Mitglieds {member} (mehr als {de_number(tolerance, 'g')} m jenseits "
                 "seiner Grenze)",
                 f"outside the territory of member {member} (more than {tolerance:g} m beyond its boundary)"),
            shown(cols.row(i))))
    checked.keep(ok)


def duplicates(geoms: np.ndarray, values: dict[str, np.ndarray]) -> np.ndarray:
    """For each feature the position of the earlier identical one (same geometry WKB and
    values), or -1. Only features sharing their exact geometry (found by hashing the WKB,
    no loop per feature) can be duplicates; just those are compared on all values."""
    n = len(geoms)
    out = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return out
    wkb = shapely.to_wkb(geoms)
    maybe = np.nonzero(pd.Series(pd.util.hash_array(wkb, categorize=False)).duplicated(keep=False).to_numpy())[0]
    if len(maybe) == 0:
        return out
    key = {"__wkb": wkb[maybe]}
    for name in sorted(values):
        key[name] = pd.Series(values[name][maybe], dtype=object).astype(str).to_numpy(dtype=object)
    frame = pd.DataFrame(key)
    groups = frame.groupby(list(frame.columns), sort=False, dropna=False).ngroup().to_numpy()
    first_pos = pd.Series(maybe).groupby(groups).transform("min").to_numpy()
    out[maybe] = np.where(first_pos < maybe, first_pos, -1)
    return out
