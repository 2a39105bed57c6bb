"""Helpers of the tests that run several servers on one PostgreSQL (primary, replica): SQL through psql,
an upload over HTTP followed to its end."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

import requests

from conftest import Server


def psql(port: int, database: str, sql: str) -> str:
    """One statement through psql on 127.0.0.1:port, its output unaligned, without headers."""
    return subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", database, "-tAc", sql],
                          check=True, capture_output=True, text=True).stdout.strip()


def upload(srv: Server, secret: str, path: Path, dataset: str, collection: str = "supply_points") -> dict:
    """POST path to srv's /uploads and return the job once it is no longer queued or running."""
    with open(path, "rb") as fh:
        r = requests.post(f"{srv.url}/uploads", headers={"Authorization": f"Bearer {secret}"},
                          data={"collection": collection, "dataset": dataset}, files={"file": (path.name, fh)},
                          timeout=60)
    assert r.status_code == 202, r.text
    deadline = time.time() + 120
    while (job := requests.get(f"{srv.url}/uploads/{r.json()['id']}", headers={"Authorization": f"Bearer {secret}"},
                               timeout=30).json())["status"] in {"queued", "running"}:
        assert time.time() < deadline, f"upload job still {job['status']} after 120 s"
        time.sleep(0.1)
    return job
