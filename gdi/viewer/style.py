"""Texts, colours and icons of the map.

The collection YAML files are the single place where a term gets its
German/English name, colour and Font Awesome icon and a layer its look; the
map only reads them.  Colours and icon names end up inside HTML/CSS, so they
are checked again here (the parser already did) and replaced by a neutral
default when they do not match: a second line of defence, should a Collection
ever be made by hand.

The texts below are the map's own (controls, the analysis, the table), not the
data's: those come from the collection definitions.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gdi.collections import Collection, Term

#: The term id given to values outside the vocabulary (term ids are words; none starts with "_").
OTHER = "_other"

_COLOUR = re.compile(r"#[0-9a-fA-F]{3}(?:[0-9a-fA-F]{3})?")
_ICON = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
DEFAULT_COLOUR = "#555555"
DEFAULT_ICON = "location-dot"

#: Texts of the map itself (not of the data), per language.  {title}: the analysed
#: collection's title; {r}, {a}, {b}: distances ("1 km").
UI_TEXT: dict[str, dict[str, str]] = {
    "de": {
        "title": "Planungskarte {title}",
        "title_plain": "Planungskarte",
        "other": "Sonstige",
        "legend": "Legende",
        "layers": "Ebenen",
        "layers_show": "Ebenen einblenden",
        "layers_hide": "Ebenen ausblenden",
        "more": "mehr",
        "less": "weniger",
        "search": "Suchen …",
        "not_found": "Nichts gefunden",
        "cancel": "Abbrechen",
        "fullscreen": "Vollbild",
        "fullscreen_exit": "Vollbild beenden",
        "municipality": "Gemeinde",
        "member": "Mitglied",
        "dataset": "Datensatz",
        "yes": "ja",
        "no": "nein",
        "density": "Versorgungsdichte (Punkte je 1.000 Einwohner)",
        "density_short": "je 1.000 EW",
        "distance": "Entfernung zur nächsten Lebensmittelversorgung",
        "band_first": "bis {r}",
        "band_between": "{a} bis {b}",
        "band_beyond": "mehr als {r}",
        "within": "Fläche bis {r}",
        "within_short": "≤ {r}",
        "beyond_area": "Fläche über {r}",
        "no_population": "keine Einwohnerzahl",
        "county": "Kreisgrenze",
        "points": "Punkte",
        "table": "{title} je Gemeinde",
        "table_note": "Lebensmittel: {food}. Entfernung Luftlinie, berechnet in EPSG:25832.",
        "csv": "Als CSV herunterladen",
        "csv_file": "nahversorgung_gemeinden.csv",
        "panel_show": "Tabelle",
        "panel_hide": "Tabelle ausblenden",
        "other_lang": "English",
        "total": "Summe",
        "unassigned": "{n} Punkte liegen außerhalb der Gemeinden.",
    },
    "en": {
        "title": "Planners' map: {title}",
        "title_plain": "Planners' map",
        "other": "Other",
        "legend": "Legend",
        "layers": "Layers",
        "layers_show": "Show layers",
        "layers_hide": "Hide layers",
        "more": "more",
        "less": "less",
        "search": "Search …",
        "not_found": "Nothing found",
        "cancel": "Cancel",
        "fullscreen": "Full screen",
        "fullscreen_exit": "Exit full screen",
        "municipality": "Municipality",
        "member": "Member",
        "dataset": "Dataset",
        "yes": "yes",
        "no": "no",
        "density": "Supply density (points per 1,000 inhabitants)",
        "density_short": "per 1,000 inh.",
        "distance": "Distance to the nearest food supply",
        "band_first": "up to {r}",
        "band_between": "{a} to {b}",
        "band_beyond": "more than {r}",
        "within": "Area within {r}",
        "within_short": "≤ {r}",
        "beyond_area": "Area beyond {r}",
        "no_population": "no population figure",
        "county": "County boundary",
        "points": "Points",
        "table": "{title} per municipality",
        "table_note": "Food: {food}. Straight-line distance, computed in EPSG:25832.",
        "csv": "Download as CSV",
        "csv_file": "local_supply_municipalities.csv",
        "panel_show": "Table",
        "panel_hide": "Hide table",
        "other_lang": "Deutsch",
        "total": "Total",
        "unassigned": "{n} points lie outside the municipalities.",
    },
}

#: Distance bands, nearest to beyond the last (ColorBrewer RdYlGn); other counts are interpolated.
BAND_COLOURS = ("#1a9850", "#a6d96a", "#fee08b", "#d73027")


@dataclass(frozen=True)
class TermStyle:
    """How one term of a vocabulary looks on the map."""

    id: str
    label: str
    colour: str
    icon: str

    def as_json(self) -> dict[str, str]:
        return {"label": self.label, "colour": self.colour, "icon": self.icon}


def text(lang: str) -> dict[str, str]:
    """UI strings for lang (German when unknown: the county's working language)."""
    return UI_TEXT.get(lang, UI_TEXT["de"])


def safe_colour(value: Any) -> str:
    return value if isinstance(value, str) and _COLOUR.fullmatch(value) else DEFAULT_COLOUR


def safe_icon(value: Any) -> str:
    return value if isinstance(value, str) and _ICON.fullmatch(value) else DEFAULT_ICON


def _rgb(colour: str) -> tuple[int, int, int]:
    h = safe_colour(colour).lstrip("#")
    if len(h) == 3:
        h = "".join(c * 2 for c in h)
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def _hex(rgb: tuple[float, float, float]) -> str:
    return "#" + "".join(f"{max(0, min(255, round(c))):02x}" for c in rgb)


def tint(colour: str, amount: float = 0.5) -> str:
    """colour mixed with white (amount 0: unchanged, 1: white).

    The territory is the base layer: its pale fill keeps everything above readable
    (#37474f gives #9ba3a7, the grey-blue the boundaries always had)."""
    r, g, b = _rgb(colour)
    return _hex((r + (255 - r) * amount, g + (255 - g) * amount, b + (255 - b) * amount))


def rgba(colour: str, alpha: float) -> str:
    """colour with transparency, for CSS (a legend swatch shows a fill as the map does)."""
    r, g, b = _rgb(colour)
    return f"rgba({r}, {g}, {b}, {max(0.0, min(1.0, alpha)):.2f})"


SWATCH_MIN_ALPHA = 0.25  # fills fainter than this would not show in a small swatch


def band_colours(n: int) -> list[str]:
    """n colours from near (green) to far (red): BAND_COLOURS for 4, interpolated otherwise."""
    if n == len(BAND_COLOURS):
        return list(BAND_COLOURS)
    if n == 1:
        return [BAND_COLOURS[0]]
    stops = [_rgb(c) for c in BAND_COLOURS]
    out = []
    for i in range(n):
        pos = i / (n - 1) * (len(stops) - 1)
        k = min(int(pos), len(stops) - 2)
        f = pos - k
        out.append(_hex(tuple(a + (b - a) * f for a, b in zip(stops[k], stops[k + 1], strict=True))))
    return out


def number(value: float, lang: str, digits: int = 2) -> str:
    """value with digits decimals, German or English separators."""
    out = f"{value:,.{digits}f}"
    return out.replace(",", "\0").replace(".", ",").replace("\0", ".") if lang == "de" else out


def distance_parts(metres: int, lang: str) -> tuple[str, str]:
    """(number, unit) of a distance as people say it: ("500", "m"), ("1", "km"), ("1,5", "km")."""
    if metres < 1000:
        return str(metres), "m"
    if metres % 1000 == 0:
        return str(metres // 1000), "km"
    return number(metres / 1000, lang, 1), "km"


def distance(metres: int, lang: str) -> str:
    """A distance band's limit: "500 m", "1 km", "1,5 km"."""
    return " ".join(distance_parts(metres, lang))


def term_style(term: Term, lang: str) -> TermStyle:
    return TermStyle(term.id, term.label(lang), safe_colour(term.colour), safe_icon(term.icon))


def term_styles(collection: Collection, prop: str | None, lang: str = "de") -> dict[str, TermStyle]:
    """Styles of the terms of property prop, in YAML order, plus the catch-all OTHER."""
    styles = {tid: term_style(t, lang) for tid, t in (collection.terms(prop) if prop else {}).items()}
    styles[OTHER] = TermStyle(OTHER, text(lang)["other"], DEFAULT_COLOUR, DEFAULT_ICON)
    return styles


def attributions(collections: Mapping[str, Collection]) -> list[str]:
    """The data attributions (plain text) the map must show, each once."""
    out: list[str] = []
    for c in collections.values():
        if c.attribution and c.attribution not in out:
            out.append(c.attribution)
    return out
