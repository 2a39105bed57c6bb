"""The ingest report: what was accepted, repaired and rejected, and why.

Written as JSON for machines and as HTML (German and English) for the GIS
staff who sent the file. Every value from the upload is escaped in HTML.
"""
from __future__ import annotations

import html
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gdi.messages import Surface, Text, as_text


@dataclass
class FeatureNote:
    index: int                      # 0-based position in the uploaded layer
    reason: str                     # English
    values: dict[str, Any] = field(default_factory=dict)
    reason_de: str = ""             # German

    def __post_init__(self) -> None:
        text = as_text(self.reason)
        self.reason, self.reason_de = text.en, self.reason_de or text.de


@dataclass
class Report:
    id: str
    file: str
    collection: str | None
    member: str | None
    dataset: str | None
    started: str
    status: str = "running"                     # accepted | refused
    refusal: str | None = None                  # English
    refusal_de: str | None = None               # German
    surface: Surface = "cli"                    # where the upload came from: the texts name its options
    dry_run: bool = False
    size: int | None = None
    sha256: str | None = None
    format: str | None = None
    layer: str | None = None
    archive_members: list[str] = field(default_factory=list)
    crs: dict[str, Any] = field(default_factory=dict)
    encoding: dict[str, Any] = field(default_factory=dict)
    field_mapping: dict[str, list[str]] = field(default_factory=dict)
    unknown_fields: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: {"read": 0, "accepted": 0, "repaired": 0, "rejected": 0})
    repaired: list[FeatureNote] = field(default_factory=list)
    rejected: list[FeatureNote] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)         # English
    warnings_de: list[str] = field(default_factory=list)      # German
    published: bool = False
    version: int | None = None
    finished: str | None = None

    def refuse(self, text: Text | str) -> None:
        text = as_text(text)
        self.status = "refused"
        self.refusal, self.refusal_de = text.render("en", self.surface), text.render("de", self.surface)

    def warn(self, text: Text | str) -> None:
        text = as_text(text)
        self.warnings.append(text.render("en", self.surface))
        self.warnings_de.append(text.render("de", self.surface))

    def refusal_text(self) -> Text | None:
        """The refusal in both languages, as the surface of the upload names its options."""
        return None if self.refusal is None else Text(self.refusal_de or self.refusal, self.refusal)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2, default=str)

    def documents(self) -> dict[str, str]:
        """The report as it is kept: ``json``, ``html`` (German) and ``html_en``."""
        return {"json": self.to_json(), "html": render_html(self, "de"), "html_en": render_html(self, "en")}

    def write(self, directory: Path, extra: Path | None = None,
              documents: dict[str, str] | None = None) -> dict[str, Path]:
        documents = documents or self.documents()
        directory.mkdir(parents=True, exist_ok=True)
        out = {kind: directory / f"{self.id}{FILE_SUFFIXES[kind]}" for kind in documents}
        for kind, path in out.items():
            path.write_text(documents[kind], encoding="utf-8")
        if extra is not None:
            extra = Path(extra)
            extra.parent.mkdir(parents=True, exist_ok=True)
            if extra.suffix.lower() in {".html", ".htm"}:
                extra.write_text(documents["html"], encoding="utf-8")
            else:
                extra.write_text(documents["json"], encoding="utf-8")
        return out


FILE_SUFFIXES = {"json": ".json", "html": ".html", "html_en": ".en.html"}     # of a report's files, by kind


TEXT = {
    "de": {
        "title": "Prüfbericht", "file": "Datei", "collection": "Sammlung", "member": "Mitglied",
        "dataset": "Datensatz", "status": "Ergebnis", "accepted": "angenommen", "refused": "abgelehnt",
        "format": "Format", "layer": "Ebene", "crs": "Koordinatensystem", "encoding": "Zeichenkodierung",
        "mapping": "Feldzuordnung", "unknown": "Nicht zugeordnete Felder (im Original aufbewahrt)",
        "counts": "Anzahl", "read": "gelesen", "repaired": "repariert", "rejected": "abgewiesen",
        "index": "Nr.", "reason": "Grund", "values": "Werte", "warnings": "Hinweise",
        "dry": "Probelauf: nichts wurde veröffentlicht.", "published": "Veröffentlicht als Version",
        "target": "Zielfeld", "source": "Feld in der Datei", "none": "keine",
    },
    "en": {
        "title": "Ingest report", "file": "File", "collection": "Collection", "member": "Member",
        "dataset": "Dataset", "status": "Result", "accepted": "accepted", "refused": "refused",
        "format": "Format", "layer": "Layer", "crs": "Coordinate reference system", "encoding": "Text encoding",
        "mapping": "Field mapping", "unknown": "Unmapped fields (kept in the original)",
        "counts": "Counts", "read": "read", "repaired": "repaired", "rejected": "rejected",
        "index": "No.", "reason": "Reason", "values": "Values", "warnings": "Notes",
        "dry": "Dry run: nothing was published.", "published": "Published as version",
        "target": "Schema field", "source": "Field in the file", "none": "none",
    },
}


