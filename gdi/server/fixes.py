"""Small corrections to stock pygeoapi 0.24, applied from our side.

* ``/conformance`` lists exactly what this server does: pygeoapi claims
  Part 4 (create-replace-delete) for every feature collection although ours
  are read-only, and it does not list Part 3 ``filter``/``features-filter``,
  ``cql2-json``, the spatial and comparison CQL2 classes and sorting, which
  our provider implements (tests/test_conformance_*.py prove every claim).
* CQL2 JSON in the ``filter`` query parameter (``filter-lang=cql2-json``):
  pygeoapi parses every ``filter`` parameter as CQL2 text; CQL2 text never
  starts with ``{``, so such a value is parsed as CQL2 JSON instead. Both
  languages are read by gdi/publish/cql2_parse.py (pygeofilter's grammar and
  parsers, with CQL2's temporal predicates as the standard writes them).
* Features and feature collections are sent as ``application/geo+json``
  (their self links say so, and /req/geojson/content requires it); pygeoapi
  sends ``application/json``.
* Queryables as OGC API Features Part 3 (/req/queryables/get-queryables-response)
  and JSON Schema 2020-12 say: pygeoapi declares draft 2019-09, puts the query
  string into ``$id`` and leaves ``additionalProperties`` open, while a filter
  naming an unknown queryable is answered 400. The middleware rewrites the JSON
  document (pygeoapi has no configuration or template seam for it): ``$schema``
  2020-12, ``$id`` the queryables URL alone, ``"additionalProperties": false``.
* ``POST /collections/{id}/items`` without a Content-Type made the Flask view
  return nothing (500); it is answered with 400 like any other bad request.
* Per-request CRS work (profiled with pyinstrument: about 7 ms of a bbox
  request): pygeoapi builds ``pyproj.CRS`` objects from URIs, a new
  ``Transformer`` and calls ``to_epsg()`` in ``transform_bbox``, and
  ``create_crs_transform_spec`` serialises both CRSs with ``to_wkt()`` on every
  items request. ``get_crs`` and ``create_crs_transform_spec`` are memoised
  (their inputs are a few configured URIs), ``transform_bbox`` uses a cached
  transformer per thread (pyproj transformers are not thread-safe) and a
  cached EPSG code. Results are unchanged; only the repetition is gone.
* Items responses are serialised with orjson (a sixth of a bbox request's
  Python time was ``json.dumps``), with pygeoapi's own conversions for what
  orjson does not take (its ``json_serial``) and its ``<``/``>`` escaping;
  anything orjson refuses (e.g. integers beyond 64 bits) goes to pygeoapi's
  ``to_json`` unchanged.
* ``f=csv`` neutralises spreadsheet formulas (gdi/publish/csv_formatter.py),
  registered under pygeoapi's own formatter name ``CSV``.
* Collection extents follow the configuration file without a restart: most
  uploads change nothing but the extents, and restarting the workers for that
  (gunicorn HUP) left no worker accepting while the new ones booted — with
  uploads arriving every few seconds, requests hung (tests/test_load.py). Each
  request compares the file's mtime and copies changed extents into pygeoapi's
  live configuration; every other change still reloads the workers.
* A tile request answered with an error (a tile outside the matrix or the collection's zoom levels,
  an unknown tile matrix set, ``f=png``: gdi/publish/tile_provider_base.py) carries pygeoapi's JSON
  exception, but pygeoapi has already labelled the answer as an MVT: it is relabelled
  ``application/json``.
* The tile matrix sets: pygeoapi builds its ``TileMatrixSetEnum`` at import time from the JSON files
  in its own package folder (no configuration names another), so ``/TileMatrixSets`` would not list
  the AdV_25832 set our tiles are also cut in (gdi/publish/tile_matrix.py). The enum is rebuilt with
  pygeoapi's sets and ours and put where pygeoapi's modules read it.
"""
from __future__ import annotations

import json
import re
import threading

from gdi.server.buffered import run_buffered, with_length

