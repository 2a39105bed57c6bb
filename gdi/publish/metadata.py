"""ISO 19115/19139 metadata and OGC API Records of a collection, following GDI-DE's conventions.

Pure transformations: a collection's definition, the facts read from the store (extent, time,
last update) and the installation's contact become an MCF document (pygeometa's metadata
model), which pygeometa writes as ISO 19139 and as an OGC API Records record. Where the
GDI-DE "Konventionen zu Metadaten" ask for more than pygeometa's ISO template writes (access
and use constraints as two blocks with the licence as JSON, the reference system as an EPSG
anchor, the date of the INSPIRE theme thesaurus, the role of the metadata contact), the
document pygeometa wrote is completed with lxml, not written by hand.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from lxml import etree

from gdi.collections import Collection
from gdi.publish.config import lonlat_extent
from gdi.vocabularies import INSPIRE_THEME_URI, INSPIRE_THEMES, INSPIRE_THESAURUS

NS = {"gmd": "http://www.isotc211.org/2005/gmd", "gco": "http://www.isotc211.org/2005/gco",
      "gmx": "http://www.isotc211.org/2005/gmx", "xlink": "http://www.w3.org/1999/xlink",
      "gml": "http://www.opengis.net/gml"}
NO_ACCESS_LIMITS = ("http://inspire.ec.europa.eu/metadata-codelist/LimitationsOnPublicAccess/noLimitations",
                    "Es gelten keine Zugriffsbeschränkungen")
CODELIST = "http://www.isotc211.org/2005/resources/Codelist/gmxCodelists.xml#{}"
METADATA_CONTACT = "metadata"    # MCF key of the metadata contact (its role is set to pointOfContact afterwards)


def record_id(server_url: str, collection_id: str) -> str:
    """The fileIdentifier (Masterportal's md_id): stable across restarts and publishes, because it is
    derived from what names the data set publicly — the server URL and the collection id."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{server_url.rstrip('/')}/collections/{collection_id}"))


@dataclass(frozen=True)
class Facts:
    """What the store says about a collection's published data."""

    bbox: tuple[float, float, float, float] | None     # lon/lat (CRS84) of the live features
    time: tuple[str, str] | None                       # earliest and latest value of the time field
    updated: str | None                                # the last change of a dataset (UTC, ISO 8601)


def contact_mcf(contact, url: str) -> dict[str, str]:
    """The settings' contact (gdi.settings.Contact) in MCF's terms."""
    return {"organization": contact.organisation, "individualname": contact.person,
            "positionname": contact.position, "phone": contact.phone, "fax": "", "address": contact.street,
            "city": contact.city, "administrativearea": contact.state, "postalcode": contact.postcode,
            "country": contact.country, "email": contact.email, "url": contact.url or url.rstrip("/"),
            "hoursofservice": "", "contactinstructions": ""}


def links(collection: Collection, url: str) -> dict[str, dict[str, str]]:
    """The online resources: the OGC API Features collection and its items."""
    base = f"{url.rstrip('/')}/collections/{collection.id}"
    return {
        "oaf": {"url": base, "type": "OGC API - Features", "rel": "collection", "function": "information",
                "name": f"{collection.label('de')} (OGC API Features)", "format": "GeoJSON",
                "description": "Sammlung im OGC API Features-Dienst / collection of the OGC API Features service"},
        "items": {"url": f"{base}/items", "type": "OGC API - Features", "rel": "items", "function": "download",
                  "name": f"{collection.label('de')} – Objekte (GeoJSON)", "format": "GeoJSON",
                  "description": "Objekte der Sammlung als GeoJSON / the features as GeoJSON"},
    }


def _day(stamp: str) -> str:
    return stamp[:10]


