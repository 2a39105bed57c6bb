"""Feeds the planners' map from the store (inlined at publish time)."""
from __future__ import annotations

from pathlib import Path

from gdi import settings
from gdi.collections import Collection


def build_from_store(store, collections: dict[str, Collection], out_file: Path, *, inline_assets: bool = False,
                     asset_url: str = "/vendor", lang: str = "de") -> Path:
    from gdi.viewer.build import build_viewer

    municipalities = store.read(collections["municipalities"]).to_crs(4326)
    points = store.read(collections["supply_points"]).to_crs(4326) if "supply_points" in collections else None
    if points is None:
        import geopandas as gpd
        points = gpd.GeoDataFrame(geometry=gpd.GeoSeries([], crs=4326))
    return build_viewer(
        municipalities, points, {k: v.raw for k, v in collections.items()}, out_file,
        asset_url=asset_url, inline_assets=inline_assets, lang=lang,
        basemap=str(settings.setting("viewer.basemap", "osm")),
    )
