"""Whole collections as files for GIS clients: GeoPackage, FlatGeobuf and CSV, in a requested CRS.

pygeoapi's formatters are handed the whole feature collection in memory; a collection can hold
millions of features. Here the store is read in batches from one snapshot
(``Store.read_batches``), each batch becomes an Arrow record batch typed as the collection
declares (an integer stays an integer, a date a date, a date-time a UTC time stamp) and GDAL
writes the stream through pyogrio's ``write_arrow`` — memory is bounded by the batch
(``downloads.batch_features``), not the collection. Measured with ``bench/download_memory.py``
(200,000 points, 20,000 per batch, 2026-12-01), peak RSS of the process: GeoPackage store 253 MB
for a GeoPackage, 271–277 MB for FlatGeobuf, 247–250 MB for CSV (174 MB before anything is read:
the libraries); PostGIS store 268–287 MB (182 MB before). With 50,000 points a GeoPackage takes
243 MB, with 1,000,000 points 282 MB: bounded. What grows with the collection is FlatGeobuf's
index (GDAL keeps a small entry per feature in memory to build it): 235 MB at 50,000, 375 MB at
1,000,000 points.

* Every row carries its feature id (``fid``: the GeoPackage's own FID, a column in FlatGeobuf and
  CSV), the declared properties and ``member``/``dataset``.
* Coordinates: in the storage CRS exactly as stored; in any other CRS transformed and rounded as
  the items endpoint rounds them (1 mm, 1e-7°), so a download equals the served items. The files
  keep the axis order their formats define (easting/longitude first), also for EPSG:4326.
* GeoPackage: layer name = collection id, the German title and description (with attribution)
  as the layer's identifier and description.
* FlatGeobuf with its packed Hilbert R-tree (GDAL orders the features along it, so read them by
  ``fid``).
* CSV: geometry as WKT in the first column ``WKT`` (for every geometry type, as GDAL and QGIS read
  it back), UTF-8 with a byte order mark (so spreadsheets read umlauts), dates and times as the
  API writes them (ISO 8601), booleans ``true``/``false``; text cells are formula-safe like
  ``f=csv`` (gdi/publish/csv_formatter.py).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from gdi.collections import Collection
from gdi.crs import crs_of, transformer
from gdi.messages import echo, t
from gdi.publish.config import CRS84, EPSG_URI, OUTPUT_CRS, described
from gdi.publish.csv_formatter import FORMULA_START
from gdi.publish.download_formats import FORMATS
from gdi.publish.provider_base import _decimals


WKB_FIELD = pa.field("geometry", pa.binary(), metadata={b"ARROW:extension:name": b"geoarrow.wkb"})
ARROW_TYPES = {"integer": pa.int64(), "number": pa.float64(), "boolean": pa.bool_(), "date": pa.date32(),
               "datetime": pa.timestamp("ms", tz="UTC")}


@dataclass(frozen=True)
class OutputCrs:
    uri: str
    epsg: int              # what coordinates are transformed to (x/y order: easting or longitude first)
    definition: str        # what the file declares


class DownloadError(ValueError):
    """A request that cannot be answered (unknown format or CRS), with its German and English text."""


def output_format(key: str | None) -> str:
    """The key of the format ``f`` names; without ``f`` a GeoPackage (what GIS staff load into QGIS)."""
    key = "gpkg" if key in (None, "") else key
    if key not in FORMATS:
        known = ", ".join(FORMATS)
        raise DownloadError(t(f"unbekanntes Format f={echo(key)!r} (möglich: {known})",
                              f"unknown format f={echo(key)!r} (one of {known})"))
    return key


def output_crs(uri: str | None) -> OutputCrs:
    """The CRS ``crs`` names, with the semantics of the items endpoint: one of the advertised URIs,
    CRS84 when absent."""
    uri = CRS84 if uri in (None, "") else uri
    if uri == CRS84:      # the files keep longitude first, so EPSG:4326 is what they declare (clients know it)
        return OutputCrs(uri, 4326, "EPSG:4326")
    for code in (int(u.rsplit("/", 1)[1]) for u in OUTPUT_CRS if u != CRS84):
        if uri == EPSG_URI.format(code):
            return OutputCrs(uri, code, f"EPSG:{code}")
    known = ", ".join(OUTPUT_CRS)
    raise DownloadError(t(f"nicht unterstütztes Koordinatensystem crs={echo(uri, 80)!r} (möglich: {known})",
                          f"unsupported CRS crs={echo(uri, 80)!r} (one of {known})"))


def filename(collection: Collection, key: str) -> str:
    return f"{collection.id}.{key}"


def arrow_schema(collection: Collection, csv: bool) -> pa.Schema:
    """fid, the properties typed as declared, member, dataset, the geometry (WKB). A CSV has text for
    dates, times and booleans: written as the API writes them, not in GDAL's ``2024/01/31``."""
    fields = [pa.field("fid", pa.int64())]
    for name, prop in collection.properties.items():
        typed = ARROW_TYPES.get(prop.type, pa.string())
        fields.append(pa.field(name, pa.string() if csv and prop.type in {"date", "datetime", "boolean"} else typed))
    fields += [pa.field("member", pa.string()), pa.field("dataset", pa.string()), WKB_FIELD]
    return pa.schema(fields)


