"""The public URL of every answer when gdi runs behind a reverse proxy (nginx: deploy/nginx/gdi.conf).

pygeoapi writes every link from one configured base URL (``server.url``, ``GDI_URL``) and has no
per-request base; our own pages and upload links are root-relative (``/uploads/…``, ``/vendor/…``).
Behind a proxy that publishes gdi as ``https://geo.example.de/gdi/`` all of them must point there,
and a client that reaches a server directly must keep getting the configured URL. Two WSGI layers:

* ``TrustedProxy``, the outermost layer: a request from an address in ``server.trusted_proxies`` that
  carries ``X-Forwarded-Proto``, ``-Host`` (with the port), ``-Port`` or ``-Prefix`` is read through
  werkzeug's ProxyFix (scheme, host, ``SCRIPT_NAME`` = the prefix, ``REMOTE_ADDR`` from
  ``X-Forwarded-For``), and its public base ``scheme://host[:port]/prefix`` goes into the environ
  (``PUBLIC_URL``). From any other client the ``X-Forwarded-*`` headers are removed before anything
  reads them, and the public base is the configured one. A trusted proxy's value that is no http(s)
  scheme, host or plain path is answered 400: it would be written into every page.
* ``LinkRewriter``, inside the response cache, around pygeoapi and our routes: for a proxied request
  the configured base is replaced by the public one in JSON, HTML and XML bodies and in the
  ``Location``, ``Content-Location`` and ``Link`` headers, and root-relative references get the
  prefix — in those headers, in JSON link objects (``"href": "/…"``) and in HTML attributes
  (``src="/vendor/…"``, ``href="/viewer"``). Scripts are left alone: the map and the upload page
  address the API relative to where they were served (gdi/viewer/map.js, upload_page.html). Files —
  attachments (downloads), tiles, images, scripts — pass through untouched and unbuffered. The ETag
  of a rewritten answer (the map page, the upload page: files with one tag of their own) is marked as
  its base's, and only that base's mark is taken off an ``If-None-Match`` again, so a revalidation
  gets its 304 and never another base's page.

The response cache (gdi/server/caching.py) keys on ``PUBLIC_URL``, so one client's forwarded host
never shows in another's answer, and the ETags of different public bases differ.
"""
from __future__ import annotations

import functools
import hashlib
import ipaddress
import json
import re
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from werkzeug.middleware.proxy_fix import ProxyFix

from gdi.messages import t

PUBLIC_URL = "gdi.public_url"           # environ key: the request's public base URL, no trailing slash
# the headers that move the public URL (any of them from a trusted proxy turns ProxyFix on)
URL_HEADERS = ("HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST", "HTTP_X_FORWARDED_PORT", "HTTP_X_FORWARDED_PREFIX")
FORWARDED = ("HTTP_X_FORWARDED_FOR", *URL_HEADERS)
HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")
PREFIX = re.compile(r"(?:/[A-Za-z0-9._~-]+)*")
SCHEMES = {"http", "https"}
LINK_HEADERS = {"location", "content-location", "link"}
# bodies that carry links: JSON (also GeoJSON, JSON Schema, problem documents), HTML, XML, OpenAPI
TEXTUAL = re.compile(r"^(?:text/html|application/(?:[\w.+-]+\+)?(?:json|xml)|text/xml|application/vnd\.oai\.openapi)")
BAD_FORWARDED = t("der vorgeschaltete Proxy hat keine gültige öffentliche Adresse übermittelt "
                  "(X-Forwarded-Proto: http oder https, X-Forwarded-Host: Name[:Port], X-Forwarded-Prefix: /Pfad)",
                  "the reverse proxy sent no valid public address "
                  "(X-Forwarded-Proto: http or https, X-Forwarded-Host: name[:port], X-Forwarded-Prefix: /path)")


