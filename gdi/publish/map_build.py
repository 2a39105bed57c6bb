"""Feeds the planners' map from the store (inlined at publish time).

Why inlined and not fetched from the OGC API in the browser: one request
instead of one per collection and page, the supply analysis (shapely, in
EPSG:25832) is computed once per publish instead of in every browser, and the
same page works as a single e-mailed file.  Measured with 10,000 points (see
bench/viewer.py): building a page ~1.5 s, first draw (navigation start -> first
frame with everything on the map) ~1.1-1.3 s on the 2-core CI machine, under the
1.5 s budget.  The served pages also write index[.en].bands.json beside them
(the distance bands, fetched when switched on; gdi serve answers /viewer/<file>).

Every defined collection is read and drawn (gdi/viewer/layers.py decides how,
from its YAML); nothing here knows which collections exist.

The served map is derived from the store, like the pygeoapi configuration, but
building it costs seconds for large data (analysis included), so an upload does
not wait for it: ``refresh()`` rebuilds it when the store's data version moved
past the one the map was built from (``viewer/data-version``). `gdi serve` runs
that check every few seconds, `gdi publish` and server start-up run it at once.
"""
from __future__ import annotations

import fcntl
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from gdi import settings
from gdi.files import write_atomically
from gdi.collections import Collection

LANGS = ("de", "en")
STAMP = "data-version"


def tiled_collections(store, collections: Mapping[str, Collection]) -> dict:  # type: ignore[no-untyped-def]
    """The collections the map draws from vector tiles (more features than viewer.tiles_above; never
    the territory, which the analysis and the table are made of), with what the map needs of them —
    count, lon/lat extent, per-value counts of map.colour_by and of the analysed field — from
    aggregate queries: their features are not read."""
    from gdi.viewer.tiles import TiledCollection

    limit = settings.get().viewer.tiles_above
    out = {}
    for cid, coll in collections.items():
        if coll.territory is not None or (count := store.count(coll)) <= limit:
            continue
        fields = [coll.map.colour_by, coll.supply.field if coll.supply else None]
        values = {f: store.value_counts(coll, f) for f in dict.fromkeys(fields) if f and f in coll.columns}
        out[cid] = TiledCollection(count, store.extent_lonlat(coll), values)
    return out


def analysis_points(store, collection: Collection, field: str):  # type: ignore[no-untyped-def]
    """The points of a (large) collection with only the analysed field, read in batches, as a
    PointSet (coordinates and values): the analysis needs positions and terms, and a frame of all
    columns of a million features took gigabytes (and a million shapely points alone 350 MB)."""
    import numpy as np
    import shapely

    from gdi.viewer.analysis import PointSet

    xy: list[np.ndarray] = []
    values: list[np.ndarray] = []
    batch = settings.get().viewer.analysis_batch
    with store.read_batches(collection, batch_size=batch, columns=[field]) as (_version, batches):
        for _fids, wkb, column in batches:
            geoms = shapely.from_wkb(np.array(wkb, dtype=object))
            points = shapely.get_type_id(geoms) == shapely.GeometryType.POINT
            xy.append(shapely.get_coordinates(geoms[points]))
            values.append(np.array(column, dtype=object)[points])
            del geoms, wkb, column
    return PointSet(np.concatenate(xy) if xy else np.empty((0, 2)),
                    np.concatenate(values) if values else np.empty(0, dtype=object), collection.storage_crs)


