"""Where ingest reports are kept, and where the report routes and the command line read them.

Always as files under ``GDI_HOME/reports`` (the embedded store's only copy); with PostGIS
also in the store (``gdi.reports``), which is what every server answers from: a report
written by one server's job is served by all of them, and a server started on an empty
``GDI_HOME`` still knows it. The local files are then a cache that nothing depends on.
"""
from __future__ import annotations

import re
from pathlib import Path

from gdi import settings
from gdi.ingest.report import FILE_SUFFIXES, Report
from gdi.messages import t
from gdi.store import open_store

KINDS = tuple(FILE_SUFFIXES)        # json, html (German), html_en
REPORT_ID = re.compile(r"\d{8}T\d{12}-\w*")      # as gdi.ingest.pipeline names them: time and collection


def keep_report(report: Report, extra: Path | None = None) -> None:
    """Write the report's files (and ``extra``, the ``--report`` copy) and, with PostGIS, keep it in the store."""
    documents = report.documents()
    report.write(settings.paths().reports, extra, documents)
    store = open_store()
    if store.kind == "postgis":
        store.keep_report(report.id, documents)


def report_document(rid: str, kind: str) -> Path | str | None:
    """One document of a report: its text from the store (PostGIS), else its file under GDI_HOME;
    None when neither has it."""
    if kind not in KINDS:
        raise ValueError(t(f"kein Dokument {kind!r} eines Prüfberichts", f"no report document {kind!r}"))
    if not REPORT_ID.fullmatch(rid):
        return None
    store = open_store()
    if store.kind == "postgis":
        text = store.report_document(rid, kind)
        if text is not None:
            return text
    path = settings.paths().reports / f"{rid}{FILE_SUFFIXES[kind]}"
    return path if path.is_file() else None
