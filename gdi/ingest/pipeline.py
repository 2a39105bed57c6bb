"""One member upload, from file to published features.

The stages of ``_run``, each a function with a typed result: target (member, collection
and the write right, the file, the dataset name) → the published territory → read (and
CRS) → fields → check_features (geometry, values, duplicates; gdi.ingest.validate) →
territory (keys of the territory itself, or members' features inside their territory) →
derive (computed properties) → store. A refusal at any stage raises IngestRefused
before the store is touched, so a bad upload never changes what is published.
Publishing the result is the next stage's work (gdi.upload runs both).
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gdi import settings
from gdi.collections import Collection, CollectionError, load_collections, territory_collection
from gdi.datasets import DatasetNameError, check_dataset_name
from gdi.files import now_iso
from gdi.ingest import IngestRefused
from gdi.ingest import authority
from gdi import crs as crsmod
from gdi.ingest.fields import MappedColumns, map_columns, plan_mapping
from gdi.ingest.limits import FileLimits
from gdi.ingest.read import read_upload
from gdi.ingest.report import Report
from gdi.ingest.reports import keep_report
from gdi.ingest.territory import assign_keys, check_member_key, split_keys, territory
from gdi.messages import Surface, Text, t, text_of
from gdi.ingest.validate import Checked, check_features, check_inside, check_keys_of_member
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
    uploader: str | None = None
    admin: bool = False                 # the county's authority (an admin token, `gdi ingest --admin`)
    progress: Callable[[str, float], None] | None = None    # (stage, 0…1), for jobs and terminals
    surface: Surface = "cli"            # cli | web: the report's texts name the options of that surface


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
                    dataset=options.dataset, started=started, dry_run=options.dry_run,
                    surface=options.surface)
    try:
        with _territory_lock(options.collection):
            _run(path, options, report, store)
    except IngestRefused as exc:
        report.refuse(exc.text)
    except Exception as exc:
        report.refuse(t(f"interner Fehler: {type(exc).__name__}: {exc}", f"internal error: {type(exc).__name__}: {exc}"))
        report.status = "failed"
        report.finished = now_iso()
        keep_report(report, options.report_file)
        raise
    report.finished = now_iso()
    keep_report(report, options.report_file)
    return report


@contextlib.contextmanager
def _territory_lock(cid: str) -> Iterator[None]:
    """Uploads into the territory run one at a time: its key checks and the write must see
    the same published keys (two uploads checked at once could each add the same key). With
    PostGIS on every server of the database (an advisory lock), else on this machine (a file lock)."""
    try:
        coll = load_collections().get(cid)
    except CollectionError:
        coll = None
    if coll is None or not coll.is_territory:
        yield
        return
    store = open_store()
    if store.kind == "postgis":
        with store.exclusive(f"territory/{cid}"):
            yield
        return
    with open(settings.paths().home / "territory.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


@dataclass(frozen=True)
class Target:
    """What an upload is for, checked before a byte of it is read."""

    member: str
    collections: dict[str, Collection]
    collection: Collection
    dataset: str
    given_epsg: int | None


@dataclass(frozen=True)
class PublishedTerritory:
    """The published boundaries an upload is checked against (None when none are published)."""

    collection: Collection | None
    boundaries: gpd.GeoDataFrame | None
    area: object | None           # the union of the member's territory features

    @property
    def key(self) -> str | None:
        return self.collection.territory.key if self.collection is not None else None


def _run(path: Path, options: Options, report: Report, store: Store | None) -> None:
    """The stages of one upload; each refusal raises IngestRefused before the store is written."""
    target = _target(path, options)
    report.dataset = target.dataset
    report.size = path.stat().st_size
    report.sha256 = sha256_of(path)
    store = store or open_store()
    step = options.progress or (lambda stage, fraction: None)
    step("reading", 0.05)
    known = _territory(store, target)
    frame, geoms, sample = _read(path, options, target, known, report)
    step("fields", 0.4)
    cols = _fields(frame, target.collection, report)
    read = len(frame)
    del frame           # the file's own columns: mapped into cols (≈400 MB per million rows of six texts)
    step("geometry", 0.55)
    checked = check_features(geoms, cols, target.collection.geometry_type)
    del geoms
    step("territory", 0.7)
    _check_territory(checked, cols, target, known, store)
    report.rejected = sorted(report.rejected + checked.rejected, key=lambda n: n.index)
    report.repaired = checked.repaired
    report.counts.update(accepted=len(checked.accepted), rejected=len(report.rejected),
                         repaired=len(report.repaired))
    if not len(checked.accepted):
        hint = _crs_hint(sample, report, known)
        raise IngestRefused(t(f"keines der {read} Objekte konnte angenommen werden (siehe die Liste der "
                              f"abgewiesenen){hint.de}",
                              f"none of the {read} features could be accepted (see the rejected list){hint.en}"))
    updated = now_iso()
    result = _derive(checked, cols, target.collection, known, updated)
    del cols, checked
    if options.dry_run:
        report.status = "accepted"
        return
    step("storing", 0.8)
    _store(path, result, target, options, report, store, updated)


def _target(path: Path, options: Options) -> Target:
    """Member, collection and write right, CRS option, the file itself and the dataset name."""
    try:
        member = check_member_key(options.member)
    except ValueError as exc:
        raise IngestRefused(text_of(exc)) from exc
    try:
        collections = load_collections()
    except CollectionError as exc:
        raise IngestRefused(text_of(exc)) from exc
    if options.collection not in collections:
        known = ", ".join(sorted(collections))
        raise IngestRefused(t(f"unbekannte Sammlung ‚{options.collection[:40]}‘ (bekannt: {known or 'keine'})",
                              f"unknown collection '{options.collection[:40]}' (known: {known or 'none'})"))
    collection = collections[options.collection]
    authority.check_write_right(collection, options.admin)
    given_epsg = None
    if options.crs:
        try:
            given_epsg = crsmod.parse_crs_option(options.crs)
        except ValueError as exc:
            raise IngestRefused(text_of(exc)) from exc
    if not path.exists():
        raise IngestRefused(t(f"Datei nicht gefunden: {path}", f"file not found: {path}"))
    if not path.is_file():       # a directory, device or pipe: never read (/dev/zero would never end)
        raise IngestRefused(t(f"keine gewöhnliche Datei (ein Ordner, Gerät oder eine Pipe): {path}",
                              f"not a regular file (a directory, device or pipe): {path}"))
    try:
        dataset = check_dataset_name(options.dataset or dataset_name(path))
    except DatasetNameError as exc:
        raise IngestRefused(exc.text) from None
    return Target(member, collections, collection, dataset, given_epsg)


def _territory(store: Store, target: Target) -> PublishedTerritory:
    coll = territory_collection(target.collections)
    boundaries = store.read(coll) if coll is not None else None
    area = (territory(boundaries, coll.territory.key, target.member)
            if boundaries is not None and not boundaries.empty else None)
    return PublishedTerritory(coll, boundaries, area)


def _read(path: Path, options: Options, target: Target, known: PublishedTerritory,
          report: Report) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The attribute table, the geometries in the storage CRS (the source geometries are freed:
    ≈100 MB per million points) and a sample of the source coordinates (for a CRS hint)."""
    limits = settings.get().ingest
    with tempfile.TemporaryDirectory(prefix="gdi-ingest-") as tmp:
        raw = read_upload(path, workdir=Path(tmp), layer=options.layer, encoding=options.encoding,
                          limits=FileLimits.of(limits))
    frame = raw.frame
    raw.frame = None
    report.format, report.layer, report.archive_members = raw.format, raw.layer, raw.members
    source = raw.encoding_source
    report.encoding = {"name": raw.encoding, "source": source and source.render("en", report.surface),
                       "source_de": source and source.render("de", report.surface)}
    for message in raw.messages:
        report.warn(message)
    report.counts["read"] = len(frame)
    if len(frame) == 0:
        raise IngestRefused(t(f"{path.name} enthält keine Objekte", f"{path.name} contains no features"))
    geoms = np.asarray(frame.geometry.values, dtype=object)
    epsg = _decide_crs(geoms, raw.declared_epsg, target.given_epsg, frame, known.area, report)
    sample = shapely.get_coordinates(geoms[:SAMPLE])
    sample = sample[np.isfinite(sample).all(axis=1)]
    geoms = _to_storage(geoms, epsg, target.collection, report)
    return pd.DataFrame(frame.drop(columns=frame.geometry.name)), geoms, sample


