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


@pytest.fixture
def gdi_home(tmp_path, monkeypatch) -> Path:
    """A fresh, empty GDI_HOME for one test."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("GDI_HOME", str(home))
    monkeypatch.delenv("GDI_STORE", raising=False)
    return home


def run_gdi(*args: str, home: Path, check: bool = False, timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, GDI_HOME=str(home))
    env.pop("GDI_STORE", None)
    proc = subprocess.run([GDI, *args], env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"gdi {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def demo_home(tmp_path_factory) -> Path:
    """A GDI_HOME with the bundled demo data loaded and published (once per session)."""
    home = tmp_path_factory.mktemp("demo") / "home"
    run_gdi("demo", "--no-serve", home=home, check=True)
    return home


class Server:
    def __init__(self, home: Path, port: int):
        self.home, self.port = home, port
        self.url = f"http://127.0.0.1:{port}"
        env = dict(os.environ, GDI_HOME=str(home))
        env.pop("GDI_STORE", None)
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
