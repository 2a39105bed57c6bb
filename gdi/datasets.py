"""The rules for naming a dataset and its versions, applied wherever one arrives (CLI, HTTP, paths).

A dataset name becomes a folder under ``GDI_HOME/originals/<collection>/<member>/``,
so a name made only of dots (``.``, ``..``) would leave the member's folder;
the rule is stated in every refusal, and a refused name is echoed only in part.
"""
from __future__ import annotations

import re

from gdi.messages import Text, echo, t, text_of

MAX_LENGTH = 100
MAX_VERSION = 2**31 - 1          # versions count from 1; far beyond any real history, within every integer type
_ALLOWED = re.compile(r"[\w.-]+")          # letters (umlauts too), digits, '.', '_', '-'


class DatasetNameError(ValueError):
    """A dataset name against the rule; it carries the rule in German and English, str() is the English."""

    @property
    def text(self) -> Text:
        return text_of(self)


def check_dataset_name(name: str) -> str:
    """The name unchanged when it follows the rule, else DatasetNameError."""
    if (not isinstance(name, str) or not 1 <= len(name) <= MAX_LENGTH or not _ALLOWED.fullmatch(name)
            or set(name) == {"."}):
        shown = name if isinstance(name, str) else repr(name)
        shown = echo(shown)
        raise DatasetNameError(t(
            f"der Datensatzname ‚{shown}‘ ist nicht zulässig: 1 bis {MAX_LENGTH} Buchstaben, Ziffern, ‚.‘, ‚_‘ oder ‚-‘, "
            "nicht nur Punkte",
            f"dataset name '{shown}' refused: 1 to {MAX_LENGTH} letters, digits, '.', '_' or '-', "
            "not only dots"))
    return name


def version_number(value) -> int | None:
    """A version as a client sends it (JSON number, form text), or None for "the previous one"."""
    if value in (None, ""):
        return None
    if isinstance(value, str) and value.strip().isdecimal():
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_VERSION:
        raise ValueError(t(f"‚to‘ muss eine Versionsnummer von 1 bis {MAX_VERSION} sein",
                           f"'to' must be a version number from 1 to {MAX_VERSION}"))
    return value
