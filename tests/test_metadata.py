"""ISO 19139 metadata, the CSW (pycsw at /csw), OGC API Records and `gdi masterportal`, on both stores.

The session server runs the demo data; the ISO documents, the CSW records, the Records API and the
Masterportal entries must all say the same about each collection, with the values of the data
actually published (extent, time, last update) and of config/gdi.yml (contact).
"""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from lxml import etree

from conftest import DATA, REPO, run_gdi

COLLECTIONS = ("municipalities", "supply_points")
GMD = "http://www.isotc211.org/2005/gmd"
NS = {"gmd": GMD, "gco": "http://www.isotc211.org/2005/gco", "gmx": "http://www.isotc211.org/2005/gmx",
      "xlink": "http://www.w3.org/1999/xlink", "gml": "http://www.opengis.net/gml"}
TITLES = {"municipalities": "Gemeindegrenzen", "supply_points": "Nahversorgung"}
ABSTRACTS = {
    "municipalities": "Grenzen der Mitgliedsgemeinden mit Amtlichem Gemeindeschlüssel (AGS) und Einwohnerzahl. "
                      "Quelle: © GeoBasis-DE / BKG (2025), Daten verändert",
    "supply_points": "Nahversorgungsstandorte der Mitglieder – Supermärkte, Dorfläden, Bäckereien, Metzgereien, "
                     "Hofläden, Verkaufsautomaten, Wochenmärkte, Apotheken, Ärzte. Quelle: © OpenStreetMap-Mitwirkende "
                     "(ODbL) und die Mitgliedskommunen",
}
LICENCES = {
    "municipalities": ("Nutzungsbedingungen: Datenlizenz Deutschland – Namensnennung – Version 2.0 "
                       "(https://www.govdata.de/dl-de/by-2-0); Quellenvermerk: © GeoBasis-DE / BKG (2025), Daten verändert",
                       {"id": "dl-by-de/2.0", "name": "Datenlizenz Deutschland – Namensnennung – Version 2.0",
                        "url": "https://www.govdata.de/dl-de/by-2-0",
                        "quelle": "© GeoBasis-DE / BKG (2025), Daten verändert"}),
    "supply_points": ("Nutzungsbedingungen: Open Data Commons Open Database License (ODbL) 1.0 "
                      "(https://opendatacommons.org/licenses/odbl/1-0/); Quellenvermerk: © OpenStreetMap-Mitwirkende "
                      "(ODbL) und die Mitgliedskommunen",
                      {"id": "odbl", "name": "Open Data Commons Open Database License (ODbL) 1.0",
                       "url": "https://opendatacommons.org/licenses/odbl/1-0/",
                       "quelle": "© OpenStreetMap-Mitwirkende (ODbL) und die Mitgliedskommunen"}),
}
ORGANISATION = "Kreisverwaltung – Fachdienst Geoinformation (GIS-Team des Kreises)"    # config/gdi.yml contact


