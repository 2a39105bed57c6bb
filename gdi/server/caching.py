"""HTTP caching for the OGC API: ETag / Last-Modified per data version, 304, gzip, a response cache.

WSGI middleware around pygeoapi. For every GET/HEAD of the API (landing page,
conformance, OpenAPI, collections, items, single features) it reads the
*data version* first — one indexed single-row read (``gdi_state`` in the
GeoPackage, ``gdi.state`` in PostGIS) plus a ``stat`` of the generated
pygeoapi configuration — so a publish that has landed is seen by the very next
request, in every worker, without any signalling.

* ``ETag`` is derived from (data version, configuration, path, query, Accept,
  Accept-Language, the public base URL of gdi/server/public_url.py) — identical
  in every worker, so it validates across them; the gzip representation has its
  own tag (``…-gz``). It is a *weak* tag (``W/"…"``): it is known before
  pygeoapi runs (that is what lets any worker answer 304 without rendering),
  so it promises semantically equal bodies, not
  equal bytes — an items response differs by its ``timeStamp`` (RFC 9110
  8.8.1; If-None-Match compares weakly, so 304 works as before).
* ``timeStamp`` of an items response is the time it is served, from the cache
  too: the entry remembers where pygeoapi wrote it (its last member) and each
  answer splices the current time in (same length, so no re-serialising). The
  gzip form is kept as a compressed prefix ending before the time (deflate
  sync flush, its CRC-32 remembered), and each answer compresses only the
  few bytes from the time to the end and appends them with the combined CRC.
* ``If-None-Match`` with a current tag is answered ``304`` without running
  pygeoapi at all; so does ``If-Modified-Since`` (compared with the data's last change).
* ``Cache-Control: public, no-cache``: clients and proxies may keep responses
  but must revalidate (a cheap 304), so a new upload is never hidden by a cache.
* Bodies of JSON/HTML/XML/text responses and vector tiles above 1 KiB are gzipped when the
  client accepts it.
* Successful responses are kept in a per-process LRU (bounded by bytes) keyed by
  request and data version; a new data version makes every old entry unreachable
  (and they are dropped).
"""
from __future__ import annotations

import email.utils
import gzip
import hashlib
import logging
import os
import re
import struct
import threading
import zlib
from collections import OrderedDict
from datetime import UTC, datetime
from pathlib import Path

from gdi import settings
from gdi.server.buffered import run_buffered, with_length
from gdi.server.public_url import PUBLIC_URL
from gdi.store import replica

LOGGER = logging.getLogger(__name__)
# whole-collection downloads are streamed from a file and tagged by gdi/server/downloads.py, never buffered here
CACHED_PATHS = re.compile(r"^/(|conformance/?|openapi/?|api/?|TileMatrixSets(/[^/]+)?/?|"
                          r"collections(?!/[^/]+/download/?$)(/.*)?)$")
# vector tiles too: an MVT is mostly varints and repeated keys, gzip takes a half to two thirds off
COMPRESSIBLE = ("application/json", "application/geo+json", "application/schema+json", "text/", "application/xml",
                "application/vnd.oai.openapi", "application/ld+json", "application/problem+json",
                "application/vnd.mapbox-vector-tile")
CACHE_CONTROL = "public, no-cache"
MAX_ENTRY = 4 * 2**20           # bytes per cached response
MAX_TOTAL = 96 * 2**20          # bytes per worker process
MIN_GZIP = 1024
# pygeoapi's items timeStamp: the last member of the document, a fixed-width UTC time (27 bytes)
TIMESTAMP = re.compile(rb'"timeStamp":\s*"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z)"\s*}\s*$')
STAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
STAMP_LEN = 27
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"    # deflate, no name, mtime 0, OS unknown
GZIP_LEVEL = 5
HOP = {"content-length", "content-encoding", "etag", "last-modified", "cache-control", "vary", "date",
       "connection", "transfer-encoding", "keep-alive"}


