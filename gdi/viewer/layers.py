"""One map layer per collection, described for map.js from the collection's `map:` declaration.

Why a description and not folium objects: map.js draws every layer itself
(values inserted as text, markers bound lazily), so what it needs is plain
data — which fields to read, how to label them, which colour each term gets —
and all of it comes from the YAML, so a new collection needs no code here.
"""
from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gdi.collections import PROVENANCE, Collection
from gdi.viewer.style import (
    OTHER,
    SWATCH_MIN_ALPHA,
    TermStyle,
    rgba,
    safe_colour,
    safe_icon,
    term_styles,
    text,
    tint,
)


def label_field(collection: Collection) -> str | None:
    """The property a feature is named by (tooltip, search, popup heading): map.label, else title_field."""
    return collection.map.label or collection.title_field


@dataclass(frozen=True)
class Layer:
    """A collection as the map shows it (lang-specific texts resolved)."""

    collection: Collection
    lang: str

    @property
    def id(self) -> str:
        return self.collection.id

    @property
    def kind(self) -> str:
        return self.collection.kind

    @property
    def title(self) -> str:
        return self.collection.label(self.lang)

    @property
    def label_field(self) -> str | None:
        return label_field(self.collection)

    @property
    def colour_by(self) -> str | None:
        return self.collection.map.colour_by

    @property
    def is_territory(self) -> bool:
        return self.collection.territory is not None

    def fields(self) -> list[str]:
        """The stored properties the map needs: label, colour_by, popup rows, the
        territory's key and population, and the provenance (each once)."""
        out: list[str] = []
        names = [self.label_field, *self.collection.popup_fields()]
        if self.collection.territory is not None:
            names += [self.collection.territory.key, self.collection.territory.population]
        for name in [*names, *PROVENANCE]:
            if name and name not in out:
                out.append(name)
        return out

    def terms(self) -> dict[str, TermStyle]:
        """The colour_by terms (plus OTHER), or {} when the layer has one colour."""
        return term_styles(self.collection, self.colour_by, self.lang) if self.colour_by else {}

    def field_label(self, name: str) -> str:
        """A property's title in lang (member and dataset: the map's words for them)."""
        prop = self.collection.properties.get(name)
        if prop is not None:
            return prop.label(self.lang)
        return text(self.lang).get(name, name) if name in PROVENANCE else name

    def popup(self) -> list[dict[str, Any]]:
        """The declared popup rows: label, field groups, and the type of a single field
        (uri values become links, numbers are formatted, vocabulary values show their term's name)."""
        rows = []
        for row in self.collection.map.popup:
            names = row.names
            single = len(names) == 1
            prop = self.collection.properties.get(names[0]) if single else None
            label = (row.title.get(self.lang) or row.title.get("de") or row.title.get("en")) if row.title else None
            entry: dict[str, Any] = {
                "label": label or (self.field_label(names[0]) if single else ", ".join(map(self.field_label, names))),
                "groups": [list(group) for group in row.fields],
                "type": prop.type if prop is not None else "string",
            }
            if single and (vocabulary := self.collection.terms(names[0])):
                entry["terms"] = {tid: t.label(self.lang) for tid, t in vocabulary.items()}  # id -> its name
            rows.append(entry)
        return rows

    def style(self) -> dict[str, Any]:
        """Leaflet path options and the marker look, from map: (colour, icon, line, fill)."""
        m = self.collection.map
        colour = safe_colour(m.colour)
        # the territory is the base layer: a pale fill under everything else
        fill = tint(colour) if self.is_territory else colour
        return {
            "colour": colour, "icon": safe_icon(m.icon),
            "weight": m.line_width, "dash": m.line_dash, "opacity": m.line_opacity,
            "fillOpacity": m.fill_opacity,
            "fillColour": fill,
            # a legend swatch's fill (never fainter than SWATCH_MIN_ALPHA, or it would not show)
            "swatchFill": rgba(fill, max(m.fill_opacity, SWATCH_MIN_ALPHA)),
        }

    def config(self, counts: Mapping[str, int], total: int) -> dict[str, Any]:
        """Everything map.js needs to draw, label, search and explain the layer.

        counts: features per term (colour_by layers), total: all features."""
        terms = self.terms()
        alpha = max(self.collection.map.fill_opacity, SWATCH_MIN_ALPHA)
        return {
            "id": self.id, "kind": self.kind, "title": self.title, "show": bool(self.collection.map.show),
            "territory": self.is_territory, "label": self.label_field, "colourBy": self.colour_by,
            "fields": self.fields(), "popup": self.popup(), "style": self.style(),
            "terms": {tid: {**s.as_json(), "swatchFill": rgba(s.colour, alpha)} for tid, s in terms.items()},
            "present": [tid for tid in terms if counts.get(tid)], "count": total,
        }


def map_layers(collections: Mapping[str, Collection], lang: str) -> list[Layer]:
    """Every collection's layer in map.order (then id, so the order never depends on file names)."""
    return [Layer(c, lang) for c in sorted(collections.values(), key=lambda c: (c.map.order, c.id))]


def control_name(layer_id: str, title: str, count: int | None, swatch: str = "") -> str:
    """A layer-control entry.  Leaflet shows it as HTML, so the title is escaped; the
    data-gdi-layer span keeps entries of equal titles apart (folium keys them by name)."""
    suffix = "" if count is None else f" ({count})"
    return f'<span data-gdi-layer="{html.escape(layer_id)}">{swatch}{html.escape(title)}{suffix}</span>'


def marker_swatch(colour: str, icon: str) -> str:
    """The round badge of a marker (colour and icon validated by style.safe_*)."""
    return (f'<span class="gdi-swatch" style="background:{safe_colour(colour)}">'
            f'<i class="fa-solid fa-{safe_icon(icon)}"></i></span>')


def shape_swatch(layer: Layer) -> str:
    """A line or area swatch in the layer's colour (colour_by layers: none; the legend has the terms)."""
    if layer.colour_by:
        return ""
    style = layer.style()
    if layer.kind == "line":
        dash = " gdi-swatch-dashed" if style["dash"] else ""
        return f'<span class="gdi-swatch gdi-swatch-line{dash}" style="border-color:{style["colour"]}"></span>'
    return (f'<span class="gdi-swatch gdi-swatch-shape" style="border-color:{style["colour"]};'
            f'background:{style["swatchFill"]}"></span>')


def term_control_name(layer: Layer, term: TermStyle, count: int) -> str:
    """The entry of one term's cluster group: badge, term label, count."""
    return control_name(f"{layer.id}:{term.id}", term.label, count, marker_swatch(term.colour, term.icon))


__all__ = ["OTHER", "Layer", "control_name", "label_field", "map_layers", "marker_swatch", "shape_swatch",
           "term_control_name"]