def md_id(server, cid: str) -> str:
    """The fileIdentifier as the brief defines it, computed here independently of gdi."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{server.url}/collections/{cid}"))


def text(tree, path: str) -> str:
    found = tree.xpath(path, namespaces=NS)
    assert len(found) == 1, (path, len(found))
    return found[0].text if hasattr(found[0], "text") else str(found[0])


def texts(tree, path: str) -> list[str]:
    return [el.text for el in tree.xpath(path, namespaces=NS)]


def store_facts(server, cid: str) -> dict:
    """Extent, time and last update of the server's store, read with gdi's store directly."""
    env = {"GDI_HOME": str(server.home), "GDI_STORE": server.store or ""}
    code = (f"import json; from gdi.collections import get_collection; from gdi.store import open_store; "
            f"s = open_store(); c = get_collection({cid!r}); "
            f"print(json.dumps([s.extent_lonlat(c), s.time_extent(c), max(d.updated for d in s.datasets(c))]))")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True,
                         check=True).stdout
    extent, time, updated = json.loads(out)
    return {"extent": extent, "time": time, "updated": updated}


@pytest.mark.parametrize("cid", COLLECTIONS)
def test_iso_document_of_each_collection(server, cid):
    r = server.get(f"/collections/{cid}/metadata")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/xml")
    tree = etree.fromstring(r.content)
    assert tree.tag == f"{{{GMD}}}MD_Metadata"
    ident = "gmd:identificationInfo/gmd:MD_DataIdentification"
    assert text(tree, "gmd:fileIdentifier/gco:CharacterString") == md_id(server, cid)
    assert text(tree, "gmd:language/gmd:LanguageCode/@codeListValue") == "ger"
    assert text(tree, "gmd:hierarchyLevel/gmd:MD_ScopeCode/@codeListValue") == "dataset"
    assert text(tree, f"{ident}/gmd:citation/gmd:CI_Citation/gmd:title/gco:CharacterString") == TITLES[cid]
    assert text(tree, f"{ident}/gmd:abstract/gco:CharacterString") == ABSTRACTS[cid]
    # the bounding box is the data's, as the OGC API collection advertises it
    facts = store_facts(server, cid)
    oaf = server.get(f"/collections/{cid}?f=json").json()["extent"]
    box = f"{ident}/gmd:extent/gmd:EX_Extent/gmd:geographicElement/gmd:EX_GeographicBoundingBox"
    bbox = [float(text(tree, f"{box}/gmd:{side}/gco:Decimal")) for side in
            ("westBoundLongitude", "southBoundLatitude", "eastBoundLongitude", "northBoundLatitude")]
    assert bbox == oaf["spatial"]["bbox"][0]
    west, south, east, north = facts["extent"]
    assert bbox[0] <= west < bbox[0] + 1e-6 and bbox[1] <= south < bbox[1] + 1e-6
    assert bbox[2] - 1e-6 < east <= bbox[2] and bbox[3] - 1e-6 < north <= bbox[3]
    assert 8.3 < bbox[0] < bbox[2] < 9.5 and 50.6 < bbox[1] < bbox[3] < 52.0
    # last update: the newest dataset's; the temporal extent: the time field's values
    assert text(tree, "gmd:dateStamp/gco:DateTime") == facts["updated"]
    assert text(tree, f"{ident}/gmd:citation/gmd:CI_Citation/gmd:date/gmd:CI_Date/gmd:date/gco:Date") == \
        facts["updated"][:10]
    period = f"{ident}/gmd:extent/gmd:EX_Extent/gmd:temporalElement//gml:TimePeriod"
    if cid == "supply_points":
        assert [text(tree, f"{period}/gml:beginPosition"), text(tree, f"{period}/gml:endPosition")] == facts["time"]
    else:
        assert tree.xpath(period, namespaces=NS) == [] and facts["time"] is None
    assert text(tree, "gmd:referenceSystemInfo//gmd:RS_Identifier/gmd:code/gmx:Anchor/@xlink:href") == \
        "http://www.opengis.net/def/crs/EPSG/0/25832"
    # licence: access without limitations, use under the collection's licence (text and GDI-DE's JSON)
    constraints = f"{ident}/gmd:resourceConstraints/gmd:MD_LegalConstraints"
    assert texts(tree, f"{constraints}/gmd:accessConstraints/gmd:MD_RestrictionCode") == ["otherRestrictions"]
    assert texts(tree, f"{constraints}/gmd:otherConstraints/gmx:Anchor") == ["Es gelten keine Zugriffsbeschränkungen"]
    assert texts(tree, f"{constraints}/gmd:useConstraints/gmd:MD_RestrictionCode") == ["otherRestrictions"]
    licence_text, licence_json = texts(tree, f"{constraints}/gmd:otherConstraints/gco:CharacterString")
    assert licence_text == LICENCES[cid][0] and json.loads(licence_json) == LICENCES[cid][1]
    # keywords: the collection's, opendata, and the INSPIRE theme where one fits
    keywords = texts(tree, f"{ident}/gmd:descriptiveKeywords/gmd:MD_Keywords/gmd:keyword/gco:CharacterString")
    assert "opendata" in keywords
    assert ("Verwaltungseinheiten" in keywords) == (cid == "municipalities")
    assert text(tree, f"{ident}/gmd:topicCategory/gmd:MD_TopicCategoryCode") == \
        {"municipalities": "boundaries", "supply_points": "economy"}[cid]
    # the contact of config/gdi.yml, as point of contact and as metadata contact
    for where in (f"{ident}/gmd:pointOfContact", "gmd:contact"):
        party = f"{where}/gmd:CI_ResponsibleParty"
        assert text(tree, f"{party}/gmd:organisationName/gco:CharacterString") == ORGANISATION
        assert text(tree, f"{party}//gmd:electronicMailAddress/gco:CharacterString") == "gdi@kreis.example.de"
        assert text(tree, f"{party}//gmd:voice/gco:CharacterString") == "+49 6421 000000"
        assert text(tree, f"{party}//gmd:city/gco:CharacterString") == "Marburg"
        assert text(tree, f"{party}/gmd:role/gmd:CI_RoleCode/@codeListValue") == "pointOfContact"
    # the online resources: the OGC API collection and its items
    assert texts(tree, "gmd:distributionInfo//gmd:onLine/gmd:CI_OnlineResource/gmd:linkage/gmd:URL") == [
        f"{server.url}/collections/{cid}", f"{server.url}/collections/{cid}/items"]


def test_unknown_collection_has_no_metadata(server):
    r = server.get("/collections/nope/metadata", headers={"Accept-Language": "en"})
    assert r.status_code == 404 and r.json()["detail_en"] == "there is no metadata for this collection"


def test_csw_with_owslib(server):
    from owslib.csw import CatalogueServiceWeb

    csw = CatalogueServiceWeb(f"{server.url}/csw", timeout=60)
    assert csw.identification.title == "Interkommunale GDI Marburg-Biedenkopf / Höxter – Metadatenkatalog (CSW)"
    assert csw.provider.name == ORGANISATION
    assert {"GetCapabilities", "GetRecords", "GetRecordById"} <= {op.name for op in csw.operations}
    csw.getrecords2(outputschema=GMD, esn="full", maxrecords=10)
    assert csw.results["matches"] == 2 and csw.results["returned"] == 2
    assert set(csw.records) == {md_id(server, cid) for cid in COLLECTIONS}
    for cid in COLLECTIONS:
        oaf_bbox = server.get(f"/collections/{cid}?f=json").json()["extent"]["spatial"]["bbox"][0]
        csw.getrecordbyid([md_id(server, cid)], outputschema=GMD)
        assert list(csw.records) == [md_id(server, cid)]
        record = csw.records[md_id(server, cid)]
        ident = record.identification[0]
        assert ident.title == TITLES[cid] and ident.abstract == ABSTRACTS[cid]
        assert [float(ident.bbox.minx), float(ident.bbox.miny), float(ident.bbox.maxx), float(ident.bbox.maxy)] == \
            oaf_bbox
        assert ident.otherconstraints == [LICENCES[cid][0], json.dumps(LICENCES[cid][1], ensure_ascii=False),
                                          "Es gelten keine Zugriffsbeschränkungen"]
        assert record.contact[0].organization == ORGANISATION
        assert [u.url for u in record.distribution.online] == [f"{server.url}/collections/{cid}",
                                                               f"{server.url}/collections/{cid}/items"]


def test_csw_get_record_by_id_over_plain_http(server):
    """What Masterportal's layer information asks: GetRecordById in ISO (gmd), as plain KVP."""
    params = {"service": "CSW", "version": "2.0.2", "request": "GetRecordById", "id": md_id(server, "municipalities"),
              "outputSchema": GMD, "elementSetName": "full"}
    r = server.get("/csw", params=params)
    assert r.status_code == 200 and "xml" in r.headers["Content-Type"]
    tree = etree.fromstring(r.content)
    assert texts(tree, "gmd:MD_Metadata/gmd:fileIdentifier/gco:CharacterString") == [md_id(server, "municipalities")]


