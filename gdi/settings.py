"""Where state lives and how the installation is configured.

All mutable state sits under ``GDI_HOME`` so that a test, a demo and a production
installation never share files by accident; configuration is read from ``config/``.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent


def repo_root() -> Path:
    return REPO_ROOT


def gdi_home() -> Path:
    home = Path(os.environ.get("GDI_HOME") or REPO_ROOT / "var").resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


def store_url() -> str | None:
    """``None`` means the embedded GeoPackage store in ``GDI_HOME``."""
    return os.environ.get("GDI_STORE") or None


def collections_dir() -> Path:
    return Path(os.environ.get("GDI_COLLECTIONS") or REPO_ROOT / "collections")


def config_file() -> Path:
    return Path(os.environ.get("GDI_CONFIG") or REPO_ROOT / "config" / "gdi.yml")


@functools.cache
def _load_config(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh) or {}


def config() -> dict[str, Any]:
    return _load_config(str(config_file()))


def setting(dotted: str, default: Any = None) -> Any:
    node: Any = config()
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


@dataclass(frozen=True)
class Paths:
    """The layout of ``GDI_HOME``; one place so nothing guesses file names."""

    home: Path

    @property
    def store(self) -> Path:
        return self.home / "store.gpkg"

    @property
    def originals(self) -> Path:
        return self.home / "originals"

    @property
    def reports(self) -> Path:
        return self.home / "reports"

    @property
    def publish(self) -> Path:
        return self.home / "publish"

    @property
    def pygeoapi_config(self) -> Path:
        return self.publish / "pygeoapi-config.yml"

    @property
    def openapi(self) -> Path:
        return self.publish / "openapi.yml"

    @property
    def viewer(self) -> Path:
        return self.home / "viewer"

    @property
    def lock(self) -> Path:
        return self.home / "ingest.lock"


def paths() -> Paths:
    return Paths(gdi_home())