# The version these patches were written and tested against (requirements.lock pins it exactly;
# tests/test_pygeoapi_patches.py proves each one took). Another version is refused at start-up.
PYGEOAPI_SERIES = "0.24."

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
QUERYABLES = re.compile(r"^/collections/[^/]+/queryables/?$")
TILE = re.compile(r"^/collections/[^/]+/tiles/[^/]+/[^/]+/[^/]+/[^/]+/?$")
MVT = "application/vnd.mapbox-vector-tile"
JSON_SCHEMA = "https://json-schema.org/draft/2020-12/schema"


def require(module, *names: str) -> None:
    """Stop at start-up, naming the attribute, when pygeoapi no longer has what a patch replaces:
    a patch that silently stops applying would leave wrong answers behind."""
    missing = [n for n in names if not hasattr(module, n)]
    if missing:
        raise RuntimeError(f"pygeoapi changed: {module.__name__} has no {', '.join(missing)}, which "
                           "gdi/server/fixes.py patches; review the patch for this pygeoapi version")


def check_version() -> None:
    import pygeoapi

    if not pygeoapi.__version__.startswith(PYGEOAPI_SERIES):
        raise RuntimeError(f"gdi/server/fixes.py patches pygeoapi {PYGEOAPI_SERIES}x, found {pygeoapi.__version__}: "
                           "install the versions of requirements.lock (make install)")


def fix_conformance() -> None:
    from pygeoapi.api import itemtypes

    require(itemtypes, "CONFORMANCE_CLASSES_FEATURES")

    classes = itemtypes.CONFORMANCE_CLASSES_FEATURES
    classes[:] = [c for c in classes if c not in NOT_IMPLEMENTED]
    classes.extend(c for c in IMPLEMENTED if c not in classes)


def fix_cql2_parsing() -> None:
    """``?filter=`` and POSTed CQL2 JSON read by gdi/publish/cql2_parse.py: CQL2 text as the standard
    writes temporal predicates (pygeofilter's parser refuses them), CQL2 JSON when the parameter
    starts with ``{``, and JSON's temporal operators under the names pygeofilter reads right."""
    from pygeoapi.api import itemtypes

    from gdi.publish import cql2_parse

    require(itemtypes, "parse_cql2_text", "parse_cql2_json")
    if getattr(itemtypes.parse_cql2_text, "_gdi", False):
        return

    def parse_text(text: str):
        return cql2_parse.parse(text)

    def parse_json(text):
        return cql2_parse.parse_json(text)

    parse_text._gdi = parse_json._gdi = True
    itemtypes.parse_cql2_text = parse_text
    itemtypes.parse_cql2_json = parse_json


def fix_crs_caching() -> None:
    import functools
    import threading

    import pyproj

    from pygeoapi import crs as pcrs
    from pygeoapi.api import itemtypes

    require(pcrs, "get_crs", "transform_bbox", "create_crs_transform_spec", "DEFAULT_STORAGE_CRS")
    require(itemtypes, "transform_bbox", "create_crs_transform_spec")    # imported there by name
    if getattr(pcrs.get_crs, "_gdi", False):
        return
    get_crs_orig = pcrs.get_crs
    spec_orig = pcrs.create_crs_transform_spec

    @functools.lru_cache(maxsize=256)
    def _crs_by_uri(uri: str) -> pyproj.CRS:
        return get_crs_orig(uri)

    def get_crs(crs):
        return _crs_by_uri(crs) if isinstance(crs, str) else get_crs_orig(crs)

    def _key(crs):
        # a CRS object hashes by its WKT (~0.2 ms each time); its definition text is as good a key
        return crs if isinstance(crs, str) else ("srs", crs.srs)

    epsg_cache: dict = {}

    def _epsg(crs: pyproj.CRS):
        key = _key(crs)
        if key not in epsg_cache:
            epsg_cache[key] = crs.to_epsg()
        return epsg_cache[key]

    local = threading.local()

    def _transform(from_crs, to_crs, always_xy):
        cache = getattr(local, "transformers", None)
        if cache is None:
            cache = local.transformers = {}
        key = (_key(from_crs), _key(to_crs), bool(always_xy))
        t = cache.get(key)
        if t is None:
            t = cache[key] = pyproj.Transformer.from_crs(from_crs, to_crs, always_xy=bool(always_xy))
        return t.transform

    def transform_bbox(bbox: list, from_crs, to_crs, always_xy=False) -> list:
        from_crs_obj = get_crs(from_crs)
        to_crs_obj = get_crs(to_crs)
        transform_func = _transform(from_crs_obj, to_crs_obj, always_xy)
        if _epsg(to_crs_obj) == 3857:
            bbox = [bbox[0], max(-85.0511, bbox[1]), bbox[2], min(85.0511, bbox[3])]
        n_dims = len(bbox) // 2
        return list(transform_func(*bbox[:n_dims]) + transform_func(*bbox[n_dims:]))

    @functools.lru_cache(maxsize=256)
    def _spec(storage_crs, always_xy, crs_list, query_crs_uri):
        provider_def = {"storage_crs": storage_crs, "always_xy": always_xy}
        if crs_list is not None:
            provider_def["crs"] = list(crs_list)
        return spec_orig(provider_def, query_crs_uri)

    def create_crs_transform_spec(provider_def: dict, query_crs_uri=None):
        crs_list = provider_def.get("crs")
        try:
            key = (provider_def.get("storage_crs", pcrs.DEFAULT_STORAGE_CRS), provider_def.get("always_xy", False),
                   tuple(crs_list) if crs_list is not None else None, query_crs_uri)
            hash(key)
        except TypeError:
            return spec_orig(provider_def, query_crs_uri)
        return _spec(*key)

    for fn in (get_crs, transform_bbox, create_crs_transform_spec):
        fn._gdi = True
    pcrs.get_crs = get_crs
    pcrs.transform_bbox = transform_bbox
    pcrs.create_crs_transform_spec = create_crs_transform_spec
    itemtypes.transform_bbox = transform_bbox
    itemtypes.create_crs_transform_spec = create_crs_transform_spec


