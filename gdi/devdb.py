"""A throwaway local PostGIS for development and tests.

Debian's postgresql and postgis packages (installed when missing), ``initdb``
into a temporary folder, listening on 127.0.0.1 only, stopped and removed
afterwards. Usage::

    python -m gdi.devdb start [DIR]   # prints the postgresql:// URL
    python -m gdi.devdb stop DIR
"""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def _postgis_installed(bindir: Path) -> bool:
    version = bindir.parent.name
    return bool(glob.glob(f"/usr/share/postgresql/{version}/extension/postgis.control"))


def ensure_packages() -> Path:
    """The PostgreSQL bin folder; installs postgresql + postgis with apt when missing."""
    bindir = _pg_bin()
    if bindir is not None and _postgis_installed(bindir):
        return bindir
    if os.geteuid() != 0:
        raise RuntimeError("PostgreSQL/PostGIS missing: apt-get install postgresql postgis (needs root)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "postgresql", "postgis"],
                   check=True, env=env, stdout=subprocess.DEVNULL)
    bindir = _pg_bin()
    if bindir is not None and not _postgis_installed(bindir):     # the extension itself is only "recommended"
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                        f"postgresql-{bindir.parent.name}-postgis-3"], check=True, env=env, stdout=subprocess.DEVNULL)
    bindir = _pg_bin()
    if bindir is None or not _postgis_installed(bindir):
        raise RuntimeError("PostGIS could not be installed")
    return bindir


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_db_user(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: use the postgres account then."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


@dataclass
class DevDb:
    directory: Path
    port: int
    bindir: Path

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/gdi"

    def stop(self, remove: bool = True) -> None:
        subprocess.run(_as_db_user([str(self.bindir / "pg_ctl"), "-D", str(self.directory / "data"), "-m", "fast",
                                    "-w", "stop"]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if remove:
            shutil.rmtree(self.directory, ignore_errors=True)


def start(directory: Path | None = None, port: int | None = None) -> DevDb:
    bindir = ensure_packages()
    directory = Path(directory or tempfile.mkdtemp(prefix="gdi-pg-"))
    directory.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    os.chmod(directory, 0o700)
    data = directory / "data"
    port = port or _free_port()
    if not (data / "PG_VERSION").exists():
        subprocess.run(_as_db_user([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                                    "-E", "UTF8", "--locale=C.UTF-8"]), check=True, stdout=subprocess.DEVNULL)
    opts = (f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={directory} "
            "-c fsync=off -c full_page_writes=off -c max_connections=200 -c shared_buffers=256MB")
    subprocess.run(_as_db_user([str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(directory / "log"),
                                "-w", "-t", "60", "start"]), check=True, stdout=subprocess.DEVNULL)
    db = DevDb(directory, port, bindir)
    deadline = time.time() + 30
    while True:
        proc = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", "postgres",
                               "-tAc", "SELECT 1 FROM pg_database WHERE datname = 'gdi'"],
                              capture_output=True, text=True)
        if proc.returncode == 0:
            break
        if time.time() > deadline:
            db.stop()
            raise RuntimeError(f"PostgreSQL did not start: {proc.stderr}")
        time.sleep(0.3)
    if proc.stdout.strip() != "1":
        subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", "postgres", "-qc",
                        "CREATE DATABASE gdi"], check=True)
    subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", "gdi", "-qc",
                    "CREATE EXTENSION IF NOT EXISTS postgis"], check=True)
    return db


def main(argv: list[str]) -> int:
    if len(argv) >= 1 and argv[0] == "start":
        db = start(Path(argv[1]) if len(argv) > 1 else None)
        (db.directory / "url").write_text(db.url)
        print(db.url)
        return 0
    if len(argv) == 2 and argv[0] == "stop":
        directory = Path(argv[1])
        bindir = _pg_bin()
        if bindir is None:
            return 0
        DevDb(directory, 0, bindir).stop()
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