def test_records_api_lists_one_record_per_collection(server):
    doc = server.get("/collections/catalogue?f=json").json()
    assert doc["itemType"] == "record"
    items = server.get("/collections/catalogue/items?f=json").json()
    assert len(items["features"]) == 2
    records = {f["id"]: f for f in items["features"]}
    assert set(records) == {md_id(server, cid) for cid in COLLECTIONS}
    for cid in COLLECTIONS:
        record = server.get(f"/collections/catalogue/items/{md_id(server, cid)}?f=json").json()
        assert record["properties"]["title"] == TITLES[cid]
        assert record["properties"]["description"] == ABSTRACTS[cid]
        assert record["properties"]["type"] == "dataset"
        assert record["properties"]["updated"] == store_facts(server, cid)["updated"]
        assert record["properties"]["contacts"][0]["organization"] == ORGANISATION
        hrefs = {(link["rel"], link["href"]) for link in record["links"]}
        assert ("license", LICENCES[cid][1]["url"]) in hrefs
        assert ("describedby", f"{server.url}/collections/{cid}/metadata") in hrefs
        assert ("items", f"{server.url}/collections/{cid}/items") in hrefs
        ring = record["geometry"]["coordinates"][0]
        oaf_bbox = server.get(f"/collections/{cid}?f=json").json()["extent"]["spatial"]["bbox"][0]
        assert [min(p[0] for p in ring), min(p[1] for p in ring), max(p[0] for p in ring),
                max(p[1] for p in ring)] == oaf_bbox
    found = server.get("/collections/catalogue/items?f=json&q=Nahversorgung").json()
    assert [f["id"] for f in found["features"]] == [md_id(server, "supply_points")]


