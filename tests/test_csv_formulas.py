"""`f=csv` never hands a spreadsheet a formula: OWASP's rule, on both stores, over HTTP."""
from __future__ import annotations

import csv
import io
import json
import os

from conftest import DATA, Server, free_port, run_gdi
from gdi.publish.csv_formatter import formula_safe

HOSTILE = ['=HYPERLINK("http://x","klick")', "=1+1", "+cmd|' /C calc'!A0", "@SUM(1+1)", "-2+3+cmd|' /C calc'!A0",
           "\tHofladen", "\rHofladen", "Hofladen Müller", "Bäckerei = lecker"]


def test_formula_safe_is_owasps_rule():
    assert [formula_safe(v) for v in HOSTILE] == [
        '\'=HYPERLINK("http://x","klick")', "'=1+1", "'+cmd|' /C calc'!A0", "'@SUM(1+1)",
        "'-2+3+cmd|' /C calc'!A0", "'\tHofladen", "'\rHofladen", "Hofladen Müller", "Bäckerei = lecker"]
    assert [formula_safe(v) for v in (-3, 2.5, None, True)] == [-3, 2.5, None, True]


def test_items_as_csv_neutralise_formulas_and_keep_numbers(gdi_home, tmp_path):
    run_gdi("ingest", str(DATA / "boundaries" / "vg250ew_gemeinden_marburg-biedenkopf.geojson"), "--collection",
            "municipalities", "--member", "06534", "--admin", home=gdi_home, check=True)
    feats = [{"type": "Feature", "properties": {"name": name, "category": "Hofladen"},
              "geometry": {"type": "Point", "coordinates": [8.7705 + i * 0.001, 50.8098]}}
             for i, name in enumerate(HOSTILE)]
    path = tmp_path / "formeln.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}, ensure_ascii=False), encoding="utf-8")
    run_gdi("ingest", str(path), "--collection", "supply_points", "--member", "06534014", home=gdi_home, check=True)
    (gdi_home / "store-url").write_text(os.environ.get("GDI_STORE", ""))     # the server reads the test's store
    srv = Server(gdi_home, free_port())
    try:
        r = srv.get("/collections/supply_points/items", params={"f": "csv", "limit": 100})   # in fid order
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8"), newline="")))
        # ingest trims leading tabs and carriage returns from text; the rest arrives as sent, made safe
        assert [row["name"] for row in rows] == [formula_safe(v.strip()) for v in HOSTILE]
        assert {row["category"] for row in rows} == {"farm_shop"}
        assert {row["member"] for row in rows} == {"06534014"}      # a text of digits stays as it is
        # the whole-collection download (gdi/publish/download.py) guards its cells the same way
        d = srv.get("/collections/supply_points/download", params={"f": "csv"})
        assert d.status_code == 200 and d.headers["Content-Type"] == "text/csv; charset=utf-8"
        whole = list(csv.DictReader(io.StringIO(d.content.decode("utf-8-sig"), newline="")))
        assert [row["name"] for row in whole] == [formula_safe(v.strip()) for v in HOSTILE]
        assert {row["member"] for row in whole} == {"06534014"}
        m = srv.get("/collections/municipalities/items", params={"f": "csv", "limit": 100,
                                                                 "filter": "ags = '06534014'"})
        (marburg,) = list(csv.DictReader(io.StringIO(m.content.decode("utf-8"), newline="")))
        assert marburg["ags"] == "06534014" and marburg["name"] == "Marburg" and marburg["population"].isdigit()
        assert srv.crash_lines() == []
    finally:
        srv.stop()
