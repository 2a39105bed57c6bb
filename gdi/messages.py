"""Texts for people, in German and English, rendered where they are shown.

A refusal or a rejection reason is made once, deep in the ingest, and read in
three places: the terminal (``gdi ingest``), the upload page and the report.
:class:`Text` carries both languages. It *is* a ``str`` (the English text as
the command line shows it), so logs, f-strings and ``in`` keep working, and
:meth:`Text.render` gives the German or English form for the CLI or the web.

What a user should change is named as an option in ``⟨…⟩`` (``⟨--layer⟩``):
the command line shows the flag, the web the form field that sets it — a web
page never tells a clerk to type ``--crs``.
"""
from __future__ import annotations

import re
from typing import Literal

Lang = Literal["de", "en"]
Surface = Literal["cli", "web"]
LANGS: tuple[Lang, ...] = ("de", "en")
DEFAULT_LANG: Lang = "de"

# option → (German form field, English form field) on the upload page
FIELDS: dict[str, tuple[str, str]] = {
    "--layer": ("Ebene", "Layer"),
    "--crs": ("Koordinatensystem", "Coordinate reference system"),
    "--encoding": ("Zeichenkodierung", "Text encoding"),
    "--dataset": ("Datensatz", "Dataset"),
    "--collection": ("Sammlung", "Collection"),
    "--member": ("Mitglied", "Member"),
    "--admin": ("Token der Kreisverwaltung", "county administration token"),
}
_OPTION = re.compile(r"⟨(--[a-z-]+)⟩")


def _render(text: str, lang: Lang, surface: Surface) -> str:
    def option(m: re.Match) -> str:
        flag = m.group(1)
        if surface == "cli" or flag not in FIELDS:
            return flag
        de, en = FIELDS[flag]
        return f"dem Feld „{de}“" if lang == "de" else f"the field “{en}”"
    return _OPTION.sub(option, text)


class Text(str):
    """One message in German and English; as a str it is the English command-line form."""

    de: str
    en: str

    def __new__(cls, de: str, en: str) -> Text:
        obj = super().__new__(cls, _render(en, "en", "cli"))
        obj.de, obj.en = de, en
        return obj

    def render(self, lang: Lang = "en", surface: Surface = "cli") -> str:
        return _render(self.de if lang == "de" else self.en, lang, surface)

    def both(self, surface: Surface = "cli") -> str:
        """German, then English: for places that cannot know the reader's language (a log, a terminal)."""
        return f"{self.render('de', surface)} / {self.render('en', surface)}"

    def __reduce__(self):          # pickles (multiprocessing, caches) keep both languages
        return (Text, (self.de, self.en))


def t(de: str, en: str) -> Text:
    """A message in both languages (German first, as the GDI's users read it)."""
    return Text(de, en)


def as_text(value: object) -> Text:
    """Any message as a Text; one without a German form (a library's error) stays the same in both."""
    if isinstance(value, Text):
        return value
    s = str(value)
    return Text(s, s)


def text_of(exc: BaseException) -> Text:
    """The Text an exception was raised with (``ValueError(t(...))``); a library's error, which has
    none, is its message the same in both languages."""
    first = exc.args[0] if len(exc.args) == 1 else None
    return first if isinstance(first, Text) else as_text(exc)


_DE_DIGITS = str.maketrans(",.", ".,")


def de_number(value: float, spec: str = ",") -> str:
    """A number as German writes it (``1.234.567``, ``0,5``); spec as for :func:`format`."""
    return format(value, spec).translate(_DE_DIGITS)


def join(texts: list[Text], sep: str = "; ") -> Text:
    """Several messages as one (a feature with several problems)."""
    texts = [as_text(x) for x in texts]
    return Text(sep.join(x.de for x in texts), sep.join(x.en for x in texts))


def choose_lang(lang: str | None, accept_language: str | None) -> Lang:
    """The reader's language: an explicit ``lang`` first, then the best of ``Accept-Language``, else German.

    ``Accept-Language: en-GB,en;q=0.9,de;q=0.8`` gives English; ``fr`` alone gives the default.
    """
    if lang:
        code = lang.strip().lower()[:2]
        if code in LANGS:
            return code  # type: ignore[return-value]
    best: tuple[float, int, Lang] | None = None
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        code = tag.strip().lower()[:2]
        if code not in LANGS:
            continue
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q > 0 and (best is None or (q, -position) > (best[0], best[1])):
            best = (q, -position, code)  # type: ignore[assignment]
    return best[2] if best else DEFAULT_LANG


def terminal_lang(environ: dict[str, str]) -> Lang:
    """The language of a terminal, as POSIX locales say it (LC_ALL, LC_MESSAGES, LANG): German for
    ``de_DE.UTF-8``, English otherwise (``C``, ``POSIX``, unset — the language of scripts and logs)."""
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = environ.get(name)
        if value:
            return "de" if value.lower().startswith("de") else "en"
    return "en"


def echo(value: str, limit: int = 40) -> str:
    """A value from a request or an upload, shown in a message in part: a 500-letter name is not
    echoed whole (``abc…xyz… (500)``)."""
    return value if len(value) <= limit else value[:limit] + f"… ({len(value)})"
