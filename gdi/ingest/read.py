"""Reading member uploads in whatever format they arrive.

Thin wrappers over pyogrio (GDAL) for the vector formats and pandas for the
tabular ones; everything here answers one question: what is in this file, in
which CRS and encoding, as declared or detected.
"""
from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

from gdi.crs import epsg_of
from gdi.ingest import IngestRefused
from gdi.ingest import encoding as enc
from gdi.ingest import limits as lim
from gdi.ingest.unpack import safe_extract
from gdi.messages import Text, de_number, t, text_of

VECTOR_EXT = {".shp": "ESRI Shapefile", ".gpkg": "GeoPackage", ".geojson": "GeoJSON", ".json": "GeoJSON",
              ".kml": "KML", ".fgb": "FlatGeobuf"}
TABLE_EXT = {".csv": "CSV", ".txt": "CSV", ".tsv": "CSV", ".xlsx": "Excel"}
ARCHIVE_EXT = {".zip", ".kmz"}
SUPPORTED = sorted({*VECTOR_EXT, *TABLE_EXT, *ARCHIVE_EXT})

X_NAMES = ("lon", "lng", "long", "longitude", "laengengrad", "x", "rechtswert", "easting", "ostwert", "x_coord", "xcoord", "rw", "east")
Y_NAMES = ("lat", "latitude", "breitengrad", "y", "hochwert", "northing", "nordwert", "y_coord", "ycoord", "hw", "north")
WKT_NAMES = ("wkt", "geometry", "geom", "the_geom", "geometrie", "wkt_geom", "shape")


@dataclass
class Raw:
    """What was found in an upload, before any mapping."""

    frame: gpd.GeoDataFrame
    format: str
    layer: str | None
    declared_epsg: int | None
    encoding: str | None
    encoding_source: Text | None
    messages: list[Text] = field(default_factory=list)
    members: list[str] = field(default_factory=list)   # files inside an archive


def _fold(name: str) -> str:
    from gdi.collections import fold
    return fold(name)


def read_upload(path: Path, *, workdir: Path, layer: str | None = None, encoding: str | None = None,
                limits: lim.FileLimits) -> Raw:
    """Open a member upload; raise IngestRefused with one clear line when it cannot be read
    or is over one of its declared limits."""
    path = Path(path)
    if not path.exists():
        raise IngestRefused(t(f"Datei nicht gefunden: {path}", f"file not found: {path}"))
    if path.is_dir():
        raise IngestRefused(t(f"{path} ist ein Ordner, keine Datei", f"{path} is a folder, not a file"))
    size = path.stat().st_size
    if size == 0:
        raise IngestRefused(t(f"{path.name} ist leer (0 Bytes)", f"{path.name} is empty (0 bytes)"))
    if size > limits.max_file_bytes:
        most = limits.max_file_bytes
        raise IngestRefused(t(f"{path.name} ist {de_number(size)} Bytes groß, mehr als die Grenze von "
                              f"{de_number(most)} Bytes",
                              f"{path.name} is {size:,} bytes, more than the limit of {most:,} bytes"))
    if encoding:
        try:
            encoding = enc.normalise_encoding(encoding)
        except ValueError as exc:
            raise IngestRefused(text_of(exc)) from exc
    ext = path.suffix.lower()
    members: list[str] = []
    if ext in ARCHIVE_EXT or _is_zip(path):
        files = safe_extract(path, workdir / "unpacked", max_bytes=limits.max_unpacked_bytes,
                             max_entries=limits.max_zip_entries)
        members = [str(f.relative_to(workdir / "unpacked")) for f in files]
        path = _pick_from_archive(files, layer, kmz=ext == ".kmz")
        ext = path.suffix.lower()
    if ext not in VECTOR_EXT and ext not in TABLE_EXT:
        raise IngestRefused(t(
            f"nicht unterstütztes Format ‚{ext or path.name}‘; angenommen werden: gezipptes Shapefile, GeoPackage, "
            "GeoJSON, KML/KMZ, CSV, Excel (.xlsx), FlatGeobuf",
            f"unsupported format '{ext or path.name}'; accepted: zipped Shapefile, GeoPackage, GeoJSON, KML/KMZ, "
            "CSV, Excel (.xlsx), FlatGeobuf"))
    if ext in TABLE_EXT:
        raw = _read_table(path, encoding, limits)
    else:
        raw = _read_vector(path, ext, layer, encoding, limits)
    lim.check_size(raw.frame, path.name, limits)
    lim.check_nesting(raw.frame, path.name, limits.max_nesting_depth)
    raw.members = members
    return raw


