"""Shared fixtures: the real data bundled in data/, isolated GDI_HOMEs, a real server."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data"     # the real data the tests use, with its provenance (data/SOURCES.md)
GDI = str(Path(sys.executable).with_name("gdi"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def real_data() -> Path:
    assert DATA.is_dir(), f"the bundled real data is missing at {DATA}"
    return DATA


STORES = ["gpkg", "postgis"]
_db_counter = iter(range(1, 1_000_000))


@pytest.fixture(scope="session")
def postgis():
    """One throwaway PostGIS server for the whole session (scripts/postgis.sh does the same by hand)."""
    from gdi import devdb

    db = devdb.start()
    subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(db.port), "-U", "postgres", "-d", "postgres", "-qc",
                    "CREATE DATABASE gdi_template TEMPLATE gdi"], check=True)
    yield db
    db.stop()


@pytest.fixture(scope="session")
def postgis_replica(postgis):
    """A streaming replica of the session's PostGIS (pg_basebackup -R, hot standby on its own port): every
    database made on the primary appears on it a moment later."""
    from gdi import devdb

    db = devdb.start_replica(postgis)
    yield db
    db.stop()


def fresh_store(kind: str, request) -> str | None:
    """None for the GeoPackage store, else the URL of a new, empty PostGIS database."""
    if kind == "gpkg":
        return None
    db = request.getfixturevalue("postgis")
    name = f"gdi_t{next(_db_counter)}"
    subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(db.port), "-U", "postgres", "-d", "postgres", "-qc",
                    f"CREATE DATABASE {name} TEMPLATE gdi_template"], check=True)
    return f"postgresql://postgres@127.0.0.1:{db.port}/{name}"


_boundary_templates: dict[tuple[str, tuple[str, ...]], tuple[Path, str | None]] = {}


def ingest_boundaries(request, home: Path, *extra: str) -> None:
    """home (and the store the test set in GDI_STORE) as `gdi ingest <the Marburg-Biedenkopf boundaries>
    --collection municipalities --member 06534 --admin <extra>` leaves them.

    Most tests need the boundaries only as the territory their uploads are checked against; ingesting
    them (tested for itself in test_ingest.py) for each of those tests cost minutes of every run. So the
    ingest runs once per store and arguments in a session, into a template home and database, and each
    test gets a copy: the home's files, and on PostGIS its empty database recreated from the template.
    """
    import shutil

    url = os.environ.get("GDI_STORE")
    key = ("postgis" if url else "gpkg", extra)
    if key not in _boundary_templates:
        template_home = request.getfixturevalue("tmp_path_factory").mktemp("boundaries") / "home"
        template_home.mkdir()
        template_url = fresh_store(key[0], request)
        config = os.environ.pop("GDI_CONFIG", None)          # the template is made with the shipped settings
        try:
            run_gdi("ingest", str(DATA / "boundaries" / "vg250ew_gemeinden_marburg-biedenkopf.geojson"),
                    "--collection", "municipalities", "--member", "06534", "--admin", *extra,
                    home=template_home, check=True, store=template_url)
        finally:
            if config is not None:
                os.environ["GDI_CONFIG"] = config
        _boundary_templates[key] = (template_home, template_url)
    template_home, template_url = _boundary_templates[key]
    shutil.copytree(template_home, home, symlinks=True, dirs_exist_ok=True)
    if url:
        db = request.getfixturevalue("postgis")
        name, template = url.rsplit("/", 1)[1], template_url.rsplit("/", 1)[1]
        for sql in (f"DROP DATABASE {name}", f"CREATE DATABASE {name} TEMPLATE {template}"):
            subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(db.port), "-U", "postgres", "-d", "postgres",
                            "-qc", sql], check=True)


@pytest.fixture(params=STORES)
def gdi_home(request, tmp_path, monkeypatch) -> Path:
    """A fresh, empty GDI_HOME for one test, on each store in turn."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("GDI_HOME", str(home))
    url = fresh_store(request.param, request)
    if url:
        monkeypatch.setenv("GDI_STORE", url)
    else:
        monkeypatch.delenv("GDI_STORE", raising=False)
    return home


def store_text() -> str:
    """Every published row, dataset and version of the current test's store (GDI_STORE as the test set it):
    equal before and after means an upload changed nothing."""
    from gdi.collections import get_collection
    from gdi.store import open_store

    store = open_store()
    parts = []
    for cid in ("municipalities", "supply_points"):
        c = get_collection(cid)
        g = store.read(c)
        parts.append(g.drop(columns=["fid"]).to_json(sort_keys=True))
        for member in sorted(set(g["member"])):
            parts.append(repr(store.history(c, member)))
    parts.append(repr(store.datasets()))
    return "\n".join(parts)


def run_gdi(*args: str, home: Path, check: bool = False, timeout: int = 300,
            store: str | None = "env", lang: str = "C.UTF-8") -> subprocess.CompletedProcess:
    """Run the gdi command with GDI_HOME (and GDI_STORE as the test has set it, unless given or the home
    names its store in ``store-url``, as a server's home does), in the locale ``lang`` (LANG; LC_ALL and
    LC_MESSAGES unset): English unless a test asks for German."""
    if store == "env" and (home / "store-url").exists():
        store = home_store(home)
    env = dict(os.environ, GDI_HOME=str(home), LANG=lang)
    env.pop("LC_ALL", None)
    env.pop("LC_MESSAGES", None)
    if store != "env":
        env.pop("GDI_STORE", None)
        if store:
            env["GDI_STORE"] = store
    proc = subprocess.run([GDI, *args], env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"gdi {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session", params=STORES)
