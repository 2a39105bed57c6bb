"""Hostile and broken uploads: each is refused with one clear line and changes nothing."""
from __future__ import annotations

import zipfile
from pathlib import Path

import pyogrio
import pytest
import yaml

from conftest import REPO, ingest_boundaries, run_gdi, store_text
from fixtures import farmshops_of, supply_frame_german, zipped_shapefile

MB = "vg250ew_gemeinden_marburg-biedenkopf.geojson"
PASSWD_MARK = "root:x:0:0"


@pytest.fixture
def boundaries(gdi_home, request):
    ingest_boundaries(request, gdi_home, "--dataset", "vg250ew")
    return gdi_home


@pytest.fixture
def scratch_tmp(tmp_path, monkeypatch) -> Path:
    """TMPDIR of the gdi process, so we can see everything it unpacks."""
    d = tmp_path / "proc-tmp"
    d.mkdir()
    monkeypatch.setenv("TMPDIR", str(d))
    return d


@pytest.fixture
def small_limits(tmp_path, monkeypatch) -> Path:
    cfg = yaml.safe_load((REPO / "config" / "gdi.yml").read_text(encoding="utf-8"))
    cfg["ingest"]["max_unpacked_bytes"] = 1_000_000
    cfg["ingest"]["max_file_bytes"] = 100_000
    path = tmp_path / "gdi.yml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("GDI_CONFIG", str(path))
    return path


def refused(home: Path, path: Path, *extra: str, collection: str = "supply_points") -> str:
    before = store_text()
    proc = run_gdi("ingest", str(path), "--collection", collection, "--member", "06534", *extra, home=home)
    assert proc.returncode != 0, proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gdi: refused: "), proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in lines[0]
    assert store_text() == before
    assert not (home / "originals").exists() or not any((home / "originals").rglob(path.name + "*"))
    return lines[0]


def all_text_under(root: Path) -> str:
    out = []
    for f in root.rglob("*"):
        if f.is_file():
            out.append(f.read_bytes().decode("utf-8", errors="replace"))
    return "\n".join(out)


def shops_geojson(real_data: Path) -> bytes:
    shops = farmshops_of(real_data, "06534")[["name", "farmshops_category", "ags", "geometry"]]
    return shops.to_json().encode("utf-8")


def test_empty_file(boundaries, tmp_path):
    path = tmp_path / "leer.geojson"
    path.write_bytes(b"")
    line = refused(boundaries, path)
    assert "leer.geojson is empty (0 bytes)" in line


