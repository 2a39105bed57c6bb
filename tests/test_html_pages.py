"""pygeoapi's HTML pages in German and English (gdi/publish/locale, gdi/publish/template_edits.py).

German for ``lang=de`` or ``Accept-Language: de…``, English for ``lang=en`` or ``Accept-Language: en``;
a request that names neither language gets German, the project's default (as the upload service).
The page tests run against the session server on both stores, because the items and item pages
show what the store's provider returns (its nulls); the browser test runs on the GeoPackage store
only: layout does not depend on the store, and the pages it draws were checked on both by then.
"""
from __future__ import annotations

import re
from pathlib import Path

import lxml.html
import pytest

from conftest import is_tile, launch_chromium, offline_page

SERVICE = {"de": "Interkommunale GDI Marburg-Biedenkopf / Höxter – Geodaten",
           "en": "Interkommunale GDI Marburg-Biedenkopf / Höxter – geodata"}
# the four ways of asking: (query string, headers) → the language expected
ASKS = [
    ("lang=de", {}, "de"),
    ("", {"Accept-Language": "de-DE"}, "de"),
    ("lang=en", {}, "en"),
    ("", {"Accept-Language": "en"}, "en"),
]
ASK_IDS = ["lang=de", "Accept-Language: de-DE", "lang=en", "Accept-Language: en"]
SUPPLY = "/collections/supply_points"
# the names of the demo's supply categories (collections/supply_points.yml)
TERMS = {"de": {"beekeeper": "Imkerei", "farm_shop": "Hofladen", "vending_machine": "Verkaufsautomat",
                "market": "Wochenmarkt", "supermarket": "Supermarkt"},
         "en": {"beekeeper": "Beekeeper", "farm_shop": "Farm shop", "vending_machine": "Vending kiosk",
                "market": "Weekly market", "supermarket": "Supermarket"}}


def fetch(server, path: str, query: str, headers: dict[str, str]):
    """The HTML page at path, parsed; with the checks every page must pass in either language."""
    sep = "&" if "?" in path else "?"
    r = server.get(f"{path}{sep}f=html{'&' + query if query else ''}", headers=headers)
    assert r.status_code == 200, (path, r.status_code, r.text[:500])
    assert r.headers["Content-Type"].startswith("text/html")
    text = r.content.decode("utf-8")          # the page says <meta charset="utf-8">
    assert "text_direction" not in text
    doc = lxml.html.fromstring(text)
    cells = [c.text_content().strip() for c in doc.iter("td", "th")]
    assert "None" not in cells, f"{path}: a cell says None"
    assert not re.search(r">\s*None\s*<", text), f"{path}: None printed"
    return doc


def texts(doc, xpath: str) -> list[str]:
    return [" ".join(e.text_content().split()) for e in doc.xpath(xpath)]


def check_frame(doc, lang: str, page_title: str) -> None:
    """html lang and dir, the title 'page – service', the home crumb and the footer in lang."""
    html = doc.getroottree().getroot()
    assert html.get("lang") == lang
    assert html.get("dir") == "ltr"
    assert texts(doc, "//title") == [f"{page_title} – {SERVICE[lang]}"]
    assert texts(doc, "//div[@class='crumbs']//a")[0] == {"de": "Startseite", "en": "Home"}[lang]
    assert texts(doc, "//footer")[0].startswith({"de": "Betrieben mit", "en": "Powered by"}[lang])
    assert doc.xpath("//meta[@name='language']/@content") == [lang]


