"""Where state lives and how the installation is configured.

All mutable state sits under ``GDI_HOME`` so that a test, a demo and a production
installation never share files by accident; configuration is read from ``config/``.
"""
from __future__ import annotations

import functools
import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

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


def is_postgres(url: str | None) -> bool:
    """Whether a store URL names PostgreSQL (PostGIS); with it the upload service's state and job
    queue live in the same database."""
    return bool(url) and url.startswith(("postgresql://", "postgres://"))


def store_read_url() -> str | None:
    """Where reads of the PostGIS store go: ``GDI_STORE_READ`` (a streaming replica of the primary
    ``GDI_STORE``), else the primary itself. Writes and the data-version check always go to the primary,
    which alone knows what is published; a replica answer older than that is never used
    (gdi.store.replica)."""
    return os.environ.get("GDI_STORE_READ") or store_url()


def collections_dirs() -> list[Path]:
    """The folders of collection definitions: ``GDI_COLLECTIONS`` (several joined by ``:``) or collections/."""
    given = os.environ.get("GDI_COLLECTIONS")
    if not given:
        return [REPO_ROOT / "collections"]
    return [Path(p) for p in given.split(os.pathsep) if p]


def config_file() -> Path:
    return Path(os.environ.get("GDI_CONFIG") or REPO_ROOT / "config" / "gdi.yml")


ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Region(_Section):
    name: str = "GDI"


class Server(_Section):
    url: str = "http://127.0.0.1:5000"      # public base URL; `gdi serve --port` adjusts the port when unchanged
    workers: int = Field(2, ge=1, le=64)
    threads: int = Field(2, ge=1, le=64)
    limit_default: int = Field(10, ge=1)
    limit_max: int = Field(10000, ge=1)
    html_columns: int = Field(5, ge=1, le=100)   # properties in the HTML items table besides the title field
    # Origins whose browser pages may read the API (CORS): ["*"] any, [] none, else exact origins.
    # Reads are public, so any is the default; the upload routes never answer cross-origin.
    cors_origins: list[str] = ["*"]
    # Reverse proxies (addresses or CIDR networks) whose X-Forwarded-Proto, -Host and -Prefix give the
    # public URL every link of an answer carries (gdi/server/public_url.py); from any other client
    # these headers are ignored, so nobody else can make the server link elsewhere.
    trusted_proxies: list[str] = ["127.0.0.1"]

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: list[str]) -> list[str]:
        """Each entry an IPv4/IPv6 address or network (``10.0.0.0/24``); a network with host bits set
        (``10.0.0.1/24``) is refused rather than silently widened or narrowed."""
        bad = []
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=True)
            except ValueError:
                bad.append(entry)
        if bad:
            raise ValueError(f"not an IP address or network (e.g. 127.0.0.1, 10.0.0.0/24, ::1): {', '.join(bad)}")
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        """An origin is what a browser sends in ``Origin:``: scheme, host and port, no path; a
        trailing slash or a path would never match, so it is refused here instead of silently."""
        if "*" in value and len(value) > 1:
            raise ValueError("'*' allows every origin; list either '*' alone or the origins")
        bad = [o for o in value if o != "*" and not ORIGIN.fullmatch(o)]
        if bad:
            raise ValueError(f"not an origin (scheme://host[:port], no path): {', '.join(bad)}")
        return value


class Ingest(_Section):
    territory_tolerance_m: float = Field(50, ge=0, le=10000)
    max_file_bytes: int = Field(500 * 2**20, ge=1)
    max_unpacked_bytes: int = Field(2**30, ge=1)
    max_zip_entries: int = Field(10000, ge=1)
    max_columns: int = Field(500, ge=1)
    max_features: int = Field(5_000_000, ge=1)
    max_nesting_depth: int = Field(32, ge=1, le=1000)
    max_line_bytes: int = Field(2**20, ge=1024)
    max_text_length: int = Field(2000, ge=1)       # text properties without their own max_length


class Uploads(_Section):
    max_bytes: int = Field(500 * 2**20, ge=1)
    max_parallel_jobs: int = Field(2, ge=1)
    per_member_jobs: int = Field(1, ge=1)
    max_queued_per_member: int = Field(5, ge=1)
    # PostGIS store: a job whose server stopped sending heartbeats this long ago is failed (or, not yet
    # started, queued again) by another server; heartbeats are sent three times within it
    stalled_after_seconds: float = Field(30, ge=3, le=3600)