def _is_zip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(4) == b"PK\x03\x04" and path.suffix.lower() not in {".xlsx", ".gpkg"}


def _pick_from_archive(files: list[Path], layer: str | None, kmz: bool) -> Path:
    usable = [f for f in files if f.suffix.lower() in VECTOR_EXT or f.suffix.lower() in TABLE_EXT]
    shps = [f for f in usable if f.suffix.lower() == ".shp"]
    if shps:
        usable = shps
    elif kmz:
        usable = [f for f in usable if f.suffix.lower() == ".kml"] or usable
    if not usable:
        names = ", ".join(sorted(f.name for f in files)[:10])
        raise IngestRefused(t(f"das Archiv enthält keine lesbaren Geodaten (gefunden: {names or 'nichts'})",
                              f"the archive holds no readable geodata (found: {names or 'nothing'})"))
    if len(usable) > 1:
        if layer:
            chosen = [f for f in usable if f.stem.lower() == layer.lower() or f.name.lower() == layer.lower()]
            if chosen:
                return _prepare_shapefile(chosen[0]) if chosen[0].suffix.lower() == ".shp" else chosen[0]
        names = ", ".join(sorted(f.stem for f in usable))
        raise IngestRefused(t(f"das Archiv enthält mehrere Datensätze ({names}); wählen Sie einen mit ⟨--layer⟩",
                              f"the archive holds several data sets ({names}); choose one with ⟨--layer⟩"))
    chosen = usable[0]
    return _prepare_shapefile(chosen) if chosen.suffix.lower() == ".shp" else chosen


def _prepare_shapefile(shp: Path) -> Path:
    """Give the sidecars lower-case extensions next to a lower-case .shp (GDAL looks for those)."""
    stem = shp.stem
    for sib in list(shp.parent.iterdir()):
        if sib.stem.lower() == stem.lower() and sib.suffix.lower() in {".shp", ".shx", ".dbf", ".prj", ".cpg", ".qix", ".sbn", ".sbx"}:
            want = sib.with_name(stem + sib.suffix.lower())
            if sib != want:
                sib.rename(want)
    shp = shp.with_name(stem + ".shp")
    if not shp.with_suffix(".dbf").exists():
        raise IngestRefused(t(f"zum Shapefile ‚{shp.name}‘ fehlt im Upload die .dbf-Datei",
                              f"the Shapefile '{shp.name}' has no .dbf file in the upload"))
    if not shp.with_suffix(".shx").exists():
        raise IngestRefused(t(f"zum Shapefile ‚{shp.name}‘ fehlt im Upload die .shx-Datei",
                              f"the Shapefile '{shp.name}' has no .shx file in the upload"))
    return shp


def _check_xml(path: Path, max_depth: int) -> None:
    """Refuse DTDs and entities before GDAL's XML parser sees the file (XXE), and elements
    nested deeper than the limit (KML nests Document/Folder/Placemark/MultiGeometry/… ~8 deep)."""
    import defusedxml.ElementTree as DET
    from defusedxml import DefusedXmlException

    try:
        depth = 0
        for event, _ in DET.iterparse(path, events=("start", "end"), forbid_dtd=True, forbid_entities=True,
                                      forbid_external=True):
            depth += 1 if event == "start" else -1
            if depth > max_depth:
                raise lim.too_deep(path.name, depth, max_depth)
    except DefusedXmlException as exc:
        raise IngestRefused(t(f"{path.name}: XML mit einer DTD oder Entitäten wird nicht angenommen "
                              f"({type(exc).__name__})",
                              f"{path.name}: XML with a DTD or entities is not accepted "
                              f"({type(exc).__name__})")) from exc
    except DET.ParseError as exc:
        raise IngestRefused(t(f"{path.name} ist kein wohlgeformtes XML ({exc})",
                              f"{path.name} is not well-formed XML ({exc})")) from exc


