"""pygeoapi's CSV output (``f=csv``), with spreadsheet formulas neutralised.

A member can upload a name such as ``=HYPERLINK("http://x","klick")``; pygeoapi's
CSV formatter writes it as it is, and a planner who opens the download in a
spreadsheet runs it. Every text cell that starts with ``=``, ``+``, ``-``, ``@``,
a tab or a carriage return gets a leading apostrophe (OWASP's rule for CSV
injection); numbers stay numbers. The map's own CSV download applies the same
rule (gdi/viewer/map.js). Registered as pygeoapi's ``CSV`` formatter by
gdi/server/fixes.py.
"""
from __future__ import annotations

import csv

from pygeoapi.formatter.csv_ import CSVFormatter

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def formula_safe(value):
    """The value as a spreadsheet shows it as text, never as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


class FormulaSafeCSVFormatter(CSVFormatter):
    def _add_feature(self, writer: csv.DictWriter, feature: dict, is_point: bool) -> None:
        properties = {k: formula_safe(v) for k, v in (feature.get("properties") or {}).items()}
        super()._add_feature(writer, dict(feature, properties=properties), is_point)
