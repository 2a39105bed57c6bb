"""Safe unpacking of zipped uploads.

A member's zip is untrusted: entries may climb out of the folder (``../``),
be absolute, be links, or inflate to far more than they declare (zip bombs).
Declared sizes are checked before anything is written, and real bytes are
counted while streaming, so memory and disk stay bounded.
"""
from __future__ import annotations

import stat
import zipfile
from pathlib import Path, PurePosixPath

from gdi.ingest import IngestRefused
from gdi.messages import de_number, t

CHUNK = 1 << 20


def _safe_name(name: str) -> PurePosixPath:
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or any(part == ".." for part in p.parts) or (p.parts and ":" in p.parts[0]):
        raise IngestRefused(t(f"der Zip-Eintrag ‚{name}‘ zeigt aus dem Upload-Ordner hinaus; abgelehnt",
                              f"zip entry '{name}' points outside the upload folder; refused"))
    return p


def safe_extract(archive: Path, dest: Path, *, max_bytes: int, max_entries: int) -> list[Path]:
    """Extract ``archive`` into ``dest``; returns the extracted files."""
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise IngestRefused(t(f"die Zip-Datei ist beschädigt oder unvollständig ({exc})",
                              f"the zip file is damaged or truncated ({exc})")) from exc
    with zf:
        infos = zf.infolist()
        if len(infos) > max_entries:
            raise IngestRefused(t(f"die Zip-Datei enthält {len(infos)} Einträge, mehr als die Grenze von {max_entries}",
                                  f"the zip holds {len(infos)} entries, more than the limit of {max_entries}"))
        declared = sum(i.file_size for i in infos)
        if declared > max_bytes:
            raise IngestRefused(t(
                f"entpackt wäre die Zip-Datei {de_number(declared)} Bytes groß, mehr als die Grenze von "
                f"{de_number(max_bytes)} Bytes",
                f"the zip would unpack to {declared:,} bytes, more than the limit of {max_bytes:,} bytes"))
        written = 0
        out: list[Path] = []
        dest.mkdir(parents=True, exist_ok=True)
        for info in infos:
            rel = _safe_name(info.filename)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise IngestRefused(t(f"der Zip-Eintrag ‚{info.filename}‘ ist ein symbolischer Link; abgelehnt",
                                      f"zip entry '{info.filename}' is a symbolic link; refused"))
            if info.is_dir() or not rel.parts:
                continue
            if rel.parts[0] == "__MACOSX" or rel.name.startswith("._"):
                continue
            target = dest.joinpath(*rel.parts)
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as dst:
                    while True:
                        chunk = src.read(CHUNK)
                        if not chunk:
                            break
                        written += len(chunk)
                        if written > max_bytes:
                            raise IngestRefused(t(
                                f"entpackt überschreitet die Zip-Datei die Grenze von {de_number(max_bytes)} Bytes "
                                "(Zip-Bombe?); abgelehnt",
                                f"the zip unpacks to more than the limit of {max_bytes:,} bytes (zip bomb?); refused"))
                        dst.write(chunk)
            except (zipfile.BadZipFile, EOFError, OSError, NotImplementedError, RuntimeError) as exc:
                if isinstance(exc, IngestRefused):
                    raise
                raise IngestRefused(t(f"der Zip-Eintrag ‚{info.filename}‘ ist beschädigt ({exc})",
                                      f"the zip entry '{info.filename}' is damaged ({exc})")) from exc
            out.append(target)
        return out