def test_what_the_records_provider_cannot_answer_is_a_client_error(server):
    """pygeoapi's TinyDBCatalogue answered these with a 500 (found by Schemathesis); ours refuses or skips."""
    r = server.get("/collections/catalogue/items?f=json&bbox=0,0,0,0,0,0")
    assert (r.status_code, r.json()["description"]) == (400, "bbox of the records: four numbers (west, south, east, north)")
    r = server.get("/collections/catalogue/items?f=csv&lang=de")
    assert (r.status_code, r.json()["detail"]) == (
        400, "den Metadatenkatalog gibt es als JSON (f=json), JSON-LD (f=jsonld) und HTML (f=html), nicht als CSV")
    # q is the search text, no property of a record: it gets no domain; a property some record lacks is None there
    r = server.get("/collections/catalogue/queryables?f=json&profile=actual-domain&properties=q,type")
    assert r.status_code == 200
    assert r.json()["properties"]["type"]["enum"] == ["dataset"]
    assert "enum" not in r.json()["properties"]["q"]
    assert server.get("/collections/catalogue/queryables?f=json&profile=actual-domain&properties=themes").status_code == 200


@pytest.mark.parametrize("cid", COLLECTIONS)
def test_each_collection_links_its_metadata(server, cid):
    links = [link for link in server.get(f"/collections/{cid}?f=json").json()["links"] if link["rel"] == "describedby"]
    assert [(link["type"], link["href"].split("?")[0]) for link in links] == [
        ("application/xml", f"{server.url}/collections/{cid}/metadata"),
        ("application/geo+json", f"{server.url}/collections/catalogue/items/{md_id(server, cid)}"),
        ("application/xml", f"{server.url}/csw")]
    for link in links:
        r = server.get(link["href"].removeprefix(server.url))
        assert r.status_code == 200, link
        if link["type"] == "application/xml":
            tree = etree.fromstring(r.content)
            assert texts(tree, "//gmd:fileIdentifier/gco:CharacterString") == [md_id(server, cid)]
        else:
            assert r.json()["id"] == md_id(server, cid)


