"""Vendored front-end assets and the CDN-free pygeoapi templates.

The vendoring needs the npm registry the first time (`make install` does it);
after that everything here runs offline.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import jinja2
import pytest

from gdi.assets import (
    COMPLETE_MARKER,
    MANIFEST_NAME,
    load_packages,
    local_asset,
    repo_root,
    vendor_dir,
    vendor_path,
    vendor_url,
)
from gdi.publish.templates import build_pygeoapi_templates

SCRIPT = repo_root() / "scripts" / "vendor_assets.py"
# Any <script src> / <link href> to an absolute or protocol-relative URL.
EXTERNAL = re.compile(r"""<(script|link)\b[^>]*\b(src|href)\s*=\s*["']?(https?:)?//""", re.IGNORECASE)


@pytest.fixture(scope="session")
def vendored() -> Path:
    """viewer/vendor/, filled by the vendor script (a no-op when already complete)."""
    subprocess.run([sys.executable, str(SCRIPT)], check=True, capture_output=True, text=True)
    return vendor_dir()


def test_vendor_script_keeps_listed_files_and_licences(vendored: Path) -> None:
    assert (vendored / COMPLETE_MARKER).is_file()
    manifest = json.loads((vendored / MANIFEST_NAME).read_text(encoding="utf-8"))["packages"]
    for name, pkg in load_packages().items():
        record = manifest[name]
        assert record["version"] == pkg.version
        assert re.fullmatch(r"[0-9a-f]{64}", record["tarball_sha256"])
        assert (vendored / vendor_path(name, pkg.licence_file)).is_file(), f"{name}: licence missing"
        for entry in pkg.files:
            target = vendored / vendor_path(name, entry)
            if entry.endswith("/"):
                assert target.is_dir() and any(target.iterdir()), f"{name}/{entry} empty"
            else:
                assert target.is_file() and target.stat().st_size > 0, f"{name}/{entry} missing"
        # nothing but the listed files (and the licence) was extracted
        for file in record["files"]:
            assert pkg.provides(file), f"{name}: unexpected {file}"


def test_vendor_script_is_idempotent(vendored: Path) -> None:
    before = (vendored / MANIFEST_NAME).read_text(encoding="utf-8")
    run = subprocess.run([sys.executable, str(SCRIPT)], check=True, capture_output=True, text=True)
    assert "up to date" in run.stdout
    assert (vendored / MANIFEST_NAME).read_text(encoding="utf-8") == before
    check = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_key_files_present(vendored: Path) -> None:
    for package, file in [
        ("leaflet", "dist/leaflet.js"), ("leaflet", "dist/images/layers.png"),
        ("leaflet.markercluster", "dist/leaflet.markercluster.js"),
        ("bootstrap", "dist/css/bootstrap.min.css"), ("bootstrap", "dist/js/bootstrap.bundle.min.js"),
        ("jquery", "dist/jquery.min.js"),
        ("@fortawesome/fontawesome-free", "css/all.min.css"),
        ("@fortawesome/fontawesome-free", "webfonts/fa-solid-900.woff2"),
        ("swagger-ui-dist", "swagger-ui-bundle.js"),
        ("leaflet.fullscreen", "Control.FullScreen.js"),
        ("leaflet-search", "dist/leaflet-search.min.js"),
        ("leaflet.awesome-markers", "dist/leaflet.awesome-markers.js"),
    ]:
        assert (vendored / vendor_path(package, file)).is_file(), f"{package}/{file}"


def test_vendor_path_is_safe() -> None:
    assert vendor_path("leaflet", "dist/leaflet.js") == "leaflet/dist/leaflet.js"
    assert vendor_url("/vendor/", "@fortawesome/fontawesome-free", "css/all.min.css") == \
        "/vendor/@fortawesome/fontawesome-free/css/all.min.css"
    for package, file in [("leaflet", "../x"), ("leaflet", "/etc/passwd"), ("../x", "a"),
                          ("leaflet", "dist/../../x"), ("leaflet", "")]:
        with pytest.raises(ValueError):
            vendor_path(package, file)


def test_cdn_urls_map_to_vendored_copies() -> None:
    import folium
    from folium.plugins import Fullscreen, MarkerCluster, Search

    assert local_asset("https://unpkg.com/leaflet@1.3.1/dist/leaflet.js") == ("leaflet", "dist/leaflet.js")
    assert local_asset("https://cdnjs.cloudflare.com/ajax/libs/leaflet/1.3.1/leaflet.js") == \
        ("leaflet", "dist/leaflet.js")
    assert local_asset("https://cdnjs.cloudflare.com/ajax/libs/html5shiv/3.7.3/html5shiv.js") is None
    # folium's own defaults are all vendored, except two tiny stylesheets we do not need
    unvendored = {"glyphicons_css", "awesome_rotate_css"}
    for cls in (folium.Map, MarkerCluster, Fullscreen, Search):
        for name, url in cls.default_js + cls.default_css:
            assert (local_asset(url) is None) == (name in unvendored), url


def test_pygeoapi_templates_have_no_external_assets(vendored: Path, tmp_path: Path) -> None:
    templates, static = build_pygeoapi_templates(tmp_path / "pygeoapi", "/vendor")
    assert (templates / "_base.html").is_file() and (static / "css" / "default.css").is_file()
    env = jinja2.Environment(extensions=["jinja2.ext.i18n"])
    pages = sorted(templates.rglob("*.html"))
    assert len(pages) > 20
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert not EXTERNAL.search(text), f"{page.name}: {EXTERNAL.search(text)[0]}"
        env.parse(text)  # still a valid template
        for url in re.findall(r"""["'](/vendor/[^"']+)["']""", text):
            assert (vendored / url.removeprefix("/vendor/")).is_file(), f"{page.name}: {url} not vendored"
    base = (templates / "_base.html").read_text(encoding="utf-8")
    assert "/vendor/bootstrap/dist/css/bootstrap.min.css" in base
    swagger = (templates / "openapi" / "swagger.html").read_text(encoding="utf-8")
    assert "/vendor/swagger-ui-dist/swagger-ui-bundle.js" in swagger and "validatorUrl: null" in swagger
    items = (templates / "collections" / "items" / "index.html").read_text(encoding="utf-8")
    assert "/vendor/leaflet/dist/leaflet.js" in items
    assert "/vendor/leaflet.markercluster/dist/leaflet.markercluster-src.js" in items
    # a second build replaces the first cleanly
    assert build_pygeoapi_templates(tmp_path / "pygeoapi", "/vendor") == (templates, static)


def test_assets_md_lists_every_package() -> None:
    table = (repo_root() / "viewer" / "ASSETS.md").read_text(encoding="utf-8")
    for name, pkg in load_packages().items():
        assert f"[{name}]" in table and f"| {pkg.version} |" in table, f"ASSETS.md: {name} {pkg.version}"
