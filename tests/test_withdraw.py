"""Withdrawing a dataset: its features leave the published data in one transaction, the audit log
records who did it, and a rollback brings the data back — on both stores, over HTTP and the CLI."""
from __future__ import annotations

import json

import pytest
import requests

from conftest import DATA, Server, free_port, fresh_store, run_gdi, store_text
from test_uploads import bearer, items, token, upload, wait

MB = DATA / "boundaries" / "vg250ew_gemeinden_marburg-biedenkopf.geojson"
HX = DATA / "boundaries" / "vg250ew_gemeinden_hoexter.geojson"
FARM = DATA / "poi" / "farmshops_marburg-biedenkopf_hoexter_umland.geojson"
LIDL = DATA / "poi" / "lidl_marburg-biedenkopf_hoexter_umland.geojson"
COUNTY_ONLY = "only the county (an admin token) may write the collection municipalities"


def not_published(name: str) -> str:
    return f"the dataset {name} is not published (unknown or already withdrawn)"


@pytest.fixture(scope="module", params=["gpkg", "postgis"])
def service(request, tmp_path_factory):
    """Both counties' boundaries (by the county), Marburg's Lidl stores (dataset "bleibt", never
    withdrawn: its features use Marburg's key), tokens for Marburg, Höxter and the county."""
    home = tmp_path_factory.mktemp(f"withdraw-{request.param}") / "home"
    home.mkdir(parents=True)
    store = fresh_store(request.param, request)
    (home / "store-url").write_text(store or "")
    for f, m in ((MB, "06534"), (HX, "05762")):
        run_gdi("ingest", str(f), "--collection", "municipalities", "--member", m, "--admin", "--dataset", "vg250ew",
                home=home, check=True, store=store)
    run_gdi("ingest", str(LIDL), "--collection", "supply_points", "--member", "06534014", "--dataset", "bleibt",
            home=home, check=True, store=store)
    srv = Server(home, free_port())
    srv.store_url = store
    srv.tokens = {"marburg": token(home, "06534014", "--name", "Stadt Marburg"),
                  "hoexter": token(home, "05762020"),
                  "admin": token(home, "06534", "--admin", "--name", "Kreis GIS")}
    yield srv
    srv.stop()


@pytest.fixture
def env(service, monkeypatch):
    """GDI_HOME and GDI_STORE of the service, for store_text() and open_store() in the test."""
    monkeypatch.setenv("GDI_HOME", str(service.home))
    if service.store_url:
        monkeypatch.setenv("GDI_STORE", service.store_url)
    else:
        monkeypatch.delenv("GDI_STORE", raising=False)
    return service


def gdi(srv, *args: str, check: bool = False):
    return run_gdi(*args, home=srv.home, store=srv.store_url, check=check)


def features(srv, **params) -> list[str]:
    """The published features (properties and geometry, not the ids), as a reader gets them."""
    got = items(srv, **params)
    assert got["numberMatched"] == len(got["features"])
    return sorted(json.dumps([f["properties"], f["geometry"]], sort_keys=True) for f in got["features"])


def datasets(srv) -> set[tuple[str, str, str]]:
    rows = json.loads(gdi(srv, "datasets", "--json", check=True).stdout)
    return {(d["collection"], d["member"], d["dataset"]) for d in rows}


def withdraw(srv, secret: str | None, path: str) -> requests.Response:
    return requests.delete(f"{srv.url}/datasets/{path}", headers=bearer(secret) if secret else {}, timeout=60)


def versions(srv, secret: str, path: str) -> list[tuple]:
    r = requests.get(f"{srv.url}/datasets/{path}/versions", headers=bearer(secret), timeout=30)
    assert r.status_code == 200, r.text
    return [(v["version"], v["action"], v["count"], v["live"], v["uploader"]) for v in r.json()["versions"]]


def token_id(secret: str) -> str:
    return "token:" + secret.split("_")[1]