def _read_vector(path: Path, ext: str, layer: str | None, encoding: str | None, limits: lim.FileLimits) -> Raw:
    messages: list[Text] = []
    if ext == ".kml":
        _check_xml(path, limits.max_nesting_depth)
    try:
        layers = pyogrio.list_layers(path)
    except Exception as exc:  # pyogrio raises DataSourceError and friends
        if ext in {".geojson", ".json"} and "number" in str(exc).lower():
            return _read_geojson_with_bad_numbers(path, limits.max_nesting_depth, _one_line(exc))
        if "too many nested" in str(exc).lower():
            raise lim.too_deep(path.name, limits.max_nesting_depth + 1, limits.max_nesting_depth) from exc
        raise IngestRefused(t(f"{path.name} ließ sich nicht als {VECTOR_EXT[ext]} lesen: {_one_line(exc)}",
                              f"{path.name} could not be read as {VECTOR_EXT[ext]}: {_one_line(exc)}")) from exc
    spatial = [str(name) for name, gtype in layers if gtype is not None] or [str(n) for n, _ in layers]
    if layer:
        if layer not in [str(n) for n, _ in layers]:
            raise IngestRefused(t(f"die Ebene ‚{layer}‘ gibt es in {path.name} nicht; Ebenen: {', '.join(spatial)}",
                                  f"layer '{layer}' not found in {path.name}; layers: {', '.join(spatial)}"))
        chosen = layer
    elif len(spatial) == 1:
        chosen = spatial[0]
    elif not spatial:
        raise IngestRefused(t(f"{path.name} enthält keine Ebenen", f"{path.name} contains no layers"))
    else:
        raise IngestRefused(t(f"{path.name} hat mehrere Ebenen ({', '.join(spatial)}); wählen Sie eine mit ⟨--layer⟩",
                              f"{path.name} has several layers ({', '.join(spatial)}); choose one with ⟨--layer⟩"))

    enc_used, enc_source = None, None
    if ext == ".shp":
        enc_used, enc_source = _shapefile_encoding(path, encoding)
    elif encoding:
        enc_used, enc_source = encoding, t("beim Hochladen angegeben", "given")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kwargs = {"encoding": enc_used} if enc_used else {}
            try:        # columnar (Arrow) reading: ~40 % faster for large files
                frame = pyogrio.read_dataframe(path, layer=chosen, use_arrow=True, **kwargs)
            except Exception:  # noqa: BLE001 — any driver the Arrow path trips on is read row-wise
                frame = pyogrio.read_dataframe(path, layer=chosen, **kwargs)
    except Exception as exc:
        if "too many nested" in str(exc).lower():
            raise lim.too_deep(path.name, limits.max_nesting_depth + 1, limits.max_nesting_depth) from exc
        raise IngestRefused(t(f"{path.name} ließ sich nicht lesen: {_one_line(exc)}",
                              f"{path.name} could not be read: {_one_line(exc)}")) from exc
    declared = None
    if frame.crs is not None:
        declared = epsg_of(frame.crs)
        if declared is None:
            messages.append(t(f"das angegebene Koordinatensystem ({frame.crs.name}) hat keinen EPSG-Code; es wird "
                              "wie angegeben verwendet",
                              f"the declared CRS ({frame.crs.name}) has no EPSG code; it is used as declared"))
    if ext in {".geojson", ".json"} and enc_used is None:
        enc_used, enc_source = "utf-8", GEOJSON_UTF8
    if ext == ".gpkg":
        enc_used, enc_source = "utf-8", t("Text in GeoPackage ist UTF-8", "GeoPackage text is UTF-8")
    return Raw(frame, VECTOR_EXT[ext], chosen, declared, enc_used, enc_source, messages)


def _read_geojson_with_bad_numbers(path: Path, max_depth: int, gdal_error: str) -> Raw:
    """GeoJSON that GDAL refuses for a number it cannot represent (NaN, Infinity, 1e309): read with
    Python's json, where those become NaN or ±inf, so that only the features holding them are
    rejected ("not a number") and the rest of the file is published. GDAL says "number" also for
    a text of more than ~10 million characters; the note then says what GDAL said."""
    import json

    import shapely.geometry

    not_finite: list[str] = []

    def constant(name: str) -> float:
        not_finite.append(name)
        return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[name]

    def number(text: str) -> float:
        value = float(text)
        if math.isinf(value):
            not_finite.append(text)
        return value

    try:
        with open(path, encoding="utf-8-sig") as fh:
            doc = json.load(fh, parse_constant=constant, parse_float=number)
    except RecursionError as exc:
        raise lim.too_deep(path.name, max_depth + 1, max_depth) from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise IngestRefused(t(f"{path.name} ließ sich nicht als GeoJSON lesen: {_one_line(exc)}",
                              f"{path.name} could not be read as GeoJSON: {_one_line(exc)}")) from exc
    features = doc.get("features") if isinstance(doc, dict) else None
    if not isinstance(features, list):
        raise IngestRefused(t(f"{path.name} ließ sich nicht als GeoJSON lesen: keine FeatureCollection",
                              f"{path.name} could not be read as GeoJSON: no FeatureCollection"))
    rows, geoms = [], []
    for f in features:
        f = f if isinstance(f, dict) else {}
        props = f.get("properties")
        rows.append(props if isinstance(props, dict) else {})
        try:
            geoms.append(shapely.geometry.shape(f["geometry"]) if f.get("geometry") else None)
        except (KeyError, TypeError, ValueError, AttributeError, shapely.errors.GEOSException):
            geoms.append(None)
    declared = 4326
    legacy = ((doc.get("crs") or {}).get("properties") or {}).get("name") if isinstance(doc.get("crs"), dict) else None
    if legacy:
        match = re.search(r"EPSG:{1,2}(\d+)|CRS84", str(legacy))
        declared = 4326 if match is None or match.group(1) is None else int(match.group(1))
    frame = gpd.GeoDataFrame(pd.DataFrame(rows), geometry=gpd.GeoSeries(geoms, crs=declared))
    if not_finite:
        messages = [t("die Datei enthält Zahlen, die GDAL nicht lesen kann (NaN, Infinity oder jenseits von "
                      "±1,8e308); sie wurde Objekt für Objekt gelesen",
                      "the file holds numbers GDAL cannot read (NaN, Infinity or beyond ±1.8e308); "
                      "it was read feature by feature")]
    else:
        messages = [t(f"GDAL konnte die Datei nicht lesen ({gdal_error}); sie wurde Objekt für Objekt gelesen",
                      f"GDAL could not read the file ({gdal_error}); it was read feature by feature")]
    return Raw(frame, "GeoJSON", Path(path).stem, declared, "utf-8", GEOJSON_UTF8, messages)