def test_masterportal_services_json(server, tmp_path):
    from pyproj import Transformer

    out = tmp_path / "services.json"
    proc = run_gdi("masterportal", "--out", str(out), home=server.home, store=server.store, check=True)
    assert proc.stdout.strip() == f"gdi: wrote 2 Masterportal OAF layers for {server.url} to {out}"
    layers = json.loads(out.read_text(encoding="utf-8"))
    to_utm = Transformer.from_crs(4326, 25832, always_xy=True)

    def bbox(cid: str) -> str:
        box = server.get(f"/collections/{cid}?f=json").json()["extent"]["spatial"]["bbox"][0]
        return ",".join(f"{v:.2f}" for v in to_utm.transform_bounds(*box, densify_pts=21))

    dataset = {"csw_url": f"{server.url}/csw", "kategorie_organisation": ORGANISATION}
    assert layers == [
        {"id": "gdi_municipalities", "name": "Gemeindegrenzen", "typ": "OAF", "url": server.url,
         "collection": "municipalities", "crs": "http://www.opengis.net/def/crs/EPSG/0/25832", "limit": 1000,
         "gfiAttributes": {"ags": "Amtlicher Gemeindeschlüssel", "name": "Name", "population": "Einwohner",
                           "member": "Mitglied", "dataset": "Datensatz"},
         "gfiTheme": "default", "layerAttribution": "© GeoBasis-DE / BKG (2025), Daten verändert",
         "datasets": [{"md_id": md_id(server, "municipalities"), **dataset, "md_name": "Gemeindegrenzen",
                       "bbox": bbox("municipalities"), "kategorie_opendata": ["Regionen und Städte"],
                       "kategorie_inspire": ["Verwaltungseinheiten"]}]},
        {"id": "gdi_supply_points", "name": "Nahversorgung", "typ": "OAF", "url": server.url,
         "collection": "supply_points", "crs": "http://www.opengis.net/def/crs/EPSG/0/25832", "limit": 1000,
         "gfiAttributes": {"name": "Name", "category": "Kategorie", "street": "Straße", "housenumber": "Hausnummer",
                           "postcode": "Postleitzahl", "city": "Ort", "opening_hours": "Öffnungszeiten",
                           "website": "Webseite", "phone": "Telefon", "operator": "Betreiber",
                           "ags": "Gemeinde (AGS)", "updated": "Aktualisiert", "member": "Mitglied",
                           "dataset": "Datensatz"},
         "gfiTheme": "default", "layerAttribution": "© OpenStreetMap-Mitwirkende (ODbL) und die Mitgliedskommunen",
         "datasets": [{"md_id": md_id(server, "supply_points"), **dataset, "md_name": "Nahversorgung",
                       "bbox": bbox("supply_points"), "kategorie_opendata": ["Wirtschaft und Arbeit"],
                       "kategorie_inspire": ["nicht INSPIRE-identifiziert"]}]},
    ]
    # what Masterportal asks of each layer works: the items in the CRS it names, a page of `limit`
    for layer in layers:
        r = server.get(f"/collections/{layer['collection']}/items",
                       params={"f": "json", "crs": layer["crs"], "limit": layer["limit"]})
        assert r.status_code == 200 and r.headers["Content-Crs"] == f"<{layer['crs']}>"
        assert set(r.json()["features"][0]["properties"]) <= set(layer["gfiAttributes"])


def test_record_id_is_stable():
    from gdi.publish.metadata import record_id

    assert record_id("https://gdi.example.de", "supply_points") == record_id("https://gdi.example.de/", "supply_points")
    assert record_id("https://gdi.example.de", "supply_points") == \
        str(uuid.uuid5(uuid.NAMESPACE_URL, "https://gdi.example.de/collections/supply_points"))
    assert record_id("https://gdi.example.de", "supply_points") != record_id("https://gdi.example.de", "municipalities")


