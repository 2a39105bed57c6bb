"""config/gdi.yml is validated once, in one model: a typo is an error naming the key, never a silent default."""
from __future__ import annotations

from pathlib import Path

import pytest

from gdi import settings

REPO = Path(__file__).resolve().parent.parent


def test_the_shipped_configuration_is_valid_and_read_as_written():
    s = settings.get()
    assert (s.server.workers, s.server.threads, s.uploads.max_queued_per_member) == (2, 2, 5)
    assert s.ingest.territory_tolerance_m == 50.0 and s.viewer.basemap == "osm"
    assert s.server.cors_origins == ["*"]
    assert s.server.trusted_proxies == ["127.0.0.1"] == settings.Server().trusted_proxies


@pytest.mark.parametrize("text,problem", [
    ("server:\n  thread: 4\n", "server.thread: Extra inputs are not permitted"),
    ("server:\n  workers: many\n", "server.workers: Input should be a valid integer, unable to parse string as an integer"),
    ("viewer:\n  basemap: google\n", "viewer.basemap: Input should be 'osm', 'basemap.de' or 'none'"),
    ("ingest:\n  territory_tolerance_m: -5\n", "ingest.territory_tolerance_m: Input should be greater than or equal to 0"),
    ("server:\n  cors_origins: [https://geoportal.example.de/]\n",
     "server.cors_origins: Value error, not an origin (scheme://host[:port], no path): https://geoportal.example.de/"),
    ("server:\n  cors_origins: ['*', https://geoportal.example.de]\n",
     "server.cors_origins: Value error, '*' allows every origin; list either '*' alone or the origins"),
    ("server:\n  trusted_proxies: [10.0.0.1/24, nginx.example.de, '::1', 10.0.0.0/24]\n",
     "server.trusted_proxies: Value error, not an IP address or network (e.g. 127.0.0.1, 10.0.0.0/24, ::1): "
     "10.0.0.1/24, nginx.example.de"),
])
def test_a_wrong_setting_is_named(tmp_path, monkeypatch, text, problem):
    path = tmp_path / "gdi.yml"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("GDI_CONFIG", str(path))
    with pytest.raises(settings.SettingsError) as err:
        settings.get()
    assert str(err.value) == f"{path}: {problem}"


def test_no_module_carries_a_default_of_its_own():
    offenders = [f"{p.relative_to(REPO)}" for p in (REPO / "gdi").rglob("*.py")
                 if "settings.setting(" in p.read_text(encoding="utf-8")]
    assert offenders == []
