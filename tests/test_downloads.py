"""Whole collections as GeoPackage, FlatGeobuf and CSV (/collections/{id}/download), on both stores.

Each download is read back (pyogrio, the csv module, QGIS) and compared with what the items
endpoint serves in the same CRS: the same features, ids, property values and coordinates.
"""
from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import subprocess
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import requests
import shapely
from shapely.geometry import shape

from conftest import REPO, home_store
from gdi.publish.csv_formatter import formula_safe

COLLECTIONS = ("municipalities", "supply_points")
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
UTM = "http://www.opengis.net/def/crs/EPSG/0/25832"
WGS84 = "http://www.opengis.net/def/crs/EPSG/0/4326"
MEDIA = {"gpkg": "application/geopackage+sqlite3", "fgb": "application/flatgeobuf", "csv": "text/csv; charset=utf-8"}
SYSTEM_PYTHON = "/usr/bin/python3"


def items(server, cid: str, crs: str | None) -> dict[int, dict]:
    """Every feature the items endpoint serves, by id (in crs)."""
    params = {"f": "json", "limit": 10000, **({"crs": crs} if crs else {})}
    data = server.get(f"/collections/{cid}/items", params=params).json()
    assert data["numberReturned"] == data["numberMatched"] == len(data["features"]) > 0
    return {f["id"]: f for f in data["features"]}


def fetch(server, cid: str, f: str | None, crs: str | None, dest: Path) -> requests.Response:
    params = {**({"f": f} if f else {}), **({"crs": crs} if crs else {})}
    r = server.get(f"/collections/{cid}/download", params=params)
    assert r.status_code == 200, r.text
    dest.write_bytes(r.content)
    return r


def read_file(path: Path, f: str) -> dict[int, tuple[dict, shapely.Geometry]]:
    """(properties, geometry) by fid, as a GIS client reads the file."""
    if f == "csv":
        text = path.read_bytes().decode("utf-8")
        assert text.startswith("\ufeffWKT,fid,")         # a byte order mark, then the header
        rows = list(csv.DictReader(io.StringIO(text[1:], newline="")))
        return {int(r.pop("fid")): (r, shapely.from_wkt(r.pop("WKT"))) for r in rows}
    meta, table = pyogrio.read_arrow(path, return_fids=f == "gpkg")     # a GeoPackage's FID is the fid
    return {r.pop("fid"): (r, shapely.from_wkb(r.pop(meta["geometry_name"] or "wkb_geometry")))
            for r in table.to_pylist()}


def expected_cell(value, f: str):
    """What the file holds for a value the API served as JSON."""
    if f != "csv":
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return formula_safe(value) if isinstance(value, str) else str(value)


