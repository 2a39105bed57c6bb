"""Open downloaded GeoPackages with QGIS's own OGR provider (PyQGIS), as GIS staff do.

Run with Debian's /usr/bin/python3 (python3-qgis), not the venv:
    QT_QPA_PLATFORM=offscreen /usr/bin/python3 tests/qgis_gpkg.py supply_points.gpkg …
Prints one JSON object: per file validity, CRS, featureCount, the features iterated, the field names
and the layer's name, for tests/test_downloads.py to compare with the API.
"""
from __future__ import annotations

import sys

from qgis.core import QgsVectorLayer

from qgis_oapif import qgis_session


def main(paths: list[str]) -> int:
    with qgis_session("files") as files:
        for path in paths:
            layer = QgsVectorLayer(path, "download", "ogr")
            info: dict = {"valid": layer.isValid()}
            files[path] = info
            if layer.isValid():
                sublayers = layer.dataProvider().subLayers()
                info.update(crs=layer.crs().authid(), featureCount=layer.featureCount(),
                            iterated=sum(1 for _ in layer.getFeatures()), fields=[f.name() for f in layer.fields()],
                            layer=sublayers[0].split("!!::!!")[1] if sublayers else None)
            else:
                info["error"] = layer.error().summary()
            del layer
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
