"""Drafting a collection definition from a member's real file (`gdi collection new`).

Everything here is inferred from what the file holds: the geometry type, one property per field with
the type its values have, the field name as alias, a vocabulary for a field with few distinct values.
What a file cannot say (titles, licence, attribution, which fields are required) is left for the GIS
team to review, and the YAML says so in its header.
"""
from __future__ import annotations

import datetime as dt
import math
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import yaml

from gdi.collections import PROVENANCE

#: The colours drafted vocabulary terms get, in order (the GIS team picks the final ones).
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
           "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#ffbb00")
VOCABULARY_MAX_TERMS = 12           # at most this many distinct values,
VOCABULARY_MAX_SHARE = 1 / 3        # at most this share of the features,
VOCABULARY_MIN_COUNT = 2            # and each value at least this often
MIN_MAX_LENGTH = 50
ID = re.compile(r"[a-z][a-z0-9_]{0,62}")
RESERVED = {"fid", "geometry", "geom", "id", *PROVENANCE}
_FAMILIES = {"Point": "Point", "MultiPoint": "Point", "LineString": "LineString",
             "MultiLineString": "LineString", "LinearRing": "LineString", "Polygon": "Polygon",
             "MultiPolygon": "Polygon"}
_TRUE = {"ja", "j", "yes", "y", "true", "wahr"}
_FALSE = {"nein", "n", "no", "false", "falsch"}
_INTEGER = re.compile(r"[+-]?(?:0|[1-9][0-9]*)")          # a leading zero makes a key (AGS, PLZ 01067): text
_NUMBER = re.compile(r"[+-]?(?:0|[1-9][0-9]*)(?:[.,][0-9]+)?")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{1,2}\.[0-9]{1,2}\.[0-9]{4}")
_DATETIME = re.compile(r"(?:[0-9]{4}-[0-9]{2}-[0-9]{2}[T ]|[0-9]{1,2}\.[0-9]{1,2}\.[0-9]{4},? +)"
                       r"[0-9]{1,2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?(?:Z|[+-][0-9]{2}:?[0-9]{2})?")
_URL = re.compile(r"https?://[^\s/?#]+\.[^\s]*", re.IGNORECASE)
_LABEL_NAMES = ("name", "titel", "title", "bezeichnung", "bezeichnun", "bez", "gen", "bezeichner")
_LABEL_PARTS = ("name", "titel", "title", "bezeich")


class DraftError(ValueError):
    """The file cannot be drafted from; the message is one line, German / English."""


def property_name(field_name: str) -> str:
    """A field name folded to a property name: lower case, umlauts spelt out, [a-z0-9_] ("Straße" → strasse)."""
    text = unicodedata.normalize("NFC", str(field_name)).strip().lower()
    for a, b in (("ä", "ae"), ("ö", "oe"), ("ü", "ue"), ("ß", "ss")):
        text = text.replace(a, b)
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    text = re.sub(r"[^a-z0-9]+", "_", text).strip("_")
    if not text:
        text = "field"
    if not text[0].isalpha():
        text = "f_" + text
    return text[:63].rstrip("_")


def round_length(longest: int) -> int:
    """A round max_length at least twice the longest value seen, and at least 50 (50, 100, 200, 250, 500, …)."""
    need = max(MIN_MAX_LENGTH, 2 * longest)
    k = 1
    while True:
        for m in (1, 2, 2.5, 5):
            if m * 10 ** k >= need:
                return int(m * 10 ** k)
        k += 1


@dataclass
class Term:
    id: str
    label: str                  # the most frequent spelling
    spellings: list[str]
    count: int
    colour: str = ""


@dataclass
class DraftField:
    source: str                 # the field name in the file
    name: str                   # the property name
    type: str
    count: int                  # features with a value
    max_length: int | None = None
    terms: list[Term] | None = None     # a drafted vocabulary
    notes: list[str] = field(default_factory=list)

    @property
    def aliases(self) -> list[str]:
        return list(dict.fromkeys([self.source, self.name]))