class Downloads(_Section):
    # rows read from the store and written to the file at a time: a download's memory is bounded by this
    batch_features: int = Field(20_000, ge=100, le=1_000_000)
    # downloads written at once per worker process; one more is answered 503 with Retry-After, so the
    # worker's other threads keep answering the API
    per_worker: int = Field(1, ge=1, le=64)


class Viewer(_Section):
    basemap: Literal["osm", "basemap.de", "none"] = "osm"
    refresh_seconds: float = Field(2, gt=0)
    # A collection with more features than this is drawn from the server's vector tiles
    # (/collections/{id}/tiles/…?f=mvt) instead of being embedded in the page: the page and the
    # map build stay small however large the data (the territory is always embedded).
    tiles_above: int = Field(20_000, ge=0)
    # Features the supply analysis reads at a time from a tiled collection (positions and the analysis
    # field only): bounds the map build's memory however large the collection.
    analysis_batch: int = Field(50_000, ge=1)
    # On PostGIS one server builds the map at a time and the others install its build: how long one
    # waits for another's build before it keeps its last map (a dead builder's lock goes at once).
    build_wait_seconds: float = Field(600, gt=0)


class Contact(_Section):
    """Who answers for the data: the county's GIS office. One contact for pygeoapi's service metadata,
    the ISO records (point of contact, metadata contact, distributor) and the CSW capabilities."""

    organisation: str = "GIS-Team des Kreises"
    person: str = ""                          # a name or a function (GDI-DE: a function is better than a name)
    position: str = "GDI"
    role: Literal["pointOfContact", "custodian", "owner", "distributor", "publisher"] = "pointOfContact"
    email: str = ""
    phone: str = ""
    street: str = ""
    postcode: str = ""
    city: str = ""
    state: str = ""
    country: str = "Deutschland"
    url: str = ""                             # the office's web page; empty: the server's URL


class Catalogue(_Section):
    """The metadata catalogue: pycsw runs in an environment of its own (it pins an older OWSLib than ours)."""

    environment: str = ".venv-pycsw"          # pycsw's virtual environment, relative to the repository (make install)
    workers: int = Field(1, ge=1, le=16)      # pycsw's gunicorn workers (the catalogue is small)


class Masterportal(_Section):
    limit: int = Field(1000, ge=1)            # features per request of a Masterportal OAF layer (`gdi masterportal`)


class Settings(_Section):
    """config/gdi.yml, validated: the one place every setting and its default is declared.

    A misspelt key or a wrong type is an error at start-up naming the key, instead of a
    default silently taking its place.
    """

    region: Region = Region()
    server: Server = Server()
    ingest: Ingest = Ingest()
    uploads: Uploads = Uploads()
    downloads: Downloads = Downloads()
    viewer: Viewer = Viewer()
    contact: Contact = Contact()
    catalogue: Catalogue = Catalogue()
    masterportal: Masterportal = Masterportal()


class SettingsError(ValueError):
    pass


@functools.cache
def _load(path: str, mtime_ns: int) -> Settings:
    with open(path, encoding="utf-8") as fh:
        doc = yaml.safe_load(fh) or {}
    try:
        return Settings.model_validate(doc)
    except ValidationError as exc:
        lines = [f"{path}: {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise SettingsError("\n".join(lines)) from None


def get() -> Settings:
    """The installation's settings (GDI_CONFIG or config/gdi.yml), read again when the file changed."""
    path = config_file()
    return _load(str(path), path.stat().st_mtime_ns)


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
    def downloads(self) -> Path:
        """Where downloads are written before they are sent (removed once sent)."""
        return self.home / "downloads"

    @property
    def metadata(self) -> Path:
        """One ISO 19139 document per collection (``{id}.xml``), regenerated at each publish."""
        return self.publish / "metadata"

    @property
    def template_cache(self) -> Path:
        """pygeometa's Jinja templates, compiled once (gdi.publish.metadata.iso_text)."""
        return self.home / "cache" / "templates"

    @property
    def metadata_key(self) -> Path:
        """The hash of the ISO documents, written last: pycsw rebuilds its repository when it changes."""
        return self.publish / "metadata.key"

    @property
    def records(self) -> Path:
        """The OGC API Records of the catalogue (a TinyDB file pygeoapi's TinyDBCatalogue reads)."""
        return self.publish / "catalogue.json"

    @property
    def pycsw_config(self) -> Path:
        return self.publish / "pycsw.cfg"

    @property
    def pycsw_db(self) -> Path:
        return self.publish / "csw.db"

    @property
    def viewer(self) -> Path:
        return self.home / "viewer"

    @property
    def lock(self) -> Path:
        return self.home / "ingest.lock"


def paths() -> Paths:
    return Paths(gdi_home())
