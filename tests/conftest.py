"""Shared fixtures: real data from ../shared/data, isolated GDI_HOMEs, a real server."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"
GDI = str(Path(sys.executable).with_name("gdi"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def shared() -> Path:
    assert SHARED.is_dir(), f"the shared real data is missing at {SHARED}"
    return SHARED


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


def fresh_store(kind: str, request) -> str | None:
    """None for the GeoPackage store, else the URL of a new, empty PostGIS database."""
    if kind == "gpkg":
        return None
    db = request.getfixturevalue("postgis")
    name = f"gdi_t{next(_db_counter)}"
    subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(db.port), "-U", "postgres", "-d", "postgres", "-qc",
                    f"CREATE DATABASE {name} TEMPLATE gdi_template"], check=True)
    return f"postgresql://postgres@127.0.0.1:{db.port}/{name}"


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


def run_gdi(*args: str, home: Path, check: bool = False, timeout: int = 300,
            store: str | None = "env") -> subprocess.CompletedProcess:
    """Run the gdi command with GDI_HOME (and GDI_STORE as the test has set it, unless given)."""
    env = dict(os.environ, GDI_HOME=str(home))
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


def home_store(home: Path) -> str | None:
    marker = home / "store-url"
    return (marker.read_text() or None) if marker.exists() else None


class Server:
    def __init__(self, home: Path, port: int):
        self.home, self.port = home, port
        self.url = f"http://127.0.0.1:{port}"
        self.store = home_store(home)
        env = dict(os.environ, GDI_HOME=str(home))
        env.pop("GDI_STORE", None)
        if self.store:
            env["GDI_STORE"] = self.store
        self.log = open(home / f"server-{port}.log", "w")
        self.proc = subprocess.Popen([GDI, "serve", "--host", "127.0.0.1", "--port", str(port)],
                                     env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 90
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {(home / f'server-{port}.log').read_text()[-3000:]}")
            try:
                if requests.get(self.url + "/conformance?f=json", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError("server did not start in 90 s")

    def get(self, path: str, **kw) -> requests.Response:
        return requests.get(self.url + path, timeout=30, **kw)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()


@pytest.fixture(scope="session")
def server(demo_home) -> Server:
    srv = Server(demo_home, free_port())
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    assert Path(path).exists(), "Debian's chromium is required (installed by .ci/run)"
    return path
