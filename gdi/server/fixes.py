"""Small corrections to stock pygeoapi 0.24, applied from our side.

* ``/conformance`` lists exactly what this server does: pygeoapi claims
  Part 4 (create-replace-delete) for every feature collection although ours
  are read-only, and it does not list Part 3 ``filter``/``features-filter``,
  ``cql2-json``, the spatial and comparison CQL2 classes and sorting, which
  our provider implements (tests/test_conformance_*.py prove every claim).
* CQL2 JSON in the ``filter`` query parameter (``filter-lang=cql2-json``):
  pygeoapi parses every ``filter`` parameter as CQL2 text; CQL2 text never
  starts with ``{``, so such a value is parsed as CQL2 JSON instead.
* Features and feature collections are sent as ``application/geo+json``
  (their self links say so, and /req/geojson/content requires it); pygeoapi
  sends ``application/json``.
* ``POST /collections/{id}/items`` without a Content-Type made the Flask view
  return nothing (500); it is answered with 400 like any other bad request.
"""
from __future__ import annotations

import json
import re

FEATURES3 = "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/"
CQL2 = "http://www.opengis.net/spec/cql2/1.0/conf/"
NOT_IMPLEMENTED = {"http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/create-replace-delete"}
IMPLEMENTED = [
    FEATURES3 + "filter",
    FEATURES3 + "features-filter",
    CQL2 + "cql2-json",
    CQL2 + "advanced-comparison-operators",
    CQL2 + "case-insensitive-comparison",
    CQL2 + "basic-spatial-functions",
    CQL2 + "basic-spatial-functions-plus",
    CQL2 + "spatial-functions",
    "http://www.opengis.net/spec/ogcapi-records-1/1.0/conf/sorting",   # sortby as in Records (Features sorting is a draft)
]
ITEMS = re.compile(r"^/collections/[^/]+/items/?$")
FEATURES = re.compile(r"^/collections/[^/]+/items(/[^/]+)?/?$")


def fix_conformance() -> None:
    from pygeoapi.api import itemtypes

    classes = itemtypes.CONFORMANCE_CLASSES_FEATURES
    classes[:] = [c for c in classes if c not in NOT_IMPLEMENTED]
    classes.extend(c for c in IMPLEMENTED if c not in classes)


def fix_cql2_json_in_query() -> None:
    from pygeoapi.api import itemtypes

    parse_text = itemtypes.parse_cql2_text
    if getattr(parse_text, "_gdi", False):
        return
    parse_json = itemtypes.parse_cql2_json

    def parse(text: str):
        if isinstance(text, str) and text.lstrip().startswith("{"):
            return parse_json(text)
        return parse_text(text)

    parse._gdi = True
    itemtypes.parse_cql2_text = parse


class Middleware:
    """WSGI middleware: 400 instead of 500 for POST …/items without a Content-Type;
    GeoJSON responses labelled application/geo+json."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        if (environ.get("REQUEST_METHOD") == "POST" and not environ.get("CONTENT_TYPE")
                and ITEMS.match(environ.get("PATH_INFO", ""))):
            body = json.dumps({
                "code": "InvalidParameterValue", "type": "InvalidParameterValue",
                "description": "POST to items needs a body with Content-Type application/query-cql-json "
                               "(a CQL2 JSON filter) or application/geo+json (not editable here)",
            }).encode()
            start_response("400 Bad Request", [("Content-Type", "application/json"),
                                               ("Content-Length", str(len(body)))])
            return [body]
        if not FEATURES.match(environ.get("PATH_INFO", "")) or environ.get("REQUEST_METHOD") not in {"GET", "POST", "HEAD"}:
            return self.app(environ, start_response)

        def geojson_start_response(status, headers, exc_info=None):
            if status.startswith("200"):
                headers = [(k, "application/geo+json" if k.lower() == "content-type"
                            and v.split(";")[0].strip() == "application/json" else v) for k, v in headers]
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        return self.app(environ, geojson_start_response)


def install(flask_app) -> None:
    fix_conformance()
    fix_cql2_json_in_query()
    if not isinstance(flask_app.wsgi_app, Middleware):
        flask_app.wsgi_app = Middleware(flask_app.wsgi_app)
