"""Every patch of gdi/server/fixes.py takes, on the pinned pygeoapi, or start-up stops loudly.

The patches replace names inside pygeoapi; a pygeoapi release that renames one
would otherwise leave the patch applied to nothing (it used to be skipped when
a name was missing). Each test checks both that the replacement is in place
where pygeoapi looks it up and that it answers as the original would.
"""
from __future__ import annotations

import json
import subprocess
import sys
import types

import pygeoapi
import pytest
from pygeoapi import crs as pcrs
from pygeoapi.api import itemtypes
from pygeofilter.parsers.cql2_json import parse as parse_json
from pygeofilter.parsers.cql2_text import parse as parse_text

from conftest import REPO
from gdi.server import fixes


@pytest.fixture(scope="module", autouse=True)
def patched():
    originals = {"transform_bbox": pcrs.transform_bbox, "to_json": itemtypes.to_json}
    fixes.check_version()
    fixes.fix_conformance()
    fixes.fix_cql2_parsing()
    fixes.fix_crs_caching()
    fixes.fix_json_speed()
    fixes.fix_csv_formulas()
    fixes.fix_tile_matrix_sets()
    return originals


def test_the_pinned_pygeoapi_is_installed():
    assert pygeoapi.__version__.startswith(fixes.PYGEOAPI_SERIES)
    lock = (REPO / "requirements.lock").read_text()
    assert f"pygeoapi=={pygeoapi.__version__}\n" in lock


def test_conformance_lists_what_is_implemented_and_nothing_else():
    classes = itemtypes.CONFORMANCE_CLASSES_FEATURES
    assert all(c in classes for c in fixes.IMPLEMENTED)
    assert not set(classes) & fixes.NOT_IMPLEMENTED


def test_cql2_json_in_the_filter_parameter_is_parsed_as_json():
    assert itemtypes.parse_cql2_text._gdi
    doc = '{"op": "=", "args": [{"property": "category"}, "farm_shop"]}'
    assert itemtypes.parse_cql2_text(doc) == parse_json(doc)
    assert itemtypes.parse_cql2_text("category = 'farm_shop'") == parse_text("category = 'farm_shop'")
    # pygeoapi looks the parser up by this module-level name when it reads ?filter=
    source = open(itemtypes.__file__, encoding="utf-8").read()
    assert "filter_ = parse_cql2_text(cql_text)" in source


def test_cql2_temporal_predicates_are_read_as_the_standard_writes_them():
    """pygeofilter 0.4.0 refuses CQL2's function form and maps JSON t_intersects to t_overlaps; both
    parsers pygeoapi calls (?filter= and a POSTed body) are gdi/publish/cql2_parse.py's."""
    from pygeofilter import ast, values

    assert itemtypes.parse_cql2_json._gdi
    with pytest.raises(Exception):
        parse_text("T_INTERSECTS(updated, INTERVAL('2020-01-01','..'))")     # the reason for the patch
    text = itemtypes.parse_cql2_text("T_INTERSECTS(updated, INTERVAL('2020-01-01','..'))")
    assert isinstance(text, ast.Not) and isinstance(text.sub_node, ast.TimeDisjoint)
    assert text.sub_node.rhs == values.Interval(parse_text("updated = DATE('2020-01-01')").rhs, None)
    doc = '{"op": "t_intersects", "args": [{"property": "updated"}, {"interval": ["2020-01-01", ".."]}]}'
    assert isinstance(parse_json(doc), ast.TimeOverlaps)                      # pygeofilter's reading
    read = itemtypes.parse_cql2_json(doc)
    assert isinstance(read, ast.Not) and isinstance(read.sub_node, ast.Or)
    assert [type(n) for n in (read.sub_node.lhs, read.sub_node.rhs)] == [ast.TimeBefore, ast.TimeAfter]
    # pygeoapi looks the JSON parser up by this module-level name when it reads a POSTed filter
    assert "filter_ = parse_cql2_json(request_data)" in open(itemtypes.__file__, encoding="utf-8").read()


def test_crs_work_is_cached_where_pygeoapi_calls_it(patched):
    for module in (pcrs, itemtypes):
        assert module.transform_bbox._gdi and module.create_crs_transform_spec._gdi
    assert pcrs.get_crs._gdi
    bbox = [8.7, 50.8, 8.8, 50.9]
    args = (bbox, "http://www.opengis.net/def/crs/OGC/1.3/CRS84", "http://www.opengis.net/def/crs/EPSG/0/25832")
    ours = itemtypes.transform_bbox(*args)
    assert ours == patched["transform_bbox"](*args)           # pygeoapi's own answer, to the bit
    assert [round(v, 3) for v in ours] == [478858.769, 5627627.407, 485935.941, 5638723.655]   # pyproj, corner by corner
    provider = {"storage_crs": "http://www.opengis.net/def/crs/EPSG/0/25832",
                "crs": ["http://www.opengis.net/def/crs/OGC/1.3/CRS84", "http://www.opengis.net/def/crs/EPSG/0/4326"]}
    spec = itemtypes.create_crs_transform_spec(provider, "http://www.opengis.net/def/crs/EPSG/0/4326")
    assert spec is itemtypes.create_crs_transform_spec(dict(provider), "http://www.opengis.net/def/crs/EPSG/0/4326")
    assert "ETRS89 / UTM zone 32N" in spec.source_crs_wkt and "WGS 84" in spec.target_crs_wkt


