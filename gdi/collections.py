"""Collection definitions: one declarative YAML per published collection.

Adding a collection must be a YAML file and nothing else, so everything the
ingest, store, publisher and viewer need to know about a collection is here.
"""
from __future__ import annotations

import copy
import math
import re
import unicodedata
from dataclasses import dataclass, field
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from gdi import settings

PROPERTY_TYPES = {"string", "integer", "number", "boolean", "date", "datetime", "uri"}
GEOMETRY_TYPES = {"Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon"}
#: How a computed property is derived (declared in the YAML as ``computed: <derivation>``).
DERIVATIONS = {
    "territory_key": "the key(s) of the territory feature(s) the feature lies in or touches",
    "publish_time": "the time the upload was published (UTC)",
}
WRITERS = {"county", "members"}
ROLES = {"territory"}
# Every feature carries its provenance.
PROVENANCE = ("member", "dataset")
_COLOUR = re.compile(r"#[0-9a-fA-F]{3}(?:[0-9a-fA-F]{3})?")
_ICON = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_DASH = re.compile(r"[0-9]+(?: [0-9]+)*")
_KEYS = {
    "collection": {"id", "title", "description", "keywords", "geometry_type", "storage_crs", "title_field",
                   "time_field", "role", "territory", "write", "licence", "attribution", "properties",
                   "vocabularies", "analysis", "map", "metadata", "tiles"},
    "property": {"type", "required", "computed", "aliases", "vocabulary", "pattern", "max_length", "truncate",
                 "title"},
    "metadata": {"topic_category", "inspire_theme", "opendata_category"},
    "map": {"show", "label", "colour", "colour_by", "icon", "line", "fill", "popup", "order"},
    "tiles": {"properties", "zoom", "simplify", "thin"},
    "thin": {"below", "cell"},
}
#: the zoom levels of WebMercatorQuad a collection's vector tiles may span (z24: ~1 cm per pixel)
TILE_ZOOMS = range(0, 25)


class CollectionError(ValueError):
    pass


def fold(text: str) -> str:
    """A key for matching names the way people write them.

    Case-, umlaut- and punctuation-insensitive: Straße, Strasse and STRASSE,
    'Bäckerei' and 'Baeckerei', 'addr:street' and 'addr_street' all meet.
    """
    text = unicodedata.normalize("NFC", str(text)).strip().lower()
    for a, b in (("ä", "ae"), ("ö", "oe"), ("ü", "ue"), ("ß", "ss")):
        text = text.replace(a, b)
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    return re.sub(r"[^a-z0-9]+", "", text)


def localised(value: Any, lang: str, fallback: str = "") -> str:
    """A {de:…, en:…} text in lang (German, then English, when lang is missing); plain strings as they are."""
    if isinstance(value, Mapping):
        return str(value.get(lang) or value.get("de") or value.get("en") or fallback)
    return str(value) if value else fallback


@dataclass(frozen=True)
class Property:
    name: str
    type: str = "string"
    required: bool = False
    computed: str | None = None          # a key of DERIVATIONS, or None for a value from the upload
    aliases: tuple[str, ...] = ()
    vocabulary: str | None = None
    pattern: str | None = None
    max_length: int | None = None
    truncate: bool = False               # a longer text is cut to the limit (and reported) instead of rejected
    title: dict[str, str] = field(default_factory=dict)

    def label(self, lang: str = "de") -> str:
        return localised(self.title, lang, self.name)

    def length_limit(self, default: int) -> int | None:
        """The most characters a text value from an upload may hold: its max_length, else the installation's
        default (settings ingest.max_text_length); None for values that are not free text."""
        if self.type not in {"string", "uri"} or self.computed or self.vocabulary:
            return None
        return self.max_length or default


@dataclass(frozen=True)
class Term:
    """One value of a vocabulary: its names, how people spell it, how the map shows it."""

    id: str
    de: str
    en: str
    colour: str
    icon: str
    spellings: tuple[str, ...]

    def label(self, lang: str = "de") -> str:
        return self.en if lang == "en" else self.de


Category = Term     # the supply collection calls its vocabulary's terms categories