class DataVersion:
    """The store's data version and last change time, read cheaply on every request.

    Always from the primary (``GDI_STORE``), never from a read replica: only the primary knows what is
    published. The version read becomes the one the request's reads must show (gdi.store.replica)."""

    def __init__(self, store_url: str | None, config: Path | None):
        self.store_url = store_url or ""
        self.config = config
        self._local = threading.local()

    def _config_stamp(self) -> tuple[int, float]:
        try:
            st = os.stat(self.config) if self.config else None
        except OSError:
            st = None
        return (st.st_mtime_ns, st.st_mtime) if st else (0, 0.0)

    def read(self) -> tuple[str, float]:
        """(version token, last-modified epoch seconds)."""
        cfg_ns, cfg_mtime = self._config_stamp()
        try:
            if settings.is_postgres(self.store_url):
                version, changed = self._pg()
                # the answer is stamped with the primary's version: reads from a replica must show it
                replica.require(version)
            else:
                version, changed = self._gpkg()
        except Exception as exc:   # noqa: BLE001 — never fail a request for a cache check
            LOGGER.warning("data version unreadable: %s", exc)
            replica.require(None)
            return "", 0.0
        return self.token(version, cfg_ns), max(changed, cfg_mtime)

    def token(self, version: int, cfg_ns: int | None = None) -> str:
        """The token of a store data version (a snapshot knows its own) with the configuration's stamp."""
        return f"{version}.{self._config_stamp()[0] if cfg_ns is None else cfg_ns}"

    def _gpkg(self) -> tuple[int, float]:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            from gdi.files import connect_readonly

            path = self.store_url if self.store_url.endswith(".gpkg") else str(settings.paths().store)
            conn = connect_readonly(path)
            self._local.conn = conn
        row = conn.execute("SELECT (SELECT value FROM gdi_state WHERE key = 'data_version'), "
                           "(SELECT max(last_change) FROM gpkg_contents)").fetchone()
        return int(row[0] or 0), _epoch(row[1])

    def _pg(self) -> tuple[int, float]:
        from gdi.publish.provider_pg import _pool

        with _pool(self.store_url, autocommit=True).connection() as conn:
            row = conn.execute("SELECT (SELECT value FROM gdi.state WHERE key = 'data_version'), "
                               "(SELECT max(created) FROM gdi.versions)").fetchone()
        return int(row[0] or 0), _epoch(row[1])


def _epoch(text) -> float:
    if not text:
        return 0.0
    from datetime import datetime

    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


class Entry:
    __slots__ = ("status", "headers", "body", "gz", "etag", "modified", "stamp", "gz_head", "gz_crc")

    def __init__(self, status: str, headers: list, body: bytes, etag: str, modified: float):
        self.status, self.headers, self.body, self.etag, self.modified = status, headers, body, etag, modified
        self.gz: bytes | None = None
        self.stamp: int | None = _stamp_offset(body, headers)   # where the timeStamp value starts
        self.gz_head: bytes | None = None      # gzip header + deflate(body[:stamp]), sync-flushed
        self.gz_crc = 0                        # CRC-32 of body[:stamp]

    @property
    def size(self) -> int:
        return len(self.body) + len(self.gz or b"") + len(self.gz_head or b"") + 512

    def current(self) -> bytes:
        """The body with the time of this answer as its timeStamp."""
        if self.stamp is None:
            return self.body
        view = memoryview(self.body)
        return b"".join((view[:self.stamp], _now_stamp(), view[self.stamp + STAMP_LEN:]))

    def current_gz(self) -> bytes:
        """The gzip form of ``current()``: the cached compressed prefix plus the freshly compressed tail."""
        if self.stamp is None:
            if self.gz is None:
                self.gz = gzip.compress(self.body, compresslevel=GZIP_LEVEL, mtime=0)
            return self.gz
        if self.gz_head is None:
            prefix = memoryview(self.body)[:self.stamp]
            deflate = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -15)
            self.gz_crc = zlib.crc32(prefix)
            self.gz_head = GZIP_HEADER + deflate.compress(prefix) + deflate.flush(zlib.Z_SYNC_FLUSH)
        tail = _now_stamp() + self.body[self.stamp + STAMP_LEN:]
        deflate = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -15)    # no back references into the prefix: valid
        return b"".join((self.gz_head, deflate.compress(tail), deflate.flush(),
                         struct.pack("<II", zlib.crc32(tail, self.gz_crc), len(self.body) & 0xFFFFFFFF)))