@dataclass
class Draft:
    id: str
    title: str
    geometry_type: str
    fields: list[DraftField]
    features: int
    source: str                 # file name
    format: str
    layer: str | None
    epsg: int | None
    encoding: str | None

    @property
    def label(self) -> str | None:
        """The first text field that looks like a name or title."""
        texts = [f for f in self.fields if f.type == "string" and not f.terms]
        for f in texts:
            if property_name(f.source).replace("_", "") in _LABEL_NAMES:
                return f.name
        for f in texts:
            if any(part in property_name(f.source) for part in _LABEL_PARTS):
                return f.name
        return None

    @property
    def colour_by(self) -> DraftField | None:
        return next((f for f in self.fields if f.terms), None)

    def document(self) -> dict[str, Any]:
        """The definition as a mapping (what yaml() writes, without the comments)."""
        doc: dict[str, Any] = {"id": self.id, "title": {"de": self.title, "en": self.title},
                               "geometry_type": self.geometry_type, "storage_crs": "EPSG:25832"}
        if self.label:
            doc["title_field"] = self.label
        doc["write"] = "members"
        doc["properties"] = {f.name: _property(f) for f in self.fields}
        style: dict[str, Any] = {}
        if self.label:
            style["label"] = self.label
        if self.colour_by:
            style["colour_by"] = self.colour_by.name
        else:
            style["colour"] = PALETTE[0]
        style["popup"] = [f.name for f in self.fields]
        doc["map"] = style
        vocabularies = {f.name: {t.id: {"de": t.label, "en": t.label, "colour": t.colour, "spellings": t.spellings}
                                 for t in f.terms} for f in self.fields if f.terms}
        if vocabularies:
            doc["vocabularies"] = vocabularies
        return doc

    def yaml(self) -> str:
        """The definition as the GIS team gets it: a header saying where it comes from and what to review."""
        doc = self.document()
        where = f"{self.layer} in {self.source}" if self.layer and self.layer != _stem(self.source) else self.source
        crs = f"EPSG:{self.epsg}" if self.epsg else "no declared CRS"
        text = f", text {self.encoding}" if self.encoding else ""
        lines = [
            f"# Draft by `gdi collection new` from {where} ({self.format}, {self.features} features, {crs}{text}).",
            "# Types, lengths and the vocabulary are guessed from those features. Review before adding it:",
            "#   - title (en is a copy of de) and a description, in German and English",
            "#   - licence and attribution (commented out below: the terms the member publishes under)",
            "#   - metadata (commented out below): ISO topic category, INSPIRE theme and GovData category",
            "#   - required: the properties every feature must have (the draft requires none)",
            "#   - types, max_length, vocabularies and map.colour_by; aliases other members use for a field",
            "# then run: gdi collection check <this file>",
        ]
        for key in ("id", "title", "geometry_type", "storage_crs", "title_field"):
            if key in doc:
                lines.append(f"{key}: {_flow(doc[key])}")
        times = [f.name for f in self.fields if f.type in {"date", "datetime"}]
        if times:
            lines.append(f"# time_field: {times[0]}        # the date the API's datetime= parameter filters on")
        lines.append("write: members              # each member within its own territory")
        lines.append("# licence: {name: Datenlizenz Deutschland – Namensnennung – Version 2.0, "
                     "url: https://www.govdata.de/dl-de/by-2-0, id: dl-by-de/2.0}")
        lines.append("# attribution: © <who must be named>")
        lines.append("# metadata: {topic_category: location, inspire_theme: <id, where one fits>, "
                     "opendata_category: <GovData category>}    # for its ISO record (CSW, Masterportal)")
        lines.append("properties:")
        for f in self.fields:
            spec = doc["properties"][f.name]
            lines.append(f"  {_flow(f.name)}:" + (f"    # {'; '.join(f.notes)}" if f.notes else ""))
            for key, value in spec.items():
                comment = ""
                if key == "vocabulary":
                    comment = (f"    # drafted: {len(f.terms)} distinct values in {self.features} features; "
                               "keep it, or delete it and the vocabulary below")
                lines.append(f"    {key}: {_flow(value)}{comment}")
        lines.append("map:")
        for key, value in doc["map"].items():
            comment = ""
            if key == "colour_by":
                comment = (f"    # drafted from the vocabulary {value}: one colour per value; "
                           f"or one colour for all, e.g. colour: '{PALETTE[0]}'")
            lines.append(f"  {key}: {_flow(value)}{comment}")
        if "vocabularies" in doc:
            lines.append("vocabularies:")
            for vname, terms in doc["vocabularies"].items():
                lines.append(f"  {_flow(vname)}:")
                for tid, term in terms.items():
                    lines.append(f"    {_flow(tid)}: {_flow(term)}")      # quoted where YAML needs it: 'no', 'on
        return "\n".join(lines) + "\n"


