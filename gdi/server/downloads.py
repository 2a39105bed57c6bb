"""``GET /collections/{id}/download?f=gpkg|fgb|csv&crs=…``: a whole collection as one file.

A route of ours beside pygeoapi's (its formatters would hold the whole collection in memory):
gdi.publish.download writes the file from the store in batches into ``GDI_HOME/downloads``,
and it is sent from disk — its name removed before the first byte goes out, so nothing is left
behind whatever happens to the connection — with ``Content-Length``, ``Content-Disposition:
attachment`` and a weak ``ETag`` of the data version of the snapshot written, so a client can
revalidate: ``If-None-Match`` with the current tag is answered ``304`` before anything is read.
``HEAD`` answers the headers without writing the file (so without ``Content-Length``). A worker
makes ``downloads.per_worker`` downloads at once; one more is answered ``503`` with ``Retry-After``
(a large download takes a minute, and a worker has few threads: the API must keep answering). Each
collection links here with ``rel="enclosure"`` (gdi.publish.config.download_links). A bad ``f``
or ``crs`` is 400, an unknown collection 404, both problem documents in German or English.
With a read replica (``GDI_STORE_READ``) the file is written from it once it shows at least the data
version read from the primary first, else from the primary.
"""
from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path

from flask import Response, request

from gdi import settings
from gdi.collections import load_collections
from gdi.messages import t, text_of
from gdi.publish.download import FORMATS, DownloadError, filename, output_crs, output_format, write_download
from gdi.server.caching import CACHE_CONTROL, DataVersion, matches, weak_etag
from gdi.server.uploads import problem
from gdi.store import replica

ROUTE = "/collections/<collection_id>/download"
CHUNK = 1 << 20                     # bytes per read while sending
RETRY_AFTER = "30"                  # seconds, when this worker is busy writing downloads
BUSY = t("der Server erstellt gerade andere Downloads; bitte in einer halben Minute erneut versuchen",
         "the server is making other downloads just now; please try again in half a minute")
_versions: list[DataVersion] = []   # this worker's reader of the data version (set by install)
_writers: list[threading.BoundedSemaphore] = []     # downloads written at once (set by install)


def _headers(tag: str, key: str, name: str) -> dict[str, str]:
    return {"Content-Type": FORMATS[key].media_type, "Content-Disposition": f'attachment; filename="{name}"',
            "ETag": tag, "Cache-Control": CACHE_CONTROL}


def download(collection_id: str) -> Response:
    from gdi.store import open_store

    collection = load_collections().get(collection_id)
    if collection is None:
        return problem(404, t(f"keine Sammlung {collection_id!r}", f"no collection {collection_id!r}"))
    try:
        key = output_format(request.args.get("f"))
        crs = output_crs(request.args.get("crs"))
    except DownloadError as exc:
        return problem(400, text_of(exc))
    versions = _versions[0]
    name = filename(collection, key)

    def tag(token: str) -> str:
        return weak_etag("download", token, collection.id, key, crs.uri)

    token, _ = versions.read()
    if token and matches(request.headers.get("If-None-Match"), tag(token)):
        return Response(status=304, headers={"ETag": tag(token), "Cache-Control": CACHE_CONTROL})
    if request.method == "HEAD":        # an empty iterator: no Content-Length (werkzeug would say 0)
        return Response(iter(()), status=200, headers=_headers(tag(token), key, name), direct_passthrough=True)
    if not _writers[0].acquire(blocking=False):
        return problem(503, BUSY, [("Retry-After", RETRY_AFTER)])
    try:
        folder = settings.paths().downloads
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder) as work:
            path = Path(work) / name
            primary = open_store()

            def written(url: str | None) -> tuple[int, int]:
                """(data version, data version of the file written): from the replica only once it shows
                the version read above (else nothing is written and the primary writes it)."""
                store = primary if url is None or url == primary.url else open_store(url)
                if store is not primary and not replica.fresh(current := store.data_version()):
                    return current, 0
                path.unlink(missing_ok=True)        # what a replica that failed half-way left
                done = write_download(collection, store, key, crs, path,
                                      batch_size=settings.get().downloads.batch_features)
                return done, done

            primary_url = getattr(primary, "url", None)
            version = replica.read(primary_url, written) if primary_url else written(None)[1]
            fh = open(path, "rb")           # the open file outlives its name and folder
    finally:
        _writers[0].release()
    headers = _headers(tag(versions.token(version)), key, name)
    headers["Content-Length"] = str(os.fstat(fh.fileno()).st_size)
    wrapper = request.environ.get("wsgi.file_wrapper")
    body = wrapper(fh, CHUNK) if wrapper else iter(lambda: fh.read(CHUNK), b"")
    response = Response(body, status=200, headers=headers, direct_passthrough=True)
    response.call_on_close(fh.close)
    return response


def install(app) -> None:
    config = os.environ.get("PYGEOAPI_CONFIG")
    _versions[:] = [DataVersion(settings.store_url(), Path(config) if config else None)]
    _writers[:] = [threading.BoundedSemaphore(settings.get().downloads.per_worker)]
    app.add_url_rule(ROUTE, "gdi_download", download, methods=["GET", "HEAD"])