def test_publish_regenerates_the_catalogue_from_the_store(gdi_home):
    """On a fresh store: before any upload the records say so (Germany, no date of data); after the county
    uploads its boundaries, the record of the boundaries carries their extent and time, and pycsw's
    repository is rebuilt with it."""
    run_gdi("publish", home=gdi_home, check=True)
    publish = gdi_home / "publish"
    before = etree.parse(str(publish / "metadata" / "municipalities.xml"))
    box = "//gmd:EX_GeographicBoundingBox"
    assert [float(v) for v in before.xpath(f"{box}/*/gco:Decimal/text()", namespaces=NS)] == [5.87, 15.04, 47.27, 55.06]
    key = (publish / "metadata.key").read_text()
    run_gdi("ingest", str(DATA / "boundaries" / "vg250ew_gemeinden_hoexter.geojson"), "--collection",
            "municipalities", "--member", "05762", "--admin", home=gdi_home, check=True)
    after = etree.parse(str(publish / "metadata" / "municipalities.xml"))
    west, east, south, north = [float(v) for v in after.xpath(f"{box}/*/gco:Decimal/text()", namespaces=NS)]
    assert 8.8 < west < east < 9.5 and 51.4 < south < north < 52.0        # Kreis Höxter
    import yaml

    config = yaml.safe_load((publish / "pygeoapi-config.yml").read_text(encoding="utf-8"))
    assert [west, south, east, north] == config["resources"]["municipalities"]["extents"]["spatial"]["bbox"]
    updated = json.loads(run_gdi("datasets", "--json", home=gdi_home, check=True).stdout)[0]["updated"]
    assert after.xpath("string(/gmd:MD_Metadata/gmd:dateStamp/gco:DateTime)", namespaces=NS) == updated
    assert (publish / "metadata.key").read_text() != key
    # pycsw rebuilds its repository from the new documents (at its next request; here from the command line)
    loader = [str(REPO / ".venv-pycsw" / "bin" / "python"), "-m", "gdi.pycsw_app", "load",
              str(publish / "pycsw.cfg")]
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO)}
    assert subprocess.run(loader, env=env, capture_output=True, text=True, check=True).stdout == "2\n"
    assert subprocess.run(loader, env=env, capture_output=True, text=True, check=True).stdout == "current\n"
    assert (publish / "csw.db.key").read_text() == (publish / "metadata.key").read_text()
    with sqlite3.connect(publish / "csw.db") as db:
        rows = db.execute("SELECT identifier, title FROM records ORDER BY title").fetchall()
    url = "http://127.0.0.1:5000"
    assert rows == [(str(uuid.uuid5(uuid.NAMESPACE_URL, f"{url}/collections/municipalities")), "Gemeindegrenzen"),
                    (str(uuid.uuid5(uuid.NAMESPACE_URL, f"{url}/collections/supply_points")), "Nahversorgung")]
    tinydb = json.loads((publish / "catalogue.json").read_text(encoding="utf-8"))["_default"]
    assert sorted(r["properties"]["title"] for r in tinydb.values()) == ["Gemeindegrenzen", "Nahversorgung"]


def test_a_wrong_inspire_theme_or_topic_is_refused(tmp_path: Path):
    from gdi.collections import parse

    doc = {"id": "x", "title": {"de": "X"}, "geometry_type": "Point", "properties": {"name": {}},
           "metadata": {"topic_category": "shops", "inspire_theme": "xx"}}
    coll, problems = parse(doc, "x.yml")
    assert coll is None
    assert [p.split(": ")[1] for p in problems] == ["metadata.topic_category", "metadata.inspire_theme"]
    coll, problems = parse({**doc, "id": "catalogue", "metadata": {}}, "x.yml")
    assert problems == ["x.yml: id: 'catalogue' is reserved (the catalogue of the metadata records)"]


