"""Collection definitions: one declarative YAML per published collection.

Adding a collection must be a YAML file and nothing else, so everything the
ingest, store, publisher and viewer need to know about a collection is here.
"""
from __future__ import annotations

import copy
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gdi import settings

PROPERTY_TYPES = {"string", "integer", "number", "boolean", "date", "datetime"}
GEOMETRY_TYPES = {"Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon"}
# Every feature carries its provenance.
PROVENANCE = ("member", "dataset")


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


@dataclass(frozen=True)
class Property:
    name: str
    type: str = "string"
    required: bool = False
    computed: bool = False
    aliases: tuple[str, ...] = ()
    vocabulary: str | None = None
    pattern: str | None = None
    title: dict[str, str] = field(default_factory=dict)
    format: str | None = None


@dataclass(frozen=True)
class Category:
    id: str
    de: str
    en: str
    colour: str
    icon: str
    food: bool
    spellings: tuple[str, ...]

    def label(self, lang: str = "de") -> str:
        return self.en if lang == "en" else self.de


@dataclass(frozen=True)
class Collection:
    id: str
    title: dict[str, str]
    description: dict[str, str]
    geometry_type: str
    storage_crs: str
    properties: dict[str, Property]
    keywords: tuple[str, ...] = ()
    categories: dict[str, Category] = field(default_factory=dict)
    licence: dict[str, str] = field(default_factory=dict)
    attribution: str = ""
    title_field: str | None = None
    territory_field: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def epsg(self) -> int:
        return int(self.storage_crs.split(":")[1])

    @property
    def columns(self) -> list[str]:
        """Stored columns in order: schema properties, then provenance."""
        return [*self.properties, *PROVENANCE]

    def input_properties(self) -> list[Property]:
        return [p for p in self.properties.values() if not p.computed]

    def category_index(self) -> dict[str, str]:
        """Folded spelling → category id, German and English."""
        index: dict[str, str] = {}
        for cat in self.categories.values():
            for spelling in (cat.id, cat.de, cat.en, *cat.spellings):
                index.setdefault(fold(spelling), cat.id)
        return index


def _parse(doc: dict[str, Any], source: Path) -> Collection:
    def need(key: str) -> Any:
        if key not in doc:
            raise CollectionError(f"{source.name}: missing '{key}'")
        return doc[key]

    cid = str(need("id"))
    if not re.fullmatch(r"[a-z][a-z0-9_]*", cid):
        raise CollectionError(f"{source.name}: collection id '{cid}' must be lower-case letters, digits, _")
    gtype = need("geometry_type")
    if gtype not in GEOMETRY_TYPES:
        raise CollectionError(f"{source.name}: geometry_type '{gtype}' not one of {sorted(GEOMETRY_TYPES)}")
    props: dict[str, Property] = {}
    for name, spec in (need("properties") or {}).items():
        spec = spec or {}
        if name in PROVENANCE:
            raise CollectionError(f"{source.name}: '{name}' is reserved for provenance")
        ptype = spec.get("type", "string")
        if ptype not in PROPERTY_TYPES:
            raise CollectionError(f"{source.name}: property '{name}' has unknown type '{ptype}'")
        props[name] = Property(
            name=name,
            type=ptype,
            required=bool(spec.get("required", False)),
            computed=bool(spec.get("computed", False)),
            aliases=tuple(str(a) for a in spec.get("aliases", [name])) or (name,),
            vocabulary=spec.get("vocabulary"),
            pattern=spec.get("pattern"),
            title=dict(spec.get("title") or {}),
            format=spec.get("format"),
        )
    cats = {
        cid_: Category(
            id=cid_, de=c["de"], en=c["en"], colour=c.get("colour", "#3388ff"),
            icon=c.get("icon", "location-dot"), food=bool(c.get("food", False)),
            spellings=tuple(c.get("spellings", ())),
        )
        for cid_, c in (doc.get("categories") or {}).items()
    }
    for p in props.values():
        if p.vocabulary and p.vocabulary != "categories":
            raise CollectionError(f"{source.name}: unknown vocabulary '{p.vocabulary}'")
        if p.vocabulary and not cats:
            raise CollectionError(f"{source.name}: property '{p.name}' uses categories but none are defined")
    return Collection(
        id=cid,
        title=dict(need("title")),
        description=dict(doc.get("description") or {}),
        geometry_type=gtype,
        storage_crs=str(doc.get("storage_crs", "EPSG:25832")),
        properties=props,
        keywords=tuple(doc.get("keywords") or ()),
        categories=cats,
        licence=dict(doc.get("licence") or {}),
        attribution=str(doc.get("attribution") or ""),
        title_field=doc.get("title_field"),
        territory_field=doc.get("territory_field"),
        raw=doc,
    )


_DOCS: dict[tuple[str, int, int], dict] = {}


def _document(path: Path) -> dict:
    """The parsed YAML (C parser when available), parsed again only when the file changed."""
    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _DOCS:
        with open(path, encoding="utf-8") as fh:
            _DOCS[key] = yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
    return copy.deepcopy(_DOCS[key])


def load_collections(directory: Path | None = None) -> dict[str, Collection]:
    directory = directory or settings.collections_dir()
    found: dict[str, Collection] = {}
    for path in sorted(directory.glob("*.yml")) + sorted(directory.glob("*.yaml")):
        coll = _parse(_document(path), path)
        if coll.id in found:
            raise CollectionError(f"collection '{coll.id}' defined twice")
        found[coll.id] = coll
    return found


def get_collection(cid: str, directory: Path | None = None) -> Collection:
    colls = load_collections(directory)
    if cid not in colls:
        known = ", ".join(sorted(colls)) or "none"
        raise CollectionError(f"unknown collection '{cid}' (known: {known})")
    return colls[cid]
