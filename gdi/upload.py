"""An upload end to end, as the command line and the server's jobs run it: ingest, then publish.

Ingest and publish are two stages that do not know each other; this module on top of both
runs one after the other. The data are stored in one transaction before publishing starts,
so a failing publish leaves them published and says so in the report.
"""
from __future__ import annotations

from pathlib import Path

from gdi.ingest.pipeline import Options, ingest
from gdi.ingest.report import Report
from gdi.ingest.reports import keep_report
from gdi.messages import t
from gdi.store.base import Store


def ingest_and_publish(path: Path, options: Options, store: Store | None = None) -> Report:
    """Run one upload and, when it changed what is published, regenerate the configuration
    (a running server refreshes its map by itself)."""
    report = ingest(path, options, store)
    if report.status != "accepted" or options.dry_run:
        return report
    step = options.progress or (lambda stage, fraction: None)
    step("publishing", 0.92)
    from gdi.publish import publish

    try:
        publish(store=store, viewer=False)
    except Exception as exc:  # noqa: BLE001 — the data are stored; say so rather than fail the upload
        failure = f"{type(exc).__name__}: {exc}"
        report.warn(t(f"die Daten sind als Version {report.version} veröffentlicht, aber Konfiguration und Karte "
                      f"ließen sich nicht neu erzeugen ({failure}); gdi publish ausführen",
                      f"the data are published as version {report.version}, but regenerating the "
                      f"configuration and map failed ({failure}); run gdi publish"))
        keep_report(report, options.report_file)
    step("done", 1.0)
    return report