@pytest.mark.parametrize("query, headers, lang", ASKS, ids=ASK_IDS)
def test_landing_page(server, query, headers, lang):
    doc = fetch(server, "/", query, headers)
    check_frame(doc, lang, {"de": "Startseite", "en": "Home"}[lang])
    assert texts(doc, "//main//h2") == {"de": ["Sammlungen", "Kachelschemata", "API-Definition", "Konformität"],
                                        "en": ["Collections", "Tile Matrix Sets", "API Definition", "Conformance"]}[lang]
    assert texts(doc, "//section[@id='collections'][h2]//a") == [  # (pygeoapi nests two of that id)
        {"de": "Die Sammlungen dieses Dienstes anzeigen", "en": "View the collections in this service"}[lang]]
    assert texts(doc, "//h1") == [SERVICE[lang]]
    # the contact of config/gdi.yml (person, street, city, state, postcode, country; no empty lines
    # for what is not given: fax, hours), its e-mail address as the only mail link
    assert texts(doc, "//div[@class='section']/span") == ["GDI-Koordination", "Musterstraße 1", "Marburg", "Hessen",
                                                          "35037", "Deutschland"]
    assert set(doc.xpath("//a[starts-with(@href, 'mailto:')]/@href")) == {"mailto:gdi@kreis.example.de"}


@pytest.mark.parametrize("query, headers, lang", ASKS, ids=ASK_IDS)
def test_conformance_page(server, query, headers, lang):
    doc = fetch(server, "/conformance", query, headers)
    name = {"de": "Konformität", "en": "Conformance"}[lang]
    check_frame(doc, lang, name)
    assert texts(doc, "//main//h2") == [name]
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core" in texts(doc, "//main//li")


@pytest.mark.parametrize("query, headers, lang", ASKS, ids=ASK_IDS)
def test_collections_page(server, query, headers, lang):
    doc = fetch(server, "/collections", query, headers)
    check_frame(doc, lang, {"de": "Sammlungen", "en": "Collections"}[lang])
    assert texts(doc, "//main//h1") == {"de": ["Datensammlungen dieses Dienstes", "Metadatensammlungen dieses Dienstes"],
                                        "en": ["Data collections in this service", "Record collections in this service"]}[lang]
    assert texts(doc, "//main//th") == {"de": ["Name", "Beschreibung"], "en": ["Name", "Description"]}[lang] * 2
    assert texts(doc, "//main//td[@data-label='name']") == {
        "de": ["Gemeindegrenzen", "Nahversorgung", "Metadatenkatalog"],
        "en": ["Municipal boundaries", "Local supply", "Metadata catalogue"]}[lang]


@pytest.mark.parametrize("query, headers, lang", ASKS, ids=ASK_IDS)
def test_collection_page(server, query, headers, lang):
    doc = fetch(server, SUPPLY, query, headers)
    title = {"de": "Nahversorgung", "en": "Local supply"}[lang]
    check_frame(doc, lang, title)
    assert texts(doc, "//main//h1") == [title]
    assert texts(doc, "//main//h3") == {
        "de": ["Lizenz", "Objekte", "Abfragbare Eigenschaften", "Schema", "Kacheln", "Verweise",
               "Koordinatenreferenzsysteme", "Koordinatenreferenzsystem der Speicherung"],
        "en": ["License", "Browse", "Queryables", "Schema", "Tiles", "Links", "Reference Systems", "Storage CRS"]}[lang]
    links = texts(doc, "//h3[.='Verweise' or .='Links']/following-sibling::ul[1]/li")
    assert {"de": "Dieses Dokument als JSON (application/json)",
            "en": "This document as JSON (application/json)"}[lang] in links
    assert {"de": "Abfragbare Eigenschaften dieser Sammlung als HTML (text/html)",
            "en": "Queryables for this collection as HTML (text/html)"}[lang] in links
    assert texts(doc, "//main//li[starts-with(normalize-space(), 'Koordinatenepoche') or "
                      "starts-with(normalize-space(), 'Epoch')]") == [
        {"de": "Koordinatenepoche: nicht angegeben", "en": "Epoch: not specified"}[lang]]


