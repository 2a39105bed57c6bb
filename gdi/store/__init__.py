"""Stores: one interface, an embedded GeoPackage and (later) PostGIS."""
from __future__ import annotations

from gdi import settings
from gdi.store.base import Store, StoreError


def open_store(url: str | None = None) -> Store:
    """The store named by ``GDI_STORE``: unset → GeoPackage in ``GDI_HOME``."""
    url = url if url is not None else settings.store_url()
    if not url or url == "gpkg":
        from gdi.store.gpkg import GpkgStore

        return GpkgStore(settings.paths().store)
    if settings.is_postgres(url):
        from gdi.store.postgis import PostgisStore

        return PostgisStore(url)
    if url.endswith(".gpkg"):
        from gdi.store.gpkg import GpkgStore
        from pathlib import Path

        return GpkgStore(Path(url))
    raise StoreError(f"GDI_STORE not understood: {url!r} (leave unset or give a postgresql:// URL)")


__all__ = ["Store", "StoreError", "open_store"]