def _stem(name: str) -> str:
    return name.rsplit(".", 1)[0]


def _property(f: DraftField) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": f.type}
    if f.terms:
        spec["vocabulary"] = f.name
    if f.max_length:
        spec["max_length"] = f.max_length
    spec["title"] = {"de": f.source, "en": f.source}
    spec["aliases"] = f.aliases
    return spec


def _flow(value: Any) -> str:
    """One YAML value on one line (flow style), quoted only where YAML needs it."""
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, sort_keys=False, width=10**9)
    text = text.strip()
    return text[:-4].rstrip() if text.endswith("\n...") else text


# -- inference ---------------------------------------------------------------------------------------

def geometry_type(geoms: Any) -> str:
    """The collection geometry type of the file's geometries: Multi* when any feature is multi."""
    kinds = Counter(g.geom_type for g in geoms if g is not None and not g.is_empty)
    if not kinds:
        raise DraftError("die Datei enthält keine Geometrien / the file holds no geometries")
    odd = sorted(k for k in kinds if k not in _FAMILIES)
    if odd:
        raise DraftError(f"Geometrien vom Typ {', '.join(odd)} werden nicht unterstützt / "
                         f"geometries of type {', '.join(odd)} are not supported")
    families = sorted({_FAMILIES[k] for k in kinds})
    if len(families) > 1:
        raise DraftError(f"die Datei mischt Geometriearten ({', '.join(families)}), eine Collection hat eine / "
                         f"the file mixes geometry kinds ({', '.join(families)}); a collection has one")
    family = families[0]
    return f"Multi{family}" if any(k.startswith("Multi") for k in kinds) else family


def _present(values: list[Any]) -> list[Any]:
    out = []
    for v in values:
        if v is None or v is pd.NaT or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
            continue
        if isinstance(v, str) and not v.strip():
            continue
        out.append(v)
    return out


def _is_midnight(v: Any) -> bool:
    return isinstance(v, dt.datetime) and (v.hour, v.minute, v.second, v.microsecond) == (0, 0, 0, 0)


def _valid_date(text: str) -> bool:
    m = re.fullmatch(r"([0-9]{1,2})\.([0-9]{1,2})\.([0-9]{4})", text)
    try:
        if m:
            dt.date(int(m[3]), int(m[2]), int(m[1]))
        else:
            dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def value_type(series: pd.Series, *, text_numbers: bool = False) -> str:
    """The property type a column's values have: integer, number, boolean, date, datetime, uri or string.

    Text that reads as yes/no, dates or web addresses gets that type. Text of digits stays text unless
    text_numbers (a CSV, where every value is text): then it is a number, except for keys (a leading
    zero, or all of one length of 5 digits or more: AGS, postcodes, phone numbers)."""
    values = _present(series.astype(object).tolist())
    if not values:
        return "string"
    if pd.api.types.is_bool_dtype(series.dtype) or all(isinstance(v, bool) for v in values):
        return "boolean"
    if pd.api.types.is_integer_dtype(series.dtype):
        return "integer"
    if pd.api.types.is_float_dtype(series.dtype):
        return "number"
    if all(isinstance(v, (dt.datetime, pd.Timestamp)) for v in values):
        return "date" if all(_is_midnight(pd.Timestamp(v).to_pydatetime()) for v in values) else "datetime"
    if all(isinstance(v, dt.date) for v in values):
        return "date" if all(not isinstance(v, dt.datetime) or _is_midnight(v) for v in values) else "datetime"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "integer"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return "number"
    if not all(isinstance(v, str) for v in values):
        return "string"
    texts = [v.strip() for v in values]
    folded = {t.lower() for t in texts}
    if folded <= _TRUE | _FALSE and folded & _TRUE and folded & _FALSE:
        return "boolean"
    if text_numbers and all(_NUMBER.fullmatch(t) for t in texts):
        digits = {len(t) for t in texts}
        if not (all(t.isdigit() for t in texts) and len(digits) == 1 and min(digits) >= 5):
            return "integer" if all(_INTEGER.fullmatch(t) for t in texts) else "number"
    if all(_DATE.fullmatch(t) and _valid_date(t) for t in texts):
        return "date"
    if all(_DATETIME.fullmatch(t) or (_DATE.fullmatch(t) and _valid_date(t)) for t in texts):
        return "datetime"
    if all(_URL.fullmatch(t) for t in texts):
        return "uri"
    return "string"


