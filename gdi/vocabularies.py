"""Code lists the metadata speaks: ISO 19115 topic categories and the INSPIRE themes.

A collection declares its topic category and, where one fits, its INSPIRE theme (GDI-DE
"Konventionen zu Metadaten": the theme is a keyword from GEMET – INSPIRE themes); both are
checked against these lists so a misspelt code is refused when the definition is read, not
when a geoportal harvests it.
"""
from __future__ import annotations

#: ISO 19115 MD_TopicCategoryCode
TOPIC_CATEGORIES = (
    "farming", "biota", "boundaries", "climatologyMeteorologyAtmosphere", "economy", "elevation", "environment",
    "geoscientificInformation", "health", "imageryBaseMapsEarthCover", "intelligenceMilitary", "inlandWaters",
    "location", "oceans", "planningCadastre", "society", "structure", "transportation",
    "utilitiesCommunication",
)

#: INSPIRE theme id → German name (INSPIRE registry, http://inspire.ec.europa.eu/theme/{id})
INSPIRE_THEMES = {
    "rs": "Koordinatenreferenzsysteme", "gg": "Geografische Gittersysteme", "gn": "Geografische Bezeichnungen",
    "au": "Verwaltungseinheiten", "ad": "Adressen", "cp": "Flurstücke/Grundstücke (Katasterparzellen)",
    "tn": "Verkehrsnetze", "hy": "Gewässernetz", "ps": "Schutzgebiete", "el": "Höhe", "lc": "Bodenbedeckung",
    "oi": "Orthofotografie", "ge": "Geologie", "su": "Statistische Einheiten", "bu": "Gebäude", "so": "Boden",
    "lu": "Bodennutzung", "hh": "Gesundheit und Sicherheit", "us": "Versorgungswirtschaft und staatliche Dienste",
    "ef": "Umweltüberwachung", "pf": "Produktions- und Industrieanlagen",
    "af": "Landwirtschaftliche Anlagen und Aquakulturanlagen", "pd": "Verteilung der Bevölkerung — Demografie",
    "am": "Bewirtschaftungsgebiete/Schutzgebiete/geregelte Gebiete und Berichterstattungseinheiten",
    "nz": "Gebiete mit naturbedingten Risiken", "ac": "Atmosphärische Bedingungen",
    "mf": "Meteorologisch-geografische Kennwerte", "of": "Ozeanografisch-geografische Kennwerte",
    "sr": "Meeresregionen", "br": "Biogeografische Regionen", "hb": "Lebensräume und Biotope",
    "sd": "Verteilung der Arten", "er": "Energiequellen", "mr": "Mineralische Bodenschätze",
}
INSPIRE_THEME_URI = "http://inspire.ec.europa.eu/theme/{}"
#: the thesaurus GDI-DE names for the theme keyword, with its publication date
INSPIRE_THESAURUS = ("GEMET - INSPIRE themes, version 1.0", "2008-06-01")
