"""One member upload, from file to published features.

read → CRS → fields → geometry → territory → store → publish. A refusal at any
step raises IngestRefused before the store is touched, so a bad upload never
changes what is published.
"""
from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gdi import settings
from gdi.collections import Collection, CollectionError, get_collection, load_collections
from gdi.datasets import DatasetNameError, check_dataset_name
from gdi.ingest import IngestRefused
from gdi.ingest import crs as crsmod
from gdi.ingest.fields import map_columns, plan_mapping
from gdi.ingest.geometry import conform_many
from gdi.ingest.read import read_upload
from gdi.ingest.report import FeatureNote, Report
from gdi.ingest.territory import assign_ags, check_member_key, inside, territory
from gdi.store import open_store
from gdi.store.base import Store, VersionMeta


@dataclass
class Options:
    collection: str
    member: str
    dataset: str | None = None
    crs: str | None = None
    encoding: str | None = None
    layer: str | None = None
    dry_run: bool = False
    report_file: Path | None = None
    publish: bool = True
    uploader: str | None = None
    progress: Callable[[str, float], None] | None = None    # (stage, 0…1), for jobs and terminals


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def dataset_name(path: Path) -> str:
    name = path.name
    for ext in (".geojson", ".json", ".gpkg", ".zip", ".kmz", ".kml", ".csv", ".xlsx", ".fgb", ".shp", ".txt", ".tsv"):
        if name.lower().endswith(ext):
            name = name[: -len(ext)]
            break
    name = re.sub(r"[^\w.-]+", "_", name, flags=re.UNICODE).strip("._") or "upload"
    return name[:100]


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def ingest(path: Path, options: Options, store: Store | None = None) -> Report:
    """Run one upload. Always returns the written report; ``report.status`` says the outcome."""
    path = Path(path)
    started = now_iso()
    rid = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f") + "-" + re.sub(r"\W+", "_", options.collection)[:30]
    report = Report(id=rid, file=path.name, collection=options.collection, member=options.member,
                    dataset=options.dataset, started=started, dry_run=options.dry_run)
    paths = settings.paths()
    try:
        _run(path, options, report, store)
    except IngestRefused as exc:
        report.status = "refused"
        report.refusal = str(exc)
    except Exception as exc:
        report.status = "failed"
        report.refusal = f"internal error: {type(exc).__name__}: {exc}"
        report.finished = now_iso()
        report.write(paths.reports, options.report_file)
        raise
    report.finished = now_iso()
    report.write(paths.reports, options.report_file)
    return report


