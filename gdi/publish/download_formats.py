"""The file formats of whole-collection downloads: what the collection's enclosure links name.

Apart from the writer (gdi.publish.download), so that the configuration can list the links
without importing the writer's Arrow and pygeoapi modules (a third of a second on every publish).
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Format:
    name: str
    media_type: str
    driver: str
    layer_options: dict[str, str] = field(default_factory=dict)
    dataset_options: dict[str, str] = field(default_factory=dict)


FORMATS: dict[str, Format] = {
    # GeoPackage 1.2, not GDAL's 1.4: older clients (QGIS 3.22 on GDAL 3.6) warn that they read 1.4 only
    # partly; 1.2 writes times with milliseconds (2026-12-01T14:19:04.000Z), else they warn about those
    "gpkg": Format("GeoPackage", "application/geopackage+sqlite3", "GPKG", {"DATETIME_PRECISION": "MILLISECOND"},
                   {"VERSION": "1.2"}),
    "fgb": Format("FlatGeobuf", "application/flatgeobuf", "FlatGeobuf", {"SPATIAL_INDEX": "YES"}),
    "csv": Format("CSV", "text/csv; charset=utf-8", "CSV", {"GEOMETRY": "AS_WKT", "WRITE_BOM": "YES"}),
}