@functools.lru_cache(maxsize=16)
def networks(entries: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """``server.trusted_proxies`` as networks (an address is a network of one; validated in settings)."""
    return tuple(ipaddress.ip_network(e) for e in entries)


def is_trusted(address: str, trusted: tuple[str, ...]) -> bool:
    """Whether a peer address (as the WSGI server gives it in ``REMOTE_ADDR``) is a trusted proxy."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in net for net in networks(trusted))


def _bad_forwarded(start_response) -> list[bytes]:
    body = json.dumps({"type": "about:blank", "title": "Bad Request", "status": 400,
                       "detail": BAD_FORWARDED.render("en", "web"), "detail_de": BAD_FORWARDED.render("de", "web"),
                       "detail_en": BAD_FORWARDED.render("en", "web"), "code": 400,
                       "description": BAD_FORWARDED.render("en", "web")}, ensure_ascii=False).encode()
    start_response("400 Bad Request", [("Content-Type", "application/problem+json"),
                                       ("Content-Length", str(len(body))), ("Cache-Control", "no-store")])
    return [body]


class TrustedProxy:
    """WSGI middleware: the public base URL of each request, from a trusted proxy's X-Forwarded-* only."""

    def __init__(self, app: Callable, configured: Callable[[], str], trusted: Callable[[], list[str]]):
        self.app = app
        self.configured = configured        # pygeoapi's server.url, read per request
        self.trusted = trusted              # server.trusted_proxies, read per request (config changes apply)
        self.proxied = ProxyFix(self._forwarded, x_for=1, x_proto=1, x_host=1, x_port=1, x_prefix=1)

    def __call__(self, environ, start_response):
        if any(environ.get(k) for k in FORWARDED):
            if is_trusted(environ.get("REMOTE_ADDR", ""), tuple(self.trusted())):
                if any(environ.get(k) for k in URL_HEADERS):
                    return self.proxied(environ, start_response)
            else:
                for key in FORWARDED:
                    environ.pop(key, None)
        environ[PUBLIC_URL] = self.configured().rstrip("/")
        return self.app(environ, start_response)

    def _forwarded(self, environ, start_response):
        """After ProxyFix: the scheme, host and SCRIPT_NAME are the proxy's; checked before they are used."""
        scheme, host = environ.get("wsgi.url_scheme", ""), environ.get("HTTP_HOST", "")
        prefix = environ.get("SCRIPT_NAME", "").rstrip("/")
        if scheme not in SCHEMES or not HOST.fullmatch(host) or not PREFIX.fullmatch(prefix):
            return _bad_forwarded(start_response)
        environ["SCRIPT_NAME"] = prefix
        environ[PUBLIC_URL] = f"{scheme}://{host}{prefix}"
        return self.app(environ, start_response)


class Links:
    """How the links of an answer move from the configured base to one public base (compiled once per pair).

    Root-relative references are the app's paths below its own root: they get the public prefix. Those
    that already start with the configured URL's path (the map's tile and API paths when ``server.url``
    is itself ``https://…/gdi``) have that path replaced by the prefix instead of getting it twice.
    """

    def __init__(self, configured: str, public: str, prefix: str):
        self.configured, self.public, self.prefix = configured, public, prefix
        # marks the ETags of answers rewritten for this base (tagged)
        self.tag = hashlib.blake2b(f"{public}\n{prefix}".encode(), digest_size=4).hexdigest()
        self.path = urlsplit(configured).path.rstrip("/")        # the configured URL's own path ("" or "/gdi")
        # the configured base, not when it is only the start of a longer host or port (…:50001, ….de.evil)
        self.absolute = re.compile(re.escape(configured).encode() + rb"(?![\w.:-])")
        self.longer = re.compile(re.escape(configured).encode() + rb"[\w.:-]")     # where a plain replace is wrong
        own = re.escape(self.path.encode()) + rb"(?=[/?#\"'])|" if self.path else b""
        self.href = re.compile(rb'("href": ?")(?:' + own + rb"(?=/(?!/)))")
        self.attribute = re.compile(rb"""(\s(?:href|src|action)=["'])(?:""" + own + rb"(?=/(?!/)))")

    def url(self, value: str) -> str:
        """A URL of a header: the configured base → the public one; a root-relative path gets the prefix."""
        if value.startswith("/") and not value.startswith("//"):
            if self.path and (value == self.path or value.startswith((self.path + "/", self.path + "?"))):
                value = value[len(self.path):]
            return self.prefix + value
        if value == self.configured or value.startswith((self.configured + "/", self.configured + "?")):
            return self.public + value[len(self.configured):]
        return value

    def header(self, name: str, value: str) -> str:
        if name.lower() == "link":           # <url>; rel=…, <url>; rel=…
            return re.sub(r"<([^>]*)>", lambda m: f"<{self.url(m.group(1))}>", value)
        return self.url(value)

    def headers(self, headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        return [(k, self.header(k, v) if k.lower() in LINK_HEADERS else v) for k, v in headers]

    def body(self, data: bytes, content_type: str) -> bytes:
        public, prefix = self.public.encode(), self.prefix.encode()
        if self.public != self.configured:
            configured = self.configured.encode()
            data = data.replace(configured, public) if not self.longer.search(data) else \
                self.absolute.sub(lambda _m: public, data)
        if content_type.startswith("text/html"):
            return self.attribute.sub(lambda m: m.group(1) + prefix, data)
        if "json" in content_type:
            return self.href.sub(lambda m: m.group(1) + prefix, data)
        return data


@functools.lru_cache(maxsize=64)
def links(configured: str, public: str, prefix: str) -> Links:
    return Links(configured, public, prefix)


def _rewritable(headers: list[tuple[str, str]]) -> str | None:
    """The content type of an answer whose body carries links and may be rewritten, else None."""
    ctype = ""
    for k, v in headers:
        key = k.lower()
        if key == "content-encoding" and v.strip().lower() not in {"", "identity"}:
            return None
        if key == "content-disposition" and v.strip().lower().startswith("attachment"):
            return None                    # a file to save (a download): sent as it is, streamed
        if key == "content-type":
            ctype = v.strip().lower()
    return ctype if TEXTUAL.match(ctype) else None


def tagged(headers: list[tuple[str, str]], suffix: str) -> list[tuple[str, str]]:
    """headers with the ETag of a rewritten answer marked as this public base's (``"abc"`` → ``"abc-<suffix>"``):
    the same file (the map page, the upload page) rewritten for two bases must not share a tag."""
    return [(k, v[:-1] + f'-{suffix}"' if k.lower() == "etag" and v.endswith('"') else v) for k, v in headers]


def own_tags(if_none_match: str, suffix: str) -> str:
    """An If-None-Match as the app must see it: this base's tags without their mark (so a current one still
    gets its 304); a tag another base gave out never matches."""
    mark = f'-{suffix}"'
    return ", ".join(tag[:-len(mark)] + '"' if tag.endswith(mark) else tag
                     for tag in (t.strip() for t in if_none_match.split(",")) if tag)


class LinkRewriter:
    """WSGI middleware: the links of an answer to a proxied request, moved to its public base URL."""

    def __init__(self, app: Callable, configured: Callable[[], str]):
        self.app = app
        self.configured = configured

    def __call__(self, environ, start_response):
        public = environ.get(PUBLIC_URL)
        configured = self.configured().rstrip("/")
        prefix = environ.get("SCRIPT_NAME", "")
        if not public or (public == configured and not prefix):      # a client that reached us directly
            return self.app(environ, start_response)
        moved = links(configured, public, prefix)
        state: dict = {}
        ours = environ.get("HTTP_IF_NONE_MATCH")
        if ours:
            environ["HTTP_IF_NONE_MATCH"] = own_tags(ours, moved.tag)
            ours = environ["HTTP_IF_NONE_MATCH"] != ours      # the client sent a tag this base gave out

        def capture(status, headers, exc_info=None):
            headers = moved.headers(headers)
            ctype = _rewritable(headers)
            if ctype is None:              # passed on at once: the body is streamed as it comes
                state["passed"] = True
                if ours and status.startswith("304"):
                    headers = tagged(headers, moved.tag)
                return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)
            state["held"] = (status, tagged(headers, moved.tag), ctype)
            return state.setdefault("written", []).append

        result = self.app(environ, capture)
        if state.get("passed"):
            return result
        try:
            body = b"".join([*state.get("written", []), *result])
        finally:
            if hasattr(result, "close"):
                result.close()
        if state.get("passed"):            # an app that started its answer only while iterated
            return [body]
        status, headers, ctype = state["held"]
        body = moved.body(body, ctype)
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        if environ.get("REQUEST_METHOD") != "HEAD":
            headers.append(("Content-Length", str(len(body))))
        start_response(status, headers)
        return [body]


def _configured() -> str:
    from pygeoapi import flask_app

    return str(flask_app.CONFIG["server"]["url"])


def install_rewriter(flask_app) -> None:
    """Around pygeoapi and our routes, inside the response cache (which keeps the rewritten answers)."""
    if isinstance(flask_app.wsgi_app, LinkRewriter):
        return
    flask_app.wsgi_app = LinkRewriter(flask_app.wsgi_app, _configured)


def install_proxy(flask_app) -> None:
    """Outermost, so every layer below (CORS, the response cache, the rewriter) sees the public base."""
    if isinstance(flask_app.wsgi_app, TrustedProxy):
        return
    from gdi import settings

    flask_app.wsgi_app = TrustedProxy(flask_app.wsgi_app, _configured, lambda: settings.get().server.trusted_proxies)