def mcf(collection: Collection, facts: Facts, contact, url: str, *, today: str) -> dict[str, Any]:
    """The MCF document of a collection. ``today`` stands in for the dates of a collection without data."""
    updated = facts.updated or today
    who = contact_mcf(contact, url)
    keywords: dict[str, Any] = {
        "default": {"keywords": list(dict.fromkeys([*collection.keywords, "opendata"])), "keywords_type": "theme"},
    }
    theme = collection.metadata.inspire_theme
    if theme:
        keywords["inspire"] = {"keywords": [INSPIRE_THEMES[theme]], "keywords_type": "theme",
                               "vocabulary": {"name": INSPIRE_THESAURUS[0], "url": INSPIRE_THEME_URI.format("")}}
    lonlat = lonlat_extent(facts.bbox)       # as the OGC API collection advertises it (without data: Germany)
    temporal = [{"begin": facts.time[0], "end": facts.time[1]}] if facts.time else []
    abstract = collection.description.get("de") or collection.label("de")
    if collection.attribution:
        abstract = f"{abstract} Quelle: {collection.attribution}"
    licence = collection.licence
    rights = f"Nutzungsbedingungen: {licence.get('name', 'siehe Lizenz')}"
    if collection.attribution:
        rights += f"; Quellenvermerk: {collection.attribution}"
    return {
        "mcf": {"version": "1.0"},
        "metadata": {"identifier": record_id(url, collection.id), "language": "ger", "charset": "utf8",
                     "hierarchylevel": "dataset", "dataseturi": f"{url.rstrip('/')}/collections/{collection.id}",
                     "dates": {"creation": updated, "revision": updated}},
        "spatial": {"datatype": "vector", "geomtype": {"point": "point", "line": "curve",
                                                        "polygon": "surface"}[collection.kind]},
        "identification": {
            "language": "ger", "charset": "utf8", "title": collection.label("de"), "abstract": abstract,
            "dates": {"revision": _day(updated)}, "keywords": keywords,
            "topiccategory": [collection.metadata.topic_category],
            "extents": {"spatial": [{"bbox": lonlat, "crs": 4326}], "temporal": temporal},
            "rights": rights,
            "license": {"name": licence.get("name", ""), "url": licence.get("url", "")},
            "accessconstraints": "otherRestrictions", "status": "onGoing", "maintenancefrequency": "continual",
            "url": f"{url.rstrip('/')}/collections/{collection.id}",
        },
        "contact": {"pointOfContact": who, "distributor": who, METADATA_CONTACT: who},
        "distribution": links(collection, url),
    }


def iso_xml(document: dict[str, Any], collection: Collection) -> bytes:
    """ISO 19139 as pygeometa writes it, completed to GDI-DE's conventions."""
    text = iso_text(document)
    tree = etree.fromstring(text.encode("utf-8"), etree.XMLParser(remove_blank_text=True))
    _metadata_contact_role(tree)
    _constraints(tree, collection)
    _reference_system(tree, collection.epsg)
    _thesaurus_date(tree)
    return etree.tostring(tree, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def iso_text(document: dict[str, Any]) -> str:
    """ISO 19139 exactly as pygeometa's ``ISO19139OutputSchema().write`` renders it, from its
    templates compiled once per installation.

    pygeometa builds a new Jinja environment, and so compiles its templates again, on every call,
    and its ISO schema module imports OWSLib (for reading ISO, which we never do): together a
    third of a second of every upload's publish. This renders the same templates with the same
    filters and globals as ``pygeometa.core.render_j2_template``, through an environment with a
    bytecode cache in GDI_HOME; tests/test_metadata.py checks that the output equals pygeometa's
    own, so a pygeometa upgrade that changes how it renders fails there."""
    import jinja2
    from pygeometa import core

    from gdi import settings

    cache = settings.paths().template_cache
    cache.mkdir(parents=True, exist_ok=True)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader([core.SCHEMAS / "iso19139", core.SCHEMAS]),
                             bytecode_cache=jinja2.FileSystemBytecodeCache(str(cache)))
    helpers = {"normalize_datestring": core.normalize_datestring, "get_charstring": core.get_charstring,
               "prune_distribution_formats": core.prune_distribution_formats,
               "prune_transfer_option": core.prune_transfer_option}
    env.filters.update(helpers, get_distribution_language=core.get_distribution_language)
    env.globals.update(helpers, zip=zip)
    xml = env.get_template("main.j2").render(record=document, pygeometa_version=core.VERSION).encode("utf-8")
    return core.pretty_print(xml)


def record_json(document: dict[str, Any], collection: Collection, url: str) -> dict[str, Any]:
    """The OGC API Records record as pygeometa writes it, with the link to its ISO document."""
    from pygeometa.schemas.ogcapi_records import OGCAPIRecordOutputSchema

    contacts = {k: v for k, v in document["contact"].items() if k != METADATA_CONTACT}
    record = OGCAPIRecordOutputSchema().write({**document, "contact": contacts}, stringify=False)
    media = {"collection": "application/json", "items": "application/geo+json"}
    for link in record["links"]:
        link["type"] = media.get(link["rel"], link.get("type"))      # MCF's protocol is no media type
    record["links"].append({"rel": "describedby", "type": "application/xml", "title": "ISO 19139",
                            "href": f"{url.rstrip('/')}/collections/{collection.id}/metadata"})
    record["properties"]["license"] = collection.licence.get("name", "")
    record.pop("generated_by", None)
    return json.loads(json.dumps(record))