def vocabulary(series: pd.Series, rows: int) -> list[Term] | None:
    """Terms for a text column with few distinct values (2 to 12, ≤ 1/3 of the rows, each ≥ 2 times); else None.

    Spellings that fold to the same term id (Rechtskräftig, RECHTSKRÄFTIG) are one term."""
    texts = [str(v).strip() for v in _present(series.astype(object).tolist())]
    if not texts:
        return None
    groups: dict[str, Counter] = {}
    for t in texts:
        groups.setdefault(property_name(t), Counter())[t] += 1
    if not 2 <= len(groups) <= VOCABULARY_MAX_TERMS or len(groups) > rows * VOCABULARY_MAX_SHARE:
        return None         # one value for all is no classification; many are names, not classes
    if any(sum(c.values()) < VOCABULARY_MIN_COUNT for c in groups.values()):
        return None
    terms = []
    for tid, spellings in groups.items():
        label = sorted(spellings.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
        terms.append(Term(tid, label, sorted(spellings), sum(spellings.values())))
    terms.sort(key=lambda t: t.label.casefold())
    for k, t in enumerate(terms):
        t.colour = PALETTE[k % len(PALETTE)]
    return terms


def draft(frame: Any, cid: str, *, title: str | None, source: str, format: str, layer: str | None,
          epsg: int | None, encoding: str | None) -> Draft:
    """The draft definition of collection cid from a file's features (a GeoDataFrame as read_upload gives it)."""
    if not ID.fullmatch(cid):
        raise DraftError(f"ungültige Collection-ID '{cid}': Kleinbuchstaben, Ziffern und _, am Anfang ein Buchstabe / "
                         f"invalid collection id '{cid}': lower-case letters, digits and _, starting with a letter")
    if len(frame) == 0:
        raise DraftError(f"{source} enthält keine Objekte / {source} contains no features")
    gtype = geometry_type(frame.geometry.values)
    names: set[str] = set()
    fields: list[DraftField] = []
    for col in frame.columns:
        if col == frame.geometry.name:
            continue
        series = frame[col]
        name = property_name(col)
        notes = []
        if name in RESERVED:
            notes.append(f"'{name}' is reserved in gdi: renamed")
            name = f"source_{name}"
        base, k = name, 2
        while name in names:
            name = f"{base[:60]}_{k}"
            k += 1
        names.add(name)
        if format == "ESRI Shapefile" and len(str(col)) == 10:
            notes.append(f"Shapefile field names have at most 10 characters: {col} may be cut off "
                         "(a property may be renamed; keep the alias)")
        ptype = value_type(series, text_numbers=format.startswith("CSV"))
        present = _present(series.astype(object).tolist())
        if not present:
            notes.append("no values in the file: type guessed")
        f = DraftField(source=str(col), name=name, type=ptype, count=len(present), notes=notes)
        if ptype == "string":
            f.terms = vocabulary(series, len(frame))
        if ptype in {"string", "uri"} and not f.terms:
            longest = max((len(str(v).strip()) for v in present), default=0)
            f.max_length = max(round_length(longest), 2000) if ptype == "uri" else round_length(longest)
        fields.append(f)
    if not fields:
        raise DraftError(f"{source} hat keine Attributfelder / {source} has no attribute fields")
    return Draft(id=cid, title=title or cid, geometry_type=gtype, fields=fields, features=len(frame), source=source,
                 format=format, layer=layer, epsg=epsg, encoding=encoding)
