"""A throwaway local PostGIS for development and tests, and a streaming replica of it.

Debian's postgresql and postgis packages (installed when missing), ``initdb``
into a temporary folder, listening on 127.0.0.1 only, stopped and removed
afterwards. A replica is Debian's ``pg_basebackup -R`` of the running server
(initdb's pg_hba.conf lets 127.0.0.1 replicate, ``wal_level=replica`` is the
default), started as a hot standby on a port of its own. Usage::

    python -m gdi.devdb start [DIR]               # prints the postgresql:// URL
    python -m gdi.devdb replica PRIMARY_DIR [DIR] # a streaming replica of it; prints its URL
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


def _psql(port: int, database: str, sql: str) -> subprocess.CompletedProcess:
    return subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", database, "-tAc", sql],
                          capture_output=True, text=True)


def _run(bindir: Path, directory: Path, port: int) -> DevDb:
    """Start the server in directory/data on 127.0.0.1:port and wait until it answers. A replica needs
    max_connections at least the primary's, so every server here gets the same settings."""
    opts = (f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={directory} "
            "-c fsync=off -c full_page_writes=off -c max_connections=200 -c shared_buffers=256MB")
    subprocess.run(_as_db_user([str(bindir / "pg_ctl"), "-D", str(directory / "data"), "-o", opts, "-l",
                                str(directory / "log"), "-w", "-t", "60", "start"]), check=True, stdout=subprocess.DEVNULL)
    db = DevDb(directory, port, bindir)
    deadline = time.time() + 30
    while (proc := _psql(port, "postgres", "SELECT 1")).returncode != 0:
        if time.time() > deadline:
            db.stop()
            raise RuntimeError(f"PostgreSQL did not start: {proc.stderr}")
        time.sleep(0.3)
    return db


def _folder(directory: Path | None, prefix: str) -> Path:
    directory = Path(directory or tempfile.mkdtemp(prefix=prefix))
    directory.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    os.chmod(directory, 0o700)
    return directory


def start_replica(primary: DevDb, directory: Path | None = None, port: int | None = None) -> DevDb:
    """A hot standby streaming from primary: ``pg_basebackup -R`` writes standby.signal and the
    primary_conninfo, so it follows the primary from the moment it starts."""
    directory = _folder(directory, "gdi-pg-replica-")
    data = directory / "data"
    if not (data / "PG_VERSION").exists():
        subprocess.run(_as_db_user([str(primary.bindir / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port),
                                    "-U", "postgres", "-D", str(data), "-R", "-X", "stream", "-c", "fast"]),
                       check=True, stdout=subprocess.DEVNULL)
    return _run(primary.bindir, directory, port or _free_port())


def wait_for_replay(primary: DevDb, replica: DevDb, timeout: float = 30) -> None:
    """Until replica has replayed everything primary has written so far."""
    lsn = _psql(primary.port, "postgres", "SELECT pg_current_wal_lsn()").stdout.strip()
    deadline = time.time() + timeout
    while _psql(replica.port, "postgres",
                f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn").stdout.strip() != "t":
        if time.time() > deadline:
            raise RuntimeError(f"the replica on port {replica.port} did not replay up to {lsn} in {timeout} s")
        time.sleep(0.05)


def start(directory: Path | None = None, port: int | None = None) -> DevDb:
    bindir = ensure_packages()
    directory = _folder(directory, "gdi-pg-")
    data = directory / "data"
    port = port or _free_port()
    if not (data / "PG_VERSION").exists():
        subprocess.run(_as_db_user([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                                    "-E", "UTF8", "--locale=C.UTF-8"]), check=True, stdout=subprocess.DEVNULL)
    db = _run(bindir, directory, port)
    proc = _psql(port, "postgres", "SELECT 1 FROM pg_database WHERE datname = 'gdi'")
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
    if len(argv) in (2, 3) and argv[0] == "replica":
        primary_dir = Path(argv[1])
        primary = DevDb(primary_dir, int((primary_dir / "url").read_text().split(":")[-1].split("/")[0]),
                        ensure_packages())
        db = start_replica(primary, Path(argv[2]) if len(argv) > 2 else None)
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
