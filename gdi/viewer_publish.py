"""Feeds the planners' map from the store (inlined at publish time).

Why inlined and not fetched from the OGC API in the browser: one request
instead of one per collection and page, the supply analysis (shapely, in
EPSG:25832) is computed once per publish instead of in every browser, and the
same page works as a single e-mailed file.  Measured with 10,000 points (see
bench/viewer.py): building a page ~1.5 s, first draw (navigation start -> first
frame with everything on the map) ~1.1-1.3 s on the 2-core CI machine, under the
1.5 s budget.  The served pages also write index[.en].bands.json beside them
(the distance bands, fetched when switched on; gdi serve answers /viewer/<file>).
"""
from __future__ import annotations

from pathlib import Path

from gdi import settings
from gdi.collections import Collection

LANGS = ("de", "en")


def build_from_store(store, collections: dict[str, Collection], out_file: Path, *, inline_assets: bool = False,
                     asset_url: str = "/vendor", lang: str = "de", all_languages: bool | None = None) -> Path:
    """Write the map for lang to out_file and return it.

    all_languages (default: when out_file is the served index.html): also write
    index.<other>.html next to it, which `gdi serve` answers for /viewer?lang=<other>.
    """
    import geopandas as gpd

    from gdi.viewer.build import build_viewer, compute_picture

    out_file = Path(out_file)
    municipalities = store.read(collections["municipalities"])
    if "supply_points" in collections:
        points = store.read(collections["supply_points"])
    else:
        points = gpd.GeoDataFrame(geometry=gpd.GeoSeries([], crs=4326))
    raw = {k: v.raw for k, v in collections.items()}
    picture = compute_picture(municipalities, points, raw)  # once, for every language
    if all_languages is None:
        all_languages = out_file.name == "index.html" and not inline_assets
    basemap = str(settings.setting("viewer.basemap", "osm"))
    for other in (l for l in LANGS if l != lang and all_languages):
        build_viewer(municipalities, points, raw, out_file.with_name(f"index.{other}.html"), asset_url=asset_url,
                     lang=other, basemap=basemap, picture=picture, lang_switch=True)
    return build_viewer(
        municipalities, points, raw, out_file,
        asset_url=asset_url, inline_assets=inline_assets, lang=lang,
        basemap=basemap, picture=picture, lang_switch=all_languages,
    )
