"""The message catalogues of pygeoapi's HTML pages, compiled for pygeoapi to read.

pygeoapi 0.24 renders its pages with Jinja's i18n extension and loads the catalogue of the
request's language (``lang``, else ``Accept-Language``, else the first of ``server.languages``)
from ``server.locale_dir`` with Babel — the supported seam for a translation. It ships no German
catalogue, so ours lives in ``gdi/publish/locale/<lang>/LC_MESSAGES/messages.po`` (readable,
reviewable text) and is compiled to ``messages.mo`` with Babel, the tool pygeoapi reads them with,
at publish time into ``GDI_HOME/publish/pygeoapi/locale``.
"""
from __future__ import annotations

import hashlib
import io
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from gdi.files import write_atomically

SOURCE = Path(__file__).resolve().parent / "locale"
DOMAIN = "messages"


def catalogue_sources(source: Path = SOURCE) -> dict[str, Path]:
    """Each language's .po file, by language code."""
    return {po.parent.parent.name: po for po in sorted(source.glob(f"*/LC_MESSAGES/{DOMAIN}.po"))}


def compile_po(text: bytes, lang: str) -> bytes:
    """A .po catalogue as the .mo bytes gettext reads; a fuzzy entry would be left out silently,
    so there must be none (a reviewer's "not sure yet" is not a translation)."""
    catalog = read_po(io.BytesIO(text), locale=lang)
    fuzzy = [m.id for m in catalog if m.id and m.fuzzy]
    if fuzzy:
        raise ValueError(f"{lang}: fuzzy entries in the catalogue: {fuzzy}")
    out = io.BytesIO()
    write_mo(out, catalog)
    return out.getvalue()


def build_catalogues(dest: Path, source: Path = SOURCE) -> Path:
    """Compile every catalogue under source into dest/<lang>/LC_MESSAGES/messages.mo; returns dest
    (pygeoapi's ``server.locale_dir``). A .mo is rewritten only when its bytes change, so a running
    server never reads a half-written one and an upload's publish does not touch them."""
    for lang, po in catalogue_sources(source).items():
        target = dest / lang / "LC_MESSAGES" / f"{DOMAIN}.mo"
        data = compile_po(po.read_bytes(), lang)
        if not target.exists() or target.read_bytes() != data:
            target.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(target, data)
    return dest


def catalogues_key(source: Path = SOURCE) -> str:
    """What the compiled catalogues were built from (a publish stamp can include it)."""
    digest = hashlib.sha256()
    for lang, po in catalogue_sources(source).items():
        digest.update(lang.encode() + b"\0" + po.read_bytes())
    return digest.hexdigest()[:16]