def _now_stamp() -> bytes:
    return datetime.now(UTC).strftime(STAMP_FORMAT).encode()


def _stamp_offset(body: bytes, headers) -> int | None:
    if not any(k.lower() == "content-type" and "json" in v.lower() for k, v in headers):
        return None
    match = TIMESTAMP.search(body, max(0, len(body) - 256))
    return match.start(1) if match else None


class ResponseCache:
    def __init__(self, max_total: int = MAX_TOTAL):
        self.max_total = max_total
        self.items: OrderedDict[tuple, Entry] = OrderedDict()
        self.total = 0
        self.version = None
        self.lock = threading.Lock()

    def get(self, key: tuple, version: str) -> Entry | None:
        with self.lock:
            if version != self.version:
                self.items.clear()
                self.total = 0
                self.version = version
                return None
            entry = self.items.get(key)
            if entry is not None:
                self.items.move_to_end(key)
            return entry

    def put(self, key: tuple, version: str, entry: Entry) -> None:
        with self.lock:
            if version != self.version:
                return
            old = self.items.pop(key, None)
            if old is not None:
                self.total -= old.size
            self.items[key] = entry
            self.total += entry.size
            while self.total > self.max_total and self.items:
                _, dropped = self.items.popitem(last=False)
                self.total -= dropped.size


def _accepts_gzip(environ) -> bool:
    for part in environ.get("HTTP_ACCEPT_ENCODING", "").lower().split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip() in {"gzip", "*"}:
            q = params.strip()
            return not (q.startswith("q=") and _float(q[2:]) == 0)
    return False


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 1.0


def _http_date(epoch: float) -> str:
    return email.utils.formatdate(int(epoch), usegmt=True)


def weak_etag(*parts) -> str:
    """A weak entity tag (W/"…") standing for parts, the same in every worker."""
    return 'W/"' + hashlib.blake2b(repr(parts).encode(), digest_size=12).hexdigest() + '"'


def matches(if_none_match: str | None, tag: str) -> bool:
    """Whether an If-None-Match names tag (weak comparison) or is ``*``."""
    if if_none_match is None:
        return False
    tags = _tags(if_none_match)
    return "*" in tags or tag.removeprefix("W/") in tags


def _tags(header: str) -> set[str]:
    """The entity tags of an If-None-Match, for weak comparison (RFC 9110 13.1.2): W/ does not count."""
    return {t.strip().removeprefix("W/") for t in header.split(",") if t.strip()}


