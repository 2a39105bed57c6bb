"""The pygeoapi configuration, generated from the collection YAMLs and the store.

Nothing about collections is written by hand: title, licence, extents and
the provider all come from the definitions and the data actually stored.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from gdi import settings
from gdi.collections import CATALOGUE_ID, PROVENANCE, Collection
from gdi.messages import FIELDS

EPSG_URI = "http://www.opengis.net/def/crs/EPSG/0/{}"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
OUTPUT_CRS = [CRS84, EPSG_URI.format(25832), EPSG_URI.format(4258), EPSG_URI.format(4326), EPSG_URI.format(3857)]
GERMANY_CRS84 = [5.87, 47.27, 15.04, 55.06]
# member and dataset, which every feature carries: named as the upload names them
PROVENANCE_TITLES = {name: dict(zip(("de", "en"), FIELDS[f"--{name}"])) for name in PROVENANCE}


def lonlat_extent(extent: tuple[float, float, float, float] | None) -> list[float]:
    if extent is None:
        return GERMANY_CRS84
    # rounded outwards: the advertised extent must contain every feature
    return [math.floor(extent[0] * 1e6) / 1e6, math.floor(extent[1] * 1e6) / 1e6,
            math.ceil(extent[2] * 1e6) / 1e6, math.ceil(extent[3] * 1e6) / 1e6]


PROVIDERS = {"gpkg": "gdi.publish.provider.GpkgProvider", "postgis": "gdi.publish.provider_pg.PostgisProvider"}
TILE_PROVIDERS = {"gpkg": "gdi.publish.tile_provider.GpkgTileProvider",
                  "postgis": "gdi.publish.tile_provider_pg.PostgisTileProvider"}
GEOMETRY_DIMENSION = {"point": 0, "line": 1, "polygon": 2}


def tile_provider(collection: Collection, store_path: Path | str, kind: str) -> dict[str, Any]:
    """The collection's vector tiles (pygeoapi's tiles API over gdi/publish/tile_provider*.py), as its
    ``tiles:`` block declares them, in WebMercatorQuad and AdV_25832 (gdi/publish/tile_matrix.py)."""
    from gdi.publish.tile_matrix import ADV_ID, WEB_MERCATOR_ID

    style = collection.tiles
    options: dict[str, Any] = {
        "zoom": {"min": style.zoom_min, "max": style.zoom_max},
        "schemes": [WEB_MERCATOR_ID, ADV_ID],
        "table": collection.id,
        "storage_epsg": collection.epsg,
        "properties": list(style.properties),
        "geometry_dimension": GEOMETRY_DIMENSION[collection.kind],
    }
    if style.simplify:
        options["simplify"] = [[z, px] for z, px in style.simplify]
    if style.thin_below is not None:
        options["thin"] = {"below": style.thin_below, "cell": style.thin_cell}
    return {"type": "tile", "name": TILE_PROVIDERS[kind], "data": str(store_path),
            "format": {"name": "mvt", "mimetype": "application/vnd.mapbox-vector-tile"}, "options": options}


def described(collection: Collection) -> dict[str, str]:
    """The collection's description per language, with its attribution (the API and the downloads say it)."""
    description = dict(collection.description)
    if collection.attribution:
        description = {k: f"{v} Quelle/Source: {collection.attribution}" for k, v in description.items()}
    return description


def download_links(collection: Collection, url: str) -> list[dict[str, Any]]:
    """``rel="enclosure"`` links to the whole collection as files (gdi.publish.download), in the storage
    CRS: the data exactly as stored, in the CRS the county's GIS works in.

    ``length: -1``: pygeoapi (0.24, api/collection.py) sends a HEAD request to every enclosure link
    without a ``length`` on every collection request, to learn its size — a request from the worker to
    itself, dropped with the link when it takes over a second. A download is made when it is asked
    for, so its size is not known beforehand; a negative length makes pygeoapi list the link as
    configured, without ``length`` (tests/test_downloads.py checks both)."""
    from gdi.publish.download_formats import FORMATS

    crs = EPSG_URI.format(collection.epsg)
    href = f"{url.rstrip('/')}/collections/{collection.id}/download?f={{}}&crs={crs}"
    return [{"type": fmt.media_type, "rel": "enclosure", "length": -1, "href": href.format(key),
             "title": {"de": f"{collection.label('de')}: ganze Sammlung als {fmt.name} ({collection.storage_crs})",
                       "en": f"{collection.label('en')}: whole collection as {fmt.name} ({collection.storage_crs})"}}
            for key, fmt in FORMATS.items()]


def resource(collection: Collection, store_path: Path | str, extent, kind: str = "gpkg", *,
             url: str) -> dict[str, Any]:
    from gdi.publish.catalogue import describedby_links

    links = describedby_links(collection, url)
    if collection.licence.get("url"):
        links.append({"type": "text/html", "rel": "license", "title": collection.licence.get("name", "Licence"),
                      "href": collection.licence["url"], "hreflang": "de"})
    links += download_links(collection, url)
    provider: dict[str, Any] = {
        "type": "feature",
        "name": PROVIDERS[kind],
        "data": str(store_path),
        "table": collection.id,
        "id_field": "fid",
        "storage_crs": EPSG_URI.format(collection.epsg),
        "crs": list(OUTPUT_CRS),
    }
    if collection.title_field:
        provider["title_field"] = collection.title_field
    if collection.time_field:
        provider["time_field"] = collection.time_field
    provider["options"] = {"properties": property_schemas(collection), "html": html_options(collection)}
    return {
        "type": "collection",
        "title": dict(collection.title),
        "description": described(collection),
        "keywords": list(collection.keywords),
        "links": links,
        # no temporal extent: pygeoapi answers a datetime outside it with 400, where 0 features are right
        "extents": {"spatial": {"bbox": lonlat_extent(extent), "crs": CRS84}},
        "providers": [provider, tile_provider(collection, store_path, kind)],   # features first (publish reads [0])
    }