def render_html(report: Report, lang: str = "de") -> str:
    t = TEXT["en" if lang == "en" else "de"]
    e = lambda v: html.escape("" if v is None else str(v), quote=True)  # noqa: E731
    de = lang != "en"
    pick = lambda d, k: d.get(f"{k}_de") or d.get(k) if de else d.get(k)  # noqa: E731
    rows = [
        (t["file"], report.file), (t["collection"], report.collection), (t["member"], report.member),
        (t["dataset"], report.dataset), (t["format"], report.format), (t["layer"], report.layer),
        (t["crs"], " — ".join(str(v) for v in (report.crs.get("epsg") and f"EPSG:{report.crs['epsg']}",
                                              pick(report.crs, "source"), pick(report.crs, "reason")) if v)),
        (t["encoding"], " — ".join(str(v) for v in (report.encoding.get("name"), pick(report.encoding, "source"))
                                   if v)),
    ]
    refusal = (report.refusal_de or report.refusal) if de else report.refusal
    warnings = report.warnings_de if de and len(report.warnings_de) == len(report.warnings) else report.warnings
    status = t.get(report.status, report.status)
    parts = [
        "<!doctype html>", f'<html lang="{lang}"><head><meta charset="utf-8">',
        f"<title>{e(t['title'])}: {e(report.file)}</title>",
        "<style>body{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem}"
        "table{border-collapse:collapse;margin:.5rem 0 1.5rem}td,th{border:1px solid #ccc;padding:.25rem .5rem;"
        "text-align:left;vertical-align:top}.accepted{color:#1a7f37}.refused{color:#b42318}"
        "code{white-space:pre-wrap}</style></head><body>",
        f"<h1>{e(t['title'])}: {e(report.file)}</h1>",
        f'<p class="{e(report.status)}"><strong>{e(t["status"])}: {e(status)}</strong>'
        + (f" — {e(refusal)}" if refusal else "") + "</p>",
    ]
    if report.dry_run:
        parts.append(f"<p>{e(t['dry'])}</p>")
    elif report.published:
        parts.append(f"<p>{e(t['published'])} {e(report.version)}</p>")
    parts.append("<table>" + "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in rows) + "</table>")
    c = report.counts
    parts.append(f"<h2>{e(t['counts'])}</h2><table><tr>" + "".join(
        f"<th>{e(t[k])}</th>" for k in ("read", "accepted", "repaired", "rejected")) + "</tr><tr>" + "".join(
        f"<td>{e(c.get(k, 0))}</td>" for k in ("read", "accepted", "repaired", "rejected")) + "</tr></table>")
    if report.field_mapping:
        parts.append(f"<h2>{e(t['mapping'])}</h2><table><tr><th>{e(t['target'])}</th><th>{e(t['source'])}</th></tr>"
                     + "".join(f"<tr><td>{e(k)}</td><td>{e(', '.join(v))}</td></tr>" for k, v in report.field_mapping.items())
                     + "</table>")
    parts.append(f"<h2>{e(t['unknown'])}</h2><p>{e(', '.join(report.unknown_fields) or t['none'])}</p>")
    if warnings:
        parts.append(f"<h2>{e(t['warnings'])}</h2><ul>" + "".join(f"<li>{e(w)}</li>" for w in warnings) + "</ul>")
    for key, notes in (("rejected", report.rejected), ("repaired", report.repaired)):
        if not notes:
            continue
        parts.append(f"<h2>{e(t[key])} ({len(notes)})</h2><table><tr><th>{e(t['index'])}</th>"
                     f"<th>{e(t['reason'])}</th><th>{e(t['values'])}</th></tr>")
        for n in notes:
            vals = "; ".join(f"{k}={v}" for k, v in n.values.items() if v is not None)
            parts.append(f"<tr><td>{e(n.index)}</td><td>{e(n.reason_de or n.reason if de else n.reason)}</td><td><code>{e(vals)}</code></td></tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)