def test_the_owner_withdraws_over_http_and_a_rollback_brings_it_back(env):
    from gdi.store import open_store

    srv, m, h = env, env.tokens["marburg"], env.tokens["hoexter"]
    job = wait(srv, m, upload(srv, m, FARM, dataset="hof").json()["id"])
    assert job["status"] == "accepted", job
    shown = features(srv, member="06534014", dataset="hof")
    kept = features(srv, dataset="bleibt")
    assert len(shown) == job["counts"]["accepted"] > 0 and kept
    assert ("supply_points", "06534014", "hof") in datasets(srv)

    # nobody else: no token, another member's token
    before = store_text()
    assert withdraw(srv, None, "supply_points/06534014/hof").status_code == 401
    r = withdraw(srv, h, "supply_points/06534014/hof")
    assert r.status_code == 403 and r.json()["description"] == "this token acts only for member 05762020"
    assert store_text() == before

    data_version = open_store().data_version()
    r = withdraw(srv, m, "supply_points/06534014/hof")
    assert r.status_code == 200, r.text
    assert r.json() == {"collection": "supply_points", "member": "06534014", "dataset": "hof", "version": 2, "count": 0}
    assert open_store().data_version() > data_version
    assert features(srv, dataset="hof") == [] and features(srv, dataset="bleibt") == kept
    assert ("supply_points", "06534014", "hof") not in datasets(srv)
    assert versions(srv, m, "supply_points/06534014/hof") == [
        (1, "upload", len(shown), False, token_id(m) + " (Stadt Marburg)"),
        (2, "withdraw", 0, False, token_id(m) + " (Stadt Marburg)")]

    # twice: 404, nothing changes
    before = store_text()
    r = withdraw(srv, m, "supply_points/06534014/hof")
    assert r.status_code == 404 and r.json()["description"] == not_published("supply_points/06534014/hof")
    r = withdraw(srv, m, "supply_points/06534014/nie")
    assert r.status_code == 404 and r.json()["description"] == not_published("supply_points/06534014/nie")
    assert store_text() == before

    # the rollback restores the version before the withdrawal, feature for feature
    r = requests.post(f"{srv.url}/datasets/supply_points/06534014/hof/rollback", headers=bearer(m), timeout=60)
    assert r.status_code == 200, r.text
    assert (r.json()["version"], r.json()["count"]) == (3, len(shown))
    assert features(srv, member="06534014", dataset="hof") == shown
    assert ("supply_points", "06534014", "hof") in datasets(srv)
    assert [v[:4] for v in versions(srv, m, "supply_points/06534014/hof")] == [
        (1, "upload", len(shown), False), (2, "withdraw", 0, False), (3, "rollback", len(shown), True)]


def test_the_county_withdraws_a_members_dataset(env):
    srv, m, admin = env, env.tokens["marburg"], env.tokens["admin"]
    assert wait(srv, m, upload(srv, m, FARM, dataset="kreis").json()["id"])["status"] == "accepted"
    r = withdraw(srv, admin, "supply_points/06534014/kreis")
    assert r.status_code == 200 and r.json()["version"] == 2, r.text
    assert features(srv, dataset="kreis") == []
    assert versions(srv, m, "supply_points/06534014/kreis")[-1] == (
        2, "withdraw", 0, False, token_id(admin) + " (Kreis GIS)")


def test_withdraw_and_rollback_from_the_command_line(env):
    srv = env
    gdi(srv, "ingest", str(FARM), "--collection", "supply_points", "--member", "06534014", "--dataset", "cli",
        check=True)
    farms = features(srv, dataset="cli")
    gdi(srv, "ingest", str(LIDL), "--collection", "supply_points", "--member", "06534014", "--dataset", "cli",
        check=True)
    lidl = features(srv, dataset="cli")        # the live version 2
    proc = gdi(srv, "withdraw", "--collection", "supply_points", "--member", "06534014", "--dataset", "cli")
    assert proc.returncode == 0, proc.stderr
    assert ("gdi: supply_points/06534014/cli: withdrawn as version 3 (gdi rollback brings it back); published"
            in proc.stdout.splitlines())
    assert features(srv, dataset="cli") == [] and ("supply_points", "06534014", "cli") not in datasets(srv)
    hist = json.loads(gdi(srv, "history", "--collection", "supply_points", "--member", "06534014", "--dataset", "cli",
                          "--json", check=True).stdout)
    assert [(v["version"], v["action"], v["count"], v["live"]) for v in hist] == [
        (1, "upload", len(farms), False), (2, "upload", len(lidl), False), (3, "withdraw", 0, False)]
    assert hist[-1]["uploader"].startswith("cli") and hist[-1]["file"] is None
    table = gdi(srv, "history", "--collection", "supply_points", "--member", "06534014", "--dataset", "cli",
                check=True).stdout.splitlines()
    assert table[-1].split()[:6] == ["cli", "3", hist[-1]["created"], "withdraw", "0", hist[-1]["uploader"]]

    before = store_text()
    proc = gdi(srv, "withdraw", "--collection", "supply_points", "--member", "06534014", "--dataset", "cli")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "gdi: refused: " + not_published("supply_points/06534014/cli")
    assert store_text() == before

    proc = gdi(srv, "rollback", "--collection", "supply_points", "--member", "06534014", "--dataset", "cli", check=True)
    assert f"version 2 restored as version 4 ({len(lidl)} features)" in proc.stdout
    assert features(srv, dataset="cli") == lidl
    # any version: withdraw again, then bring back version 1
    gdi(srv, "withdraw", "--collection", "supply_points", "--member", "06534014", "--dataset", "cli", check=True)
    proc = gdi(srv, "rollback", "--collection", "supply_points", "--member", "06534014", "--dataset", "cli",
               "--to", "1", check=True)
    assert f"version 1 restored as version 6 ({len(farms)} features)" in proc.stdout
    assert features(srv, dataset="cli") == farms


