"""The metadata catalogue, regenerated at each publish: ISO documents, Records, pycsw's repository.

For every collection: its ISO 19139 document (``publish/metadata/{id}.xml``, served at
``/collections/{id}/metadata``), its OGC API Record (``publish/catalogue.json``, the TinyDB
file pygeoapi's ``TinyDBCatalogue`` serves at ``/collections/catalogue``) and its record in
pycsw's SQLite repository (``publish/csw.db``, served by pycsw at ``/csw``). All three come
from one MCF document per collection (gdi/publish/metadata.py), so they never disagree.
The publish writes the ISO documents and their key (``publish/metadata.key``); pycsw rebuilds
its repository from them at its next request (gdi/pycsw_app.py), in its own environment,
so an upload never waits for pycsw.
"""
from __future__ import annotations

import configparser
import hashlib
import io
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from gdi import settings
from gdi.collections import Collection
from gdi.files import now_iso, write_atomically
from gdi.collections import CATALOGUE_ID
from gdi.publish.metadata import Facts, iso_xml, mcf, record_id, record_json


@dataclass(frozen=True)
class Catalogue:
    records: dict[str, dict]          # collection id → its OGC API Record


def facts(collection: Collection, store) -> Facts:
    updated = max((d.updated for d in store.datasets(collection)), default=None)
    return Facts(bbox=store.extent_lonlat(collection), time=store.time_extent(collection), updated=updated)


def write_catalogue(collections: dict[str, Collection], store, *, url: str) -> Catalogue:
    paths = settings.paths()
    contact = settings.get().contact
    today = now_iso()
    paths.metadata.mkdir(parents=True, exist_ok=True)
    records: dict[str, dict] = {}
    documents: dict[str, bytes] = {}
    for cid, c in collections.items():
        doc = mcf(c, facts(c, store), contact, url, today=today)
        documents[cid], records[cid] = _rendered(paths.metadata, cid, doc, c, url)
    for stale in [*paths.metadata.glob("*.xml"), *paths.metadata.glob(f"*{RENDERED}")]:
        if stale.name.split(".")[0] not in documents:
            stale.unlink()
    tinydb = {"_default": {str(i): searchable(r) for i, r in enumerate(same_keys(list(records.values())), start=1)}}
    text = json.dumps(tinydb, ensure_ascii=False, sort_keys=True, indent=1)
    if not paths.records.exists() or paths.records.read_text(encoding="utf-8") != text:
        write_atomically(paths.records, text)
    write_if_changed(paths.pycsw_config, pycsw_config(url, contact, paths.pycsw_db))
    # last: the key tells pycsw (gdi/pycsw_app.py) to rebuild its repository from these documents
    write_if_changed(paths.metadata_key, hashlib.sha256(b"".join(documents[k] for k in sorted(documents))).hexdigest())
    return Catalogue(records=records)


RENDERED = ".rendered.json"     # beside each ISO document: the key of the MCF it was written from, and its record


def _rendered(folder: Path, cid: str, doc: dict, collection: Collection, url: str) -> tuple[bytes, dict]:
    """The collection's ISO document and record, written again only when its MCF changed.

    pygeometa compiles its Jinja templates anew on every call (about half a second with its imports):
    an upload changes one collection's record at most, and often none (the extent and the day of the
    last revision stay), so every other record is taken as written. The key covers the MCF document,
    the URL, the code that completes the document and pygeometa's version."""
    key = _render_key(doc, url)
    xml_file, sidecar = folder / f"{cid}.xml", folder / f"{cid}{RENDERED}"
    try:
        kept = json.loads(sidecar.read_text(encoding="utf-8"))
        if kept.get("key") == key:
            return xml_file.read_bytes(), kept["record"]
    except (OSError, ValueError, KeyError):
        pass
    xml, record = iso_xml(doc, collection), record_json(doc, collection, url)
    if not xml_file.exists() or xml_file.read_bytes() != xml:
        write_atomically(xml_file, xml.decode("utf-8"))
    write_atomically(sidecar, json.dumps({"key": key, "record": record}, ensure_ascii=False))
    return xml, record


def _render_key(doc: dict, url: str) -> str:
    import importlib.metadata

    from gdi.publish import metadata

    code = Path(metadata.__file__).read_bytes() + Path(__file__).read_bytes()
    return hashlib.sha256(json.dumps([doc, url, importlib.metadata.version("pygeometa")], sort_keys=True,
                                     default=str).encode() + code).hexdigest()


def same_keys(records: list[dict]) -> list[dict]:
    """Every record with every property any record has (None where it has none): pygeoapi 0.24's
    TinyDBCatalogue reads each queryable of every record for ``queryables?profile=actual-domain`` and
    fails with a KeyError (a 500) on a record without, e.g., ``themes``."""
    keys = sorted({k for r in records for k in r["properties"]})
    return [{**r, "properties": {k: r["properties"].get(k) for k in keys}} for r in records]


def searchable(record: dict) -> dict:
    """The record as TinyDBCatalogue stores it: ``q`` searches its ``_metadata-anytext`` (title, description,
    keywords), which the provider leaves out of its answers."""
    props = record["properties"]
    words = [props.get("title", ""), props.get("description", ""), *props.get("keywords", [])]
    return {**record, "properties": {**props, "_metadata-anytext": " ".join(w for w in words if w)}}