def _el(tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    prefix, name = tag.split(":")
    el = etree.Element(f"{{{NS[prefix]}}}{name}", nsmap=NS)
    for k, v in attrs.items():
        p, n = k.split("_", 1) if "_" in k else (None, k)
        el.set(f"{{{NS[p]}}}{n}" if p else n, v)
    if text is not None:
        el.text = text
    return el


def _child(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    el = _el(tag, text, **attrs)
    parent.append(el)
    return el


def _code(parent: etree._Element, element: str, codelist: str, value: str) -> None:
    wrapper = _child(parent, element)
    _child(wrapper, f"gmd:{codelist}", value, codeList=CODELIST.format(codelist.split(':')[-1]),
           codeListValue=value)


def _metadata_contact_role(tree: etree._Element) -> None:
    for role in tree.xpath("gmd:contact/gmd:CI_ResponsibleParty/gmd:role/gmd:CI_RoleCode", namespaces=NS):
        role.set("codeListValue", "pointOfContact")
        role.text = "pointOfContact"


def _constraints(tree: etree._Element, collection: Collection) -> None:
    """Access: no limitations (INSPIRE code list); use: the licence as text and as GDI-DE's licence JSON."""
    legal = tree.xpath("//gmd:MD_DataIdentification/gmd:resourceConstraints/gmd:MD_LegalConstraints",
                       namespaces=NS)[0]
    for el in legal.xpath("gmd:accessConstraints|gmd:otherConstraints", namespaces=NS):
        legal.remove(el)
    _code(legal, "gmd:accessConstraints", "MD_RestrictionCode", "otherRestrictions")
    other = _child(legal, "gmd:otherConstraints")
    _child(other, "gmx:Anchor", NO_ACCESS_LIMITS[1], xlink_href=NO_ACCESS_LIMITS[0])

    use = _el("gmd:resourceConstraints")
    legal.getparent().addnext(use)
    use_legal = _child(use, "gmd:MD_LegalConstraints")
    _code(use_legal, "gmd:useConstraints", "MD_RestrictionCode", "otherRestrictions")
    licence = collection.licence
    text = f"Nutzungsbedingungen: {licence.get('name', '')}"
    if licence.get("url"):
        text += f" ({licence['url']})"
    if collection.attribution:
        text += f"; Quellenvermerk: {collection.attribution}"
    _child(_child(use_legal, "gmd:otherConstraints"), "gco:CharacterString", text)
    if licence.get("id"):
        as_json = {"id": licence["id"], "name": licence.get("name", ""), "url": licence.get("url", ""),
                   "quelle": collection.attribution}
        _child(_child(use_legal, "gmd:otherConstraints"), "gco:CharacterString",
               json.dumps(as_json, ensure_ascii=False))


def _reference_system(tree: etree._Element, epsg: int) -> None:
    """The storage CRS as an EPSG anchor (pygeometa names the CRS of the first extent, CRS84 here)."""
    from pyproj import CRS

    code = tree.xpath("gmd:referenceSystemInfo//gmd:RS_Identifier/gmd:code", namespaces=NS)[0]
    for el in list(code):
        code.remove(el)
    _child(code, "gmx:Anchor", f"EPSG {epsg}: {CRS.from_epsg(epsg).name}",
           xlink_href=f"http://www.opengis.net/def/crs/EPSG/0/{epsg}")


def _thesaurus_date(tree: etree._Element) -> None:
    for citation in tree.xpath("//gmd:thesaurusName/gmd:CI_Citation", namespaces=NS):
        title = citation.xpath("string(gmd:title)", namespaces=NS).strip()
        if title != INSPIRE_THESAURUS[0]:
            continue
        for date in citation.xpath("gmd:date", namespaces=NS):
            citation.remove(date)
        ci_date = _child(_child(citation, "gmd:date"), "gmd:CI_Date")
        _child(_child(ci_date, "gmd:date"), "gco:Date", INSPIRE_THESAURUS[1])
        _code(ci_date, "gmd:dateType", "CI_DateTypeCode", "publication")