def test_territory_keys_in_use_cannot_be_withdrawn(env):
    srv, m, admin = env, env.tokens["marburg"], env.tokens["admin"]
    refusal = "municipalities/06534/vg250ew cannot be withdrawn, features of supply_points use ags: 06534014"
    before = store_text()
    proc = gdi(srv, "withdraw", "--collection", "municipalities", "--member", "06534", "--dataset", "vg250ew", "--admin")
    assert proc.returncode == 2 and proc.stderr.strip() == f"gdi: refused: {refusal}"
    r = withdraw(srv, admin, "municipalities/06534/vg250ew")
    assert r.status_code == 409 and r.json()["description"] == refusal
    # a member never withdraws the territory, not even its own municipality
    proc = gdi(srv, "withdraw", "--collection", "municipalities", "--member", "06534", "--dataset", "vg250ew")
    assert proc.returncode == 2 and proc.stderr.strip() == f"gdi: refused: {COUNTY_ONLY}"
    r = withdraw(srv, m, "municipalities/06534014/vg250ew")
    assert r.status_code == 403 and r.json()["description"] == COUNTY_ONLY
    assert store_text() == before


def test_the_county_withdraws_unused_boundaries_and_rolls_them_back(env):
    """Nothing is published in Kreis Höxter: its boundaries may go, and come back exactly."""
    srv, admin = env, env.tokens["admin"]
    towns = requests.get(f"{srv.url}/collections/municipalities/items",
                         params={"f": "json", "limit": 1000, "dataset": "vg250ew"}, timeout=30).json()
    hoexter = sorted(json.dumps([f["properties"], f["geometry"]], sort_keys=True)
                     for f in towns["features"] if f["properties"]["member"] == "05762")
    assert len(hoexter) == 10
    r = withdraw(srv, admin, "municipalities/05762/vg250ew")
    assert r.status_code == 200 and r.json()["count"] == 0, r.text
    assert ("municipalities", "05762", "vg250ew") not in datasets(srv)
    assert ("municipalities", "06534", "vg250ew") in datasets(srv)
    r = requests.post(f"{srv.url}/datasets/municipalities/05762/vg250ew/rollback", headers=bearer(admin), timeout=60)
    assert r.status_code == 200 and r.json()["count"] == 10, r.text
    towns = requests.get(f"{srv.url}/collections/municipalities/items",
                         params={"f": "json", "limit": 1000, "member": "05762"}, timeout=30).json()
    assert sorted(json.dumps([f["properties"], f["geometry"]], sort_keys=True) for f in towns["features"]) == hoexter


def test_migrate_keeps_withdrawals(env, request, tmp_path, monkeypatch):
    """A withdrawn dataset (and a member with nothing live any more) keeps its history in the other store."""
    from gdi.collections import load_collections
    from gdi.store import open_store
    from gdi.store.migrate import migrate

    srv = env
    gdi(srv, "ingest", str(FARM), "--collection", "supply_points", "--member", "06534009", "--dataset", "weg",
        check=True)
    gdi(srv, "withdraw", "--collection", "supply_points", "--member", "06534009", "--dataset", "weg", check=True)
    source = open_store()
    target = open_store(fresh_store("postgis", request) if srv.store_url is None else str(tmp_path / "copy.gpkg"))
    migrate(source, target, load_collections(), echo=lambda *_: None)
    colls = load_collections()
    for c in colls.values():
        assert source.members(c) == target.members(c)
        for member in source.members(c):
            assert ([(v.dataset, v.version, v.action, v.count, v.live, v.restored_from) for v in source.history(c, member)]
                    == [(v.dataset, v.version, v.action, v.count, v.live, v.restored_from) for v in target.history(c, member)])
    assert [v.action for v in target.history(colls["supply_points"], "06534009")] == ["upload", "withdraw"]