def test_the_csw_is_started_again_when_it_dies(server):
    """pycsw is a child of `gdi serve`; killed, it is started again on its port and /csw answers as before."""
    import signal
    import time

    def pycsw_pid() -> int | None:
        out = subprocess.run(["ps", "-ww", "-o", "pid=,args=", "--ppid", str(server.proc.pid)], capture_output=True,
                             text=True).stdout
        pids = [int(line.split()[0]) for line in out.splitlines() if "gdi.pycsw_app:application" in line]
        return pids[0] if pids else None

    params = {"service": "CSW", "version": "2.0.2", "request": "GetCapabilities"}
    assert server.get("/csw", params=params).status_code == 200
    first = pycsw_pid()
    assert first is not None
    os.kill(first, signal.SIGKILL)
    deadline = time.time() + 60
    while time.time() < deadline:
        again = pycsw_pid()
        if again not in (None, first) and server.get("/csw", params=params).status_code == 200:
            break
        time.sleep(0.5)
    else:
        raise AssertionError("the CSW did not come back within 60 s")
    assert "Metadatenkatalog (CSW)" in server.get("/csw", params=params).text


def test_our_iso_rendering_is_pygeometas(gdi_home):
    """iso_text renders pygeometa's ISO 19139 templates through a cached environment: the result is
    exactly what pygeometa's own writer returns, for each collection, before and after data."""
    from pygeometa.schemas.iso19139 import ISO19139OutputSchema

    from gdi import settings
    from gdi.collections import load_collections
    from gdi.publish.catalogue import facts
    from gdi.publish.metadata import iso_text, mcf
    from gdi.store import open_store

    run_gdi("ingest", str(DATA / "boundaries" / "vg250ew_gemeinden_hoexter.geojson"), "--collection",
            "municipalities", "--member", "05762", "--admin", home=gdi_home, check=True)
    store = open_store()
    for c in load_collections().values():
        doc = mcf(c, facts(c, store), settings.get().contact, "https://gdi.example.de", today="2026-12-02T10:00:00Z")
        assert iso_text(doc) == ISO19139OutputSchema().write(doc)
        assert iso_text(doc) == ISO19139OutputSchema().write(doc)     # from the compiled templates, too
    assert list(settings.paths().template_cache.glob("*.cache"))


def test_a_publish_writes_again_only_the_records_whose_metadata_changed(gdi_home):
    """An upload changes its collection's record; every other record is kept as written (its file
    untouched), and a changed record is written again. (A collection without data is dated by the
    publish itself, so both collections get data first.)"""
    boundaries = str(DATA / "boundaries" / "vg250ew_gemeinden_hoexter.geojson")
    run_gdi("ingest", boundaries, "--collection", "municipalities", "--member", "05762", "--admin",
            home=gdi_home, check=True)
    run_gdi("ingest", str(DATA / "poi" / "farmshops_marburg-biedenkopf_hoexter_umland.geojson"), "--collection",
            "supply_points", "--member", "05762", home=gdi_home, check=True)
    folder = gdi_home / "publish" / "metadata"
    before = {p.name: p.stat().st_mtime_ns for p in folder.glob("*.xml")}
    assert sorted(before) == ["municipalities.xml", "supply_points.xml"]
    run_gdi("ingest", boundaries, "--collection", "municipalities", "--member", "05762", "--admin",
            home=gdi_home, check=True)
    after = {p.name: p.stat().st_mtime_ns for p in folder.glob("*.xml")}
    assert after["supply_points.xml"] == before["supply_points.xml"]
    assert after["municipalities.xml"] != before["municipalities.xml"]
    rendered = json.loads((folder / "municipalities.rendered.json").read_text(encoding="utf-8"))
    tinydb = json.loads((gdi_home / "publish" / "catalogue.json").read_text(encoding="utf-8"))["_default"]
    kept = next(r for r in tinydb.values() if r["id"] == rendered["record"]["id"])
    assert kept["properties"]["title"] == rendered["record"]["properties"]["title"] == "Gemeindegrenzen"