@pytest.mark.parametrize("query, headers, lang", ASKS, ids=ASK_IDS)
def test_items_page(server, query, headers, lang):
    items = server.get(f"{SUPPLY}/items?f=json").json()
    doc = fetch(server, f"{SUPPLY}/items", query, headers)
    title = {"de": "Nahversorgung", "en": "Local supply"}[lang]
    check_frame(doc, lang, f"{title} – {({'de': 'Objekte', 'en': 'Items'})[lang]}")
    # the title field and the first five properties (server.html_columns), by their titles
    assert texts(doc, "//table[contains(@class, 'gdi-items')]//th") == {
        "de": ["Name", "Kategorie", "Straße", "Hausnummer", "Postleitzahl", "Ort"],
        "en": ["Name", "Category", "Street", "House number", "Postcode", "City"]}[lang]
    assert doc.xpath("//table[contains(@class, 'gdi-items')]/parent::div/@class") == ["gdi-table-scroll"]
    rows = doc.xpath("//table[contains(@class, 'gdi-items')]/tbody/tr")
    assert len(rows) == len(items["features"]) == 10
    terms = TERMS[lang]
    for row, feature in zip(rows, items["features"]):
        cells = [" ".join(td.text_content().split()) for td in row.iter("td")]
        p = feature["properties"]
        name = p["name"] if p["name"] is not None else str(feature["id"])      # a link even without a name
        assert cells[0] == name if len(name) <= 35 else cells[0].endswith("...")
        assert cells[1:] == [terms[p["category"]],
                             *("" if p[k] is None else p[k] for k in ("street", "housenumber", "postcode", "city"))]
        assert row.xpath("td[1]/a/@href") == [f"{server.url}{SUPPLY}/items/{feature['id']}"]
    assert {"de": f"Objekte in dieser Sammlung: {items['numberMatched']}",
            "en": f"Items in this collection: {items['numberMatched']}"}[lang] in texts(doc, "//main//p")
    assert texts(doc, "//main//a[@role='button']") == [{"de": "Weiter", "en": "Next"}[lang]]


def null_feature(server) -> dict:
    """The first supply point with an empty name and street (the demo data has them)."""
    features = server.get(f"{SUPPLY}/items?f=json&limit=100").json()["features"]
    return next(f for f in features if f["properties"]["name"] is None and f["properties"]["street"] is None)


@pytest.mark.parametrize("query, headers, lang", ASKS, ids=ASK_IDS)
def test_item_page(server, query, headers, lang):
    feature = null_feature(server)
    fid = feature["id"]
    doc = fetch(server, f"{SUPPLY}/items/{fid}", query, headers)
    check_frame(doc, lang, f"{fid} – {({'de': 'Nahversorgung', 'en': 'Local supply'})[lang]}")
    assert texts(doc, "//main//th") == {"de": ["Eigenschaft", "Wert"], "en": ["Property", "Value"]}[lang]
    rows = {r[0]: r[1] for r in ([" ".join(td.text_content().split()) for td in tr.iter("td")]
                                 for tr in doc.xpath("//main//tbody/tr"))}
    p = feature["properties"]
    labels = {"de": ("Name", "Kategorie", "Straße", "Ort", "Mitglied", "Datensatz", "Verweise"),
              "en": ("Name", "Category", "Street", "City", "Member", "Dataset", "Links")}[lang]
    assert rows["id"] == str(fid)
    assert rows[labels[0]] == "–" and rows[labels[2]] == "–"          # null: a dash, not None
    assert rows[labels[1]] == TERMS[lang][p["category"]]
    assert rows[labels[3]] == p["city"]
    assert rows[labels[4]] == p["member"] and rows[labels[5]] == p["dataset"]
    assert {"de": "Dieses Dokument als JSON (application/geo+json)",
            "en": "This document as JSON (application/geo+json)"}[lang] in rows[labels[6]]


@pytest.mark.parametrize("query, headers, lang", ASKS, ids=ASK_IDS)
def test_queryables_page(server, query, headers, lang):
    doc = fetch(server, f"{SUPPLY}/queryables", query, headers)
    title = {"de": "Nahversorgung", "en": "Local supply"}[lang]
    check_frame(doc, lang, title)
    assert texts(doc, "//main//h3") == [{"de": "Abfragbare Eigenschaften", "en": "Queryables"}[lang]]
    enum = doc.xpath("//section[@id='collection']/ul/li[code='category']/ul/li")
    assert [e.text_content() for e in enum][:3] == ["supermarket", "grocery", "bakery"]
    for values in doc.xpath("//section[@id='collection']/ul/li/ul"):
        values.drop_tree()
    entries = texts(doc, "//section[@id='collection']/ul/li")
    assert {"de": "Kategorie category (string)", "en": "Category category (string)"}[lang] in entries
    assert {"de": "Öffnungszeiten opening_hours (string)", "en": "Opening hours opening_hours (string)"}[lang] in entries
    assert {"de": "Mitglied member (string)", "en": "Member member (string)"}[lang] in entries


