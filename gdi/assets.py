"""Where the vendored front-end libraries live and how they are addressed.

The GDI never loads JavaScript or CSS from a CDN: viewer/assets.yml lists the
npm packages, scripts/vendor_assets.py copies them to viewer/vendor/, and the
server publishes that directory at /vendor/.  Everything that writes a URL to
one of those files (pygeoapi's templates, the planners' map) goes through
vendor_path()/vendor_url() here, so the layout is decided in one place.
"""
from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

#: Written last by scripts/vendor_assets.py; its presence means the copy is whole.
COMPLETE_MARKER = ".complete"
MANIFEST_NAME = "MANIFEST.json"
_NPM_NAME = re.compile(r"(@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]*")


def repo_root() -> Path:
    """The checkout root: the parent of the gdi package directory."""
    return Path(__file__).resolve().parent.parent


def vendor_dir() -> Path:
    """viewer/vendor/ in the checkout, where the vendored files are extracted."""
    return repo_root() / "viewer" / "vendor"


def assets_file() -> Path:
    """viewer/assets.yml, the list of packages to vendor."""
    return repo_root() / "viewer" / "assets.yml"


def vendor_path(package: str, file: str) -> str:
    """The path of a vendored file below the vendor root: "<package>/<file>".

    Pure (no file system access).  Rejects anything that could climb out of the
    vendor directory, because these paths end up both on disk and in URLs.
    """
    if not _NPM_NAME.fullmatch(package):
        raise ValueError(f"not an npm package name: {package!r}")
    norm = posixpath.normpath(file) if file else ""
    if not norm or norm == "." or norm.startswith("/") or "\\" in norm or ".." in norm.split("/"):
        raise ValueError(f"unsafe vendor path: {package!r} {file!r}")
    return f"{package}/{norm}"


def vendor_url(base: str, package: str, file: str) -> str:
    """The URL of a vendored file, e.g. vendor_url("/vendor", "leaflet", "dist/leaflet.js")."""
    return f"{base.rstrip('/')}/{vendor_path(package, file)}"


@dataclass(frozen=True)
class Package:
    """One entry of viewer/assets.yml."""

    name: str
    version: str
    licence: str
    licence_file: str
    files: tuple[str, ...]
    used_by: tuple[str, ...] = ()

    @property
    def spec(self) -> str:
        """The argument for `npm pack`."""
        return f"{self.name}@{self.version}"

    def provides(self, file: str) -> bool:
        """Whether `file` (relative to the package root) is kept by the vendoring."""
        file = posixpath.normpath(file)
        for entry in self.files + (self.licence_file,):
            if entry.endswith("/") and file.startswith(entry):
                return True
            if file == entry:
                return True
        return False


def load_packages(path: Path | None = None) -> dict[str, Package]:
    """Read and validate assets.yml; keyed by npm package name."""
    raw: dict[str, Any] = yaml.safe_load((path or assets_file()).read_text(encoding="utf-8"))
    packages: dict[str, Package] = {}
    for name, entry in (raw.get("packages") or {}).items():
        version = str(entry["version"])
        if not version[:1].isdigit() or any(c in version for c in "^~*<> |"):
            raise ValueError(f"{name}: version must be exact, got {version!r}")
        files = tuple(str(f) for f in entry["files"])
        for f in files + (str(entry["licence_file"]),):
            vendor_path(name, f)  # validates
        packages[name] = Package(
            name=name,
            version=version,
            licence=str(entry["licence"]),
            licence_file=str(entry["licence_file"]),
            files=files,
            used_by=tuple(entry.get("used_by") or ()),
        )
    return packages


def vendor_complete(root: Path | None = None) -> bool:
    """Whether scripts/vendor_assets.py finished writing `root` (default vendor_dir())."""
    return ((root or vendor_dir()) / COMPLETE_MARKER).is_file()


# CDN layouts seen in pygeoapi's templates and folium's defaults.  npm-mirroring
# CDNs (unpkg, jsDelivr /npm/) use the package's own paths; cdnjs and a few others
# use their own names and flat paths, hence the explicit table.
_NPM_CDNS = {"unpkg.com": "/", "cdn.jsdelivr.net": "/npm/"}
_OTHER_CDNS: dict[tuple[str, str], tuple[str, str]] = {
    # (host, path regex) -> (package, file template; {file} is the URL's last segment)
    ("cdnjs.cloudflare.com", r"/ajax/libs/leaflet/[^/]+/(?P<file>[^/]+)"): ("leaflet", "dist/{file}"),
    ("cdnjs.cloudflare.com", r"/ajax/libs/leaflet\.markercluster/[^/]+/(?P<file>[^/]+)"):
        ("leaflet.markercluster", "dist/{file}"),
    ("cdnjs.cloudflare.com", r"/ajax/libs/Leaflet\.awesome-markers/[^/]+/(?P<file>[^/]+)"):
        ("leaflet.awesome-markers", "dist/{file}"),
    ("cdnjs.cloudflare.com", r"/ajax/libs/jquery/[^/]+/(?P<file>[^/]+)"): ("jquery", "dist/{file}"),
    ("code.jquery.com", r"/jquery-[0-9.]+(?P<min>\.min)?\.js"): ("jquery", "dist/jquery{min}.js"),
}


def _npm_cdn_parts(host: str, path: str) -> tuple[str, str] | None:
    """Split an unpkg/jsDelivr-npm path into (package, file), dropping the version."""
    prefix = _NPM_CDNS.get(host)
    if prefix is None or not path.startswith(prefix):
        return None
    segments = path[len(prefix):].split("/")
    count = 2 if segments[0].startswith("@") else 1
    if len(segments) <= count:
        return None
    head = "/".join(segments[:count])  # "leaflet@1.9.3", "@scope/name@1.0"
    name = head[: head.index("@", 1)] if "@" in head[1:] else head
    return name, "/".join(segments[count:])


def local_asset(url: str, packages: dict[str, Package] | None = None) -> tuple[str, str] | None:
    """Map a CDN URL to the vendored (package, file) that serves the same library.

    Returns None when the library is not vendored; the caller then drops the
    reference rather than fall back to the CDN.  The version in the URL is
    ignored on purpose: the pinned version of assets.yml is what we ship.
    A ".min" difference is tolerated (e.g. Control.FullScreen.min.js -> .js).
    """
    packages = load_packages() if packages is None else packages
    parts = urlsplit(url if "://" in url else "https:" + url)
    host, path = parts.hostname or "", parts.path
    found = _npm_cdn_parts(host, path)
    if found is None:
        for (cdn_host, pattern), (package, template) in _OTHER_CDNS.items():
            m = re.fullmatch(pattern, path) if host == cdn_host else None
            if m:
                groups = {k: v or "" for k, v in m.groupdict().items()}
                found = (package, template.format(**groups))
                break
    if found is None or found[0] not in packages:
        return None
    package, file = found
    pkg = packages[package]
    for candidate in (file, file.replace(".min.", "."), re.sub(r"\.(js|css)$", r".min.\1", file)):
        if pkg.provides(candidate):
            return package, candidate
    return None