def test_items_are_serialised_with_orjson_and_escaped_like_pygeoapi(patched):
    assert itemtypes.to_json._gdi
    doc = {"name": "<b>Hofladen</b>", "n": 3}
    assert itemtypes.to_json(doc) == '{"name":"&lt;b&gt;Hofladen&lt;/b&gt;","n":3}'
    assert json.loads(itemtypes.to_json(doc).replace("&lt;", "<").replace("&gt;", ">")) == doc
    assert itemtypes.to_json({"big": 2**70}) == patched["to_json"]({"big": 2**70})


def test_csv_goes_through_the_formula_safe_formatter():
    from pygeoapi.plugin import PLUGINS, load_plugin

    from gdi.publish.csv_formatter import FormulaSafeCSVFormatter

    assert PLUGINS["formatter"]["CSV"] == fixes.CSV_FORMATTER
    formatter = load_plugin("formatter", {"name": "CSV", "geom": True})     # as pygeoapi loads it per collection
    assert isinstance(formatter, FormulaSafeCSVFormatter) and formatter.f == "csv" and formatter.name == "csv"


def test_tile_matrix_sets_are_pygeoapis_and_ours_where_pygeoapi_reads_them():
    """/TileMatrixSets and /TileMatrixSets/{id} (pygeoapi.api.tiles) read the enum by module global."""
    import importlib

    from gdi.publish.tile_matrix import ADV_ID, ADV_ORIGIN

    enums = {importlib.import_module(name).TileMatrixSetEnum for name in fixes.TMS_MODULES}
    assert len(enums) == 1
    (enum,) = enums
    by_id = {e.value.tileMatrixSet: e.value for e in enum}
    assert set(by_id) == {"WebMercatorQuad", "WorldCRS84Quad", ADV_ID}
    adv = by_id[ADV_ID]
    assert adv.crs == "http://www.opengis.net/def/crs/EPSG/0/25832" and len(adv.tileMatrices) == 15
    assert adv.tileMatrices[0]["pointOfOrigin"] == list(ADV_ORIGIN)
    assert adv.tileMatrices[0]["cellSize"] == pytest.approx(4891.96981025128)       # basemap.de's level 0
    assert adv.tileMatrices[14]["cellSize"] == pytest.approx(0.298582141738970)
    fixes.fix_tile_matrix_sets()                       # twice is once
    assert importlib.import_module("pygeoapi.api.tiles").TileMatrixSetEnum is enum


def test_tile_errors_are_labelled_json():
    """pygeoapi labels the JSON exception of a failed tile request as an MVT; the middleware relabels it."""
    def app(environ, start_response):
        ok = environ["PATH_INFO"].endswith("/1")
        start_response("200 OK" if ok else "404 NOT FOUND", [("Content-Type", fixes.MVT)])
        return [b"" if ok else b'{"code":"NotFound"}']

    seen = []
    middleware = fixes.Middleware(app)
    for path in ("/collections/c/tiles/WebMercatorQuad/14/2/1", "/collections/c/tiles/WebMercatorQuad/14/2/0"):
        middleware({"REQUEST_METHOD": "GET", "PATH_INFO": path}, lambda status, headers: seen.append(headers))
    assert seen == [[("Content-Type", fixes.MVT)], [("Content-Type", "application/json")]]


def test_a_missing_patch_target_stops_start_up():
    gone = types.ModuleType("pygeoapi.api.itemtypes")
    with pytest.raises(RuntimeError, match="has no to_json, which gdi/server/fixes.py patches"):
        fixes.require(gone, "to_json")


def test_the_served_app_has_every_patch_and_reads_the_config_it_follows(demo_home):
    """In the WSGI app as gunicorn loads it (a process of its own: pygeoapi reads its config at import)."""
    code = """
import json
from gdi.server.app import app
from pygeoapi import flask_app
from pygeoapi.api import itemtypes
from gdi.server import caching, fixes
print(json.dumps({
    "live_config": flask_app.api_.config is flask_app.CONFIG,
    "patched": [bool(getattr(f, "_gdi", False)) for f in (itemtypes.parse_cql2_text, itemtypes.parse_cql2_json,
                itemtypes.transform_bbox, itemtypes.create_crs_transform_spec, itemtypes.to_json)],
    "layers": [type(app.wsgi_app).__name__, type(app.wsgi_app.app).__name__, type(app.wsgi_app.app.app).__name__,
               type(app.wsgi_app.app.app.app).__name__, type(app.wsgi_app.app.app.app.app).__name__],
    "api": app.view_functions["gdi_api"] is app.view_functions["pygeoapi.openapi"],
}))
"""
    import os

    env = dict(os.environ, GDI_HOME=str(demo_home), GDI_WSGI="1")
    env.pop("GDI_STORE", None)
    store = (demo_home / "store-url").read_text()
    if store:
        env["GDI_STORE"] = store
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(out.stdout.splitlines()[-1]) == {
        "live_config": True, "patched": [True, True, True, True, True],
        # the proxy's public URL outermost, CORS (cached and 304 answers get it too), the cache, the public
        # links (cached as rewritten), then the fixes
        "layers": ["TrustedProxy", "CorsMiddleware", "CachingMiddleware", "LinkRewriter", "Middleware"],
        "api": True}
