"""Text encodings of DBF and CSV files that do not declare one.

Members' Shapefiles typically come from Windows tools: CP1252 DBF, no .cpg.
Bytes that decode as UTF-8 (with at least one multi-byte sequence or pure ASCII)
are UTF-8; otherwise CP1252, which never yields mojibake like "Ã¤" for
German text.
"""
from __future__ import annotations

import codecs
import struct
import unicodedata
from pathlib import Path

from gdi.messages import t

# DBF language driver ids (byte 29) for the code pages German exports use.
_LDID = {0x57: "cp1252", 0x03: "cp1252", 0x02: "cp850", 0x01: "cp437", 0x64: "cp852", 0xC8: "cp1250"}


def normalise_encoding(name: str) -> str:
    try:
        return codecs.lookup(name.strip()).name
    except LookupError as exc:
        raise ValueError(t(f"unbekannte Zeichenkodierung ‚{name}‘", f"unknown text encoding '{name}'")) from exc


def guess_bytes(data: bytes) -> str:
    """'utf-8' or 'cp1252' for a blob of text bytes."""
    if data.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    try:
        data.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        return "cp1252"


def dbf_records(path: Path) -> bytes:
    """The raw record bytes of a DBF (where the text lives), without the header."""
    with open(path, "rb") as fh:
        head = fh.read(32)
        if len(head) < 32:
            return b""
        nrec, hlen, rlen = struct.unpack("<IHH", head[4:12])
        fh.seek(hlen)
        return fh.read(min(nrec * rlen, 50_000_000))


def dbf_ldid(path: Path) -> str | None:
    with open(path, "rb") as fh:
        head = fh.read(32)
    return _LDID.get(head[29]) if len(head) >= 30 else None


def cpg_encoding(path: Path) -> str | None:
    """The encoding a .cpg sidecar declares, if any."""
    try:
        text = path.read_text("ascii", errors="ignore").strip()
    except OSError:
        return None
    if not text:
        return None
    if text.isdigit():
        text = {"65001": "utf-8", "1252": "cp1252", "28591": "latin-1", "88591": "latin-1"}.get(text, "cp" + text)
    try:
        return normalise_encoding(text)
    except ValueError:
        return None


def clean_text(value: object) -> object:
    """NFC-normalised, trimmed text; empty strings become None."""
    if not isinstance(value, str):
        return value
    value = unicodedata.normalize("NFC", value).strip()
    return value or None