@dataclass(frozen=True)
class Territory:
    """The role of the collection holding the authoritative boundaries of the members."""

    key: str                    # e.g. the AGS: a member's key is a prefix of the keys of its features
    population: str | None = None


@dataclass(frozen=True)
class SupplyAnalysis:
    """Points per territory feature and distance to the nearest point of the `food` terms."""

    field: str                      # the vocabulary property counted
    food: tuple[str, ...]           # its terms counted as food supply
    distance_bands_m: tuple[int, ...]


@dataclass(frozen=True)
class PopupRow:
    """A popup row: one property, or several joined (an address from street, number, postcode, city)."""

    fields: tuple[tuple[str, ...], ...]      # groups of fields; fields joined by ' ', groups by ', '
    title: dict[str, str] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [f for group in self.fields for f in group]


@dataclass(frozen=True)
class MapStyle:
    show: bool = True
    label: str | None = None            # the property a feature is named by (tooltip, search, popup heading)
    colour: str = "#3388ff"
    colour_by: str | None = None        # a vocabulary property: one colour (and icon) per term
    icon: str = "location-dot"
    line_width: float = 2.0
    line_dash: str | None = None
    line_opacity: float = 0.9
    fill_opacity: float = 0.25
    popup: tuple[PopupRow, ...] = ()
    order: int = 100                    # layer order in the list (lower first)


@dataclass(frozen=True)
class TileStyle:
    """What the collection's vector tiles carry and how they are generalised (gdi/publish/tiles.py).

    Zoom levels are WebMercatorQuad's; other tile matrix sets map them by cell size. At ``zoom_max``
    a tile holds every feature the features API returns for its box, unsimplified and unthinned:
    generalisation is only for the overview levels below it."""

    properties: tuple[str, ...] = ()        # what a map needs to draw and label; a popup fetches the rest
    zoom_min: int = 0
    zoom_max: int = 16
    simplify: tuple[tuple[int, float], ...] = ()    # (from zoom, tolerance in pixels of a 256-pixel tile)
    thin_below: int | None = None           # points: below this zoom one point per cell (the lowest fid)
    thin_cell: int = 16                     # cell size in pixels

    def tolerance(self, zoom: int) -> float:
        """The simplification tolerance (pixels) at zoom: the one declared for the nearest zoom at or
        below it; none at the highest zoom."""
        if zoom >= self.zoom_max:
            return 0.0
        found = 0.0
        for start, px in self.simplify:
            if start <= zoom:
                found = px
        return found

    def thinned(self, zoom: int) -> bool:
        return self.thin_below is not None and zoom < self.thin_below


@dataclass(frozen=True)
class MetadataHints:
    """What the ISO record needs beyond the rest of the definition (GDI-DE conventions)."""

    topic_category: str = "location"        # ISO 19115 MD_TopicCategoryCode
    inspire_theme: str | None = None        # INSPIRE theme id (e.g. au), where one fits
    opendata_category: str | None = None    # GovData category, e.g. "Regionen und Städte" (Masterportal's tree)


#: the OGC API Records collection of the metadata (one record per collection): no definition may take its id
CATALOGUE_ID = "catalogue"
RESERVED_IDS = {CATALOGUE_ID}


