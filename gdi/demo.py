"""The bundled real data, loaded as the two counties would upload it."""
from __future__ import annotations

from dataclasses import dataclass

from gdi import settings
from gdi.ingest.pipeline import Options, ingest

DEMO_DIR = settings.repo_root() / "data"     # provenance and licences: data/SOURCES.md


@dataclass(frozen=True)
class DemoUpload:
    file: str
    collection: str
    member: str
    dataset: str


UPLOADS = (
    DemoUpload("boundaries/vg250ew_gemeinden_marburg-biedenkopf.geojson", "municipalities", "06534", "vg250ew"),
    DemoUpload("boundaries/vg250ew_gemeinden_hoexter.geojson", "municipalities", "05762", "vg250ew"),
    DemoUpload("poi/farmshops_marburg-biedenkopf_hoexter_umland.geojson", "supply_points", "06534", "osm_farmshops"),
    DemoUpload("poi/farmshops_marburg-biedenkopf_hoexter_umland.geojson", "supply_points", "05762", "osm_farmshops"),
    DemoUpload("poi/lidl_marburg-biedenkopf_hoexter_umland.geojson", "supply_points", "06534", "osm_supermarkets"),
    DemoUpload("poi/lidl_marburg-biedenkopf_hoexter_umland.geojson", "supply_points", "05762", "osm_supermarkets"),
)


def load_demo(*, force: bool = False, echo=print) -> bool:
    """Load the demo uploads unless the store already has data; True when loaded."""
    from gdi.store import open_store

    store = open_store()
    if store.datasets() and not force:
        echo("gdi: data already loaded in " + str(settings.paths().home) + " (use --reload to load again)")
        return False
    for up in UPLOADS:
        report = ingest(DEMO_DIR / up.file, Options(up.collection, up.member, up.dataset, publish=False), store)
        c = report.counts
        echo(f"gdi: {up.collection:<15} member {up.member} {up.file}: {report.status}, "
             f"{c['accepted']} accepted, {c['rejected']} rejected")
        if report.status != "accepted":
            raise RuntimeError(f"demo upload {up.file} refused: {report.refusal}")
    return True