def formula_safe_column(values: pa.Array) -> pa.Array:
    """formula_safe (gdi/publish/csv_formatter.py) for a whole text column at once."""
    risky = pc.starts_with(values, FORMULA_START[0])
    for start in FORMULA_START[1:]:
        risky = pc.or_(risky, pc.starts_with(values, start))
    return pc.if_else(pc.fill_null(risky, False), pc.binary_join_element_wise("'", values, ""), values)


def typed_column(ptype: str, values: list, csv: bool) -> pa.Array:
    """A column of stored values (text, integers, 0/1 or booleans) as the file holds it. Arrow parses
    the stored ISO 8601 text of dates and times (a time zone named, or UTC)."""
    if ptype in {"integer", "number"}:
        return pa.array(values, ARROW_TYPES[ptype])
    if ptype == "boolean":
        flags = pa.array(values).cast(pa.bool_())
        return pc.if_else(flags, "true", "false") if csv else flags
    text = pa.array(values, pa.string())
    if csv:
        return formula_safe_column(text)
    return text.cast(ARROW_TYPES[ptype]) if ptype in ARROW_TYPES else text


def geometry_transform(collection: Collection, crs: OutputCrs) -> Callable[[list], list] | None:
    """WKB in the storage CRS → WKB in crs, rounded as the items endpoint rounds; None when no
    transformation is needed (the stored WKB is written as it is)."""
    if crs.epsg == collection.epsg:
        return None
    decimals = _decimals(f"EPSG:{crs.epsg}")
    src, dst = collection.epsg, crs.epsg

    def coords(c: np.ndarray) -> np.ndarray:
        x, y = transformer(src, dst).transform(c[:, 0], c[:, 1])
        return np.round(np.column_stack([x, y]), decimals)

    def apply(wkbs: list) -> list:
        geoms = shapely.from_wkb(np.array(wkbs, dtype=object))
        return shapely.to_wkb(shapely.transform(geoms, coords)).tolist()
    return apply


def record_batch(collection: Collection, columns: list[list], schema: pa.Schema, csv: bool,
                 transform: Callable[[list], list] | None) -> pa.RecordBatch:
    """One batch of the store (fids, WKB, *collection.columns) as an Arrow record batch of schema."""
    fids, wkbs, *values = columns
    types = [p.type for p in collection.properties.values()] + ["string", "string"]
    arrays = [pa.array(fids, pa.int64()), *(typed_column(ptype, v, csv) for ptype, v in zip(types, values)),
              pa.array(transform(wkbs) if transform else wkbs, pa.binary())]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def write_download(collection: Collection, store, key: str, crs: OutputCrs, dest: Path, *,
                   batch_size: int) -> int:
    """Write the whole collection as format ``key`` in crs to dest; returns the data version of the
    snapshot written (the download's ETag rests on it)."""
    import pyogrio

    fmt = FORMATS[key]
    csv = key == "csv"
    schema = arrow_schema(collection, csv)
    transform = geometry_transform(collection, crs)
    options = dict(fmt.layer_options)
    if key == "gpkg":
        options.update(IDENTIFIER=collection.label("de"), DESCRIPTION=described(collection).get("de", ""))
    with store.read_batches(collection, batch_size=batch_size) as (version, batches):
        def stream() -> Iterator[pa.RecordBatch]:
            for columns in batches:
                yield record_batch(collection, columns, schema, csv, transform)
        reader = pa.RecordBatchReader.from_batches(schema, stream())
        pyogrio.write_arrow(reader, str(dest), layer=collection.id, driver=fmt.driver, geometry_name="geometry",
                            geometry_type=collection.geometry_type, crs=crs_of(crs.definition).to_wkt(),
                            layer_options=options, dataset_options=fmt.dataset_options)
    return version