@dataclass(frozen=True)
class Collection:
    id: str
    title: dict[str, str]
    description: dict[str, str]
    geometry_type: str
    storage_crs: str
    properties: dict[str, Property]
    keywords: tuple[str, ...] = ()
    vocabularies: dict[str, dict[str, Term]] = field(default_factory=dict)
    licence: dict[str, str] = field(default_factory=dict)
    attribution: str = ""
    title_field: str | None = None
    time_field: str | None = None
    territory: Territory | None = None
    write: str = "members"
    supply: SupplyAnalysis | None = None
    map: MapStyle = field(default_factory=MapStyle)
    metadata: MetadataHints = field(default_factory=MetadataHints)
    tiles: TileStyle = field(default_factory=TileStyle)
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def epsg(self) -> int:
        return int(self.storage_crs.split(":")[1])

    @property
    def columns(self) -> list[str]:
        """Stored columns in order: schema properties, then provenance."""
        return [*self.properties, *PROVENANCE]

    @property
    def is_territory(self) -> bool:
        return self.territory is not None

    @property
    def kind(self) -> str:
        """point, line or polygon: how the map draws it."""
        g = self.geometry_type.removeprefix("Multi")
        return {"Point": "point", "LineString": "line", "Polygon": "polygon"}[g]

    def label(self, lang: str = "de") -> str:
        return localised(self.title, lang, self.id)

    def input_properties(self) -> list[Property]:
        return [p for p in self.properties.values() if not p.computed]

    def computed(self, derivation: str) -> list[str]:
        """The properties derived as derivation (e.g. every territory_key property)."""
        return [p.name for p in self.properties.values() if p.computed == derivation]

    def terms(self, prop: str) -> dict[str, Term]:
        """The vocabulary of property prop ({} when it has none)."""
        p = self.properties.get(prop)
        return self.vocabularies.get(p.vocabulary, {}) if p and p.vocabulary else {}

    @property
    def categories(self) -> dict[str, Term]:
        """The terms the map colours by (or the supply analysis counts)."""
        prop = self.map.colour_by or (self.supply.field if self.supply else None)
        return self.terms(prop) if prop else {}

    def vocabulary_index(self, name: str) -> dict[str, str]:
        """Folded spelling → term id, German and English."""
        index: dict[str, str] = {}
        for term in self.vocabularies.get(name, {}).values():
            for spelling in (term.id, term.de, term.en, *term.spellings):
                index.setdefault(fold(spelling), term.id)
        return index

    def popup_fields(self) -> list[str]:
        """The stored properties the map needs: label, colour, popup (in that order, each once)."""
        out: list[str] = []
        for name in (self.map.label, self.map.colour_by, *(n for row in self.map.popup for n in row.names)):
            if name and name not in out:
                out.append(name)
        return out


def territory_collection(collections: Mapping[str, Collection]) -> Collection | None:
    """The collection with the territory role (load_collections guarantees at most one)."""
    return next((c for c in collections.values() if c.is_territory), None)


def supply_collection(collections: Mapping[str, Collection]) -> Collection | None:
    """The collection the supply analysis is declared on, if any."""
    return next((c for c in collections.values() if c.supply is not None), None)


