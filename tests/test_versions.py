"""Every accepted upload is a version; rollback restores exactly what was published."""
from __future__ import annotations

import json

import pytest

from conftest import run_gdi
from gdi.collections import get_collection
from gdi.store import open_store

MB = "vg250ew_gemeinden_marburg-biedenkopf.geojson"
FARM = "farmshops_marburg-biedenkopf_hoexter_umland.geojson"
LIDL = "lidl_marburg-biedenkopf_hoexter_umland.geojson"


@pytest.fixture
def home(gdi_home, shared):
    run_gdi("ingest", str(shared / "boundaries" / MB), "--collection", "municipalities", "--member", "06534",
            home=gdi_home, check=True)
    return gdi_home


def live(home):
    g = open_store().read(get_collection("supply_points"))
    return g.drop(columns=["fid", "updated"]).sort_values(["name", "category"], na_position="first").reset_index(drop=True)


def test_history_rollback_and_audit(home, shared):
    run_gdi("ingest", str(shared / "poi" / FARM), "--collection", "supply_points", "--member", "06534",
            "--dataset", "shops", home=home, check=True)
    first = live(home)
    run_gdi("ingest", str(shared / "poi" / LIDL), "--collection", "supply_points", "--member", "06534",
            "--dataset", "shops", home=home, check=True)
    second = live(home)
    assert len(first) == 42 and len(second) == 10

    hist = json.loads(run_gdi("history", "--collection", "supply_points", "--member", "06534", "--json",
                              home=home, check=True).stdout)
    assert [(v["version"], v["action"], v["count"], v["live"], v["file"]) for v in hist] == [
        (1, "upload", 42, False, FARM), (2, "upload", 10, True, LIDL)]
    assert all(len(v["sha256"]) == 64 and v["uploader"].startswith("cli") for v in hist)
    assert all((home / v["original"]).exists() for v in hist)

    proc = run_gdi("rollback", "--collection", "supply_points", "--member", "06534", "--dataset", "shops",
                   home=home, check=True)
    assert "version 1 restored as version 3 (42 features)" in proc.stdout
    import pandas.testing as pd_testing
    pd_testing.assert_frame_equal(live(home), first)

    run_gdi("rollback", "--collection", "supply_points", "--member", "06534", "--dataset", "shops", "--to", "2",
            home=home, check=True)
    pd_testing.assert_frame_equal(live(home), second)
    hist = json.loads(run_gdi("history", "--collection", "supply_points", "--member", "06534", "--dataset", "shops",
                              "--json", home=home, check=True).stdout)
    assert [(v["version"], v["action"], v["restored_from"], v["live"]) for v in hist] == [
        (1, "upload", None, False), (2, "upload", None, False), (3, "rollback", 1, False), (4, "rollback", 2, True)]


def test_rollback_of_unknown_versions_is_refused(home, shared):
    run_gdi("ingest", str(shared / "poi" / LIDL), "--collection", "supply_points", "--member", "06534",
            "--dataset", "shops", home=home, check=True)
    before = live(home)
    for extra, message in ((["--to", "7"], "has no version 7 (has 1)"), ([], "has no version before 1")):
        proc = run_gdi("rollback", "--collection", "supply_points", "--member", "06534", "--dataset", "shops",
                       *extra, home=home)
        assert proc.returncode != 0 and message in proc.stderr
    proc = run_gdi("rollback", "--collection", "supply_points", "--member", "05762", "--dataset", "shops", home=home)
    assert proc.returncode != 0 and "no versions of supply_points/05762/shops" in proc.stderr
    assert live(home).equals(before)