GEOJSON_UTF8 = t("GeoJSON ist UTF-8 (RFC 7946)", "GeoJSON is UTF-8 (RFC 7946)")
ENCODING_GIVEN = t("mit ⟨--encoding⟩ angegeben", "given (⟨--encoding⟩)")


def _shapefile_encoding(shp: Path, given: str | None) -> tuple[str, Text]:
    if given:
        return given, ENCODING_GIVEN
    cpg = shp.with_suffix(".cpg")
    if cpg.exists():
        declared = enc.cpg_encoding(cpg)
        if declared:
            return declared, t("in der .cpg-Datei angegeben", "declared in .cpg")
    data = enc.dbf_records(shp.with_suffix(".dbf"))
    guess = enc.guess_bytes(data)
    if guess.startswith("utf-8"):
        return "utf-8", t("erkannt: der DBF-Text ist gültiges UTF-8 (keine .cpg-Datei)",
                          "detected: the DBF text is valid UTF-8 (no .cpg)")
    ldid = enc.dbf_ldid(shp.with_suffix(".dbf"))
    if ldid and ldid != "cp1252":
        return ldid, t(f"vom Sprachtreiber-Byte der DBF angegeben ({ldid}; keine .cpg-Datei)",
                       f"declared by the DBF language driver byte ({ldid}; no .cpg)")
    return "cp1252", t("erkannt: der DBF-Text ist kein UTF-8, als Windows-1252 gelesen (keine .cpg-Datei)",
                       "detected: the DBF text is not UTF-8, read as Windows-1252 (no .cpg)")


def _read_table(path: Path, encoding: str | None, limits: lim.FileLimits) -> Raw:
    messages: list[Text] = []
    if path.suffix.lower() == ".xlsx":
        try:
            df = pd.read_excel(path, dtype=object)
        except Exception as exc:
            raise IngestRefused(t(f"{path.name} ließ sich nicht als Excel-Datei lesen: {_one_line(exc)}",
                                  f"{path.name} could not be read as Excel: {_one_line(exc)}")) from exc
        enc_used, enc_source, fmt = None, None, "Excel"
    else:
        data = path.read_bytes()
        if b"\x00" in data[:4096]:
            raise IngestRefused(t(f"{path.name} ist keine Textdatei (binärer Inhalt)",
                                  f"{path.name} is not a text file (binary content)"))
        lim.check_lines(data, path.name, limits.max_line_bytes)
        if encoding:
            enc_used, enc_source = encoding, ENCODING_GIVEN
        else:
            enc_used = enc.guess_bytes(data)
            enc_source = (t("erkannt: gültiges UTF-8", "detected: valid UTF-8") if enc_used.startswith("utf-8")
                          else t("erkannt: kein UTF-8, als Windows-1252 gelesen",
                                 "detected: not UTF-8, read as Windows-1252"))
        try:
            text = data.decode(enc_used, errors="strict" if encoding is None else "replace")
        except UnicodeDecodeError as exc:
            raise IngestRefused(t(
                f"{path.name}: der Text ist weder UTF-8 noch Windows-1252 (Byte 0x{data[exc.start]:02x} an "
                f"Position {exc.start}); geben Sie die Zeichenkodierung mit ⟨--encoding⟩ an, z. B. cp850",
                f"{path.name}: the text is neither UTF-8 nor Windows-1252 (byte 0x{data[exc.start]:02x} at "
                f"position {exc.start}); give the encoding with ⟨--encoding⟩, e.g. cp850")) from exc
        first = text.splitlines()[0] if text.strip() else ""
        sep = max([";", ",", "\t", "|"], key=first.count)
        if first.count(sep) == 0:
            raise IngestRefused(t(f"{path.name}: in der Kopfzeile ist kein Spaltentrennzeichen zu finden",
                                  f"{path.name}: no column separator found in the header line"))
        import io
        try:
            df = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, na_values=[""])
        except Exception as exc:
            raise IngestRefused(t(f"{path.name} ließ sich nicht als CSV lesen: {_one_line(exc)}",
                                  f"{path.name} could not be read as CSV: {_one_line(exc)}")) from exc
        fmt = f"CSV (separator '{sep}')"
    df.columns = [str(c).strip() for c in df.columns]
    frame = _table_geometry(df, path.name, messages)
    return Raw(frame, fmt, None, None, enc_used, enc_source, messages)