JSON_TYPES = {"string": ("string", None), "integer": ("integer", None), "number": ("number", None),
              "boolean": ("boolean", None), "date": ("string", "date"), "datetime": ("string", "date-time"),
              "uri": ("string", "uri")}


def property_schemas(collection: Collection) -> dict[str, dict[str, Any]]:
    """The JSON Schema of each property as declared (queryables and the OpenAPI document use it):
    a date is a string of format date, a uri one of format uri, a vocabulary an enum of its term ids."""
    out: dict[str, dict[str, Any]] = {}
    text_limit = settings.get().ingest.max_text_length
    for name, p in collection.properties.items():
        jtype, fmt = JSON_TYPES[p.type]
        schema: dict[str, Any] = {"type": jtype, "title": p.label("de")}
        if fmt:
            schema["format"] = fmt
        limit = p.length_limit(text_limit)
        if limit:
            schema["maxLength"] = limit
        if p.pattern:
            schema["pattern"] = p.pattern
        if p.vocabulary:
            schema["values"] = list(collection.vocabularies.get(p.vocabulary, {}))   # pygeoapi: enum
        out[name] = schema
    for name in PROVENANCE:
        out[name] = {"type": "string", "title": PROVENANCE_TITLES[name]["de"]}
    return out


def html_options(collection: Collection) -> dict[str, Any]:
    """What the HTML pages show of a collection's properties (gdi/publish/template_edits.py): the
    items table's columns (the first ``server.html_columns`` properties, the title field first),
    each property's title and each vocabulary term's name as {de, en}, which pygeoapi turns into
    the request's language."""
    rest = [n for n in collection.columns if n != collection.title_field]
    columns = ([collection.title_field] if collection.title_field else []) + rest[:settings.get().server.html_columns]
    labels = {n: {"de": p.label("de"), "en": p.label("en")} for n, p in collection.properties.items()}
    labels.update({n: dict(titles) for n, titles in PROVENANCE_TITLES.items()})
    terms = {n: {term.id: {"de": term.de, "en": term.en} for term in collection.vocabularies.get(p.vocabulary, {}).values()}
             for n, p in collection.properties.items() if p.vocabulary}
    return {"columns": columns, "labels": labels, "terms": terms}


def contact(url: str) -> dict[str, str]:
    """pygeoapi's service contact: the installation's contact (settings ``contact``), as in the ISO records."""
    who = settings.get().contact
    return {"name": who.person or who.organisation, "position": who.position, "address": who.street,
            "city": who.city, "stateorprovince": who.state, "postalcode": who.postcode, "country": who.country,
            "phone": who.phone, "fax": "", "email": who.email, "url": who.url or url.rstrip("/"), "hours": "",
            "instructions": "", "role": who.role}


def build_config(collections: dict[str, Collection], store, *, url: str, templates: tuple[Path, Path] | None,
                 locale_dir: Path | None = None, catalogue: dict | None = None) -> dict:
    """``catalogue``: the pygeoapi resource of the metadata records (gdi/publish/catalogue.py), listed last."""
    server: dict[str, Any] = {
        "bind": {"host": "127.0.0.1", "port": 5000},
        "url": url.rstrip("/"),
        "mimetype": "application/json; charset=UTF-8",
        "encoding": "utf-8",
        "gzip": False,
        "cors": False,        # CORS is ours (gdi/server/cors.py): per server.cors_origins, never on uploads
        "languages": ["de-DE", "en-US"],
        "pretty_print": False,
        "limits": {
            "default_items": settings.get().server.limit_default,
            "max_items": settings.get().server.limit_max,
            "on_exceed": "throttle",
        },
        "map": {"url": "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
                "attribution": "&copy; OpenStreetMap contributors"},
    }
    if templates:
        server["templates"] = {"path": str(templates[0]), "static": str(templates[1])}
    if locale_dir:
        server["locale_dir"] = str(locale_dir)      # the German (and English) texts of the HTML pages
    region = settings.get().region.name
    return {
        "server": server,
        "logging": {"level": "ERROR"},
        "metadata": {
            "identification": {
                "title": {"de": f"{region} – Geodaten", "en": f"{region} – geodata"},
                "description": {
                    "de": "Gemeinsame Geodateninfrastruktur des Kreises und seiner Mitgliedskommunen (OGC API Features).",
                    "en": "Shared geodata infrastructure of the county and its member municipalities (OGC API Features).",
                },
                "keywords": {"de": ["Geodaten", *(c.label("de") for c in collections.values())],
                             "en": ["geodata", *(c.label("en") for c in collections.values())]},
                "keywords_type": "theme",
                "terms_of_service": "https://www.govdata.de/dl-de/by-2-0",
                "url": url.rstrip("/") + "/viewer",
            },
            "license": {"name": "Datenlizenz Deutschland – Namensnennung 2.0 / ODbL (je Sammlung)",
                        "url": "https://www.govdata.de/dl-de/by-2-0"},
            "provider": {"name": settings.get().contact.organisation or region, "url": url.rstrip("/")},
            "contact": contact(url),
        },
        "resources": {**{cid: resource(c, store.path, store.extent_lonlat(c), store.kind, url=url)
                         for cid, c in collections.items()},
                      **({CATALOGUE_ID: catalogue} if catalogue else {})},
    }
