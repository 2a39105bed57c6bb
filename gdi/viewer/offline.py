"""Keep the map's HTML free of CDNs: local asset links, optional inlining, a final check.

folium and its plugins declare their JavaScript/CSS as CDN URLs (class
attributes default_js/default_css).  The GDI must work offline and must not
send planners' browsers to third parties, so every such declaration is replaced
on the instance by the copy in viewer/vendor/ (see viewer/assets.yml).  With
inlining, the files' contents (and the fonts/images their CSS refers to, as
data: URIs) go into the page itself, so one HTML file works from an e-mail.
"""
from __future__ import annotations

import base64
import mimetypes
import posixpath
import re
from pathlib import Path
from urllib.parse import urlsplit

from branca.element import Element
from folium.elements import JSCSSMixin

from gdi.assets import local_asset, vendor_dir, vendor_url

Links = list[tuple[str, str]]

# Assets the planners' map needs, as (folium link name, package, file).  The names
# match folium's own, so folium's header de-duplication keeps one link each.
LEAFLET_JS = [("leaflet", "leaflet", "dist/leaflet.js")]
LEAFLET_CSS = [
    ("leaflet_css", "leaflet", "dist/leaflet.css"),
    ("fontawesome_css", "@fortawesome/fontawesome-free", "css/fontawesome.min.css"),
    ("fontawesome_solid_css", "@fortawesome/fontawesome-free", "css/solid.min.css"),
]
CLUSTER_JS = [("markerclusterjs", "leaflet.markercluster", "dist/leaflet.markercluster.js")]
CLUSTER_CSS = [
    ("markerclustercss", "leaflet.markercluster", "dist/MarkerCluster.css"),
    ("markerclusterdefaultcss", "leaflet.markercluster", "dist/MarkerCluster.Default.css"),
]
FULLSCREEN_JS = [("Control.Fullscreen.js", "leaflet.fullscreen", "Control.FullScreen.js")]
FULLSCREEN_CSS = [("Control.FullScreen.css", "leaflet.fullscreen", "Control.FullScreen.css")]
SEARCH_JS = [("Leaflet.Search.js", "leaflet-search", "dist/leaflet-search.min.js")]
SEARCH_CSS = [("Leaflet.Search.css", "leaflet-search", "dist/leaflet-search.min.css")]


def links(base: str, assets: list[tuple[str, str, str]]) -> Links:
    """(name, url) pairs for folium's default_js/default_css, below base."""
    return [(name, vendor_url(base, package, file)) for name, package, file in assets]


def set_assets(element: JSCSSMixin, base: str, js: list[tuple[str, str, str]],
               css: list[tuple[str, str, str]]) -> None:
    """Replace an element's CDN links by local ones (on the instance only)."""
    element.default_js = links(base, js)
    element.default_css = links(base, css)


def localise_tree(root: Element, base: str) -> None:
    """Safety net for elements not configured by set_assets: map each CDN link to
    its vendored copy, drop what is not vendored (e.g. glyphicons)."""
    stack = [root]
    while stack:
        element = stack.pop()
        if isinstance(element, JSCSSMixin):
            for attr in ("default_js", "default_css"):
                local: Links = []
                for name, url in getattr(element, attr):
                    if url.startswith(base.rstrip("/") + "/"):
                        local.append((name, url))
                    elif (found := local_asset(url)) is not None:
                        local.append((name, vendor_url(base, *found)))
                setattr(element, attr, local)
        stack.extend(element._children.values())


# ---- inlining ---------------------------------------------------------------------

_SCRIPT_TAG = re.compile(r"""<script src=(["'])(?P<url>[^"']+)\1></script>""")
_CSS_TAG = re.compile(r"""<link rel=(["'])stylesheet\1 href=(["'])(?P<url>[^"']+)\2\s*/?>""")
_CSS_URL = re.compile(r"""url\(\s*(["']?)(?P<ref>[^"')]+)\1\s*\)""")
_TTF_FALLBACK = re.compile(r""",\s*url\([^)]*\.ttf\)\s*format\(["']truetype["']\)""")
_SOURCE_MAP = re.compile(r"""^\s*(?://|/\*)# sourceMappingURL=.*$""", re.MULTILINE)
_FONT_TYPES = {".woff2": "font/woff2", ".woff": "font/woff", ".ttf": "font/ttf", ".svg": "image/svg+xml"}


