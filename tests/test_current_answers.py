"""Answers are current and their validators honest (gdi/server/caching.py), against the real server.

An items response's ``timeStamp`` is the time it was served, from the response cache too; the ETag
is weak (``W/"…"``) because the bodies behind one tag differ in that time — and in nothing else, in
any worker; ``If-None-Match`` with it is answered 304 by every worker; a data change changes it.
"""
from __future__ import annotations

import email.utils
import gzip
import http.client
import json
import os
import re
import time
from datetime import datetime

import pytest

ITEMS = "/collections/supply_points/items?f=json&limit=7"
STAMP = re.compile(rb'"timeStamp":"([^"]{27})"}$')


def stamp_and_date(response: http.client.HTTPResponse, body: bytes) -> tuple[float, float]:
    stamp = datetime.fromisoformat(json.loads(body)["timeStamp"].replace("Z", "+00:00")).timestamp()
    return stamp, email.utils.parsedate_to_datetime(response.getheader("Date")).timestamp()


def ask(conn: http.client.HTTPConnection, path: str, **headers) -> tuple[http.client.HTTPResponse, bytes]:
    """One request on a kept-alive connection (so on the worker that accepted it)."""
    conn.request("GET", path, headers={"Accept-Encoding": "identity", **headers})
    response = conn.getresponse()
    body = response.read()
    return response, body


# -- which gunicorn worker holds a connection (Linux /proc; no header gives the pid away) ------------
def workers(server) -> set[int]:
    master = int((server.home / f"server-{server.port}.pid").read_text())
    pids = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == master:
                pids.add(int(entry))
    return pids


def worker_of(server, conn: http.client.HTTPConnection) -> int | None:
    client_port = conn.sock.getsockname()[1]
    inode = None
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1], fields[2]
        if int(local.split(":")[1], 16) == server.port and int(remote.split(":")[1], 16) == client_port:
            inode = fields[9]
    if inode is None:
        return None
    for pid in workers(server):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return pid
            except OSError:
                pass
    return None


@pytest.fixture
def two_workers(server):
    """Two kept-alive connections held by two different worker processes."""
    assert len(workers(server)) >= 2, "the test server runs one worker: nothing to compare"
    conns, by_pid = [], {}
    try:
        for _ in range(40):
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            ask(conn, "/conformance?f=json")
            conns.append(conn)
            pid = worker_of(server, conn)
            if pid is not None:
                by_pid.setdefault(pid, conn)
            if len(by_pid) >= 2:
                break
        assert len(by_pid) >= 2, f"40 connections all went to {set(by_pid)}"
        yield list(by_pid.values())[:2]
    finally:
        for conn in conns:
            conn.close()


def wait(conn: http.client.HTTPConnection, seconds: float) -> None:
    """Let time pass on a kept-alive connection (gunicorn closes one idle for 2 s)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        ask(conn, "/conformance?f=json")
        time.sleep(min(0.5, max(0.0, end - time.monotonic())))


def test_timestamp_is_the_time_served_even_from_the_cache(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        first, body1 = ask(conn, ITEMS)
        assert first.status == 200
        stamp1, date1 = stamp_and_date(first, body1)
        assert abs(stamp1 - date1) < 1
        wait(conn, 2.2)
        second, body2 = ask(conn, ITEMS)        # the same worker, the same data version: from its cache
        stamp2, date2 = stamp_and_date(second, body2)
        assert date2 - date1 >= 2
        assert abs(stamp2 - date2) < 1, (second.getheader("Date"), json.loads(body2)["timeStamp"])
        assert stamp2 - stamp1 >= 2
        assert second.getheader("ETag") == first.getheader("ETag")
        assert int(second.getheader("Content-Length")) == len(body2) == len(body1)
        assert STAMP.sub(b"", body1) == STAMP.sub(b"", body2)     # the time is all that differs
        # gzip, from the cache as well
        zipped, raw = ask(conn, ITEMS.replace("limit=7", "limit=60"), **{"Accept-Encoding": "gzip"})
        wait(conn, 1.2)
        zipped, raw = ask(conn, ITEMS.replace("limit=7", "limit=60"), **{"Accept-Encoding": "gzip"})
        assert zipped.getheader("Content-Encoding") == "gzip" and int(zipped.getheader("Content-Length")) == len(raw)
        plain = gzip.decompress(raw)
        stamp, date = stamp_and_date(zipped, plain)
        assert abs(stamp - date) < 1
        assert len(json.loads(plain)["features"]) == 60
    finally:
        conn.close()


def test_one_etag_for_equal_bodies_in_every_worker(server, two_workers):
    answers = []
    for conn in two_workers:
        for _ in range(2):                        # rendered, then from that worker's cache
            response, body = ask(conn, ITEMS)
            assert response.status == 200
            answers.append((response.getheader("ETag"), body))
    tags = {tag for tag, _ in answers}
    assert len(tags) == 1
    tag = tags.pop()
    assert tag.startswith('W/"')                  # weak: the bytes differ in the timeStamp ...
    assert len({STAMP.sub(b"", body) for _, body in answers}) == 1      # ... and in nothing else
    assert all(STAMP.search(body) for _, body in answers)
    for conn in two_workers:
        response, body = ask(conn, ITEMS, **{"If-None-Match": tag})
        assert response.status == 304 and body == b"" and response.getheader("ETag") == tag
        response, _ = ask(conn, ITEMS, **{"If-None-Match": tag.removeprefix("W/")})   # weak comparison
        assert response.status == 304
        zipped, _ = ask(conn, ITEMS.replace("limit=7", "limit=60"), **{"Accept-Encoding": "gzip"})
        gz_tag = zipped.getheader("ETag")
        assert gz_tag.startswith('W/"') and gz_tag.endswith('-gz"')
        response, _ = ask(conn, ITEMS.replace("limit=7", "limit=60"),
                          **{"Accept-Encoding": "gzip", "If-None-Match": gz_tag})
        assert response.status == 304


def test_a_data_change_changes_the_etag_in_every_worker(server, two_workers, monkeypatch):
    import geopandas as gpd
    import shapely

    from conftest import home_store
    from gdi.collections import load_collections
    from gdi.store import open_store
    from gdi.store.base import VersionMeta

    monkeypatch.setenv("GDI_HOME", str(server.home))
    store_url = home_store(server.home)
    if store_url:
        monkeypatch.setenv("GDI_STORE", store_url)
    else:
        monkeypatch.delenv("GDI_STORE", raising=False)
    store = open_store()
    collection = load_collections()["supply_points"]
    before = {ask(conn, ITEMS)[0].getheader("ETag") for conn in two_workers}
    assert len(before) == 1
    tag = before.pop()
    frame = gpd.GeoDataFrame({"name": ["ETag-Test-Laden"], "category": ["farm_shop"]},
                             geometry=gpd.GeoSeries([shapely.Point(483100, 5630100)], crs=collection.storage_crs))
    try:
        store.replace(collection, "06534", "etag-test", frame, updated="2026-01-01T00:00:00Z", meta=VersionMeta())
        after = set()
        for conn in two_workers:
            response, body = ask(conn, ITEMS, **{"If-None-Match": tag})
            assert response.status == 200 and json.loads(body)["features"]
            after.add(response.getheader("ETag"))
        assert len(after) == 1 and tag not in after
    finally:
        store.replace(collection, "06534", "etag-test", frame.iloc[:0], updated="2026-01-01T00:00:01Z",
                      meta=VersionMeta())
