"""Run the production server (gunicorn), never Flask's debug server."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from gdi import settings


def serve(host: str = "127.0.0.1", port: int = 5000, workers: int | None = None) -> None:
    from gdi.publish import publish

    paths = settings.paths()
    url = os.environ.get("GDI_URL") or f"http://{'127.0.0.1' if host in {'0.0.0.0', '::'} else host}:{port}"
    os.environ["GDI_URL"] = url
    publish(url=url)
    workers = workers or int(settings.setting("server.workers", 2))
    threads = int(settings.setting("server.threads", 4))
    env = dict(os.environ, GDI_WSGI="1", GDI_HOME=str(paths.home),
               PYGEOAPI_CONFIG=str(paths.pygeoapi_config), PYGEOAPI_OPENAPI=str(paths.openapi))
    gunicorn = Path(sys.executable).with_name("gunicorn")
    args = [str(gunicorn), "--bind", f"{host}:{port}", "--workers", str(workers), "--threads", str(threads),
            "--worker-class", "gthread", "--pid", str(paths.home / "server.pid"), "--no-control-socket",
            "--access-logfile", "-", "--error-logfile", "-", "--log-level", "warning",
            "--graceful-timeout", "10", "--timeout", "120",
            "gdi.server.app:app"]
    print(f"gdi: serving OGC API Features at {url}/ and the regional map at {url}/viewer", flush=True)
    os.execve(str(gunicorn), args, env)