def _number(series: pd.Series) -> np.ndarray:
    """Numbers as members type them: decimal commas, thousands spaces, blanks."""
    s = series.astype(str).str.strip().str.replace("\u00a0", "", regex=False).str.replace(" ", "", regex=False)
    comma = s.str.contains(",", regex=False)
    s = s.where(~comma, s.str.replace(".", "", regex=False).str.replace(",", ".", regex=False))
    return pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)


def _table_geometry(df: pd.DataFrame, name: str, messages: list[Text]) -> gpd.GeoDataFrame:
    folded = {_fold(c): c for c in df.columns}
    wkt_col = next((folded[n] for n in WKT_NAMES if n in folded), None)
    xcol = next((folded[_fold(n)] for n in X_NAMES if _fold(n) in folded), None)
    ycol = next((folded[_fold(n)] for n in Y_NAMES if _fold(n) in folded), None)
    if xcol and ycol:
        x, y = _number(df[xcol]), _number(df[ycol])
        if np.isfinite(x).sum() == 0:
            raise IngestRefused(t(f"{name}: die Koordinatenspalten ‚{xcol}‘/‚{ycol}‘ enthalten keine Zahlen",
                                  f"{name}: the coordinate columns '{xcol}'/'{ycol}' hold no numbers"))
        geoms = shapely.points(x, y)
        geoms = np.where(np.isfinite(x) & np.isfinite(y), geoms, None)
        messages.append(t(f"Koordinaten aus den Spalten ‚{xcol}‘ (x) und ‚{ycol}‘ (y)",
                          f"coordinates from columns '{xcol}' (x) and '{ycol}' (y)"))
        rest = df.drop(columns=[xcol, ycol])
    elif wkt_col:
        def parse(v: object):
            try:
                return shapely.from_wkt(v) if isinstance(v, str) and v.strip() else None
            except shapely.errors.GEOSException:
                return None
        geoms = np.array([parse(v) for v in df[wkt_col]], dtype=object)
        if all(g is None for g in geoms):
            raise IngestRefused(t(f"{name}: die Spalte ‚{wkt_col}‘ enthält keine lesbare WKT-Geometrie",
                                  f"{name}: the column '{wkt_col}' holds no readable WKT geometry"))
        messages.append(t(f"Geometrie aus der WKT-Spalte ‚{wkt_col}‘", f"geometry from the WKT column '{wkt_col}'"))
        rest = df.drop(columns=[wkt_col])
    else:
        found = ", ".join(map(str, df.columns))
        raise IngestRefused(t(
            f"{name}: keine verwendbaren Koordinaten — erwartet werden Spalten wie lon/lat, x/y, Rechtswert/Hochwert, "
            f"Längengrad/Breitengrad oder eine WKT-Spalte (gefunden: {found})",
            f"{name}: no usable coordinates — expected columns such as lon/lat, x/y, Rechtswert/Hochwert, "
            f"Längengrad/Breitengrad, or a WKT column (found: {found})"))
    return gpd.GeoDataFrame(rest.reset_index(drop=True), geometry=gpd.GeoSeries(list(geoms)), crs=None)


def _one_line(exc: BaseException) -> str:
    text = re.sub(r"\s+", " ", str(exc)).strip()
    return text[:300] or type(exc).__name__