@pytest.mark.parametrize("query, headers, lang", ASKS, ids=ASK_IDS)
def test_schema_page(server, query, headers, lang):
    doc = fetch(server, f"{SUPPLY}/schema", query, headers)
    check_frame(doc, lang, {"de": "Nahversorgung", "en": "Local supply"}[lang])
    assert texts(doc, "//main//th") == {"de": ["Name", "Titel", "Typ", "Einheit", "Werte"],
                                        "en": ["Name", "Title", "Type", "Units", "Values"]}[lang]


def test_the_query_parameter_wins_and_german_is_the_default(server):
    doc = fetch(server, "/collections", "lang=de", {"Accept-Language": "en"})
    assert doc.getroottree().getroot().get("lang") == "de"
    doc = fetch(server, "/collections", "lang=en", {"Accept-Language": "de-DE,de;q=0.9"})
    assert doc.getroottree().getroot().get("lang") == "en"
    doc = fetch(server, "/collections", "", {"Accept-Language": "en-GB,en;q=0.9,de;q=0.5"})
    assert texts(doc, "//main//h1")[0] == "Data collections in this service"
    doc = fetch(server, "/collections", "", {})
    assert texts(doc, "//main//h1")[0] == "Datensammlungen dieses Dienstes"


def test_the_german_catalogue_covers_every_text_of_the_pages(tmp_path):
    """Every text the pages use (pygeoapi's {% trans %} and _() in our edited copies) has its German."""
    import io

    from babel.messages.pofile import read_po
    from jinja2.ext import babel_extract

    from gdi.publish.templates import build_pygeoapi_templates
    from gdi.publish.translations import catalogue_sources

    templates, _ = build_pygeoapi_templates(tmp_path / "pygeoapi", "/vendor")
    pages = ["_base.html", "landing_page.html", "conformance.html", "exception.html", "collections/index.html",
             "collections/collection.html", "collections/items/index.html", "collections/items/item.html",
             "collections/queryables.html", "collections/schema.html", "collections/tiles/index.html",
             "collections/tiles/metadata.html", "tilematrixsets/index.html", "tilematrixsets/tilematrixset.html"]
    wanted = set()
    for page in pages:
        with open(templates / page, "rb") as fh:
            wanted |= {m for _, _, m, _ in babel_extract(fh, ["_", "gettext"], [], {}) if isinstance(m, str)}
    assert {"Collections", "Queryables", "not specified", "Units", "Map", "Tile URL template"} <= wanted
    german = read_po(io.BytesIO(catalogue_sources()["de"].read_bytes()), locale="de")
    missing = sorted(m for m in wanted if not (german.get(m) and german.get(m).string))
    assert missing == []
    assert german.get("text_direction").string == "ltr"
    english = read_po(io.BytesIO(catalogue_sources()["en"].read_bytes()), locale="en")
    assert english.get("text_direction").string == "ltr"


SHOTS = {"landing": ("/", "Startseite"), "collections": ("/collections", "Sammlungen"),
         "items": (f"{SUPPLY}/items", "Objekte"), "item": (f"{SUPPLY}/items/4", "Nahversorgung")}