def test_truncated_geopackage(boundaries, real_data, tmp_path):
    full = tmp_path / "full.gpkg"
    pyogrio.write_dataframe(supply_frame_german(farmshops_of(real_data, "06534")), full, layer="shops")
    data = full.read_bytes()
    path = tmp_path / "abgeschnitten.gpkg"
    path.write_bytes(data[: len(data) // 3])
    line = refused(boundaries, path)
    assert "abgeschnitten.gpkg" in line and "could not be read" in line


def test_truncated_zip(boundaries, real_data, tmp_path):
    full = zipped_shapefile(supply_frame_german(farmshops_of(real_data, "06534")), tmp_path / "full.zip", epsg=25832)
    data = full.read_bytes()
    path = tmp_path / "abgeschnitten.zip"
    path.write_bytes(data[: len(data) // 2])
    line = refused(boundaries, path)
    assert "damaged or truncated" in line


def test_unsupported_docx(boundaries, tmp_path):
    path = tmp_path / "protokoll.docx"
    path.write_bytes(b"Dies ist kein Geodatensatz, sondern ein Sitzungsprotokoll.\n" * 20)
    line = refused(boundaries, path)
    assert "unsupported format '.docx'" in line


def test_nonsense_txt(boundaries, tmp_path):
    path = tmp_path / "notizen.txt"
    path.write_text("Hofladen Müller hat dienstags geöffnet\nbitte Karte aktualisieren\n", encoding="utf-8")
    line = refused(boundaries, path)
    assert "notizen.txt" in line and "no column separator" in line


def test_zip_slip_parent_entry(boundaries, real_data, tmp_path, scratch_tmp):
    path = tmp_path / "slip.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ok.geojson", shops_geojson(real_data))
        zf.writestr("../evil.geojson", shops_geojson(real_data))
    line = refused(boundaries, path)
    assert "'../evil.geojson' points outside the upload folder" in line
    assert not list(tmp_path.rglob("evil.geojson"))
    assert not list(boundaries.rglob("evil.geojson"))
    assert not (Path("/tmp") / "evil.geojson").exists()
    assert not any(scratch_tmp.iterdir()), "the extraction folder must be removed"


def test_zip_absolute_entry(boundaries, real_data, tmp_path, scratch_tmp):
    target = tmp_path / "abs-evil.geojson"
    path = tmp_path / "absolute.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(zipfile.ZipInfo(str(target)), shops_geojson(real_data))
    assert zipfile.ZipFile(path).namelist() == [str(target)]
    line = refused(boundaries, path)
    assert "points outside the upload folder" in line
    assert not target.exists()
    assert not list(tmp_path.rglob("abs-evil.geojson"))
    assert not any(scratch_tmp.iterdir())


def test_zip_bomb(boundaries, tmp_path, small_limits, scratch_tmp):
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("daten.geojson", b"\0" * (5 * 2**20))
    assert path.stat().st_size < 100_000      # small on the wire, below max_file_bytes
    line = refused(boundaries, path)
    assert "more than the limit of 1,000,000 bytes" in line
    assert not any(scratch_tmp.iterdir())


def _lie_about_size(path: Path, name: str, fake: int) -> None:
    """Patch the uncompressed size of entry ``name`` in the local header and the central directory."""
    import struct
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(name)
    real = info.file_size
    # local header: uncompressed size at offset 22
    lh = info.header_offset
    assert struct.unpack_from("<I", data, lh + 22)[0] == real
    struct.pack_into("<I", data, lh + 22, fake)
    # central directory entry: uncompressed size at offset 24
    cd = data.rfind(b"PK\x01\x02")
    assert struct.unpack_from("<I", data, cd + 24)[0] == real
    struct.pack_into("<I", data, cd + 24, fake)
    path.write_bytes(bytes(data))


def test_zip_whose_declared_size_lies(boundaries, tmp_path, small_limits, scratch_tmp):
    path = tmp_path / "liar.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("daten.geojson", b"\0" * (5 * 2**20))
    _lie_about_size(path, "daten.geojson", 1000)
    assert zipfile.ZipFile(path).getinfo("daten.geojson").file_size == 1000
    line = refused(boundaries, path)
    assert "zip" in line and ("damaged" in line or "limit" in line)
    assert not any(scratch_tmp.iterdir())


XXE_KML = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE kml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<kml xmlns="http://www.opengis.net/kml/2.2"><Document>
<Placemark><name>&xxe;</name><description>Hofladen</description>
<Point><coordinates>8.7708,50.8021</coordinates></Point></Placemark>
</Document></kml>
"""


@pytest.mark.parametrize("kind", ["kml", "kmz"])
def test_kml_with_external_entity(boundaries, tmp_path, kind):
    assert PASSWD_MARK in Path("/etc/passwd").read_text()
    kml = tmp_path / "xxe.kml"
    kml.write_text(XXE_KML, encoding="utf-8")
    path = kml
    if kind == "kmz":
        path = tmp_path / "xxe.kmz"
        with zipfile.ZipFile(path, "w") as zf:
            zf.write(kml, "doc.kml")
    report = tmp_path / "report.json"
    line = refused(boundaries, path, "--report", str(report))
    assert "DTD or entities is not accepted" in line
    assert PASSWD_MARK not in line
    assert PASSWD_MARK not in all_text_under(boundaries)
    assert PASSWD_MARK not in store_text()
    assert PASSWD_MARK not in report.read_text(encoding="utf-8")


def test_csv_without_coordinates(boundaries, real_data, tmp_path):
    shops = farmshops_of(real_data, "06534")
    path = tmp_path / "adressen.csv"
    supply_frame_german(shops).drop(columns="geometry").to_csv(path, sep=";", index=False)
    line = refused(boundaries, path)
    assert "adressen.csv: no usable coordinates" in line
    assert "BEZEICHNUNG" in line


def test_file_larger_than_limit(boundaries, real_data, tmp_path, small_limits):
    path = tmp_path / "gross.geojson"
    path.write_bytes((real_data / "poi" / "farmshops_marburg-biedenkopf_hoexter_umland.geojson").read_bytes())
    size = path.stat().st_size
    assert size > 100_000
    line = refused(boundaries, path)
    assert f"gross.geojson is {size:,} bytes, more than the limit of 100,000 bytes" in line


def test_unknown_encoding_option(boundaries, real_data, tmp_path):
    path = tmp_path / "shops.geojson"
    path.write_bytes(shops_geojson(real_data))
    line = refused(boundaries, path, "--encoding", "klingonisch")
    assert "unknown text encoding 'klingonisch'" in line


def test_zip_entry_clashing_file_and_folder(boundaries, real_data, tmp_path):
    path = tmp_path / "clash.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("daten", b"eine Datei")
        zf.writestr("daten/shops.geojson", shops_geojson(real_data))
    line = refused(boundaries, path)
    assert "'daten/shops.geojson' is damaged" in line


def test_zip_symlink_entry(boundaries, tmp_path):
    path = tmp_path / "link.zip"
    with zipfile.ZipFile(path, "w") as zf:
        info = zipfile.ZipInfo("shops.geojson")
        info.external_attr = 0o120777 << 16
        zf.writestr(info, "/etc/passwd")
    line = refused(boundaries, path)
    assert "'shops.geojson' is a symbolic link" in line
    assert PASSWD_MARK not in all_text_under(boundaries)
    assert PASSWD_MARK not in store_text()


def test_kml_with_internal_entity_expansion(boundaries, tmp_path):
    """Billion laughs: entities of entities; refused before anything expands them."""
    lol = "".join(f'<!ENTITY l{i} "{"&l%d;" % (i - 1) * 10}">' for i in range(1, 10))
    path = tmp_path / "lol.kml"
    path.write_text(f'<?xml version="1.0"?><!DOCTYPE kml [<!ENTITY l0 "lol">{lol}]>'
                    '<kml xmlns="http://www.opengis.net/kml/2.2"><Document><Placemark><name>&l9;</name>'
                    '<Point><coordinates>8.77,50.80</coordinates></Point></Placemark></Document></kml>',
                    encoding="utf-8")
    line = refused(boundaries, path)
    assert "DTD or entities is not accepted" in line


def test_csv_in_undetectable_encoding_asks_for_encoding(boundaries, tmp_path):
    """CP850 'ü' is 0x81, undefined in Windows-1252: refused with a hint, not a traceback."""
    path = tmp_path / "dos.csv"
    path.write_bytes("Bezeichnung;Kategorie;lon;lat\nHofladen Müller;Hofladen;8.77;50.80\n".encode("cp850"))
    line = refused(boundaries, path)
    assert "dos.csv: the text is neither UTF-8 nor Windows-1252" in line
    assert "--encoding" in line


@pytest.mark.parametrize("crs,message", [("EPSG:999999", "unknown CRS 'EPSG:999999'"), ("Gauß-Krüger", "unknown CRS")])
def test_unknown_crs_option(boundaries, real_data, tmp_path, crs, message):
    path = tmp_path / "shops.geojson"
    path.write_bytes(shops_geojson(real_data))
    line = refused(boundaries, path, "--crs", crs)
    assert message in line


@pytest.mark.parametrize("name", ["..", ".", "..."])
@pytest.mark.parametrize("dry_run", [False, True])
def test_dataset_names_of_dots_never_leave_the_members_folder(boundaries, real_data, tmp_path, name, dry_run):
    path = tmp_path / "shops.geojson"
    path.write_bytes(shops_geojson(real_data))
    line = refused(boundaries, path, "--dataset", name, *(["--dry-run"] if dry_run else []))
    assert line == (f"gdi: refused: dataset name '{name}' refused: 1 to 100 letters, digits, '.', '_' or '-', "
                    "not only dots")
    assert not (boundaries / "originals" / "supply_points").exists()


def test_a_long_dataset_name_is_refused_and_echoed_in_part(boundaries, real_data, tmp_path):
    path = tmp_path / "shops.geojson"
    path.write_bytes(shops_geojson(real_data))
    line = refused(boundaries, path, "--dataset", "x" * 500)
    assert f"dataset name '{'x' * 40}… (500)' refused: 1 to 100 letters" in line and "x" * 41 not in line


def test_umlauts_in_a_dataset_name_are_welcome(boundaries, real_data, tmp_path):
    path = tmp_path / "Hofläden.geojson"
    path.write_bytes(shops_geojson(real_data))
    run_gdi("ingest", str(path), "--collection", "supply_points", "--member", "06534", home=boundaries, check=True)
    assert "Hofläden" in run_gdi("datasets", home=boundaries, check=True).stdout


@pytest.mark.parametrize("kind", ["directory", "device", "fifo"])
def test_only_regular_files_are_read(boundaries, tmp_path, kind):
    """`gdi ingest /etc` printed a traceback and `gdi ingest /dev/zero` never ended."""
    import os

    path = {"directory": Path("/etc"), "device": Path("/dev/zero"), "fifo": tmp_path / "rohr"}[kind]
    if kind == "fifo":
        os.mkfifo(path)
    line = refused(boundaries, path)
    assert line == f"gdi: refused: not a regular file (a directory, device or pipe): {path}"


@pytest.mark.parametrize("args,message", [
    (["history", "--dataset", ".."], "dataset name '..' refused"),
    (["rollback", "--dataset", ".."], "dataset name '..' refused"),
    (["rollback", "--dataset", "vg250ew", "--to", "99999999999999999999"], "'to' must be a version number from 1 to"),
    (["rollback", "--dataset", "vg250ew", "--to", "0"], "'to' must be a version number from 1 to 2147483647"),
])
def test_history_and_rollback_refuse_bad_names_and_versions(boundaries, args, message):
    before = store_text()
    admin = ["--admin"] if args[0] == "rollback" else []     # the territory is the county's to roll back
    proc = run_gdi(*args, "--collection", "municipalities", "--member", "06534", *admin, home=boundaries)
    assert proc.returncode != 0 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert store_text() == before
