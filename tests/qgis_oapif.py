"""Read our OGC API Features collections with QGIS's own OAPIF provider (PyQGIS).

Run with Debian's /usr/bin/python3 (python3-qgis), not the venv, e.g.
    QT_QPA_PLATFORM=offscreen /usr/bin/python3 tests/qgis_oapif.py http://127.0.0.1:5000 \
        municipalities supply_points --bbox 8.70 50.76 8.85 50.86
Prints one JSON object: per collection validity, CRS, featureCount, the number of features
iterated, the number inside the bbox (a QgsFeatureRequest filter rect in the layer's CRS)
and a few attribute values, for tests/test_clients.py to compare with the API.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator

from qgis.core import Qgis, QgsApplication, QgsFeatureRequest, QgsRectangle, QgsVectorLayer


@contextlib.contextmanager
def qgis_session(key: str) -> Iterator[dict]:
    """A running QGIS application and the JSON object to fill (under key), printed at the end.
    Delete every layer before leaving: a layer outliving the providers crashes at exit."""
    app = QgsApplication([], False)
    app.initQgis()
    out: dict = {"qgis": Qgis.version(), key: {}}
    try:
        yield out[key]
        print(json.dumps(out, ensure_ascii=False), flush=True)
    finally:
        app.exitQgis()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("collections", nargs="+")
    ap.add_argument("--bbox", nargs=4, type=float, required=True, help="minx miny maxx maxy in the layer CRS")
    ap.add_argument("--page-size", type=int, default=100)
    args = ap.parse_args()

    with qgis_session("layers") as layers:
        for cid in args.collections:
            uri = f"url='{args.url}' typename='{cid}' pageSize='{args.page_size}'"
            layer = QgsVectorLayer(uri, cid, "OAPIF")
            info: dict = {"uri": uri, "valid": layer.isValid()}
            layers[cid] = info
            if not layer.isValid():
                info["error"] = layer.error().summary()
                continue
            info["crs"] = layer.crs().authid()
            info["featureCount"] = layer.featureCount()
            info["fields"] = [f.name() for f in layer.fields()]
            names = []
            n = 0
            for feature in layer.getFeatures():
                n += 1
                if "name" in info["fields"] and feature["name"] not in (None, ""):
                    names.append(str(feature["name"]))
            info["iterated"] = n
            info["names"] = names
            rect = QgsRectangle(*args.bbox)
            in_bbox = sorted(str(f["name"]) if f["name"] else "" for f in layer.getFeatures(
                QgsFeatureRequest().setFilterRect(rect)))
            info["bbox_count"] = len(in_bbox)
            del layer
    return 0


if __name__ == "__main__":
    sys.exit(main())