def _run(path: Path, options: Options, report: Report, store: Store | None) -> None:
    try:
        member = check_member_key(options.member)
    except ValueError as exc:
        raise IngestRefused(str(exc)) from exc
    try:
        collection = get_collection(options.collection)
    except CollectionError as exc:
        raise IngestRefused(str(exc)) from exc
    given_epsg = None
    if options.crs:
        try:
            given_epsg = crsmod.parse_crs_option(options.crs)
        except ValueError as exc:
            raise IngestRefused(str(exc)) from exc
    if not path.exists():
        raise IngestRefused(f"file not found: {path}")
    if not path.is_file():       # a directory, device or pipe: never read (/dev/zero would never end)
        raise IngestRefused(f"not a regular file (a directory, device or pipe): {path} / "
                            f"keine gewöhnliche Datei (ein Ordner, Gerät oder eine Pipe): {path}")
    try:
        dataset = check_dataset_name(options.dataset or dataset_name(path))
    except DatasetNameError as exc:
        raise IngestRefused(str(exc)) from None
    report.dataset = dataset
    report.size = path.stat().st_size
    report.sha256 = sha256_of(path)
    store = store or open_store()
    step = options.progress or (lambda stage, fraction: None)
    step("reading", 0.05)

    municipalities = store.read(load_collections()["municipalities"]) if "municipalities" in load_collections() else None
    area = territory(municipalities, member) if municipalities is not None and not municipalities.empty else None

    with tempfile.TemporaryDirectory(prefix="gdi-ingest-") as tmp:
        raw = read_upload(
            path, workdir=Path(tmp), layer=options.layer, encoding=options.encoding,
            max_bytes=int(settings.setting("ingest.max_file_bytes", 500 * 2**20)),
            max_unpacked=int(settings.setting("ingest.max_unpacked_bytes", 2**30)),
            max_entries=int(settings.setting("ingest.max_zip_entries", 10000)),
        )
    frame = raw.frame
    report.format, report.layer, report.archive_members = raw.format, raw.layer, raw.members
    report.encoding = {"name": raw.encoding, "source": raw.encoding_source}
    report.warnings.extend(raw.messages)
    report.counts["read"] = len(frame)
    if len(frame) == 0:
        raise IngestRefused(f"{path.name} contains no features")

    step("coordinates", 0.25)
    geoms = np.asarray(frame.geometry.values, dtype=object)
    epsg = _decide_crs(geoms, raw.declared_epsg, given_epsg, frame, area, report)
    geoms = _to_storage(geoms, epsg, collection, report)
    # from here on only the attribute columns: the source geometries go (≈100 MB per million points)
    frame = pd.DataFrame(frame.drop(columns=frame.geometry.name))
    raw.frame = None

    mapping = plan_mapping(list(frame.columns), collection)
    report.field_mapping = mapping.sources
    report.unknown_fields = mapping.unknown
    missing = [p.name for p in collection.input_properties() if p.required and p.name not in mapping.sources]
    if missing:
        raise IngestRefused(
            f"no field for required {', '.join(missing)} found; columns in the file: "
            f"{', '.join(frame.columns)}")
    step("fields", 0.4)
    cols = map_columns(frame, collection, mapping)
    step("geometry", 0.55)

    tolerance = float(settings.setting("ingest.territory_tolerance_m", 50))
    fixed_all, notes, reasons = conform_many(geoms, collection.geometry_type)
    # A feature is rejected for its geometry first, then for its values (as one message).
    bad = np.zeros(len(frame), dtype=bool)
    for i in sorted(set(np.nonzero(np.not_equal(reasons, None))[0].tolist()) | set(cols.problems)):
        problems = list(cols.problems.get(i, []))
        if reasons[i]:
            problems.insert(0, reasons[i])
        report.rejected.append(FeatureNote(i, "; ".join(problems), _shown(cols.row(i))))
        bad[i] = True
    candidates = np.nonzero(~bad)[0]
    duplicate_of = _duplicates(fixed_all[candidates], {k: v[candidates] for k, v in cols.values.items()})
    for j in np.nonzero(duplicate_of >= 0)[0].tolist():
        i = int(candidates[j])
        report.rejected.append(FeatureNote(i, f"exact duplicate of feature {int(candidates[duplicate_of[j]])}",
                                           _shown(cols.row(i))))
    accepted = candidates[duplicate_of < 0]
    for i in np.nonzero(np.not_equal(notes[accepted], None))[0].tolist():
        report.repaired.append(FeatureNote(int(accepted[i]), notes[accepted[i]], _shown(cols.row(int(accepted[i])))))
    out_geoms_arr = fixed_all[accepted]

    step("territory", 0.7)
    keep = np.ones(len(accepted), dtype=bool)
    tfield = collection.territory_field
    if tfield:
        values = cols.values.get(tfield, np.full(len(frame), None, dtype=object))[accepted]
        text = pd.Series(values, dtype=object).fillna("").astype(str)
        keep = text.str.startswith(member).to_numpy(dtype=bool)
        for j in np.nonzero(~keep)[0].tolist():
            i = int(accepted[j])
            report.rejected.append(FeatureNote(
                i, f"{tfield} {text.iloc[j]} is not in the territory of member {member}", _shown(cols.row(i))))
    else:
        if area is None:
            raise IngestRefused(
                f"the territory of member {member} is unknown: no municipalities with a key starting "
                f"{member} are published yet (upload the boundaries first)")
        keep = inside(out_geoms_arr, area, tolerance) if len(out_geoms_arr) else np.zeros(0, bool)
        for j in np.nonzero(~keep)[0].tolist():
            i = int(accepted[j])
            report.rejected.append(FeatureNote(
                i, f"outside the territory of member {member} (more than {tolerance:g} m beyond its boundary)",
                _shown(cols.row(i))))
    accepted = accepted[keep]
    accepted_idx = accepted.tolist()
    out_geoms_arr = out_geoms_arr[keep] if len(out_geoms_arr) else out_geoms_arr
    report.rejected.sort(key=lambda n: n.index)
    accepted_set = set(accepted_idx)
    report.repaired = [n for n in report.repaired if n.index in accepted_set]
    report.counts.update(accepted=len(accepted_idx), rejected=len(report.rejected), repaired=len(report.repaired))
    if not accepted_idx:
        raise IngestRefused(f"none of the {len(frame)} features could be accepted (see the rejected list)")

    updated = now_iso()
    none = np.full(len(accepted), None, dtype=object)
    data = {name: (cols.values[name][accepted] if name in cols.values else none.copy()) for name in collection.properties}
    if "ags" in collection.properties and collection.properties["ags"].computed:
        data["ags"] = assign_ags(out_geoms_arr, municipalities, tolerance) if municipalities is not None else [None] * len(accepted_idx)
    if "updated" in collection.properties and collection.properties["updated"].computed:
        data["updated"] = [updated] * len(accepted_idx)
    result = gpd.GeoDataFrame(data, geometry=gpd.GeoSeries(out_geoms_arr, crs=collection.storage_crs))
    # the source table and the per-row intermediates are no longer needed: free them before the
    # store builds its rows (keeps a 1,000,000-feature upload well under 2 GB resident)
    del raw, frame, geoms, cols, fixed_all, notes, reasons, data

    if options.dry_run:
        report.status = "accepted"
        return
    step("storing", 0.8)
    original = _keep_original(path, collection, member, dataset, report)
    meta = VersionMeta(uploader=options.uploader, file=path.name, sha256=report.sha256, report=report.id,
                       original=str(original.relative_to(settings.paths().home)), counts=dict(report.counts))
    info = store.replace(collection, member, dataset, result, updated=updated, meta=meta)
    report.version = info.version
    report.status = "accepted"
    report.published = True
    if options.publish:
        step("publishing", 0.92)
        from gdi.publish import publish
        try:
            publish(store=store, viewer=False)      # a running server refreshes the map
        except Exception as exc:  # noqa: BLE001 — the data are stored; say so rather than fail the upload
            report.warnings.append(f"the data are published as version {info.version}, but regenerating the "
                                   f"configuration and map failed ({type(exc).__name__}: {exc}); run gdi publish")
    step("done", 1.0)


