from pathlib import Path

import pytest

from gdi.collections import CollectionError, fold, get_collection, load_collections
from gdi.ingest.fields import map_category, plan_mapping


def test_both_collections_are_declared():
    colls = load_collections()
    assert set(colls) >= {"municipalities", "supply_points"}
    sp = colls["supply_points"]
    assert sp.storage_crs == "EPSG:25832"
    assert sp.geometry_type == "Point"
    assert sp.properties["category"].required
    assert sp.columns[-2:] == ["member", "dataset"]
    assert set(sp.categories) == {"supermarket", "grocery", "bakery", "butcher", "farm_shop", "vending_machine",
                                  "market", "beekeeper", "beverages", "pharmacy", "doctor", "post", "atm"}
    assert sp.categories["farm_shop"].de == "Hofladen"
    m = colls["municipalities"]
    assert list(m.properties) == ["ags", "name", "population"]


@pytest.mark.parametrize("a,b", [("Straße", "STRASSE"), ("Strasse", "straße"), ("addr:street", "addr_street"),
                                 ("Bäckerei", "Baeckerei"), ("Öffnungszeiten", "OEFFNUNGSZEITEN")])
def test_fold_matches_how_people_write(a, b):
    assert fold(a) == fold(b)


@pytest.mark.parametrize("spelling,expected", [
    ("Hofladen", "farm_shop"), ("Bauernladen", "farm_shop"), ("farm shop", "farm_shop"), ("farm", "farm_shop"),
    ("Verkaufsautomat", "vending_machine"), ("Eierautomat", "vending_machine"), ("Regiomat", "vending_machine"),
    ("vending machine", "vending_machine"), ("Wochenmarkt", "market"), ("weekly market", "market"),
    ("marketplace", "market"), ("Supermarkt", "supermarket"), ("supermarket", "supermarket"),
    ("DORFLADEN", "grocery"), ("Bäckerei", "bakery"), ("Apotheke", "pharmacy"), ("Imkerei", "beekeeper"),
    ("unknown", None), ("", None), (None, None),
])
def test_category_spellings(spelling, expected):
    index = get_collection("supply_points").vocabulary_index("categories")
    assert map_category(spelling, index) == expected


def test_field_aliases_map_member_names():
    sp = get_collection("supply_points")
    mapping = plan_mapping(["BEZEICHNUN", "KATEGORIE", "STRASSE", "HAUSNR", "PLZ", "ORT", "Telefon", "foo"], sp)
    assert mapping.sources["name"] == ["BEZEICHNUN"]
    assert mapping.sources["category"] == ["KATEGORIE"]
    assert mapping.sources["street"] == ["STRASSE"]
    assert mapping.sources["postcode"] == ["PLZ"]
    assert mapping.sources["phone"] == ["Telefon"]
    assert mapping.unknown == ["foo"]


def test_unknown_collection_is_a_clear_error():
    with pytest.raises(CollectionError, match="unknown collection 'parcels'"):
        get_collection("parcels")


def test_a_third_collection_is_one_yaml_beside_the_others(tmp_path: Path, monkeypatch):
    (tmp_path / "a.yml").write_text(
        "id: playgrounds\ntitle: {de: Spielplätze, en: Playgrounds}\ngeometry_type: Point\n"
        "properties:\n  name: {type: string, required: true, aliases: [name, bezeichnung]}\n", encoding="utf-8")
    monkeypatch.setenv("GDI_COLLECTIONS", f"{Path(__file__).parent.parent / 'collections'}:{tmp_path}")
    colls = load_collections()
    assert list(colls) == ["municipalities", "supply_points", "playgrounds"]
    assert colls["playgrounds"].columns == ["name", "member", "dataset"]
    assert colls["playgrounds"].write == "members"
    # alone, members could not write it: their rights rest on a territory
    with pytest.raises(CollectionError, match="^playgrounds are written by members, whose rights rest on a "
                                              "territory: declare one collection with role: territory$"):
        load_collections(tmp_path)
    (tmp_path / "b.yml").write_text("id: bad\ntitle: {de: x}\ngeometry_type: Blob\nproperties: {}\n")
    with pytest.raises(CollectionError, match="^b.yml: geometry_type: 'Blob' is not one of .*\n"
                                              "b.yml: properties: missing: declare at least one property$"):
        load_collections(tmp_path)
