"""Draw our vector tiles with QGIS's own vector tile layer (PyQGIS, an XYZ source of MVT).

Run with Debian's /usr/bin/python3 (python3-qgis), not the venv, e.g.
    QT_QPA_PLATFORM=offscreen /usr/bin/python3 tests/qgis_tiles.py http://127.0.0.1:5000 supply_points \
        5 14 --extent 973501.99 6533225.68 975947.98 6535671.67 --extent 0 19000000 10000 19010000
Prints one JSON object: the layer's validity and zoom range, and per extent (EPSG:3857) how many
separate marks QGIS drew in a 512 × 512 image of it (points: one mark each, where none overlap),
for tests/test_tiles.py to compare with the API (QGIS 3.22 offers no feature access to a vector tile
layer from Python: drawing is what it does).
"""
from __future__ import annotations

import argparse
import sys

from qgis.core import (QgsCoordinateReferenceSystem, QgsDataSourceUri, QgsMapRendererSequentialJob, QgsMapSettings,
                       QgsRectangle, QgsVectorTileBasicRenderer, QgsVectorTileLayer)
from qgis.PyQt.QtCore import QSize
from qgis.PyQt.QtGui import QColor

from qgis_oapif import qgis_session


SIZE = 512


def marks(image) -> int:
    """Connected groups of red pixels (4-neighbours)."""
    red = {(x, y) for x in range(SIZE) for y in range(SIZE)
           if QColor(image.pixel(x, y)).red() > 200 and QColor(image.pixel(x, y)).green() < 100}
    groups = 0
    while red:
        groups += 1
        todo = [red.pop()]
        while todo:
            x, y = todo.pop()
            for n in ((x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)):
                if n in red:
                    red.remove(n)
                    todo.append(n)
    return groups


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("collection")
    ap.add_argument("zmin", type=int)
    ap.add_argument("zmax", type=int)
    ap.add_argument("--extent", nargs=4, type=float, action="append", required=True)
    args = ap.parse_args()
    with qgis_session("layer") as info:
        uri = QgsDataSourceUri()
        uri.setParam("type", "xyz")
        uri.setParam("url", f"{args.url}/collections/{args.collection}/tiles/WebMercatorQuad/{{z}}/{{y}}/{{x}}?f=mvt")
        uri.setParam("zmin", str(args.zmin))
        uri.setParam("zmax", str(args.zmax))
        layer = QgsVectorTileLayer(bytes(uri.encodedUri()).decode(), args.collection)
        info.update(valid=layer.isValid(), zmin=layer.sourceMinZoom(), zmax=layer.sourceMaxZoom(),
                    crs=layer.crs().authid(), drawn=[])
        if layer.isValid():
            renderer = QgsVectorTileBasicRenderer()
            renderer.setStyles(QgsVectorTileBasicRenderer.simpleStyle(
                QColor("red"), QColor("red"), 1.0, QColor("red"), 1.0, QColor("red"), QColor("red"), 1.5))
            layer.setRenderer(renderer)
            for extent in args.extent:
                settings = QgsMapSettings()
                settings.setLayers([layer])
                settings.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:3857"))
                settings.setExtent(QgsRectangle(*extent))
                settings.setOutputSize(QSize(SIZE, SIZE))
                settings.setBackgroundColor(QColor("white"))
                job = QgsMapRendererSequentialJob(settings)
                job.start()
                job.waitForFinished()
                info["drawn"].append(marks(job.renderedImage()))
        del layer
    return 0


if __name__ == "__main__":
    sys.exit(main())