SAMPLE = 2000      # source geometries whose coordinates a CRS hint looks at


def _crs_hint(sample: np.ndarray, report: Report, known: PublishedTerritory) -> Text:
    """When every feature is refused and the file's (or the given) CRS is probably wrong: which usual
    CRS would put its coordinates inside the member's territory."""
    if report.crs.get("source") == "inferred" or known.area is None or not len(sample):
        return t("", "")
    (where, wo), guess = (("inside the territory", "im Gebiet"),
                          crsmod.infer_crs(sample[:, 0], sample[:, 1], _territory_lonlat(known.area)))
    if guess is None:       # the file may cover more than the member (a county-wide export)
        (where, wo), guess = ("in Germany", "in Deutschland"), crsmod.infer_crs(sample[:, 0], sample[:, 1], None)
    if guess is None or (guess.epsg, guess.swapped) == (report.crs.get("epsg"), bool(report.crs.get("swapped"))):
        return t("", "")
    how, wie = ("with x and y swapped ", "mit vertauschtem x und y ") if guess.swapped else ("", "")
    declared = report.crs.get("source") == "declared in the file"
    fits = f"EPSG:{guess.epsg} ({crsmod.crs_of(guess.epsg).name})"
    return t(f"; die Koordinaten liegen {wo}, wenn man sie {wie}in {fits} liest, nicht in "
             f"EPSG:{report.crs.get('epsg')} wie {'in der Datei' if declared else 'beim Hochladen'} angegeben: "
             "geben Sie dieses Koordinatensystem mit ⟨--crs⟩ an",
             f"; the coordinates lie {where} {how}in {fits}, not in EPSG:{report.crs.get('epsg')} as "
             f"{'declared' if declared else 'given'}: "
             "give that CRS with ⟨--crs⟩")