class _Problems:
    """Collects every problem of one definition, each as one line naming where it is."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: list[str] = []

    def add(self, where: str, what: str) -> None:
        self.lines.append(f"{self.source}: {where}: {what}")


def _text(value: Any, where: str, problems: _Problems, *, required: bool = False) -> dict[str, str]:
    if value is None:
        if required:
            problems.add(where, "missing (give {de: …, en: …})")
        return {}
    if isinstance(value, str):
        return {"de": value, "en": value}
    if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
        problems.add(where, "must be a text or {de: …, en: …}")
        return {}
    if required and not value.get("de"):
        problems.add(where, "needs a German text (de)")
    return {str(k): str(v) for k, v in value.items()}


def _unknown(doc: Mapping, allowed: set[str], where: str, problems: _Problems) -> None:
    for key in doc:
        if key not in allowed:
            problems.add(where, f"unknown key '{key}' (known: {', '.join(sorted(allowed))})")


def _parse_property(name: str, spec: Any, problems: _Problems) -> Property | None:
    where = f"properties.{name}"
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,62}", str(name)):
        problems.add(where, "a property name must be lower-case letters, digits and _ (at most 63)")
        return None
    if name in PROVENANCE or name in {"fid", "geometry", "geom", "id"}:
        problems.add(where, f"'{name}' is reserved")
        return None
    spec = spec or {}
    if not isinstance(spec, Mapping):
        problems.add(where, "must be a mapping (type, title, aliases …)")
        return None
    _unknown(spec, _KEYS["property"], where, problems)
    ptype = spec.get("type", "string")
    if ptype not in PROPERTY_TYPES:
        problems.add(where, f"unknown type '{ptype}' (one of {', '.join(sorted(PROPERTY_TYPES))})")
        return None
    computed = spec.get("computed")
    if computed is not None and computed not in DERIVATIONS:
        problems.add(where, f"computed must be one of {', '.join(DERIVATIONS)}, not {computed!r}")
        computed = None
    if computed == "territory_key" and ptype != "string":
        problems.add(where, "a territory_key is a string")
    if computed == "publish_time" and ptype != "datetime":
        problems.add(where, "a publish_time is a datetime")
    max_length = spec.get("max_length")
    if max_length is not None and (not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 1):
        problems.add(where, "max_length must be a positive whole number")
        max_length = None
    if max_length is not None and ptype not in {"string", "uri"}:
        problems.add(where, "max_length applies to string and uri properties only")
    truncate = spec.get("truncate", False)
    if not isinstance(truncate, bool):
        problems.add(where, "truncate must be true or false")
        truncate = False
    if truncate and ptype != "string":
        problems.add(where, "truncate applies to string properties only (a cut uri is no uri)")
    pattern = spec.get("pattern")
    if pattern is not None:
        try:
            re.compile(str(pattern))
        except re.error as exc:
            problems.add(where, f"pattern is no regular expression ({exc})")
            pattern = None
    aliases = spec.get("aliases", [name])
    if not isinstance(aliases, list) or not all(isinstance(a, (str, int)) for a in aliases):
        problems.add(where, "aliases must be a list of field names")
        aliases = [name]
    return Property(
        name=name, type=ptype, required=bool(spec.get("required", False)), computed=computed,
        aliases=tuple(str(a) for a in aliases) or (name,), vocabulary=spec.get("vocabulary"),
        pattern=None if pattern is None else str(pattern), max_length=max_length,
        truncate=truncate, title=_text(spec.get("title"), f"{where}.title", problems) or {"de": name, "en": name},
    )


def _parse_vocabularies(doc: Mapping, problems: _Problems) -> dict[str, dict[str, Term]]:
    out: dict[str, dict[str, Term]] = {}
    vocabs = doc.get("vocabularies") or {}
    if not isinstance(vocabs, Mapping):
        problems.add("vocabularies", "must map a vocabulary name to its terms")
        return out
    for vname, terms in vocabs.items():
        if not isinstance(terms, Mapping) or not terms:
            problems.add(f"vocabularies.{vname}", "must map each term id to {de, en, colour, icon, spellings}")
            continue
        out[str(vname)] = {}
        for tid, t in terms.items():
            where = f"vocabularies.{vname}.{tid}"
            t = t or {}
            if not isinstance(t, Mapping):
                problems.add(where, "must be {de, en, colour, icon, spellings}")
                continue
            colour, icon = str(t.get("colour", "#3388ff")), str(t.get("icon", "location-dot"))
            if not _COLOUR.fullmatch(colour):
                problems.add(where, f"colour {colour!r} is not #rgb or #rrggbb")
            if not _ICON.fullmatch(icon):
                problems.add(where, f"icon {icon!r} is not a Font Awesome name such as shopping-cart")
            spellings = t.get("spellings", ())
            if not isinstance(spellings, (list, tuple)):
                problems.add(where, "spellings must be a list")
                spellings = ()
            out[str(vname)][str(tid)] = Term(id=str(tid), de=str(t.get("de", tid)), en=str(t.get("en", t.get("de", tid))),
                                             colour=colour, icon=icon, spellings=tuple(str(s) for s in spellings))
    return out


def _parse_metadata(doc: Any, problems: _Problems) -> MetadataHints:
    from gdi.vocabularies import INSPIRE_THEMES, TOPIC_CATEGORIES

    if doc is None:
        return MetadataHints()
    if not isinstance(doc, Mapping):
        problems.add("metadata", "must be {topic_category, inspire_theme, opendata_category}")
        return MetadataHints()
    _unknown(doc, _KEYS["metadata"], "metadata", problems)
    topic = str(doc.get("topic_category", MetadataHints.topic_category))
    if topic not in TOPIC_CATEGORIES:
        problems.add("metadata.topic_category", f"{topic!r} is no ISO 19115 topic category ({', '.join(TOPIC_CATEGORIES)})")
    theme = doc.get("inspire_theme")
    if theme is not None and theme not in INSPIRE_THEMES:
        problems.add("metadata.inspire_theme", f"{theme!r} is no INSPIRE theme id ({', '.join(INSPIRE_THEMES)})")
    category = doc.get("opendata_category")
    return MetadataHints(topic_category=topic, inspire_theme=None if theme is None else str(theme),
                         opendata_category=None if category is None else str(category))


def _parse_map(doc: Any, props: dict[str, Property], geometry_type: str, problems: _Problems) -> MapStyle:
    doc = doc or {}
    if not isinstance(doc, Mapping):
        problems.add("map", "must be a mapping (show, label, colour, popup …)")
        return MapStyle()
    _unknown(doc, _KEYS["map"], "map", problems)

    def known(name: Any, where: str) -> str | None:
        if name is None:
            return None
        if name not in props and name not in PROVENANCE:
            problems.add(where, f"'{name}' is not a property of the collection")
            return None
        return str(name)

    colour = str(doc.get("colour", "#3388ff"))
    if not _COLOUR.fullmatch(colour):
        problems.add("map.colour", f"{colour!r} is not #rgb or #rrggbb")
        colour = "#3388ff"
    icon = str(doc.get("icon", "location-dot"))
    if not _ICON.fullmatch(icon):
        problems.add("map.icon", f"{icon!r} is not a Font Awesome name such as shopping-cart")
        icon = "location-dot"
    colour_by = known(doc.get("colour_by"), "map.colour_by")
    if colour_by and not props[colour_by].vocabulary:
        problems.add("map.colour_by", f"'{colour_by}' has no vocabulary to colour by")
        colour_by = None
    line = doc.get("line") or {}
    fill = doc.get("fill") or {}
    if not isinstance(line, Mapping) or not isinstance(fill, Mapping):
        problems.add("map", "line and fill must be mappings ({width, dash, opacity} and {opacity})")
        line, fill = {}, {}
    dash = line.get("dash")
    if dash is not None and not _DASH.fullmatch(str(dash)):
        problems.add("map.line.dash", f"{dash!r} is not a dash pattern such as '6 4'")
        dash = None

    def number(value: Any, where: str, default: float, low: float, high: float) -> float:
        try:
            v = float(default if value is None else value)
        except (TypeError, ValueError):
            v = math.nan
        if not low <= v <= high:
            problems.add(where, f"must be a number from {low:g} to {high:g}")
            return default
        return v

    rows: list[PopupRow] = []
    popup = doc.get("popup")
    if popup is None:       # every declared property, in order
        popup = [n for n in props] + list(PROVENANCE)
    if not isinstance(popup, list):
        problems.add("map.popup", "must be a list of property names (or {title, join})")
        popup = []
    for k, item in enumerate(popup):
        where = f"map.popup[{k}]"
        if isinstance(item, str):
            if known(item, where):
                rows.append(PopupRow(((item,),)))
        elif isinstance(item, Mapping) and isinstance(item.get("join"), list):
            groups = []
            for group in item["join"]:
                names = group if isinstance(group, list) else [group]
                groups.append(tuple(n for n in names if known(n, where)))
            rows.append(PopupRow(tuple(g for g in groups if g), _text(item.get("title"), f"{where}.title", problems,
                                                                       required=True)))
        else:
            problems.add(where, "must be a property name or {title: …, join: [[a, b], [c]]}")
    label = known(doc.get("label"), "map.label")
    order = doc.get("order", 100)
    if not isinstance(order, int) or isinstance(order, bool):
        problems.add("map.order", "must be a whole number")
        order = 100
    return MapStyle(
        show=bool(doc.get("show", True)), label=label, colour=colour, colour_by=colour_by, icon=icon,
        line_width=number(line.get("width"), "map.line.width", 2.0, 0.5, 20),
        line_dash=None if dash is None else str(dash),
        line_opacity=number(line.get("opacity"), "map.line.opacity", 0.9, 0, 1),
        fill_opacity=number(fill.get("opacity"), "map.fill.opacity", 0.25, 0, 1),
        popup=tuple(rows), order=order,
    )


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_tiles(doc: Any, props: dict[str, Property], geometry_type: str, title_field: str | None,
                 map_style: MapStyle, problems: _Problems) -> TileStyle:
    """The ``tiles:`` block; without one, the title field, the map's colour and label properties
    at the default zooms, neither simplified nor thinned."""
    doc = {} if doc is None else doc
    if not isinstance(doc, Mapping):
        problems.add("tiles", "must be a mapping (properties, zoom, simplify, thin)")
        return TileStyle()
    _unknown(doc, _KEYS["tiles"], "tiles", problems)
    names = doc.get("properties")
    if names is None:
        names = [n for n in (title_field, map_style.colour_by, map_style.label) if n]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        problems.add("tiles.properties", "must be a list of property names")
        names = []
    for n in names:
        if n not in props and n not in PROVENANCE:
            problems.add("tiles.properties", f"'{n}' is not a property of the collection")
    properties = tuple(dict.fromkeys(n for n in names if n in props or n in PROVENANCE))
    zoom = doc.get("zoom") or {}
    if not isinstance(zoom, Mapping) or set(zoom) - {"min", "max"}:
        problems.add("tiles.zoom", "must be {min: …, max: …} (WebMercatorQuad levels)")
        zoom = {}
    zmin, zmax = zoom.get("min", TileStyle.zoom_min), zoom.get("max", TileStyle.zoom_max)
    if not (_whole(zmin) and _whole(zmax) and zmin in TILE_ZOOMS and zmax in TILE_ZOOMS and zmin <= zmax):
        problems.add("tiles.zoom", f"min and max must be whole zoom levels from {TILE_ZOOMS.start} to "
                                   f"{TILE_ZOOMS.stop - 1}, min ≤ max")
        zmin, zmax = TileStyle.zoom_min, TileStyle.zoom_max
    simplify: list[tuple[int, float]] = []
    raw_simplify = doc.get("simplify") or {}
    if not isinstance(raw_simplify, Mapping):
        problems.add("tiles.simplify", "must map a zoom level to a tolerance in pixels, e.g. {0: 1.0, 12: 0.5}")
        raw_simplify = {}
    if raw_simplify and geometry_type.removeprefix("Multi") == "Point":
        problems.add("tiles.simplify", "points are not simplified (thin them instead)")
    for z, px in raw_simplify.items():
        if not (_whole(z) and zmin <= z < zmax):
            problems.add("tiles.simplify", f"{z!r} must be a zoom level from {zmin} to {zmax - 1} "
                                           "(the highest zoom is never simplified)")
        elif isinstance(px, bool) or not isinstance(px, (int, float)) or not 0 <= px <= 16:
            problems.add(f"tiles.simplify.{z}", "must be a tolerance from 0 to 16 pixels")
        else:
            simplify.append((z, float(px)))
    thin = doc.get("thin")
    below, cell = None, TileStyle.thin_cell
    if thin is not None:
        if not isinstance(thin, Mapping):
            problems.add("tiles.thin", "must be {below: <zoom>, cell: <pixels>}")
            thin = {}
        _unknown(thin, _KEYS["thin"], "tiles.thin", problems)
        if geometry_type.removeprefix("Multi") != "Point":
            problems.add("tiles.thin", "only points are thinned (simplify lines and polygons instead)")
        below, cell = thin.get("below"), thin.get("cell", TileStyle.thin_cell)
        if not (_whole(below) and zmin < below <= zmax):
            problems.add("tiles.thin.below", f"must be a zoom level from {zmin + 1} to {zmax} "
                                             "(the highest zoom holds every point)")
            below = None
        if not (_whole(cell) and 1 <= cell <= 256):
            problems.add("tiles.thin.cell", "must be a whole number of pixels from 1 to 256")
            cell = TileStyle.thin_cell
    return TileStyle(properties=properties, zoom_min=zmin, zoom_max=zmax, simplify=tuple(sorted(simplify)),
                     thin_below=below, thin_cell=cell)


def parse(doc: Any, source: str) -> tuple[Collection | None, list[str]]:
    """(definition, problems): every problem of the document as one line; no definition when there are any."""
    problems = _Problems(source)
    if not isinstance(doc, Mapping):
        problems.add("document", "must be a mapping with id, title, geometry_type and properties")
        return None, problems.lines
    _unknown(doc, _KEYS["collection"], "document", problems)
    cid = str(doc.get("id", ""))
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,62}", cid):
        problems.add("id", f"'{cid}' must be lower-case letters, digits and _, starting with a letter")
    elif cid in RESERVED_IDS:
        problems.add("id", f"'{cid}' is reserved (the catalogue of the metadata records)")
    title = _text(doc.get("title"), "title", problems, required=True)
    gtype = doc.get("geometry_type")
    if gtype not in GEOMETRY_TYPES:
        problems.add("geometry_type", f"{gtype!r} is not one of {', '.join(sorted(GEOMETRY_TYPES))}")
        gtype = "Point"
    storage_crs = str(doc.get("storage_crs", "EPSG:25832"))
    if not re.fullmatch(r"EPSG:[0-9]{4,5}", storage_crs):
        problems.add("storage_crs", f"{storage_crs!r} must be written EPSG:<code>")
        storage_crs = "EPSG:25832"
    props: dict[str, Property] = {}
    raw_props = doc.get("properties")
    if not isinstance(raw_props, Mapping) or not raw_props:
        problems.add("properties", "missing: declare at least one property")
        raw_props = {}
    for name, spec in raw_props.items():
        prop = _parse_property(str(name), spec, problems)
        if prop is not None:
            props[prop.name] = prop
    vocabularies = _parse_vocabularies(doc, problems)
    for p in props.values():
        if p.vocabulary and p.vocabulary not in vocabularies:
            problems.add(f"properties.{p.name}.vocabulary", f"unknown vocabulary '{p.vocabulary}'")

    def prop_ref(key: str, where: str, types: set[str] | None = None) -> str | None:
        name = doc.get(key) if "." not in key else None
        if name is None:
            return None
        if name not in props:
            problems.add(where, f"'{name}' is not a property of the collection")
            return None
        if types and props[name].type not in types:
            problems.add(where, f"'{name}' must be of type {' or '.join(sorted(types))}")
            return None
        return str(name)

    title_field = prop_ref("title_field", "title_field")
    time_field = prop_ref("time_field", "time_field", {"date", "datetime"})
    role = doc.get("role")
    territory = None
    if role is not None and role not in ROLES:
        problems.add("role", f"{role!r} is not one of {', '.join(sorted(ROLES))}")
    write = doc.get("write", "county" if role == "territory" else "members")
    if write not in WRITERS:
        problems.add("write", f"{write!r} is not one of county (admin tokens only), members (each in its territory)")
    if role == "territory":
        spec = doc.get("territory") or {}
        key, population = spec.get("key"), spec.get("population")
        if key not in props or props[key].type != "string" or props[key].computed:
            problems.add("territory.key", "must name a string property given by the upload (e.g. ags)")
        elif not props[key].required:
            problems.add("territory.key", f"'{key}' must be required")
        if population is not None and (population not in props or props[population].type not in {"integer", "number"}):
            problems.add("territory.population", "must name an integer or number property")
        if write != "county":
            problems.add("write", "the territory is the county's authority: write must be county")
        if gtype not in {"Polygon", "MultiPolygon"}:
            problems.add("geometry_type", "the territory consists of polygons")
        territory = Territory(key=str(key), population=None if population is None else str(population))
        if any(p.computed == "territory_key" for p in props.values()):
            problems.add("properties", "the territory cannot derive a territory_key from itself")
    elif doc.get("territory") is not None:
        problems.add("territory", "only a collection with role: territory declares its key")
    supply = None
    analysis = doc.get("analysis")
    if analysis is not None:
        spec = analysis.get("supply") if isinstance(analysis, Mapping) else None
        if not isinstance(spec, Mapping) or set(analysis) != {"supply"}:
            problems.add("analysis", "declare analysis: {supply: {field, food, distance_bands_m}}")
        else:
            fname = spec.get("field")
            terms = vocabularies.get(props[fname].vocabulary or "", {}) if fname in props else {}
            if not terms:
                problems.add("analysis.supply.field", f"{fname!r} must be a property with a vocabulary")
            food = [str(t) for t in spec.get("food") or []]
            for t in food:
                if terms and t not in terms:
                    problems.add("analysis.supply.food", f"'{t}' is not a term of {fname}")
            bands = spec.get("distance_bands_m") or []
            if (not isinstance(bands, list) or not bands or
                    not all(isinstance(b, int) and not isinstance(b, bool) and b > 0 for b in bands)
                    or sorted(set(bands)) != bands):
                problems.add("analysis.supply.distance_bands_m", "must be increasing whole metres, e.g. [1000, 3000, 5000]")
                bands = [1000, 3000, 5000]
            if gtype not in {"Point", "MultiPoint"}:
                problems.add("analysis", "the supply analysis counts points")
            supply = SupplyAnalysis(field=str(fname), food=tuple(food), distance_bands_m=tuple(bands))
    map_style = _parse_map(doc.get("map"), props, gtype, problems)
    hints = _parse_metadata(doc.get("metadata"), problems)
    tiles = _parse_tiles(doc.get("tiles"), props, str(gtype), title_field, map_style, problems)
    keywords = doc.get("keywords") or []
    licence = doc.get("licence") or {}
    if not isinstance(licence, Mapping) or (licence and not licence.get("name")):
        problems.add("licence", "must be {name: …, url: …}")
        licence = {}
    if problems.lines:
        return None, problems.lines
    return Collection(
        id=cid, title=title, description=_text(doc.get("description"), "description", problems),
        geometry_type=str(gtype), storage_crs=storage_crs, properties=props,
        keywords=tuple(str(k) for k in keywords), vocabularies=vocabularies,
        licence={str(k): str(v) for k, v in licence.items()}, attribution=str(doc.get("attribution") or ""),
        title_field=title_field, time_field=time_field, territory=territory, write=str(write),
        supply=supply, map=map_style, metadata=hints, tiles=tiles, raw=dict(doc),
    ), []


def _parse(doc: dict[str, Any], source: Path) -> Collection:
    coll, problems = parse(doc, source.name)
    if problems:
        raise CollectionError("\n".join(problems))
    return coll


def check_set(collections: Mapping[str, Collection]) -> list[str]:
    """Problems of the definitions together (each alone may be fine)."""
    out = []
    territories = [c.id for c in collections.values() if c.is_territory]
    if len(territories) > 1:
        out.append(f"only one collection may have role: territory, not {', '.join(territories)}")
    derived = [c.id for c in collections.values() if c.computed("territory_key")]
    if derived and not territories:
        out.append(f"{', '.join(derived)} derive a territory_key, but no collection has role: territory")
    members = [c.id for c in collections.values() if c.write == "members"]
    if members and not territories:
        out.append(f"{', '.join(members)} are written by members, whose rights rest on a territory: "
                   "declare one collection with role: territory")
    supplies = [c.id for c in collections.values() if c.supply]
    if len(supplies) > 1:
        out.append(f"only one collection may declare the supply analysis, not {', '.join(supplies)}")
    return out


_DOCS: dict[tuple[str, int, int], dict] = {}


def _document(path: Path) -> dict:
    """The parsed YAML (C parser when available), parsed again only when the file changed."""
    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _DOCS:
        with open(path, encoding="utf-8") as fh:
            _DOCS[key] = yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
    return copy.deepcopy(_DOCS[key])


def definition_files(directories: list[Path]) -> list[Path]:
    """The YAML files of the given folders (a file given directly counts as itself)."""
    files: list[Path] = []
    for d in directories:
        files += [d] if d.is_file() else sorted(d.glob("*.yml")) + sorted(d.glob("*.yaml"))
    return files


def load_collections(directory: Path | None = None) -> dict[str, Collection]:
    """Every definition, checked alone and together; raises CollectionError naming each problem."""
    dirs = [directory] if directory else settings.collections_dirs()
    found: dict[str, Collection] = {}
    for path in definition_files(dirs):
        coll = _parse(_document(path), path)
        if coll.id in found:
            raise CollectionError(f"{path.name}: collection '{coll.id}' defined twice")
        found[coll.id] = coll
    problems = check_set(found)
    if problems:
        raise CollectionError("; ".join(problems))
    return found


def get_collection(cid: str, directory: Path | None = None) -> Collection:
    colls = load_collections(directory)
    if cid not in colls:
        known = ", ".join(sorted(colls)) or "none"
        raise CollectionError(f"unknown collection '{cid}' (known: {known})")
    return colls[cid]
