"""The WSGI application `gdi serve` runs under gunicorn.

pygeoapi reads its configuration at import time, so the environment is set
from ``GDI_HOME`` before importing it; our own routes (viewer, vendored
assets) are added to pygeoapi's Flask app.
"""
from __future__ import annotations

import faulthandler
import os

from gdi import settings


def create_app():
    # a worker that dies of a native fault prints every thread's Python stack into the server log
    faulthandler.enable()
    paths = settings.paths()
    if not paths.pygeoapi_config.exists():
        from gdi.publish import publish

        publish()
    os.environ["PYGEOAPI_CONFIG"] = str(paths.pygeoapi_config)
    os.environ["PYGEOAPI_OPENAPI"] = str(paths.openapi)
    from flask import abort, redirect, request, send_from_directory

    from pygeoapi.flask_app import APP

    from gdi.assets import vendor_dir
    from gdi.server import fixes

    fixes.install(APP)
    from gdi.server import public_url

    public_url.install_rewriter(APP)     # inside the cache: it keeps answers with the public links
    __import__("gdi.server.caching", fromlist=["install"]).install(APP)   # ETag/304/gzip/response cache
    from gdi.server import cors, uploads

    uploads.install(APP)
    # Masterportal (and other OGC API clients) read the API definition at {landing page}/api;
    # pygeoapi serves it at /openapi: the same view, with the same content negotiation, at both
    APP.add_url_rule("/api", "gdi_api", APP.view_functions["pygeoapi.openapi"])
    from gdi.server import downloads

    downloads.install(APP)       # /collections/{id}/download: whole collections as files
    from gdi.server import catalogue

    catalogue.install(APP)     # /csw (pycsw, proxied) and /collections/{id}/metadata (ISO 19139)

    vendor = vendor_dir()
    viewer_dir = paths.viewer

    @APP.route("/vendor/<path:asset>")
    def vendor_asset(asset: str):
        response = send_from_directory(vendor, asset, max_age=86400)
        return response

    @APP.route("/viewer")
    @APP.route("/viewer/")
    def viewer():
        lang = request.args.get("lang", "de")
        name = "index.en.html" if lang == "en" and (viewer_dir / "index.en.html").exists() else "index.html"
        if not (viewer_dir / name).exists():
            abort(404)
        response = send_from_directory(viewer_dir, name, max_age=0)
        response.headers["Cache-Control"] = "no-cache"
        return response

    @APP.route("/viewer/<path:asset>")
    def viewer_asset(asset: str):
        return send_from_directory(viewer_dir, asset, max_age=0)

    @APP.route("/favicon.ico")
    def favicon():
        return redirect("/static/img/favicon.ico")

    cors.install(APP, uploads.OURS)      # cached and 304 answers get their CORS headers too
    public_url.install_proxy(APP)        # outermost: every layer sees the request's public base URL
    return APP


app = create_app() if os.environ.get("GDI_WSGI") == "1" else None