def build_from_store(store, collections: Mapping[str, Collection], out_file: Path, *,  # type: ignore[no-untyped-def]
                     inline_assets: bool = False, asset_url: str = "/vendor", lang: str = "de",
                     all_languages: bool | None = None) -> Path:
    """Write the map for lang to out_file and return it.

    all_languages (default: when out_file is the served index.html): also write
    index.<other>.html next to it, which `gdi serve` answers for /viewer?lang=<other>.
    A collection above viewer.tiles_above is not read (tiled_collections); the supply analysis
    reads only positions and its field of it (analysis_points).  The served pages fetch tiles
    from their own server; the single file (inline_assets) from server.url.
    """
    from urllib.parse import urlsplit

    from gdi.viewer.build import build_viewer, compute_picture

    out_file = Path(out_file)
    tiled = tiled_collections(store, collections)
    frames = {cid: store.read(coll) for cid, coll in collections.items() if cid not in tiled}
    analysed = dict(frames)
    for cid in tiled:
        coll = collections[cid]
        if coll.supply is not None and coll.supply.field in coll.columns:
            analysed[cid] = analysis_points(store, coll, coll.supply.field)
    picture = compute_picture(analysed, collections)  # once, for every language
    del analysed
    if all_languages is None:
        all_languages = out_file.name == "index.html" and not inline_assets
    server_url = settings.get().server.url
    api_url = server_url if inline_assets else urlsplit(server_url).path
    basemap = settings.get().viewer.basemap
    for other in (code for code in LANGS if code != lang and all_languages):
        build_viewer(frames, collections, out_file.with_name(f"index.{other}.html"), asset_url=asset_url,
                     lang=other, basemap=basemap, picture=picture, lang_switch=True, tiled=tiled, api_url=api_url)
    return build_viewer(
        frames, collections, out_file,
        asset_url=asset_url, inline_assets=inline_assets, lang=lang,
        basemap=basemap, picture=picture, lang_switch=all_languages, tiled=tiled, api_url=api_url,
    )


def built_for() -> str | None:
    """The data version the served map shows (None: never built)."""
    try:
        return (settings.paths().viewer / STAMP).read_text(encoding="utf-8").strip()
    except OSError:
        return None


def refresh(store=None, collections: Mapping[str, Collection] | None = None, *,  # type: ignore[no-untyped-def]
            force: bool = False) -> bool:
    """Rebuild the served map (both languages) unless it already shows the store's data; True if rebuilt.

    One builder at a time per GDI_HOME (a lock file); whoever waited re-checks first. On PostGIS one
    builder at a time across every server on the database, and a build another server stored for
    this data version is installed instead of built again (gdi.publish.map_share); force then only
    means not trusting this GDI_HOME's own stamp.
    """
    from gdi.collections import load_collections
    from gdi.store import open_store

    paths = settings.paths()
    paths.viewer.mkdir(parents=True, exist_ok=True)
    with open(paths.home / "viewer.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        store = store or open_store()
        version = store.data_version()      # read before the data: a change meanwhile means another pass
        if not force and built_for() == str(version) and (paths.viewer / "index.html").exists():
            return False
        collections = collections or load_collections()
        if store.kind != "postgis":
            _build(store, collections, version, paths.viewer)
            write_atomically(paths.viewer / STAMP, str(version))
            return True
        from gdi.publish import map_share

        def done(built: int, files: dict[str, bytes]) -> None:
            map_share.install(paths.viewer, files)
            write_atomically(paths.viewer / STAMP, str(built))

        def build(built: int) -> dict[str, bytes]:
            with tempfile.TemporaryDirectory(dir=paths.viewer, prefix=".build-") as work:
                _build(store, collections, built, Path(work))
                return {p.name: p.read_bytes() for p in sorted(Path(work).iterdir()) if p.is_file()}

        outcome = map_share.refresh(store.url, build, done)
        if outcome is None:
            print("gdi: another server is still building the map; this one keeps the last", flush=True)
            return False
        built_here, built = outcome
        if not built_here:
            print(f"gdi: map for data version {built} fetched from the store", flush=True)
        return built_here


def _build(store, collections: Mapping[str, Collection], version: int,  # type: ignore[no-untyped-def]
           folder: Path) -> None:
    """Build the served pages into folder from the store — its read replica when that shows at least
    ``version``, else the primary."""
    from gdi.store import replica

    build_from_store(replica.read_store(store, version), collections, folder / "index.html")


def main(argv: list[str] | None = None) -> int:
    """`python -m gdi.publish.map_build [--force]`: what `gdi serve` runs in a child process, at start
    (forced: definitions or settings may have changed) and whenever the data moved on."""
    rebuilt = refresh(force="--force" in (sys.argv[1:] if argv is None else argv))
    if rebuilt:
        print(f"gdi: map rebuilt for data version {built_for()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