@pytest.mark.parametrize("demo_home", ["gpkg"], indirect=True)
def test_german_pages_in_a_real_browser(server, tmp_path: Path):
    """Landing, collections, items and item pages in German at 1366×900 and on a phone (390×844),
    offline: screenshots into tmp_path; no page is wider than the screen, and the items table is
    either narrower or scrolls inside its own box (at 1366 px it fits)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            for width, height in ((1366, 900), (390, 844)):
                page, problems, blocked = offline_page(browser, viewport=(width, height), locale="de-DE")
                for name, (path, crumb) in SHOTS.items():
                    page.goto(server.url + path, wait_until="networkidle")
                    assert page.evaluate("document.documentElement.lang") == "de"
                    assert crumb in page.locator("div.crumbs").inner_text()
                    page.screenshot(path=str(tmp_path / f"{name}-{width}.png"))
                    assert page.evaluate("document.documentElement.scrollWidth") <= width, (name, width)
                    if name == "items":
                        box = page.evaluate("""() => {
                            const t = document.querySelector('table.gdi-items'), s = t.parentElement;
                            return {table: t.getBoundingClientRect().width, right: s.getBoundingClientRect().right,
                                    box: s.clientWidth, overflow: getComputedStyle(s).overflowX};
                        }""")
                        assert box["right"] <= width and box["overflow"] == "auto", box
                        if width == 1366:
                            assert box["table"] <= box["box"], box       # all six columns in view
                        else:
                            assert box["table"] > box["box"], box        # a phone scrolls the table, not the page
                assert problems == []
                assert all(is_tile(u) for u in blocked), blocked
                page.context.close()
        finally:
            browser.close()


def test_an_edit_that_no_longer_matches_stops_the_publish():
    from gdi.publish.template_edits import Edit, apply_edit

    assert apply_edit("a <b> c", Edit("x.html", "<b>", "<i>")) == "a <i> c"
    assert apply_edit("a <b> c </b> d", Edit("x.html", "<b>", "[]", through="</b>")) == "a [] d"
    with pytest.raises(RuntimeError, match=r"x.html: expected 1 × '<b>', found 2"):
        apply_edit("<b><b>", Edit("x.html", "<b>", "<i>"))
    with pytest.raises(RuntimeError, match=r"x.html: no '</b>' after '<b>'"):
        apply_edit("<b> c", Edit("x.html", "<b>", "[]", through="</b>"))


def test_a_fuzzy_translation_is_refused():
    from gdi.publish.translations import compile_po

    po = b'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n\n#, fuzzy\nmsgid "Items"\nmsgstr "Objekte"\n'
    with pytest.raises(ValueError, match=r"de: fuzzy entries in the catalogue: \['Items'\]"):
        compile_po(po, "de")
    assert b"Objekte" in compile_po(po.replace(b"#, fuzzy\n", b""), "de")


def test_the_tiles_pages_speak_german_too(tmp_path):
    """The tiles pages are rendered as pygeoapi renders any page, in German."""
    from babel import Locale
    from pygeoapi.util import render_j2_template

    from gdi.publish.templates import build_pygeoapi_templates
    from gdi.publish.translations import build_catalogues

    templates, static = build_pygeoapi_templates(tmp_path / "pygeoapi", "/vendor")
    config = {"server": {"url": "http://127.0.0.1", "encoding": "utf-8", "map": {"url": "", "attribution": ""},
                         "templates": {"path": str(templates), "static": str(static)},
                         "locale_dir": str(build_catalogues(tmp_path / "locale"))},
              "metadata": {"identification": {"title": {"de": SERVICE["de"], "en": SERVICE["en"]}, "description": "",
                                              "keywords": []}, "contact": {"email": ""}}}
    data = {"id": "supply_points", "title": "Nahversorgung", "description": "", "keywords": [], "links": [],
            "tilesets": ["WebMercatorQuad"], "tileset": "WebMercatorQuad", "json_url": "/j", "collections_path": "/c",
            "metadata": {"a": "1"}, "bounds": [8.2, 50.6, 9.5, 51.9], "maxzoom": 15, "minzoom": 0, "tile_type": "vector"}
    for page, heading in (("collections/tiles/index.html", "//main//h3"), ("collections/tiles/metadata.html", "//main//h1")):
        html = render_j2_template(config, config["server"]["templates"], page, data, Locale("de", "DE"))
        doc = lxml.html.fromstring(html)
        check_frame(doc, "de", "Nahversorgung")
        assert texts(doc, heading) == {"collections/tiles/index.html": ["Kacheln"],
                                       "collections/tiles/metadata.html": ["Kachelsatz WebMercatorQuad für Nahversorgung"]}[page]
    assert texts(doc, "//main//h2") == ["URL-Vorlage der Kacheln", "Metadaten"]