_extents_seen: dict = {"mtime": None}
_extents_lock = threading.Lock()


def follow_extents() -> None:
    """Copy the collections' extents from the configuration file into pygeoapi's live config
    when the file changed since this worker last looked (one stat per request)."""
    import os

    path = os.environ.get("PYGEOAPI_CONFIG")
    try:
        mtime = os.stat(path).st_mtime_ns if path else None
    except OSError:
        return
    if mtime is None or mtime == _extents_seen["mtime"]:
        return
    with _extents_lock:
        if mtime == _extents_seen["mtime"]:
            return
        import yaml
        from pygeoapi import flask_app

        with open(path, encoding="utf-8") as fh:
            fresh = yaml.safe_load(fh) or {}
        live = flask_app.CONFIG.get("resources", {})
        for cid, resource in (fresh.get("resources") or {}).items():
            if cid in live and "extents" in resource:
                live[cid]["extents"] = resource["extents"]
        _extents_seen["mtime"] = mtime


class Middleware:
    """WSGI middleware: 400 instead of 500 for POST …/items without a Content-Type;
    GeoJSON responses labelled application/geo+json."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        follow_extents()
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
        if QUERYABLES.match(environ.get("PATH_INFO", "")) and environ.get("REQUEST_METHOD") in {"GET", "HEAD"}:
            return self._queryables(environ, start_response)
        if TILE.match(environ.get("PATH_INFO", "")):
            return self.app(environ, _json_errors(start_response))
        if not FEATURES.match(environ.get("PATH_INFO", "")) or environ.get("REQUEST_METHOD") not in {"GET", "POST", "HEAD"}:
            return self.app(environ, start_response)

        def geojson_start_response(status, headers, exc_info=None):
            if status.startswith("200"):
                headers = [(k, "application/geo+json" if k.lower() == "content-type"
                            and v.split(";")[0].strip() == "application/json" else v) for k, v in headers]
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        return self.app(environ, geojson_start_response)

    def _queryables(self, environ, start_response):
        status, headers, body = run_buffered(self.app, environ)
        ctype = next((v for k, v in headers if k.lower() == "content-type"), "").split(";")[0].strip().lower()
        if status.startswith("200") and body and ctype in {"application/schema+json", "application/json"}:
            try:
                doc = json.loads(body)
            except ValueError:
                doc = None
            if isinstance(doc, dict):
                body = json.dumps(queryables_schema(doc), ensure_ascii=False, separators=(",", ":")).encode()
                headers = with_length(headers, body)
        start_response(status, headers)
        return [b""] if environ.get("REQUEST_METHOD") == "HEAD" else [body]


def _json_errors(start_response):
    """start_response relabelling an error answer of the tiles API (a JSON exception) as JSON."""

    def relabel(status, headers, exc_info=None):
        if not status.startswith("2"):
            headers = [(k, "application/json" if k.lower() == "content-type" and v.startswith(MVT) else v)
                       for k, v in headers]
        return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

    return relabel


def queryables_schema(doc: dict) -> dict:
    """pygeoapi's queryables document as Part 3 requires it: JSON Schema 2020-12, ``$id`` the URL of
    the queryables without a query string, and closed (an unknown queryable in a filter is a 400)."""
    out = {"$schema": JSON_SCHEMA, "$id": str(doc.get("$id", "")).split("?", 1)[0], "type": "object"}
    out.update((k, v) for k, v in doc.items() if k not in out)
    out["additionalProperties"] = False
    return out


def fix_json_speed() -> None:
    import orjson
    from pygeoapi.api import itemtypes
    from pygeoapi import util

    require(itemtypes, "to_json")
    require(util, "json_serial")
    json_serial = util.json_serial
    if getattr(itemtypes.to_json, "_gdi", False):
        return
    original = itemtypes.to_json

    def to_json(dict_: dict, pretty: bool = False) -> str:
        if pretty:
            return original(dict_, pretty)
        try:
            text = orjson.dumps(dict_, default=json_serial).decode("utf-8")
        except (TypeError, orjson.JSONEncodeError):
            return original(dict_, pretty)
        return text.replace("<", "&lt;").replace(">", "&gt;")

    to_json._gdi = True
    itemtypes.to_json = to_json


def check_live_config() -> None:
    """follow_extents edits pygeoapi's configuration in place: the API must read that very dict."""
    from pygeoapi import flask_app

    require(flask_app, "CONFIG", "api_")
    if flask_app.api_.config is not flask_app.CONFIG:
        raise RuntimeError("pygeoapi changed: its API no longer reads flask_app.CONFIG, which "
                           "gdi/server/fixes.py (follow_extents) updates in place")