def _fields(frame: pd.DataFrame, collection: Collection, report: Report) -> MappedColumns:
    """The file's fields mapped onto the declared properties (a missing required one refuses the file)."""
    mapping = plan_mapping(list(frame.columns), collection)
    report.field_mapping = mapping.sources
    report.unknown_fields = mapping.unknown
    missing = [p.name for p in collection.input_properties() if p.required and p.name not in mapping.sources]
    if missing:
        names, columns = ", ".join(missing), ", ".join(frame.columns)
        raise IngestRefused(t(
            f"die Datei hat kein Feld für {'die Pflichtangabe' if len(missing) == 1 else 'die Pflichtangaben'} "
            f"{names}; Spalten in der Datei: {columns}",
            f"no field for required {names} found; columns in the file: {columns}"))
    return map_columns(frame, collection, mapping, settings.get().ingest.max_text_length)


def _check_territory(checked: Checked, cols: MappedColumns, target: Target, known: PublishedTerritory, store: Store) -> None:
    """The territory's own keys (the county's), or the members' features inside their territory."""
    if target.collection.is_territory:
        keys = check_keys_of_member(checked, cols, target.collection, target.member)
        _check_territory_keys(keys, target.collection, target.collections, store, target.member, target.dataset,
                              known.boundaries)
        return
    if known.area is None:
        what = known.collection.label("de") if known.collection is not None else "Gebietsgrenzen"
        raise IngestRefused(t(
            f"das Gebiet des Mitglieds {target.member} ist unbekannt: noch sind keine {what} mit einem Schlüssel "
            f"veröffentlicht, der mit {target.member} beginnt (laden Sie zuerst die Grenzen hoch)",
            f"the territory of member {target.member} is unknown: no boundaries with a key starting "
            f"{target.member} are published yet (upload the boundaries first)"))
    check_inside(checked, cols, target.member, known.area, settings.get().ingest.territory_tolerance_m)


def _derive(checked: Checked, cols: MappedColumns, collection: Collection, known: PublishedTerritory,
            updated: str) -> gpd.GeoDataFrame:
    """The accepted features with every declared property, the computed ones derived."""
    n = len(checked.accepted)
    data = {name: (cols.values[name][checked.accepted] if name in cols.values else np.full(n, None, dtype=object))
            for name in collection.properties}
    for name in collection.computed("territory_key"):
        data[name] = (assign_keys(checked.geoms, known.boundaries, known.key,
                                  settings.get().ingest.territory_tolerance_m)
                      if known.boundaries is not None else [None] * n)
    for name in collection.computed("publish_time"):
        data[name] = [updated] * n
    return gpd.GeoDataFrame(data, geometry=gpd.GeoSeries(checked.geoms, crs=collection.storage_crs))