def write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        write_atomically(path, text)


def pycsw_config(url: str, contact, database: Path) -> str:
    """pycsw's configuration: the CSW at {url}/csw, read-only (no transactions), ISO (apiso) profile,
    capabilities naming the installation and its contact."""
    region = settings.get().region.name
    cfg = configparser.ConfigParser(interpolation=None)
    cfg["server"] = {
        "home": str(database.parent), "url": f"{url.rstrip('/')}/csw", "mimetype": "application/xml; charset=UTF-8",
        "encoding": "UTF-8", "language": "de-DE", "maxrecords": "100", "loglevel": "WARNING", "logfile": "",
        "ogc_schemas_base": "http://schemas.opengis.net", "federatedcatalogues": "", "pretty_print": "true",
        "domainquerytype": "list", "domaincounts": "false", "profiles": "apiso",
    }
    cfg["manager"] = {"transactions": "false", "allowed_ips": "127.0.0.1"}
    cfg["metadata:main"] = {
        "identification_title": f"{region} – Metadatenkatalog (CSW)",
        "identification_abstract": "Metadaten (ISO 19139) der Geodaten der gemeinsamen Geodateninfrastruktur "
                                   "des Kreises und seiner Mitgliedskommunen.",
        "identification_keywords": "Geodaten,Metadaten,opendata",
        "identification_keywords_type": "theme", "identification_fees": "keine",
        "identification_accessconstraints": "keine",
        "provider_name": contact.organisation, "provider_url": contact.url or url.rstrip("/"),
        "contact_name": contact.person, "contact_position": contact.position, "contact_address": contact.street,
        "contact_city": contact.city, "contact_stateorprovince": contact.state, "contact_postalcode": contact.postcode,
        "contact_country": contact.country, "contact_phone": contact.phone, "contact_fax": "",
        "contact_email": contact.email, "contact_url": contact.url or url.rstrip("/"), "contact_hours": "",
        "contact_instructions": "", "contact_role": contact.role,
    }
    cfg["repository"] = {"database": f"sqlite:///{database}", "table": "records"}
    paths = settings.paths()
    cfg["gdi"] = {"documents": str(paths.metadata), "key": str(paths.metadata_key)}   # gdi/pycsw_app.py
    out = io.StringIO()
    cfg.write(out)
    return out.getvalue()


def catalogue_resource(records: dict[str, dict], url: str) -> dict:
    """The pygeoapi resource of the OGC API Records collection (pygeoapi's TinyDBCatalogue provider)."""
    paths = settings.paths()
    boxes = [r["geometry"]["coordinates"][0] for r in records.values() if r.get("geometry")]
    lons = [p[0] for ring in boxes for p in ring]
    lats = [p[1] for ring in boxes for p in ring]
    bbox = [min(lons), min(lats), max(lons), max(lats)] if lons else [5.87, 47.27, 15.04, 55.06]
    updates = sorted(r["properties"].get("updated") for r in records.values() if r["properties"].get("updated"))
    extents: dict = {"spatial": {"bbox": bbox, "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"}}
    if updates:
        # the records' last update is part of the configuration, so the response caches (keyed on the data
        # version and the configuration) follow every publish; pygeoapi wants datetimes here
        extents["temporal"] = {"begin": datetime.fromisoformat(updates[0]), "end": datetime.fromisoformat(updates[-1])}
    return {
        "type": "collection",
        "title": {"de": "Metadatenkatalog", "en": "Metadata catalogue"},
        "description": {"de": "Ein Metadatensatz (OGC API Records) je Sammlung; dieselben Metadaten als "
                              "ISO 19139 über die CSW-Schnittstelle unter /csw.",
                        "en": "One metadata record (OGC API Records) per collection; the same metadata as "
                              "ISO 19139 through the CSW at /csw."},
        "keywords": ["Metadaten", "metadata", "catalogue"],
        "links": [{"type": "application/xml", "rel": "alternate", "title": "CSW 2.0.2 (ISO 19139)",
                   "href": f"{url.rstrip('/')}/csw?service=CSW&version=2.0.2&request=GetCapabilities"}],
        "extents": extents,
        "providers": [{"type": "record", "name": "gdi.publish.records_provider.CatalogueProvider",
                       "data": str(paths.records), "id_field": "id",
                       "time_field": "updated", "title_field": "title"}],
    }


def describedby_links(collection: Collection, url: str) -> list[dict[str, str]]:
    """What each OGC API Features collection links as its description: the ISO document and the record."""
    base = url.rstrip("/")
    md_id = record_id(url, collection.id)
    return [
        {"type": "application/xml", "rel": "describedby", "title": "Metadaten (ISO 19139)",
         "href": f"{base}/collections/{collection.id}/metadata"},
        {"type": "application/geo+json", "rel": "describedby", "title": "Metadatensatz (OGC API Records)",
         "href": f"{base}/collections/{CATALOGUE_ID}/items/{md_id}?f=json"},
        {"type": "application/xml", "rel": "describedby", "title": "Metadatensatz (CSW GetRecordById)",
         "href": f"{base}/csw?service=CSW&version=2.0.2&request=GetRecordById&id={md_id}"
                 "&outputSchema=http://www.isotc211.org/2005/gmd&elementSetName=full"},
    ]
