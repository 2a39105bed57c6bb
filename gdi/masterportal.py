"""`gdi masterportal`: the layer entries of a Masterportal ``services.json``, one per collection.

Masterportal's OAF layer (services.json, "OAF layer" and "WMS_WFS_OAF_datasets" in its
documentation): the landing page as ``url``, the collection id, the CRS asked for (our storage
CRS, so the server never reprojects), the attributes its feature info shows with their German
titles, and ``datasets`` pointing the layer-information button at the record in our CSW
(``md_id`` = the ISO fileIdentifier, ``csw_url``).
"""
from __future__ import annotations

from typing import Any

from gdi import settings
from gdi.collections import Collection
from gdi.crs import transformer
from gdi.publish.config import EPSG_URI, lonlat_extent, property_schemas
from gdi.publish.metadata import record_id
from gdi.vocabularies import INSPIRE_THEMES

NOT_INSPIRE = "nicht INSPIRE-identifiziert"     # Masterportal's value for data without an INSPIRE theme


def native_bbox(collection: Collection, lonlat: tuple[float, float, float, float] | None) -> str:
    """The extent in the collection's storage CRS as Masterportal writes it: "minx,miny,maxx,maxy"."""
    box = transformer(4326, collection.epsg).transform_bounds(*lonlat_extent(lonlat), densify_pts=21)
    return ",".join(f"{v:.2f}" for v in box)


def layer(collection: Collection, *, url: str, lonlat: tuple[float, float, float, float] | None) -> dict[str, Any]:
    base = url.rstrip("/")
    theme = collection.metadata.inspire_theme
    dataset: dict[str, Any] = {
        "md_id": record_id(url, collection.id),
        "csw_url": f"{base}/csw",
        "md_name": collection.label("de"),
        "bbox": native_bbox(collection, lonlat),
        "kategorie_opendata": [collection.metadata.opendata_category or "Sonstiges"],
        "kategorie_inspire": [INSPIRE_THEMES[theme] if theme else NOT_INSPIRE],
        "kategorie_organisation": settings.get().contact.organisation,
    }
    return {
        "id": f"gdi_{collection.id}",
        "name": collection.label("de"),
        "typ": "OAF",
        "url": base,
        "collection": collection.id,
        "crs": EPSG_URI.format(collection.epsg),
        "limit": settings.get().masterportal.limit,
        "gfiAttributes": {name: schema["title"] for name, schema in property_schemas(collection).items()},
        "gfiTheme": "default",
        "layerAttribution": collection.attribution or "nicht vorhanden",
        "datasets": [dataset],
    }


def services(collections: dict[str, Collection], store, *, url: str) -> list[dict[str, Any]]:
    """One OAF layer entry per collection, in the map's layer order."""
    ordered = sorted(collections.values(), key=lambda c: (c.map.order, c.id))
    return [layer(c, url=url, lonlat=store.extent_lonlat(c)) for c in ordered]