def _store(path: Path, result: gpd.GeoDataFrame, target: Target, options: Options, report: Report, store: Store,
           updated: str) -> None:
    """Keep the original, then replace the dataset as a new version in one transaction.

    PostGIS keeps the original itself, in the version's transaction (every server reads it there and
    a rolled-back upload leaves none behind), and the report as it stands once published (written
    again, finished, by keep_report); the embedded store keeps the original as a file under GDI_HOME."""
    def published_as(number: int) -> dict[str, str]:         # a copy: a failing transaction publishes nothing
        return replace(report, version=number, status="accepted", published=True).documents()

    if store.kind == "postgis":
        key, source = str(_original_path(target.collection, target.member, target.dataset, report, path)), path
        documents = published_as
    else:
        original = _keep_original(path, target.collection, target.member, target.dataset, report)
        key, source, documents = str(original.relative_to(settings.paths().home)), None, None
    meta = VersionMeta(uploader=options.uploader, file=path.name, sha256=report.sha256, report=report.id,
                       original=key, original_source=source, report_documents=documents, counts=dict(report.counts))
    info = store.replace(target.collection, target.member, target.dataset, result, updated=updated, meta=meta)
    report.version = info.version
    report.status = "accepted"
    report.published = True


def _check_territory_keys(keys: list[str], collection: Collection, collections: dict[str, Collection],
                          store: Store, member: str, dataset: str, published, *, withdrawal: bool = False) -> None:
    """The territory stays consistent: unique keys, and no key dropped that other features use.

    Uploads and rollbacks pass the keys of the new version; a withdrawal passes none (every key of
    the dataset is dropped) and ``withdrawal=True`` for its own wording.
    """
    key = collection.territory.key
    taken: dict[str, str] = {}
    old: list[str] = []
    if published is not None and not published.empty:
        mine = (published["member"] == member) & (published["dataset"] == dataset)
        old = published.loc[mine, key].astype(str).tolist()
        for k, m, d in published.loc[~mine, [key, "member", "dataset"]].itertuples(index=False):
            taken.setdefault(str(k), f"{m}/{d}")
    authority.check_unique_keys(keys, key, taken)
    if set(old) - set(keys):
        authority.check_kept_keys(keys, old, key, _referenced_keys(collection, collections, store),
                                  withdrawn=f"{collection.id}/{member}/{dataset}" if withdrawal else None)


def _referenced_keys(collection: Collection, collections: dict[str, Collection], store: Store) -> dict[str, set[str]]:
    """Collection id → the territory keys its published features carry (every collection but the territory)."""
    referenced = {}
    for cid, other in collections.items():
        names = other.computed("territory_key")
        if names and cid != collection.id:
            frame = store.read(other)
            referenced[cid] = {k for n in names for v in frame[n].dropna().tolist() for k in split_keys(v)}
    return referenced


