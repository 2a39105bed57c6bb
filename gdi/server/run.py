"""`gdi serve`: gunicorn for the API, plus the upload job runner, supervised together
(with the PostGIS store the runner is procrastinate's worker, gdi.server.queue).

Never Flask's debug server. gunicorn and the job runner's forkserver are
children of this process; gunicorn dies with it (PR_SET_PDEATHSIG) and every job
process is killed the moment it ends (gdi.server.jobs), so a killed server can
never leave a job publishing behind its back.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from gdi import settings


def gunicorn_args(host: str, port: int, workers: int, threads: int, pidfile: Path) -> list[str]:
    gunicorn = Path(sys.executable).with_name("gunicorn")
    # gunicorn's own reading of X-Forwarded-Proto (wsgi.url_scheme) trusts the same proxies as
    # gdi/server/public_url.py, so no other address can make an answer https
    proxies = ",".join(settings.get().server.trusted_proxies)
    return [str(gunicorn), "--bind", f"{host}:{port}", "--workers", str(workers), "--threads", str(threads),
            "--forwarded-allow-ips", proxies,
            "--worker-class", "gdi.server.worker.BalancedThreadWorker", "--pid", str(pidfile), "--no-control-socket",
            "--access-logfile", "-", "--error-logfile", "-", "--log-level", "warning",
            "--graceful-timeout", "10", "--timeout", "120", "gdi.server.app:app"]


def serve(host: str = "127.0.0.1", port: int = 5000, workers: int | None = None) -> int:
    from gdi.publish import publish
    from gdi.server import jobs, queue
    from gdi.server.catalogue import CSW_URL_ENV, Pycsw
    from gdi.server.map_refresh import MapRefresher, build_map

    paths = settings.paths()
    url = os.environ.get("GDI_URL") or f"http://{'127.0.0.1' if host in {'0.0.0.0', '::'} else host}:{port}"
    os.environ["GDI_URL"] = url
    publish(url=url, viewer=False)
    env = dict(os.environ, GDI_WSGI="1", GDI_HOME=str(paths.home),
               PYGEOAPI_CONFIG=str(paths.pygeoapi_config), PYGEOAPI_OPENAPI=str(paths.openapi))
    # the map is built before serving, in a child: a large build's memory never stays in this process
    if build_map(env, force=True, background=False).wait() != 0:
        print("gdi: building the regional map failed; /viewer shows the last one (see above)", file=sys.stderr,
              flush=True)
    if queue.enabled():
        queue.ensure_schema()          # before recovering: the sweep reads procrastinate's tables
    failed = jobs.recover_interrupted()
    if failed:
        print(f"gdi: {failed} upload job(s) interrupted by the last stop were marked failed", flush=True)
    workers = workers or settings.get().server.workers
    threads = settings.get().server.threads
    # the CSW (pycsw, in its own environment) listens on 127.0.0.1 only; the API proxies /csw to it
    catalogue = Pycsw(env, jobs._die_with_parent) if Pycsw.available() else None
    if catalogue is not None:
        env[CSW_URL_ENV] = catalogue.url
        catalogue.start()
    print(f"gdi: serving OGC API Features at {url}/ , the regional map at {url}/viewer, "
          f"the upload page at {url}/upload and the catalogue at {url}/csw", flush=True)
    server = subprocess.Popen(gunicorn_args(host, port, workers, threads, paths.home / f"server-{port}.pid"), env=env,
                              preexec_fn=jobs._die_with_parent)
    # PostGIS: procrastinate's worker, sharing the queue with every other server on the store
    runner = queue.QueueWorker(env) if queue.enabled() else jobs.Runner(env)
    runner.start()
    refresher = MapRefresher(env)
    refresher.start()

    def forward(signum, _frame):
        if signum == signal.SIGHUP:
            server.send_signal(signal.SIGHUP)
            return
        runner.stop()
        refresher.stop()
        server.send_signal(signal.SIGTERM)
        if catalogue is not None:
            catalogue.stop_event.set()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    code = server.wait()
    runner.stop()
    runner.join(15)        # the queue's worker kills its job processes, fails their rows, unregisters
    refresher.stop()
    if catalogue is not None:
        catalogue.stop()
    return code