def _local_file(url: str, base: str, root: Path) -> Path:
    prefix = base.rstrip("/") + "/"
    if not url.startswith(prefix):
        raise ValueError(f"not a vendored asset (expected below {prefix}): {url}")
    path = (root / url[len(prefix):]).resolve()
    if root.resolve() not in path.parents or not path.is_file():
        raise FileNotFoundError(f"{url}: {path} missing; run scripts/vendor_assets.py")
    return path


def data_uri(path: Path) -> str:
    """A file as data: URI (images and fonts referenced from CSS)."""
    mime = _FONT_TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def inline_css(css: str, css_path: Path, root: Path) -> str:
    """CSS with its relative url(...) references replaced by data: URIs.

    TrueType fallbacks next to WOFF2 are dropped: every browser that runs
    Leaflet 1.9 reads WOFF2, and they would double the size of the page.
    """
    css = _TTF_FALLBACK.sub("", _SOURCE_MAP.sub("", css))

    def replace(m: re.Match[str]) -> str:
        ref = m["ref"].strip()
        if ref.startswith(("data:", "#")) or urlsplit(ref).scheme:
            return m[0]
        target = (css_path.parent / urlsplit(ref).path).resolve()
        if root.resolve() not in target.parents or not target.is_file():
            raise FileNotFoundError(f"{css_path.name} refers to {ref}, not vendored")
        return f'url("{data_uri(target)}")'

    css = _CSS_URL.sub(replace, css)
    if re.search(r"</style", css, re.IGNORECASE):
        raise ValueError(f"{css_path} contains </style")
    return css


def inline_assets(html: str, base: str, root: Path | None = None) -> str:
    """Replace every <script src>/<link rel=stylesheet> below base by inline code."""
    root = root or vendor_dir()

    def script(m: re.Match[str]) -> str:
        js = _SOURCE_MAP.sub("", _local_file(m["url"], base, root).read_text(encoding="utf-8"))
        js = re.sub(r"</(script)", r"<\\/\1", js, flags=re.IGNORECASE)
        return f"<script>/* {posixpath.basename(m['url'])} */\n{js}\n</script>"

    def style(m: re.Match[str]) -> str:
        path = _local_file(m["url"], base, root)
        return f"<style>/* {path.name} */\n{inline_css(path.read_text(encoding='utf-8'), path, root)}\n</style>"

    # Functions as replacements: the file contents must not be read as regex templates.
    return _CSS_TAG.sub(style, _SCRIPT_TAG.sub(script, html))


# ---- the final check --------------------------------------------------------------

_LOADING_TAG = re.compile(
    r"""<(?:script|link|img|iframe|source)\b[^>]*?\b(?:src|href)\s*=\s*["']?(?P<url>[^"'\s>]+)""",
    re.IGNORECASE,
)
_ELEMENT_BODY = re.compile(r"(<(script|style)\b[^>]*>).*?(</\2\s*>)", re.IGNORECASE | re.DOTALL)


def _tags_only(html: str) -> str:
    """The page without the contents of <script>/<style> elements (code and data
    may mention URLs; only the tags decide what the browser loads)."""
    return _ELEMENT_BODY.sub(lambda m: m[1] + m[3], html)


def external_loads(html: str, own_host: str | None = None) -> list[str]:
    """URLs on other hosts that script/link/img tags of the page would load."""
    found = []
    for m in _LOADING_TAG.finditer(_tags_only(html)):
        url = m["url"]
        parts = urlsplit(url)
        if (parts.scheme in ("http", "https") or url.startswith("//")) and parts.hostname != own_host:
            found.append(url)
    return found


def assert_offline(html: str, asset_url: str, inline: bool) -> None:
    """Fail the build if the page would load anything from another host (or, when
    inlined, from anywhere at all)."""
    own_host = urlsplit(asset_url).hostname
    external = external_loads(html, own_host)
    if external:
        raise AssertionError(f"map HTML loads from other hosts: {external}")
    if inline:
        leftover = [m["url"] for m in _LOADING_TAG.finditer(_tags_only(html)) if not m["url"].startswith("data:")]
        if leftover:
            raise AssertionError(f"inlined map HTML still refers to files: {leftover}")