def _decide_crs(geoms: np.ndarray, declared: int | None, given: int | None, frame: gpd.GeoDataFrame,
                area, report: Report) -> int:
    valid = ~shapely.is_missing(geoms) & ~shapely.is_empty(geoms)
    coords = shapely.get_coordinates(geoms[valid]) if valid.any() else np.zeros((0, 2))
    coords = coords[np.isfinite(coords).all(axis=1)]       # a NaN or inf says nothing about the CRS
    if given is not None:
        cli = report.surface == "cli"
        report.crs = {"epsg": given, "source": "given (--crs)" if cli else "given in the upload form",
                      "source_de": "angegeben (--crs)" if cli else "im Formular angegeben", "reason": None}
        return given
    if declared is not None:
        x, y = coords[:, 0], coords[:, 1]
        if crsmod.crs_of(declared).is_geographic and len(x) and (np.abs(x).max() > 180 or np.abs(y).max() > 90):
            report.warn(t(
                f"die Datei gibt EPSG:{declared} an, ihre Koordinaten sind aber keine Grad; das Koordinatensystem "
                "wird stattdessen ermittelt",
                f"the file declares EPSG:{declared} but its coordinates are not degrees; the CRS is inferred instead"))
        else:
            report.crs = {"epsg": declared, "source": "declared in the file", "source_de": "in der Datei angegeben",
                          "reason": None}
            if declared == 4326 and len(x) and _looks_swapped(x, y):
                report.crs["swapped"] = True
                report.warn(SWAPPED)
            return declared
    lonlat = _territory_lonlat(area)
    guess = crsmod.infer_crs(coords[:, 0], coords[:, 1], lonlat) if len(coords) else None
    if guess is None:
        raise IngestRefused(t(
            "kein Koordinatensystem angegeben, und die Koordinaten passen in keinem von EPSG:4326, 25832, 25833, "
            "31466, 31467, 31468, 3857 in das Gebiet des Mitglieds; geben Sie das Koordinatensystem mit ⟨--crs⟩ an",
            "no CRS declared and the coordinates fit none of EPSG:4326, 25832, 25833, 31466, 31467, 31468, 3857 "
            "inside the member's territory; give the CRS with ⟨--crs⟩"))
    report.crs = {"epsg": guess.epsg, "source": "inferred", "source_de": "ermittelt", "reason": guess.reason.en,
                  "reason_de": guess.reason.de}
    report.warn(t(f"Koordinatensystem angenommen: EPSG:{guess.epsg} — {report.crs['reason_de']}",
                  f"CRS assumed: EPSG:{guess.epsg} — {report.crs['reason']}"))
    if guess.swapped:
        report.crs["swapped"] = True
        report.warn(SWAPPED)
    return guess.epsg


SWAPPED = t("Breite und Länge waren vertauscht angegeben; korrigiert",
            "latitude and longitude were given in swapped order; corrected")


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


def _original_path(collection: Collection, member: str, dataset: str, report: Report, path: Path) -> Path:
    """Where an upload's original is kept, relative to GDI_HOME (with PostGIS: its key in the store)."""
    return Path("originals") / collection.id / member / dataset / f"{report.id}-{path.name}"


def _keep_original(path: Path, collection: Collection, member: str, dataset: str, report: Report) -> Path:
    """The upload as sent, so fields we did not map are never lost."""
    target = settings.paths().home / _original_path(collection, member, dataset, report, path)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(path, target)
    return target


def rollback(collection: Collection, member: str, dataset: str, *, to_version: int | None, admin: bool,
             uploader: str | None, store: Store | None = None):
    """Restore an earlier version of a dataset under the same rights and territory checks as an upload.

    Raises IngestRefused (rights, territory keys) or store.base.VersionNotFound; returns the DatasetInfo.
    """
    from gdi.store.base import rollback_target

    authority.check_write_right(collection, admin)
    store = store or open_store()
    with _territory_lock(collection.id):
        if collection.is_territory:
            history = store.history(collection, member, dataset)
            live = next((v.version for v in history if v.live), None)
            _, number = rollback_target(f"{collection.id}/{member}/{dataset}",
                                        [(v.version, v.version) for v in history], live, to_version)
            restored = store.version_features(collection, member, dataset, number)
            keys = restored[collection.territory.key].astype(str).tolist()
            _check_territory_keys(keys, collection, load_collections(), store, member, dataset,
                                  store.read(collection))
        return store.rollback(collection, member, dataset, to_version=to_version, updated=now_iso(),
                              uploader=uploader)


def withdraw(collection: Collection, member: str, dataset: str, *, admin: bool, uploader: str | None,
             store: Store | None = None):
    """Take a dataset down under the same rights as an upload; a territory dataset only while no other
    collection's features use its keys. Recorded as a new version (action ``withdraw``, no features):
    a rollback brings the data back.

    Raises IngestRefused (rights, territory keys) or store.base.DatasetNotFound; returns the DatasetInfo.
    """
    authority.check_write_right(collection, admin)
    store = store or open_store()
    with _territory_lock(collection.id):
        if collection.is_territory:
            _check_territory_keys([], collection, load_collections(), store, member, dataset,
                                  store.read(collection), withdrawal=True)
        return store.withdraw(collection, member, dataset, updated=now_iso(), uploader=uploader)