def demo_home(request, tmp_path_factory) -> Path:
    """A GDI_HOME with the bundled demo data loaded and published, once per store and session."""
    home = tmp_path_factory.mktemp(f"demo-{request.param}") / "home"
    home.mkdir(parents=True)
    store = fresh_store(request.param, request)
    (home / "store-url").write_text(store or "")
    run_gdi("demo", "--no-serve", home=home, check=True, store=store)
    return home


def homes_on(store: str, *homes: Path) -> list[Path]:
    """Empty GDI_HOMEs of servers on one PostGIS (each marked with its store, as a machine's own)."""
    for home in homes:
        home.mkdir(parents=True)
        (home / "store-url").write_text(store)
    return list(homes)


def home_store(home: Path) -> str | None:
    marker = home / "store-url"
    return (marker.read_text() or None) if marker.exists() else None


def answers(url: str, timeout: float = 2) -> bool:
    """Whether url answers 200 now (a server being started: not yet listening is no error)."""
    try:
        return requests.get(url, timeout=timeout).status_code == 200
    except requests.RequestException:
        return False


def at_once(n: int, fn) -> list:
    """fn(0) … fn(n-1), each in its own thread, all released at the same moment; their results."""
    import threading

    barrier = threading.Barrier(n)
    results: list = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        results[i] = fn(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


def state_rows(home: Path, sql: str, args: tuple = ()) -> list[tuple]:
    """Rows of the upload service's state of the installation in home: its service.sqlite, or the
    gdi_service schema of its PostGIS (``?`` parameters for both)."""
    import sqlite3

    store = home_store(home)
    if store:
        import psycopg

        with psycopg.connect(store, options="-c search_path=gdi_service") as conn:
            return conn.execute(sql.replace("?", "%s"), args).fetchall()
    with sqlite3.connect(home / "service.sqlite") as db:
        return db.execute(sql, args).fetchall()


class Server:
    def __init__(self, home: Path, port: int):
        self.home, self.port = home, port
        self.url = f"http://127.0.0.1:{port}"
        self.store = home_store(home)
        env = dict(os.environ, GDI_HOME=str(home))
        env.pop("GDI_STORE", None)
        if self.store:
            env["GDI_STORE"] = self.store
        self.log_path = home / f"server-{port}.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([GDI, "serve", "--host", "127.0.0.1", "--port", str(port)],
                                     env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 90
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {(home / f'server-{port}.log').read_text()[-3000:]}")
            if answers(self.url + "/conformance?f=json"):
                return
            time.sleep(0.3)
        self.stop()
        raise RuntimeError("server did not start in 90 s")

    def get(self, path: str, **kw) -> requests.Response:
        return requests.get(self.url + path, timeout=30, **kw)

    def crash_lines(self) -> list[str]:
        """Lines of the server log that tell of a worker killed or a corrupted heap."""
        import re

        crash = re.compile(r"was sent SIG|tcache|double free|Segmentation|Fatal Python error|corrupted|munmap_chunk")
        return [line for line in self.log_path.read_text(errors="replace").splitlines() if crash.search(line)]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()


def run_schemathesis(url: str, *args: str, report_dir: Path, timeout: int, hooks: Path | None = None) -> int:
    """``schemathesis run`` against the OpenAPI document at url; fails the test on any problem it finds.
    Returns how many operations it tested (after checking that it tested all it selected)."""
    import re

    cmd = [str(Path(sys.executable).with_name("schemathesis")), "run", url, *args, "--request-timeout", "30",
           "--report", "junit", "--report-dir", str(report_dir)]
    env = dict(os.environ, NO_COLOR="1", **({"SCHEMATHESIS_HOOKS": str(hooks)} if hooks else {}))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=report_dir)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"schemathesis ran over {timeout} s:\n{exc.stdout}") from exc
    assert proc.returncode == 0, f"schemathesis found problems:\n{proc.stdout[-15000:]}\n{proc.stderr[-3000:]}"
    selected = re.search(r"Selected: (\d+)/\d+\s+Tested: (\d+)", proc.stdout)
    assert selected and selected.group(1) == selected.group(2), proc.stdout[-3000:]
    return int(selected.group(2))


@pytest.fixture(scope="session")
def server(demo_home) -> Server:
    srv = Server(demo_home, free_port())
    yield srv
    srv.stop()


# -- headless Chromium, offline -------------------------------------------------------------------
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def launch_chromium(playwright):
    """Debian's Chromium (never a browser Playwright downloads), with the flags this machine needs."""
    assert Path(CHROMIUM).exists(), "Debian's chromium is required (installed by .ci/run)"
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def is_tile(url: str) -> bool:
    """A base-map tile from another host: the only request allowed to fail offline."""
    from urllib.parse import urlsplit

    return url.endswith(".png") and urlsplit(url).hostname not in (None, "127.0.0.1")


def offline_page(browser, *, viewport=(1280, 860), locale: str | None = "de-DE", seen=None):
    """A page where only 127.0.0.1 (and file:/data:) may load.

    Returns (page, problems, blocked): page errors and console errors other than failed tiles,
    and the requests to other hosts that were refused. ``seen(url)`` is told every local request.
    """
    from urllib.parse import urlsplit

    kwargs = {"viewport": {"width": viewport[0], "height": viewport[1]}}
    if locale:
        kwargs["locale"] = locale
    context = browser.new_context(**kwargs)
    blocked: list[str] = []

    def route(r) -> None:
        url = r.request.url
        if url.startswith(("file:", "data:")) or urlsplit(url).hostname == "127.0.0.1":
            if seen is not None:
                seen(url)
            r.continue_()
        else:
            blocked.append(url)
            r.abort()

    context.route("**/*", route)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
    page.on("console", lambda m: m.type == "error" and not is_tile(m.location.get("url", ""))
            and problems.append(f"console: {m.text} @ {m.location.get('url')}"))
    return page, problems, blocked
