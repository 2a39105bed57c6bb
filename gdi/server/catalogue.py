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
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

from gdi import settings
from gdi.collections import CATALOGUE_ID
from gdi.messages import t

CSW_URL_ENV = "GDI_CSW_URL"
UNAVAILABLE = t("der Katalogdienst (CSW) läuft nicht; gdi serve startet ihn, wenn pycsws Umgebung installiert "
                "ist (make install)",
                "the catalogue service (CSW) is not running; gdi serve starts it when pycsw's environment is "
                "installed (make install)")
NO_CSV = t("den Metadatenkatalog gibt es als JSON (f=json), JSON-LD (f=jsonld) und HTML (f=html), nicht als CSV",
           "the metadata catalogue is offered as JSON (f=json), JSON-LD (f=jsonld) and HTML (f=html), not as CSV")
NO_METADATA = t("für diese Sammlung gibt es keine Metadaten", "there is no metadata for this collection")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pycsw_python() -> Path:
    """The interpreter of pycsw's own environment (settings ``catalogue.environment``)."""
    return settings.repo_root() / settings.get().catalogue.environment / "bin" / "python"


class Pycsw(threading.Thread):
    """pycsw's gunicorn on a free port of 127.0.0.1, started again (same port) should it ever exit,
    until the server stops; a child of `gdi serve` that dies with it (``preexec_fn``)."""

    def __init__(self, env: dict[str, str], preexec_fn, interval: float = 2.0) -> None:
        super().__init__(name="gdi-csw", daemon=True)
        paths = settings.paths()
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.preexec_fn, self.interval = preexec_fn, interval
        self.env = {"PATH": env.get("PATH", ""), "HOME": env.get("HOME", str(paths.home)),
                    "PYTHONPATH": str(settings.repo_root()), "PYCSW_CONFIG": str(paths.pycsw_config)}
        self.stop_event = threading.Event()
        self.child = self._start()

    @staticmethod
    def available() -> bool:
        if pycsw_python().exists() and settings.paths().pycsw_config.exists():
            return True
        print(f"gdi: no CSW: pycsw's environment {pycsw_python().parent.parent} is missing (make install)",
              file=sys.stderr, flush=True)
        return False

    def _start(self) -> subprocess.Popen:
        gunicorn = [str(pycsw_python()), "-m", "gunicorn", "--bind", f"127.0.0.1:{self.port}",
                    "--workers", str(settings.get().catalogue.workers), "--threads", "2", "--no-control-socket",
                    "--error-logfile", "-", "--log-level", "warning", "--timeout", "60",
                    "gdi.pycsw_app:application"]
        # a session of its own: should its master die, the workers it leaves behind go with the group
        return subprocess.Popen(gunicorn, env=self.env, preexec_fn=self.preexec_fn, start_new_session=True,
                                cwd=str(settings.paths().publish), stdout=subprocess.DEVNULL)

    def run(self) -> None:
        while not self.stop_event.wait(self.interval):
            code = self.child.poll()
            if code is not None and not self.stop_event.is_set():
                print(f"gdi: the CSW (pycsw) exited ({code}); starting it again", file=sys.stderr, flush=True)
                try:
                    os.killpg(self.child.pid, signal.SIGKILL)      # workers left holding the port
                except ProcessLookupError:
                    pass
                self.child = self._start()

    def stop(self) -> None:
        self.stop_event.set()
        if self.child.poll() is None:
            self.child.terminate()
            try:
                self.child.wait(10)
            except subprocess.TimeoutExpired:
                self.child.kill()


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

    @app.before_request
    def records_are_not_csv():
        """pygeoapi 0.24 answers ``f=csv`` on a collection of records with a 500 (its CSV path asks for
        a feature provider's CRS); the catalogue offers JSON, JSON-LD and HTML, so CSV is a bad request."""
        if request.path.rstrip("/").startswith(f"/collections/{CATALOGUE_ID}/items") \
                and request.args.get("f", "").lower() == "csv":
            return problem(400, NO_CSV)
        return None

    @app.route("/collections/<collection_id>/metadata")
    def collection_metadata(collection_id: str):
        folder = settings.paths().metadata
        path = folder / f"{collection_id}.xml"
        if "/" in collection_id or collection_id.startswith(".") or not path.is_file():
            return problem(404, NO_METADATA)
        response = send_file(Path(path), mimetype="application/xml", max_age=0)
        response.headers["Cache-Control"] = "no-cache"
        return response
