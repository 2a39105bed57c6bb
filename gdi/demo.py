"""The bundled real data, loaded as the two counties would upload it."""
from __future__ import annotations

from dataclasses import dataclass

import yaml

from gdi import settings
from gdi.ingest.pipeline import Options, ingest

DEMO_DIR = settings.repo_root() / "data"     # provenance and licences: data/SOURCES.md


@dataclass(frozen=True)
class DemoUpload:
    file: str
    collection: str
    member: str
    dataset: str
    admin: bool = False


def uploads() -> list[DemoUpload]:
    """The demo's uploads, declared in data/demo.yml beside the data they name."""
    with open(DEMO_DIR / "demo.yml", encoding="utf-8") as fh:
        return [DemoUpload(**u) for u in yaml.safe_load(fh)["uploads"]]


def load_demo(*, force: bool = False, echo=print) -> bool:
    """Load the demo uploads unless the store already has data; True when loaded."""
    from gdi.store import open_store

    store = open_store()
    if store.datasets() and not force:
        echo("gdi: data already loaded in " + str(settings.paths().home) + " (use --reload to load again)")
        return False
    for up in uploads():
        report = ingest(DEMO_DIR / up.file, Options(up.collection, up.member, up.dataset,
                                                    admin=up.admin), store)
        c = report.counts
        echo(f"gdi: {up.collection:<15} member {up.member} {up.file}: {report.status}, "
             f"{c['accepted']} accepted, {c['rejected']} rejected")
        if report.status != "accepted":
            raise RuntimeError(f"demo upload {up.file} refused: {report.refusal}")
    return True
