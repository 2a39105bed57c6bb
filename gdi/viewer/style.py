"""Labels, colours and icons for the map, taken from the collection definitions.

The YAML files in collections/ are the single place where a category gets its
German/English name, colour and Font Awesome icon; the map only reads them.
Colours and icon names end up inside HTML/CSS, so they are checked against a
strict pattern here and replaced by a neutral default when they do not match.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

POINTS_COLLECTION = "supply_points"
BOUNDARIES_COLLECTION = "municipalities"
OTHER = "other"  # points whose category is not in the vocabulary

_COLOUR = re.compile(r"#[0-9a-fA-F]{3}(?:[0-9a-fA-F]{3})?")
_ICON = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
DEFAULT_COLOUR = "#555555"
DEFAULT_ICON = "location-dot"

#: Texts of the map itself (not of the data), per language.
UI_TEXT: dict[str, dict[str, str]] = {
    "de": {
        "title": "Planungskarte Nahversorgung",
        "boundaries": "Gemeindegrenzen",
        "other": "Sonstige",
        "legend": "Legende",
        "search": "Suchen …",
        "not_found": "Nichts gefunden",
        "cancel": "Abbrechen",
        "fullscreen": "Vollbild",
        "fullscreen_exit": "Vollbild beenden",
        "municipality": "Gemeinde",
        "address": "Adresse",
        "population": "Einwohner",
        "member": "Mitglied",
        "dataset": "Datensatz",
        "density": "Versorgungsdichte (Punkte je 1.000 Einwohner)",
        "density_short": "je 1.000 EW",
        "distance": "Entfernung zur nächsten Lebensmittelversorgung",
        "band_0": "bis 1 km",
        "band_1": "1 bis 3 km",
        "band_2": "3 bis 5 km",
        "band_3": "mehr als 5 km",
        "within": "Fläche bis {r} km",
        "within_short": "≤ {r} km",
        "beyond_area": "Fläche über 5 km",
        "no_population": "keine Einwohnerzahl",
        "county": "Kreisgrenze",
        "points": "Punkte",
        "table": "Nahversorgung je Gemeinde",
        "table_note": "Lebensmittel: {food}. Entfernung Luftlinie, berechnet in EPSG:25832.",
        "csv": "Als CSV herunterladen",
        "panel_show": "Tabelle",
        "panel_hide": "Tabelle ausblenden",
        "other_lang": "English",
        "total": "Summe",
        "unassigned": "{n} Punkte liegen außerhalb der Gemeinden.",
    },
    "en": {
        "title": "Planners' map: local supply",
        "boundaries": "Municipal boundaries",
        "other": "Other",
        "legend": "Legend",
        "search": "Search …",
        "not_found": "Nothing found",
        "cancel": "Cancel",
        "fullscreen": "Full screen",
        "fullscreen_exit": "Exit full screen",
        "municipality": "Municipality",
        "address": "Address",
        "population": "Population",
        "member": "Member",
        "dataset": "Dataset",
        "density": "Supply density (points per 1,000 inhabitants)",
        "density_short": "per 1,000 inh.",
        "distance": "Distance to the nearest food supply",
        "band_0": "up to 1 km",
        "band_1": "1 to 3 km",
        "band_2": "3 to 5 km",
        "band_3": "more than 5 km",
        "within": "Area within {r} km",
        "within_short": "≤ {r} km",
        "beyond_area": "Area beyond 5 km",
        "no_population": "no population figure",
        "county": "County boundary",
        "points": "Points",
        "table": "Local supply per municipality",
        "table_note": "Food: {food}. Straight-line distance, computed in EPSG:25832.",
        "csv": "Download as CSV",
        "panel_show": "Table",
        "panel_hide": "Hide table",
        "other_lang": "Deutsch",
        "total": "Total",
        "unassigned": "{n} points lie outside the municipalities.",
    },
}


@dataclass(frozen=True)
class CategoryStyle:
    """How one category looks on the map."""

    id: str
    label: str
    colour: str
    icon: str


def as_dict(collection: Any) -> dict[str, Any]:
    """Accept a collection as parsed YAML (dict) or as gdi.collections.Collection."""
    if isinstance(collection, Mapping):
        return dict(collection)
    raw = getattr(collection, "raw", None)
    if isinstance(raw, Mapping) and raw:
        return dict(raw)
    if dataclasses.is_dataclass(collection) and not isinstance(collection, type):
        return dataclasses.asdict(collection)
    raise TypeError(f"not a collection definition: {type(collection).__name__}")


def text(lang: str) -> dict[str, str]:
    """UI strings for lang (German when unknown: the county's working language)."""
    return UI_TEXT.get(lang, UI_TEXT["de"])


def _localised(value: Any, lang: str, fallback: str) -> str:
    if isinstance(value, Mapping):
        return str(value.get(lang) or value.get("de") or value.get("en") or fallback)
    return str(value) if value else fallback


def safe_colour(value: Any) -> str:
    return value if isinstance(value, str) and _COLOUR.fullmatch(value) else DEFAULT_COLOUR


def safe_icon(value: Any) -> str:
    return value if isinstance(value, str) and _ICON.fullmatch(value) else DEFAULT_ICON


def category_styles(collections: Mapping[str, Any], lang: str = "de") -> dict[str, CategoryStyle]:
    """Styles of the point categories, in YAML order, plus the catch-all OTHER."""
    doc = as_dict(collections[POINTS_COLLECTION]) if POINTS_COLLECTION in collections else {}
    styles = {
        cid: CategoryStyle(
            id=str(cid),
            label=_localised({"de": c.get("de"), "en": c.get("en")}, lang, str(cid)),
            colour=safe_colour(c.get("colour")),
            icon=safe_icon(c.get("icon")),
        )
        for cid, c in (doc.get("categories") or {}).items()
    }
    styles[OTHER] = CategoryStyle(OTHER, text(lang)["other"], DEFAULT_COLOUR, DEFAULT_ICON)
    return styles


def field_labels(collections: Mapping[str, Any], lang: str = "de") -> dict[str, str]:
    """Human names of the point attributes (popup rows), from the YAML titles."""
    ui = text(lang)
    labels = {"member": ui["member"], "dataset": ui["dataset"], "address": ui["address"],
              "population": ui["population"], "municipality": ui["municipality"]}
    for cid in (BOUNDARIES_COLLECTION, POINTS_COLLECTION):
        if cid in collections:
            for name, spec in (as_dict(collections[cid]).get("properties") or {}).items():
                labels.setdefault(name, _localised((spec or {}).get("title"), lang, name))
    return labels


def collection_title(collections: Mapping[str, Any], cid: str, lang: str, fallback: str) -> str:
    """A collection's title in lang, e.g. "Gemeindegrenzen"."""
    return _localised(as_dict(collections[cid]).get("title"), lang, fallback) if cid in collections else fallback


def attributions(collections: Mapping[str, Any]) -> list[str]:
    """The data attributions (plain text) the map must show."""
    return [str(a) for c in collections.values() if (a := as_dict(c).get("attribution"))]