class CachingMiddleware:
    def __init__(self, app, version: DataVersion, cache: ResponseCache | None = None):
        self.app = app
        self.version = version
        self.cache = cache or ResponseCache()

    def __call__(self, environ, start_response):
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "")
        if method not in {"GET", "HEAD"} or not CACHED_PATHS.match(path):
            if CACHED_PATHS.match(path):    # an API read all the same (a CQL2 JSON search is a POST)
                self.version.read()          # whose reads from a replica must show the published version
            else:
                replica.require(None)        # no reads of the features here (downloads check their own)
            return self.app(environ, start_response)
        version, modified = self.version.read()
        if not version:
            return self.app(environ, start_response)
        # the public base URL too (gdi/server/public_url.py): the links of an answer to one proxied host
        # never reach a client of another, and their ETags differ
        key = (path, environ.get("QUERY_STRING", ""), environ.get("HTTP_ACCEPT", ""),
               environ.get("HTTP_ACCEPT_LANGUAGE", ""), environ.get(PUBLIC_URL, ""))
        etag = weak_etag(version, key)
        gz = _accepts_gzip(environ)
        tag = etag[:-1] + '-gz"' if gz else etag
        inm = environ.get("HTTP_IF_NONE_MATCH")
        entry = self.cache.get(key, version)
        if inm is not None:
            # a body under MIN_GZIP went out uncompressed, under the plain tag, to a gzip client too
            for held in (tag, etag):
                if matches(inm, held):
                    return self._not_modified(start_response, held, modified)
        elif environ.get("HTTP_IF_MODIFIED_SINCE"):
            # Last-Modified is the time of the data change (not of a cache entry), so every worker can
            # answer it, whether or not it has rendered this page itself.
            since = email.utils.parsedate_to_datetime(environ["HTTP_IF_MODIFIED_SINCE"]) \
                if _parsable(environ["HTTP_IF_MODIFIED_SINCE"]) else None
            if since is not None and int(modified) <= since.timestamp():
                return self._not_modified(start_response, tag, modified)
        if entry is None:
            entry = self._render(environ, key, version, etag, modified)
            if not isinstance(entry, Entry):            # not cacheable: passed through as it came
                status, headers, body = entry
                start_response(status, headers)
                return [] if method == "HEAD" else [body]
        headers = list(entry.headers)
        if gz and len(entry.body) >= MIN_GZIP and _compressible(headers):
            body = entry.current_gz()
            headers.append(("Content-Encoding", "gzip"))
        else:
            body = entry.current()
            tag = etag
        headers += [("Content-Length", str(len(body))), ("ETag", tag), ("Last-Modified", _http_date(entry.modified)),
                    ("Cache-Control", CACHE_CONTROL), ("Vary", "Accept, Accept-Encoding, Accept-Language")]
        start_response(entry.status, headers)
        return [] if method == "HEAD" else [body]

    def _render(self, environ, key, version, etag, modified):
        status, headers, body = run_buffered(
            self.app, dict(environ, REQUEST_METHOD="GET", HTTP_IF_NONE_MATCH="", HTTP_IF_MODIFIED_SINCE=""))
        if not status.startswith("200") or len(body) > MAX_ENTRY or any(
                k.lower() == "set-cookie" or (k.lower() == "content-encoding" and v != "identity")
                for k, v in headers):
            return status, with_length(headers, body), body
        entry = Entry(status, [(k, v) for k, v in headers if k.lower() not in HOP], body, etag, modified)
        self.cache.put(key, version, entry)
        return entry

    @staticmethod
    def _not_modified(start_response, tag: str, modified: float):
        start_response("304 Not Modified", [("ETag", tag), ("Last-Modified", _http_date(modified)),
                                            ("Cache-Control", CACHE_CONTROL),
                                            ("Vary", "Accept, Accept-Encoding, Accept-Language")])
        return []


def _parsable(text: str) -> bool:
    try:
        return email.utils.parsedate_to_datetime(text) is not None
    except (TypeError, ValueError):
        return False


def _compressible(headers) -> bool:
    for k, v in headers:
        if k.lower() == "content-type":
            return v.split(";")[0].strip().lower().startswith(COMPRESSIBLE)
    return False


def install(flask_app) -> None:
    """Wrap the app (outermost, so even the GeoJSON relabelling in fixes is cached)."""
    if isinstance(flask_app.wsgi_app, CachingMiddleware):
        return
    config = os.environ.get("PYGEOAPI_CONFIG")
    flask_app.wsgi_app = CachingMiddleware(flask_app.wsgi_app,
                                           DataVersion(settings.store_url(), Path(config) if config else None))
