"""The planners' map's layout: layout.css/layout.js in the page, and the call that places everything.

Nothing on the map may cover anything else (the layer list, the legend, popups,
the scale bar, the other controls, the counties the map opens on).  That is one
job of its own, kept apart from map.js (which builds the layers): layout.js
folds the panels, fits the opening view clear of every control and keeps popups
above and clear of them.  It needs the layer control, which folium adds last,
so this element goes onto the map after folium.LayerControl.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import folium
from branca.element import MacroElement
from folium.template import Template

from gdi.viewer.data import inline_code, safe_json

HERE = Path(__file__).resolve().parent


class MapLayout(MacroElement):
    """layout.css/layout.js in the page header, and gdiLayout.start() once the layer control exists."""

    _template = Template(
        """
        {% macro header(this, kwargs) %}
        <style>{{ this.css }}</style>
        <script>{{ this.js }}</script>
        {% endmacro %}
        {% macro script(this, kwargs) %}
        gdiLayout.start({{ this._parent.get_name() }}, {{ this.control }}, {{ this.text }}, {{ this.other_lang }});
        {% endmacro %}
        """
    )

    def __init__(self, control: folium.LayerControl | None, text: dict[str, Any], other_lang: str | None) -> None:
        """control: folium's layer control; text: the map's texts (style.text); other_lang: the
        language a link switches to (None: no language switch)."""
        super().__init__()
        self._name = "GdiMapLayout"
        self.css = inline_code(HERE / "layout.css")
        self.js = inline_code(HERE / "layout.js")
        self.control = control.get_name() if control is not None else "null"
        self.text = safe_json(text)
        self.other_lang = safe_json(other_lang)