def as_served(value):
    """A value read from a GeoPackage or FlatGeobuf in the API's JSON form (times as UTC ISO 8601)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return value


def assert_equal_to_items(got: dict, served: dict, f: str, *, swap: bool = False) -> None:
    assert sorted(got) == sorted(served)
    for fid, feature in served.items():
        props, geom = got[fid]
        assert {k: as_served(v) for k, v in props.items()} == \
               {k: expected_cell(v, f) for k, v in feature["properties"].items()}, fid
        want = shapely.get_coordinates(shape(feature["geometry"]))
        have = shapely.get_coordinates(geom)
        assert have.shape == want.shape
        assert np.abs(have - (want[:, ::-1] if swap else want)).max() <= 1e-6, fid


@pytest.mark.parametrize("crs", [None, UTM], ids=["CRS84", "25832"])
@pytest.mark.parametrize("f", ["gpkg", "fgb", "csv"])
def test_each_download_equals_the_items(server, tmp_path, f, crs):
    for cid in COLLECTIONS:
        path = tmp_path / f"{cid}.{f}"
        r = fetch(server, cid, f, crs, path)
        assert r.headers["Content-Type"] == MEDIA[f]
        assert r.headers["Content-Disposition"] == f'attachment; filename="{cid}.{f}"'
        assert int(r.headers["Content-Length"]) == len(r.content) == path.stat().st_size
        assert r.headers["ETag"].startswith('W/"') and r.headers["Cache-Control"] == "public, no-cache"
        assert_equal_to_items(read_file(path, f), items(server, cid, crs), f)
        if f != "csv":          # CRS84 is declared as EPSG:4326: both formats keep longitude first
            assert pyogrio.list_layers(path).tolist() == [[cid, "Point" if cid == "supply_points" else "MultiPolygon"]]
            assert pyogrio.read_info(path)["crs"] == f"EPSG:{25832 if crs == UTM else 4326}"


def test_epsg_4326_keeps_longitude_first_in_the_file(server, tmp_path):
    """The items endpoint answers EPSG:4326 in its axis order (latitude first); a GeoPackage keeps x =
    longitude, as the format defines it."""
    path = tmp_path / "supply_points.gpkg"
    fetch(server, "supply_points", "gpkg", WGS84, path)
    assert_equal_to_items(read_file(path, "gpkg"), items(server, "supply_points", WGS84), "gpkg", swap=True)


def test_the_geopackage_is_typed_and_described(server, tmp_path):
    path = tmp_path / "municipalities.gpkg"
    fetch(server, "municipalities", None, UTM, path)        # no f: a GeoPackage
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT table_name, identifier, description, srs_id FROM gpkg_contents").fetchall() == [
            ("municipalities", "Gemeindegrenzen", "Grenzen der Mitgliedsgemeinden mit Amtlichem Gemeindeschlüssel "
             "(AGS) und Einwohnerzahl. Quelle/Source: © GeoBasis-DE / BKG (2025), Daten verändert", 25832)]
        columns = [(r[1], r[2]) for r in conn.execute("PRAGMA table_info(municipalities)")]
        assert columns == [("fid", "INTEGER"), ("geom", "MULTIPOLYGON"), ("ags", "TEXT"), ("name", "TEXT"),
                           ("population", "INTEGER"), ("member", "TEXT"), ("dataset", "TEXT")]
        assert conn.execute("PRAGMA user_version").fetchone() == (10200,)
    finally:
        conn.close()
    spath = tmp_path / "supply_points.gpkg"
    fetch(server, "supply_points", "gpkg", UTM, spath)
    conn = sqlite3.connect(spath)
    try:
        types = dict((r[1], r[2]) for r in conn.execute("PRAGMA table_info(supply_points)"))
        assert types["updated"] == "DATETIME" and types["geom"] == "POINT"
    finally:
        conn.close()


def test_collections_link_their_downloads(server):
    base = server.url
    for cid in COLLECTIONS:
        doc = server.get(f"/collections/{cid}", params={"f": "json"}).json()
        links = [link for link in doc["links"] if link["rel"] == "enclosure"]
        title = {"municipalities": "Gemeindegrenzen", "supply_points": "Nahversorgung"}[cid]
        # no "length": pygeoapi did not HEAD the links (it adds the length it learns that way)
        assert links == [{"type": MEDIA[f], "rel": "enclosure",
                          "title": f"{title}: ganze Sammlung als {name} (EPSG:25832)",
                          "href": f"{base}/collections/{cid}/download?f={f}&crs={UTM}"}
                         for f, name in (("gpkg", "GeoPackage"), ("fgb", "FlatGeobuf"), ("csv", "CSV"))]
        english = server.get(f"/collections/{cid}", params={"f": "json", "lang": "en"}).json()
        assert [link["title"] for link in english["links"] if link["rel"] == "enclosure"][0] == \
            {"municipalities": "Municipal boundaries", "supply_points": "Local supply"}[cid] + \
            ": whole collection as GeoPackage (EPSG:25832)"
        html = server.get(f"/collections/{cid}", params={"f": "html"}).text
        for link in links:
            assert link["href"].replace("&", "&amp;") in html


@pytest.mark.parametrize("params,de,en", [
    ({"f": "shp"}, "unbekanntes Format f='shp' (möglich: gpkg, fgb, csv)", "unknown format f='shp' (one of gpkg, fgb, csv)"),
    ({"crs": "EPSG:4326"}, "nicht unterstütztes Koordinatensystem crs='EPSG:4326'",
     "unsupported CRS crs='EPSG:4326'"),
    ({"f": "csv", "crs": "http://www.opengis.net/def/crs/EPSG/0/31467"},
     "nicht unterstütztes Koordinatensystem crs='http://www.opengis.net/def/crs/EPSG/0/31467'",
     "unsupported CRS crs='http://www.opengis.net/def/crs/EPSG/0/31467'"),
])
def test_a_bad_format_or_crs_is_400(server, params, de, en):
    r = server.get("/collections/supply_points/download", params=params)
    assert r.status_code == 400 and r.headers["Content-Type"] == "application/problem+json"
    body = r.json()
    assert body["detail_de"].startswith(de) and body["detail_en"].startswith(en) and body["detail"] == body["detail_de"]
    if "crs" in params:
        assert body["detail_en"].endswith(f"(one of {CRS84}, {UTM}, http://www.opengis.net/def/crs/EPSG/0/4258, "
                                          f"{WGS84}, http://www.opengis.net/def/crs/EPSG/0/3857)")
    assert server.get("/collections/supply_points/download", params={**params, "lang": "en"}).json()["detail"] == \
        body["detail_en"]
    missing = server.get("/collections/nope/download")
    assert missing.status_code == 404 and missing.json()["detail_en"] == "no collection 'nope'"


def test_etag_revalidates_and_head_answers_without_a_body(server):
    path = "/collections/supply_points/download?f=fgb"
    first = server.get(path)
    etag = first.headers["ETag"]
    for _ in range(4):                       # the tag is the same in every worker
        again = server.get(path, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b"" and again.headers["ETag"] == etag
    assert server.get(path.replace("fgb", "csv"), headers={"If-None-Match": etag}).status_code == 200
    head = requests.head(server.url + path, timeout=30)
    assert head.status_code == 200 and head.content == b"" and head.headers["ETag"] == etag
    assert head.headers["Content-Type"] == MEDIA["fgb"] and "Content-Length" not in head.headers
    assert list((server.home / "downloads").iterdir()) == []       # nothing left behind


def test_the_store_reads_in_batches_from_one_snapshot(demo_home, monkeypatch):
    from gdi.collections import get_collection
    from gdi.store import open_store

    monkeypatch.setenv("GDI_HOME", str(demo_home))
    store = open_store(home_store(demo_home) or "gpkg")
    c = get_collection("supply_points")
    whole = store.read(c)
    with store.read_batches(c, batch_size=10) as (version, batches):
        chunks = list(batches)
    assert version == store.data_version()
    sizes = [len(b[0]) for b in chunks]
    assert sizes == [10] * (len(whole) // 10) + ([len(whole) % 10] if len(whole) % 10 else [])
    assert all(len(column) == n for b, n in zip(chunks, sizes) for column in b)
    assert len(chunks[0]) == 2 + len(c.columns)          # fids, WKB, then the columns
    assert [fid for b in chunks for fid in b[0]] == whole["fid"].tolist()
    stored = whole[c.columns].astype(object)
    for i, name in enumerate(c.columns):
        assert [v for b in chunks for v in b[2 + i]] == stored[name].where(stored[name].notna(), None).tolist(), name
    wkb = [w for b in chunks for w in b[1]]
    assert shapely.equals_exact(shapely.from_wkb(wkb), whole.geometry.values, 0).all()


def test_qgis_opens_the_geopackage(server, tmp_path):
    files = []
    for cid, crs in (("supply_points", UTM), ("municipalities", None)):
        path = tmp_path / f"{cid}.gpkg"
        fetch(server, cid, "gpkg", crs, path)
        files.append(path)
    home, runtime = tmp_path / "qgis-home", tmp_path / "xdg-runtime"
    home.mkdir()
    runtime.mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "QGIS"))}
    env.update(QT_QPA_PLATFORM="offscreen", HOME=str(home), XDG_RUNTIME_DIR=str(runtime), PATH="/usr/bin:/bin")
    proc = subprocess.run([SYSTEM_PYTHON, str(REPO / "tests" / "qgis_gpkg.py"), *map(str, files)],
                          capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert proc.returncode == 0, f"QGIS failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    assert "partially supported" not in proc.stderr
    out = json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])
    for path, (cid, authid) in zip(files, (("supply_points", "EPSG:25832"), ("municipalities", "EPSG:4326"))):
        info = out["files"][str(path)]
        n = len(items(server, cid, None))
        assert info["valid"] and info["crs"] == authid and info["layer"] == cid, info
        assert info["featureCount"] == info["iterated"] == n
        assert info["fields"][0] == "fid" and info["fields"][-2:] == ["member", "dataset"]


def test_a_worker_busy_with_downloads_answers_503(demo_home, monkeypatch):
    """One download at a time per worker (downloads.per_worker): one more is told when to come back."""
    from flask import Flask

    from gdi.server import downloads

    monkeypatch.setenv("GDI_HOME", str(demo_home))
    if home_store(demo_home):
        monkeypatch.setenv("GDI_STORE", home_store(demo_home))
    else:
        monkeypatch.delenv("GDI_STORE", raising=False)
    app = Flask("downloads")
    downloads.install(app)
    client = app.test_client()
    downloads._writers[0].acquire()
    try:
        busy = client.get("/collections/supply_points/download?f=csv&lang=en")
    finally:
        downloads._writers[0].release()
    assert busy.status_code == 503 and busy.headers["Retry-After"] == "30"
    assert busy.json["detail"] == "the server is making other downloads just now; please try again in half a minute"
    free = client.get("/collections/supply_points/download?f=csv")
    assert free.status_code == 200 and free.data.startswith("\ufeffWKT,fid,name,".encode())
    free.close()


def test_a_download_reads_one_snapshot_while_a_dataset_is_withdrawn(gdi_home):
    """The rows of a download come from the snapshot it started with: a withdrawal committed between
    two batches is not seen half-way (the next download sees it whole)."""
    from conftest import DATA, run_gdi
    from gdi.collections import get_collection
    from gdi.store import open_store

    run_gdi("ingest", str(DATA / "boundaries" / "vg250ew_gemeinden_marburg-biedenkopf.geojson"), "--collection",
            "municipalities", "--member", "06534", "--admin", "--dataset", "vg250ew", home=gdi_home, check=True)
    store, c = open_store(), get_collection("municipalities")
    before = store.read(c)["fid"].tolist()
    with store.read_batches(c, batch_size=5) as (version, batches):
        first = next(batches)
        store.withdraw(c, "06534", "vg250ew", updated="2026-12-01T12:00:00Z")
        rest = list(batches)
    assert [fid for b in [first, *rest] for fid in b[0]] == before and len(before) == 22
    assert store.data_version() == version + 1 and store.read(c).empty
    with store.read_batches(c, batch_size=5) as (later, batches):
        assert list(batches) == [] and later == version + 1


def test_every_declared_type_is_written_as_such(tmp_path):
    """Dates, booleans and numbers (the demo collections have none) as typed columns; in a CSV as the
    API writes them; NULL stays empty. From store columns as both stores hand them over."""
    import pyarrow as pa

    from gdi.collections import parse
    from gdi.publish.download import arrow_schema, record_batch

    doc = {"id": "plans", "title": {"de": "Pläne", "en": "Plans"}, "geometry_type": "Point",
           "storage_crs": "EPSG:25832", "properties": {
               "name": {"type": "string"}, "valid_from": {"type": "date"}, "binding": {"type": "boolean"},
               "area": {"type": "number"}, "count": {"type": "integer"}, "checked": {"type": "datetime"}}}
    collection, problems = parse(doc, "plans.yml")
    assert problems == []
    point = shapely.to_wkb(shapely.Point(480000.5, 5630000.25))
    columns = [[7, 8], [point, None], ["=SUMME(A1)", None], ["2024-01-31", None], [1, None], [2.5, None],
               [3, None], ["2026-12-01T14:19:04Z", None], ["06534014", "06534014"], ["plan", "plan"]]
    typed = record_batch(collection, columns, arrow_schema(collection, False), False, None).to_pylist()
    assert typed[0] == {"fid": 7, "name": "=SUMME(A1)", "valid_from": date(2024, 1, 31),
                        "binding": True, "area": 2.5, "count": 3,
                        "checked": datetime(2026, 12, 1, 14, 19, 4, tzinfo=UTC), "member": "06534014",
                        "dataset": "plan", "geometry": point}
    assert typed[1] == {**{k: None for k in typed[0]}, "fid": 8, "member": "06534014", "dataset": "plan"}
    text = record_batch(collection, columns, arrow_schema(collection, True), True, None)
    assert text.schema.field("count").type == pa.int64() and text.schema.field("binding").type == pa.string()
    assert text.to_pylist()[0] | {"geometry": None} == {
        "fid": 7, "name": "'=SUMME(A1)", "valid_from": "2024-01-31", "binding": "true", "area": 2.5, "count": 3,
        "checked": "2026-12-01T14:19:04Z", "member": "06534014", "dataset": "plan", "geometry": None}