CSV_FORMATTER = "gdi.publish.csv_formatter.FormulaSafeCSVFormatter"


def fix_csv_formulas() -> None:
    """``f=csv`` through our formula-safe formatter: pygeoapi looks its CSV formatter up by the
    name "CSV" in its plugin registry for every collection."""
    from pygeoapi import plugin

    require(plugin, "PLUGINS")
    if "CSV" not in plugin.PLUGINS.get("formatter", {}):
        raise RuntimeError("pygeoapi changed: its plugin registry has no CSV formatter, which "
                           "gdi/server/fixes.py replaces with a formula-safe one")
    plugin.PLUGINS["formatter"]["CSV"] = CSV_FORMATTER


TMS_MODULES = ("pygeoapi.api.tiles", "pygeoapi.models.provider.base", "pygeoapi.provider.tile",
               "pygeoapi.provider.base_mvt")


def fix_tile_matrix_sets() -> None:
    import importlib
    from enum import Enum

    from gdi.publish.tile_matrix import sets
    from gdi.publish.tile_provider_base import tile_matrix_set_type

    modules = [importlib.import_module(name) for name in TMS_MODULES]
    for module in modules:
        require(module, "TileMatrixSetEnum")
    current = modules[0].TileMatrixSetEnum
    if getattr(current, "_gdi", False):
        return
    members = {e.name: e.value for e in current}
    for tms in sets().values():
        members.setdefault(tms.id.upper().replace("-", "").replace(" ", ""), tile_matrix_set_type(tms))
    extended = Enum("TileMatrixSetEnum", members)
    extended._gdi = True
    for module in modules:
        module.TileMatrixSetEnum = extended


def install(flask_app) -> None:
    check_version()
    check_live_config()
    fix_csv_formulas()
    fix_conformance()
    fix_cql2_parsing()
    fix_crs_caching()
    fix_json_speed()
    fix_tile_matrix_sets()
    if not isinstance(flask_app.wsgi_app, Middleware):
        flask_app.wsgi_app = Middleware(flask_app.wsgi_app)
