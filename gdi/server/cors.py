"""CORS for the public API: browser pages on other hosts (a Masterportal, a town's website) may read it.

GDI-DE recommends CORS headers over proxies. One WSGI middleware, the outermost layer, answers for
every response the server gives — pygeoapi's pages, items, the OpenAPI document, the viewer and
whatever is added later (tiles) — except the upload routes (uploads.OURS: tokens, uploads,
versions, rollback), which never answer another origin.

Why not flask-cors, which pygeoapi enables with ``cors: True``: it adds its headers in a Flask
``after_request`` hook, so they end up inside the response cache (gdi/server/caching.py), whose key
has no ``Origin``: a cached page would repeat the first reader's origin to the next, and the cache's
own ``304`` answers never pass Flask at all. Outside the cache every answer — rendered, cached or
304 — gets the headers for its own request.

* ``server.cors_origins`` ``["*"]`` (the default; reads are public): ``Access-Control-Allow-Origin: *``
  on every answer, no ``Vary`` needed. A list: the request's ``Origin`` is echoed when listed (compared
  case-insensitively), and every answer carries ``Vary: Origin`` so no shared cache hands one origin's
  answer to another. ``[]``: no CORS headers at all.
* No credentials are ever allowed (the API has none; upload tokens stay same-origin).
* A preflight (``OPTIONS`` with ``Access-Control-Request-Method``) from an allowed origin is answered
  here, 204, with the methods and request headers the API reads; any other ``OPTIONS`` goes on to the app.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable

METHODS = "GET, HEAD, POST, OPTIONS"         # POST: …/items with a CQL2 JSON body
# what a reader's script may send beyond the safelisted headers: content negotiation, revalidation,
# the CQL2 JSON body's type; never Authorization (upload tokens are not for other origins)
ALLOWED_HEADERS = "Accept, Accept-Language, Content-Language, Content-Type, If-Modified-Since, If-None-Match"
# response headers a script needs that are not safelisted (Cache-Control, Content-Type, Last-Modified, …)
EXPOSED_HEADERS = "Content-Crs, ETag, Link"
MAX_AGE = "7200"                             # seconds a browser keeps a preflight (Chromium's upper bound)


def allowed_origin(origins: list[str], origin: str | None) -> str | None:
    """The ``Access-Control-Allow-Origin`` value for a request from ``origin``, or None."""
    if origins == ["*"]:
        return "*"
    if origin and origin.lower() in {o.lower() for o in origins}:
        return origin
    return None


def cors_headers(origins: list[str], origin: str | None, preflight: bool) -> list[tuple[str, str]]:
    """The CORS headers of an answer to a request from ``origin`` (a preflight gets the permissions too)."""
    value = allowed_origin(origins, origin)
    if value is None:
        return []
    headers = [("Access-Control-Allow-Origin", value)]
    if preflight:
        headers += [("Access-Control-Allow-Methods", METHODS), ("Access-Control-Allow-Headers", ALLOWED_HEADERS),
                    ("Access-Control-Max-Age", MAX_AGE)]
    else:
        headers.append(("Access-Control-Expose-Headers", EXPOSED_HEADERS))
    return headers


def with_vary_origin(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """headers with ``Origin`` added to their ``Vary`` (one header, merged with what is there)."""
    out, merged = [], False
    for name, value in headers:
        if name.lower() == "vary" and not merged:
            parts = [p.strip() for p in value.split(",") if p.strip()]
            if "*" not in parts and "origin" not in {p.lower() for p in parts}:
                value = ", ".join([*parts, "Origin"])
            merged = True
        out.append((name, value))
    return out if merged else [*out, ("Vary", "Origin")]


class CorsMiddleware:
    """WSGI middleware adding CORS headers to every answer outside the ``excluded`` paths."""

    def __init__(self, app: Callable, origins: Callable[[], list[str]], excluded: re.Pattern):
        self.app = app
        self.origins = origins          # read per request: a changed config/gdi.yml applies at once
        self.excluded = excluded

    def __call__(self, environ, start_response):
        if self.excluded.match(environ.get("PATH_INFO", "")):
            return self.app(environ, start_response)
        origins = self.origins()
        if not origins:
            return self.app(environ, start_response)
        origin = environ.get("HTTP_ORIGIN")
        vary = origins != ["*"]
        if environ.get("REQUEST_METHOD") == "OPTIONS" and environ.get("HTTP_ACCESS_CONTROL_REQUEST_METHOD"):
            headers = cors_headers(origins, origin, preflight=True)
            if headers:
                headers += [("Content-Length", "0")]
                start_response("204 No Content", with_vary_origin(headers) if vary else headers)
                return []

        def cors_start_response(status, headers, exc_info=None):
            headers = [(k, v) for k, v in headers if not k.lower().startswith("access-control-")]
            headers += cors_headers(origins, origin, preflight=False)
            if vary:
                headers = with_vary_origin(headers)
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        return self.app(environ, cors_start_response)


def install(flask_app, excluded: re.Pattern) -> None:
    """Wrap the app outermost (after the response cache), so cached and 304 answers get the headers too."""
    if isinstance(flask_app.wsgi_app, CorsMiddleware):
        return
    from gdi import settings

    flask_app.wsgi_app = CorsMiddleware(flask_app.wsgi_app, lambda: settings.get().server.cors_origins, excluded)