def _duplicates(geoms: np.ndarray, values: dict[str, np.ndarray]) -> np.ndarray:
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


def _shown(values: dict) -> dict:
    return {k: v for k, v in values.items() if v is not None}


def _decide_crs(geoms: np.ndarray, declared: int | None, given: int | None, frame: gpd.GeoDataFrame,
                area, report: Report) -> int:
    valid = ~shapely.is_missing(geoms) & ~shapely.is_empty(geoms)
    coords = shapely.get_coordinates(geoms[valid]) if valid.any() else np.zeros((0, 2))
    if given is not None:
        report.crs = {"epsg": given, "source": "given (--crs)", "reason": None}
        return given
    if declared is not None:
        x, y = coords[:, 0], coords[:, 1]
        if crsmod.crs_of(declared).is_geographic and len(x) and (np.abs(x).max() > 180 or np.abs(y).max() > 90):
            report.warnings.append(
                f"the file declares EPSG:{declared} but its coordinates are not degrees; the CRS is inferred instead")
        else:
            report.crs = {"epsg": declared, "source": "declared in the file", "reason": None}
            if declared == 4326 and len(x) and _looks_swapped(x, y):
                report.crs["swapped"] = True
                report.warnings.append("latitude and longitude were given in swapped order; corrected")
            return declared
    lonlat = _territory_lonlat(area)
    guess = crsmod.infer_crs(coords[:, 0], coords[:, 1], lonlat) if len(coords) else None
    if guess is None:
        raise IngestRefused(
            "no CRS declared and the coordinates fit none of EPSG:4326, 25832, 25833, 31466, 31467, 31468, 3857 "
            "inside the member's territory; give the CRS with --crs")
    report.crs = {"epsg": guess.epsg, "source": "inferred", "reason": guess.reason}
    report.warnings.append(f"CRS assumed: EPSG:{guess.epsg} — {guess.reason}")
    if guess.swapped:
        report.crs["swapped"] = True
        report.warnings.append("latitude and longitude were given in swapped order; corrected")
    return guess.epsg


def _looks_swapped(x: np.ndarray, y: np.ndarray) -> bool:
    """Germany: lon 5.5–15.5, lat 47–55.5; swapped values show the reverse."""
    return bool(np.mean((x > 46) & (x < 56) & (y > 5) & (y < 16)) > 0.8)


def _territory_lonlat(area) -> tuple[float, float, float, float] | None:
    if area is None:
        return None
    minx, miny, maxx, maxy = area.bounds
    t = crsmod.transformer(25832, 4326)
    xs, ys = t.transform([minx, maxx, minx, maxx], [miny, miny, maxy, maxy])
    return (min(xs), min(ys), max(xs), max(ys))


def _to_storage(geoms: np.ndarray, epsg: int, collection: Collection, report: Report) -> np.ndarray:
    swapped = report.crs.get("swapped", False)
    if swapped:
        geoms = shapely.transform(geoms, lambda c: c[:, ::-1])
    if epsg == collection.epsg:
        return geoms
    t = crsmod.transformer(epsg, collection.epsg)
    report.crs["transformation"] = t.description

    def fn(c: np.ndarray) -> np.ndarray:
        x, y = t.transform(c[:, 0], c[:, 1])
        return np.column_stack([x, y])

    ok = np.array([g is not None for g in geoms])
    out = geoms.copy()
    if ok.any():
        out[ok] = shapely.transform(geoms[ok], fn)
    return out


def _keep_original(path: Path, collection: Collection, member: str, dataset: str, report: Report) -> Path:
    """The upload as sent, so fields we did not map are never lost."""
    target = settings.paths().originals / collection.id / member / dataset / f"{report.id}-{path.name}"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(path, target)
    return target
