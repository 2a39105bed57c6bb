"""The metadata routes: the CSW at ``/csw`` (pycsw, proxied) and each collection's ISO document.

pycsw runs as a small gunicorn of its own on 127.0.0.1, in pycsw's own environment
(gdi/pycsw_app.py); `gdi serve` starts it beside the API (it dies with the server) and tells
the API workers where it listens (``GDI_CSW_URL``). The API's ``/csw`` forwards method,
query and body unchanged and returns pycsw's answer, so clients see one server.
``/collections/{id}/metadata`` sends the ISO 19139 document the last publish wrote.
"""
from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

from gdi import settings
from gdi.messages import t

CSW_URL_ENV = "GDI_CSW_URL"
UNAVAILABLE = t("der Katalogdienst (CSW) läuft nicht; gdi serve startet ihn, wenn pycsws Umgebung installiert "
                "ist (make install)",
                "the catalogue service (CSW) is not running; gdi serve starts it when pycsw's environment is "
                "installed (make install)")
NO_METADATA = t("für diese Sammlung gibt es keine Metadaten", "there is no metadata for this collection")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pycsw_python() -> Path:
    """The interpreter of pycsw's own environment (settings ``catalogue.environment``)."""
    return settings.repo_root() / settings.get().catalogue.environment / "bin" / "python"


def start_pycsw(env: dict[str, str], preexec_fn) -> tuple[subprocess.Popen | None, str | None]:
    """pycsw's gunicorn on a free port of 127.0.0.1, or (None, None) without pycsw's environment."""
    python = pycsw_python()
    paths = settings.paths()
    if not python.exists() or not paths.pycsw_config.exists():
        print(f"gdi: no CSW: pycsw's environment {python.parent.parent} is missing (make install)",
              file=sys.stderr, flush=True)
        return None, None
    port = _free_port()
    child_env = {"PATH": env.get("PATH", ""), "HOME": env.get("HOME", str(paths.home)),
                 "PYTHONPATH": str(settings.repo_root()), "PYCSW_CONFIG": str(paths.pycsw_config)}
    gunicorn = [str(python), "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
                "--workers", str(settings.get().catalogue.workers), "--threads", "2", "--no-control-socket",
                "--error-logfile", "-", "--log-level", "warning", "--timeout", "60", "gdi.pycsw_app:application"]
    proc = subprocess.Popen(gunicorn, env=child_env, preexec_fn=preexec_fn, cwd=str(paths.publish),
                            stdout=subprocess.DEVNULL)
    return proc, f"http://127.0.0.1:{port}"


def _forward(upstream: str, method: str, query: str, body: bytes, content_type: str | None):
    parts = urlsplit(upstream)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        headers = {"Content-Type": content_type} if content_type else {}
        conn.request(method, "/" + (f"?{query}" if query else ""), body=body or None, headers=headers)
        answer = conn.getresponse()
        return answer.status, answer.getheader("Content-Type", "application/xml"), answer.read()
    finally:
        conn.close()


def install(app) -> None:
    from flask import request, send_file

    from gdi.server.uploads import problem

    @app.route("/csw", methods=["GET", "POST"])
    def csw():
        upstream = os.environ.get(CSW_URL_ENV)
        if not upstream:
            return problem(503, UNAVAILABLE)
        try:
            status, content_type, body = _forward(upstream, request.method, request.query_string.decode("latin-1"),
                                                  request.get_data(), request.content_type)
        except OSError:
            return problem(503, UNAVAILABLE)
        response = app.response_class(body, status=status, content_type=content_type)
        response.headers["Cache-Control"] = "no-cache"
        return response

    @app.route("/collections/<collection_id>/metadata")
    def collection_metadata(collection_id: str):
        folder = settings.paths().metadata
        path = folder / f"{collection_id}.xml"
        if "/" in collection_id or collection_id.startswith(".") or not path.is_file():
            return problem(404, NO_METADATA)
        response = send_file(Path(path), mimetype="application/xml", max_age=0)
        response.headers["Cache-Control"] = "no-cache"
        return response
