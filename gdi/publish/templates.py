"""pygeoapi's HTML templates, rewritten to load their libraries from /vendor/.

pygeoapi's stock templates pull Leaflet, Bootstrap, Swagger UI and friends from
unpkg/cdnjs/jsDelivr.  The GDI must work without internet and must not hand its
visitors to third-party CDNs, so at start-up we copy the installed templates and
static files, point every CDN reference we vendor at our own copy, and drop the
ones we don't (coverage/EDR/tiles/STAC/AsyncAPI/ReDoc helpers, html5shiv): those
pages are not used by this GDI.  What translation cannot fix in the pages (titles, "None",
the items table) is edited in the copies first (gdi/publish/template_edits.py).  The result goes into pygeoapi's config as
``server.templates: {path: <templates_dir>, static: <static_dir>}``.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import re
import shutil
from pathlib import Path

from gdi.assets import Package, load_packages, local_asset, vendor_url
from gdi.publish.template_edits import apply_edits, edits_key

OUR_CSS = Path(__file__).resolve().parent / "pygeoapi.css"     # our additions to pygeoapi's styles

# A whole <script src=...></script> or <link ... href=...> tag whose URL is external.
_EXTERNAL_TAG = re.compile(
    r"""<(?P<tag>script|link)\b(?P<attrs>[^>]*?)\b(?:src|href)\s*=\s*(?P<q>["'])(?P<url>(?:https?:)?//[^"']+)(?P=q)"""
    r"""(?P<rest>[^>]*)>(?:\s*</script>)?""",
    re.IGNORECASE,
)
# Subresource-integrity hashes belong to the CDN's file, not to our pinned copy.
_SRI = re.compile(r"""\s+(?:integrity|crossorigin)\s*=\s*(["'])[^"']*\1""", re.IGNORECASE)


def pygeoapi_dirs() -> tuple[Path, Path]:
    """The installed pygeoapi's templates and static directories (found without importing pygeoapi,
    which costs ~0.4 s: every upload publishes)."""
    root = Path(importlib.util.find_spec("pygeoapi").origin).resolve().parent
    return root / "templates", root / "static"


def rewrite_html(text: str, vendor_base: str, packages: dict[str, Package]) -> str:
    """Point vendored CDN references at vendor_base; remove the others."""

    def replace(m: re.Match[str]) -> str:
        found = local_asset(m["url"], packages)
        if found is None:
            return "{# gdi: external " + m["tag"].lower() + " removed (not vendored) #}"
        return _SRI.sub("", m[0].replace(m["url"], vendor_url(vendor_base, *found)))

    return _EXTERNAL_TAG.sub(replace, text)


def _disable_swagger_validator(text: str) -> str:
    """Swagger UI would otherwise load a badge image from validator.swagger.io."""
    return text.replace("dom_id: '#swagger-ui',", "dom_id: '#swagger-ui',\n        validatorUrl: null,", 1)


def external_references(text: str) -> list[str]:
    """The external URLs still loaded by <script>/<link> tags in text (should be none)."""
    return [m["url"] for m in _EXTERNAL_TAG.finditer(text)]


def build_pygeoapi_templates(dest: Path, vendor_url: str) -> tuple[Path, Path]:
    """Copy pygeoapi's templates/static to dest and make them CDN-free.

    vendor_url is the URL prefix under which viewer/vendor/ is served ("/vendor";
    a Jinja expression such as "{{ config['server']['url'] }}/vendor" also works,
    because the result is still a template).  Returns (templates_dir, static_dir).
    Rebuilt from scratch when pygeoapi, the asset URL or the vendored packages
    changed (a stamp file says for what it was built), else left as it is.
    """
    src_templates, src_static = pygeoapi_dirs()
    templates_dir, static_dir = dest / "templates", dest / "static"
    stamp = dest / "built-for"
    key = (f"pygeoapi {importlib.metadata.version('pygeoapi')} at {src_templates}; assets at {vendor_url}; "
           f"{_packages_key()}; edits {edits_key()}; css {hashlib.sha256(OUR_CSS.read_bytes()).hexdigest()[:16]}")
    if stamp.exists() and stamp.read_text(encoding="utf-8") == key and templates_dir.is_dir() and static_dir.is_dir():
        return templates_dir, static_dir      # built already: never rewritten under a running server
    stamp.unlink(missing_ok=True)             # an interrupted rebuild is never taken for a complete one
    for target, source in ((templates_dir, src_templates), (static_dir, src_static)):
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(source, target)
    apply_edits(templates_dir)
    shutil.copyfile(OUR_CSS, static_dir / "css" / "gdi.css")

    packages = load_packages()
    leftovers: dict[str, list[str]] = {}
    for page in sorted(templates_dir.rglob("*.html")):
        text = page.read_text(encoding="utf-8")
        new = rewrite_html(text, vendor_url, packages)
        if page.name == "swagger.html":
            new = _disable_swagger_validator(new)
        if new != text:
            page.write_text(new, encoding="utf-8")
        if external_references(new):
            leftovers[str(page.relative_to(templates_dir))] = external_references(new)
    if leftovers:
        raise RuntimeError(f"external script/link references left in pygeoapi templates: {leftovers}")
    stamp.write_text(key, encoding="utf-8")
    return templates_dir, static_dir


def _packages_key() -> str:
    """Which vendored packages (and versions) the rewritten references point at."""
    return ";".join(f"{name}={pkg.version}" for name, pkg in sorted(load_packages().items()))
