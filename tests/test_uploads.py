"""The upload service for members' GIS staff, tested with a real server process."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import requests

from conftest import DATA, Server, free_port, fresh_store, launch_chromium, run_gdi, state_rows, at_once

LIDL = "poi/lidl_marburg-biedenkopf_hoexter_umland.geojson"
FARM = "poi/farmshops_marburg-biedenkopf_hoexter_umland.geojson"


def token(home: Path, member: str, *extra: str) -> str:
    proc = run_gdi("token", "create", "--member", member, *extra, home=home, check=True)
    secret = proc.stdout.strip().splitlines()[-1]
    assert secret.startswith("gdi_") and " " not in secret
    return secret


@pytest.fixture(scope="module", params=["gpkg", "postgis"])
def service(request, tmp_path_factory):
    """A server with both counties' boundaries, and tokens for two members and an admin."""
    home = tmp_path_factory.mktemp(f"uploads-{request.param}") / "home"
    home.mkdir(parents=True)
    store = fresh_store(request.param, request)
    (home / "store-url").write_text(store or "")
    for f, m in (("vg250ew_gemeinden_marburg-biedenkopf.geojson", "06534"), ("vg250ew_gemeinden_hoexter.geojson", "05762")):
        run_gdi("ingest", str(DATA / "boundaries" / f), "--collection", "municipalities", "--member", m, "--admin",
                home=home, check=True, store=store)
    tokens = {"marburg": token(home, "06534014", "--name", "Stadt Marburg"),
              "hoexter": token(home, "05762020"),
              "admin": token(home, "06534", "--admin", "--name", "Kreis GIS")}
    srv = Server(home, free_port())
    srv.tokens = tokens
    yield srv
    srv.stop()


def bearer(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}


def upload(srv, secret, path: Path, **form) -> requests.Response:
    form.setdefault("collection", "supply_points")
    with open(path, "rb") as fh:
        return requests.post(f"{srv.url}/uploads", headers=bearer(secret) if secret else {},
                             data=form, files={"file": (path.name, fh)}, timeout=60)


def wait(srv, secret, jid: str, timeout: float = 120) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = requests.get(f"{srv.url}/uploads/{jid}", headers=bearer(secret), timeout=30).json()
        if job["status"] not in {"queued", "running"}:
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {jid} did not finish: {job}")


def report_of(srv, secret, job: dict) -> dict:
    """The JSON report of a finished job, as its link serves it."""
    href = next(link["href"] for link in job["links"] if link["rel"] == "report" and link["type"] == "application/json")
    r = requests.get(srv.url + href, headers=bearer(secret), timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def items(srv, **params):
    params.setdefault("f", "json")
    params.setdefault("limit", 10000)
    return requests.get(f"{srv.url}/collections/supply_points/items", params=params, timeout=30).json()


def test_tokens_are_stored_as_hashes_and_can_be_revoked(service):
    stored = repr(state_rows(service.home, "SELECT * FROM tokens") + state_rows(service.home, "SELECT * FROM jobs"))
    db = (service.home / "service.sqlite").read_bytes() if not service.store else stored.encode()
    for secret in service.tokens.values():
        assert secret.encode() not in db and secret not in stored
        assert hashlib.sha256(secret.encode()).hexdigest() in stored
    assert (service.home / "service.sqlite").exists() is (not service.store)   # PostGIS: the state is there
    listing = run_gdi("token", "list", home=service.home, check=True).stdout
    assert "06534014" in listing and "Stadt Marburg" in listing and "admin" in listing
    extra = token(service.home, "06534004")
    tid = extra.split("_")[1]
    assert requests.get(f"{service.url}/uploads", headers=bearer(extra), timeout=30).status_code == 200
    run_gdi("token", "revoke", tid, home=service.home, check=True)
    assert requests.get(f"{service.url}/uploads", headers=bearer(extra), timeout=30).status_code == 401
    assert "revoked" in run_gdi("token", "list", home=service.home, check=True).stdout


def test_missing_or_wrong_token_is_401_forbidden_is_403(service):
    lidl = DATA / LIDL
    assert upload(service, None, lidl).status_code == 401
    assert upload(service, "gdi_nope_nope", lidl).status_code == 401
    assert upload(service, service.tokens["marburg"], lidl, member="05762020").status_code == 403
    r = upload(service, service.tokens["marburg"], lidl, collection="parcels")
    assert r.status_code == 400 and "unknown collection" in r.json()["description"]
    assert requests.get(f"{service.url}/collections/supply_points/items?f=json", timeout=30).status_code == 200


def test_upload_job_report_and_versions(service):
    m = service.tokens["marburg"]
    r = upload(service, m, DATA / LIDL, dataset="discounter")
    assert r.status_code == 202
    jid = r.json()["id"]
    assert r.headers["Location"] == f"/uploads/{jid}"
    assert r.json()["status"] in {"queued", "running"}
    job = wait(service, m, jid)
    assert job["status"] == "accepted", job
    assert job["member"] == "06534014" and job["dataset"] == "discounter" and job["version"] == 1
    src = gpd.read_file(DATA / LIDL)
    inside = int((src["ags"] == "06534014").sum())
    assert job["counts"] == {"read": 100, "accepted": inside, "repaired": 0, "rejected": 100 - inside}
    hrefs = {(link["type"], link.get("hreflang")): link["href"] for link in job["links"] if link["rel"] == "report"}
    rep = requests.get(service.url + hrefs[("application/json", None)], headers=bearer(m), timeout=30).json()
    assert rep["counts"]["accepted"] == inside and rep["member"] == "06534014"
    html_de = requests.get(service.url + hrefs[("text/html", "de")], headers=bearer(m), timeout=30).text
    html_en = requests.get(service.url + hrefs[("text/html", "en")], headers=bearer(m), timeout=30).text
    assert "Prüfbericht" in html_de and "Ingest report" in html_en
    assert requests.get(service.url + hrefs[("application/json", None)], headers=bearer(service.tokens["hoexter"]),
                        timeout=30).status_code == 403
    got = items(service, member="06534014", dataset="discounter")
    assert got["numberMatched"] == inside
    mine = requests.get(f"{service.url}/uploads", headers=bearer(m), timeout=30).json()["uploads"]
    assert jid in {u["id"] for u in mine} and {u["member"] for u in mine} == {"06534014"}
    theirs = requests.get(f"{service.url}/uploads", headers=bearer(service.tokens["hoexter"]), timeout=30).json()
    assert jid not in {u["id"] for u in theirs["uploads"]}
    every = requests.get(f"{service.url}/uploads", headers=bearer(service.tokens["admin"]), timeout=30).json()
    assert jid in {u["id"] for u in every["uploads"]}
    hist = requests.get(f"{service.url}/datasets/supply_points/06534014/discounter/versions", headers=bearer(m),
                        timeout=30).json()["versions"]
    assert [(v["version"], v["action"], v["live"]) for v in hist] == [(1, "upload", True)]
    assert hist[0]["uploader"] == "token:" + m.split("_")[1] + " (Stadt Marburg)"


def test_member_cannot_touch_another_members_dataset(service):
    m, h, admin = service.tokens["marburg"], service.tokens["hoexter"], service.tokens["admin"]
    farm = DATA / FARM
    for secret in (m, h):
        assert wait(service, secret, upload(service, secret, farm, dataset="hof").json()["id"])["status"] == "accepted"
    before = items(service, dataset="hof")["numberMatched"]
    by_member = lambda: {  # noqa: E731
        mem: items(service, dataset="hof", member=mem)["numberMatched"] for mem in ("06534014", "05762020")}
    counts = by_member()
    assert counts["06534014"] > 0 and counts["05762020"] > 0 and sum(counts.values()) == before
    # Höxter's token can neither roll back nor read Marburg's versions
    assert requests.post(f"{service.url}/datasets/supply_points/06534014/hof/rollback", headers=bearer(h),
                         timeout=30).status_code == 403
    assert requests.get(f"{service.url}/datasets/supply_points/06534014/hof/versions", headers=bearer(h),
                        timeout=30).status_code == 403
    assert requests.post(f"{service.url}/datasets/supply_points/06534014/hof/rollback", timeout=30).status_code == 401
    # a second upload by Marburg of the same dataset name replaces only Marburg's
    lidl = DATA / LIDL
    assert wait(service, m, upload(service, m, lidl, dataset="hof").json()["id"])["status"] == "accepted"
    after = by_member()
    assert after["05762020"] == counts["05762020"] and after["06534014"] != counts["06534014"]
    # the owner (or the county) rolls back over HTTP
    r = requests.post(f"{service.url}/datasets/supply_points/06534014/hof/rollback", headers=bearer(admin), timeout=30)
    assert r.status_code == 200 and r.json()["version"] == 3
    assert by_member() == counts


def test_refused_upload_changes_nothing(service, tmp_path):
    m = service.tokens["marburg"]
    before = items(service)
    bad = tmp_path / "kaputt.gpkg"
    bad.write_bytes(b"SQLite format 3\x00" + b"\x00" * 100)
    job = wait(service, m, upload(service, m, bad).json()["id"])
    assert job["status"] == "rejected" and job["message"]
    after = items(service)
    assert [f["id"] for f in after["features"]] == [f["id"] for f in before["features"]]


def test_two_members_uploading_at_the_same_time_both_land(service):
    farm = DATA / FARM
    results = {}

    def go(name, secret):
        results[name] = upload(service, secret, farm, dataset="gleichzeitig").json()["id"]

    threads = [threading.Thread(target=go, args=(n, service.tokens[n])) for n in ("marburg", "hoexter")]
    [t.start() for t in threads]
    [t.join() for t in threads]
    jobs = {n: wait(service, service.tokens[n], jid) for n, jid in results.items()}
    assert {j["status"] for j in jobs.values()} == {"accepted"}
    for n, member in (("marburg", "06534014"), ("hoexter", "05762020")):
        assert items(service, dataset="gleichzeitig", member=member)["numberMatched"] == jobs[n]["counts"]["accepted"] > 0


def test_no_secret_in_the_logs(service):
    log = (service.home / f"server-{service.port}.log").read_text()
    for secret in service.tokens.values():
        assert secret not in log
    reports = "".join(p.read_text(errors="ignore") for p in (service.home / "reports").glob("*.json"))
    for secret in service.tokens.values():
        assert secret not in reports


def _big_upload(path: Path, real_data: Path, n: int = 300_000) -> Path:
    g = gpd.read_file(real_data / FARM)
    g = g[g["ags"].fillna("").str.startswith("06534014")]
    rng = np.random.default_rng(7)
    idx = rng.integers(0, len(g), n)
    x = g.geometry.x.values[idx] + rng.uniform(-0.0005, 0.0005, n)
    y = g.geometry.y.values[idx] + rng.uniform(-0.0005, 0.0005, n)
    gpd.GeoDataFrame({"name": [f"Punkt {i}" for i in range(n)], "kategorie": ["Hofladen"] * n},
                     geometry=gpd.points_from_xy(x, y), crs=4326).to_file(path, driver="GPKG")
    return path


def _alive(pid: int) -> bool:
    """A process that runs (not ended, nor a zombie waiting for its parent)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_kill_during_a_large_upload_leaves_everything_as_before(service, tmp_path):
    m = service.tokens["marburg"]
    big = _big_upload(tmp_path / "gross.gpkg", DATA)
    before = items(service)
    jid = upload(service, m, big, dataset="gross").json()["id"]
    deadline = time.time() + 120
    while time.time() < deadline:
        job = requests.get(f"{service.url}/uploads/{jid}", headers=bearer(m), timeout=30).json()
        if job["status"] == "running" and (job["progress"]["fraction"] or 0) >= 0.25:
            break
        assert job["status"] in {"queued", "running"}, job
        time.sleep(0.1)
    pid = state_rows(service.home, "SELECT pid FROM jobs WHERE id = ?", (jid,))[0][0]
    assert _alive(pid)
    # forked from the warm forkserver (the ingest modules imported once), not a fresh interpreter
    ppid = int(next(line.split()[1] for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                    if line.startswith("PPid:")))
    parent = Path(f"/proc/{ppid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    assert "multiprocessing.forkserver" in parent and "gdi.ingest.pipeline" in parent, parent
    os.kill(service.proc.pid, signal.SIGKILL)          # the whole `gdi serve`, no goodbye
    service.proc.wait(10)
    time.sleep(1.0)
    assert not _alive(pid), "the job process must die with the server"
    home, port = service.home, service.port
    service.log.close()
    restarted = Server(home, port)
    service.proc, service.log = restarted.proc, restarted.log
    job = requests.get(f"{service.url}/uploads/{jid}", headers=bearer(m), timeout=30).json()
    assert job["status"] == "failed" and "interrupted" in job["message_en"] and "abgebrochen" in job["message"]
    after = items(service)
    assert after["numberMatched"] == before["numberMatched"]
    assert [f["id"] for f in after["features"]] == [f["id"] for f in before["features"]]
    hist = requests.get(f"{service.url}/datasets/supply_points/06534014/gross/versions", headers=bearer(m),
                        timeout=30).json()["versions"]
    assert hist == []


def test_html_upload_page_in_a_browser(service, tmp_path):
    from playwright.sync_api import sync_playwright
    from urllib.parse import urlsplit

    evil = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": "<img src=x onerror=window.__xss=1>", "kategorie": "Hofladen"},
         "geometry": {"type": "Point", "coordinates": [8.7705, 50.8098]}},
        {"type": "Feature", "properties": {"name": "<b>fett</b>", "kategorie": "<script>window.__xss=2</script>"},
         "geometry": {"type": "Point", "coordinates": [8.771, 50.81]}}]}
    path = tmp_path / "<i>hof<i>.geojson"
    path.write_text(json.dumps(evil), encoding="utf-8")
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 1400})
            blocked, errors, languages = [], [], []

            def route(r):
                if urlsplit(r.request.url).hostname != "127.0.0.1":
                    blocked.append(r.request.url)
                    return r.abort()
                if urlsplit(r.request.url).path.startswith("/uploads"):
                    languages.append(r.request.headers.get("accept-language"))
                return r.continue_()

            page.route("**/*", route)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{service.url}/upload")
            page.fill("#token", service.tokens["marburg"])
            page.select_option("#collection", "supply_points")
            page.set_input_files("#file", str(path))
            page.click("button[type=submit]")
            page.wait_for_selector("#report h2", timeout=60000)
            text = page.inner_text("#report")
            assert "name=<b>fett</b>" in text
            assert "category ‚<script>window.__xss=2</script>‘ steht nicht in der Werteliste" in text    # reason_de
            assert page.evaluate("typeof window.__xss") == "undefined"
            assert page.locator("#report img, #report b, #report script").count() == 0
            assert "angenommen" in page.inner_text("#state") and page.inner_text("#stage") == "(fertig)"
            assert "Mitglied\t06534014" in text and "Mitglied / member" not in text
            assert set(languages) == {"de"}
            page.screenshot(path=str(service.home / "upload-de.png"), full_page=True)
            page.click("#lang")
            text = page.inner_text("#report")
            assert "accepted" in page.inner_text("#state") and "Ingest report" in text
            assert page.inner_text("#stage") == "(done)" and "Member\t06534014" in text
            assert "category '<script>window.__xss=2</script>' is not in the vocabulary" in text
            page.screenshot(path=str(service.home / "upload-en.png"), full_page=True)
            page.fill("#token", "gdi_wrong_token")
            page.set_input_files("#file", str(path))
            page.click("button[type=submit]")
            page.wait_for_selector("#error:not(:empty)", timeout=30000)
            assert page.inner_text("#error") == ("The access token is missing or invalid. "
                                                 "a valid upload token is required (Authorization: Bearer …)")
            assert languages[-1] == "en"
            page.click("#lang")
            assert page.inner_text("#error") == ("Der Zugangsschlüssel fehlt oder ist ungültig. ein gültiger "
                                                 "Zugangsschlüssel (Token) ist nötig (Authorization: Bearer …)")
            assert blocked == [] and errors == []
        finally:
            browser.close()


@pytest.mark.parametrize("name", ["..", ".", "x" * 101])
def test_a_bad_dataset_name_is_refused_at_the_door(service, name):
    m = service.tokens["marburg"]
    before = {p for p in (service.home / "originals").rglob("*")} if (service.home / "originals").exists() else set()
    r = upload(service, m, DATA / LIDL, dataset=name)
    assert r.status_code == 400 and r.headers["Content-Type"] == "application/problem+json"
    shown = name if len(name) <= 40 else name[:40] + f"… ({len(name)})"
    assert r.json()["description"] == (
        f"form field 'dataset': dataset name '{shown}' refused: 1 to 100 letters, digits, '.', '_' or '-', "
        "not only dots")
    after = {p for p in (service.home / "originals").rglob("*")} if (service.home / "originals").exists() else set()
    assert after == before


@pytest.mark.parametrize("path", ["/datasets/supply_points/06534014/%2E%2E/versions",
                                  "/datasets/supply_points/06534014/%2E%2E/rollback"])
def test_dataset_routes_refuse_dot_names(service, path):
    """Sent as they are (http.client does not fold '..' the way a browser or requests would)."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=30)
    conn.request("POST" if path.endswith("rollback") else "GET", path,
                 headers={"Authorization": f"Bearer {service.tokens['admin']}"})
    r = conn.getresponse()
    body = json.loads(r.read())
    assert r.status == 400 and body["description"].startswith("dataset name '..' refused: 1 to 100 letters")


@pytest.mark.parametrize("body", ['{"to": 1e400}', '{"to": -1}', '{"to": 1.5}', '{"to": "zwei"}', '{"to": true}',
                                  '{"to": 99999999999999999999}', '[1, 2]', '"to"'])
def test_rollback_with_a_malformed_version_is_400(service, body):
    before = requests.get(f"{service.url}/datasets/municipalities/06534/versions",
                          headers=bearer(service.tokens["admin"]), timeout=30).json()
    r = requests.post(f"{service.url}/datasets/municipalities/06534/vg250ew_gemeinden_marburg-biedenkopf/rollback",
                      data=body, headers={**bearer(service.tokens["admin"]), "Content-Type": "application/json"},
                      timeout=30)
    assert r.status_code == 400, r.text
    if body.startswith(("[", '"')):      # not an object: refused, never read as "no 'to', the previous version"
        assert r.json()["description"].startswith("the body is not a JSON object")
    else:
        assert r.json()["description"] == "'to' must be a version number from 1 to 2147483647"
    assert requests.get(f"{service.url}/datasets/municipalities/06534/versions",
                        headers=bearer(service.tokens["admin"]), timeout=30).json() == before


def test_a_burst_of_uploads_never_queues_more_than_the_limit(service):
    """12 uploads by one member at the same moment, limit 5 waiting or running (config/gdi.yml)."""
    h = service.tokens["hoexter"]
    folders = service.home / "uploads"
    before = {d.name for d in folders.iterdir()} if folders.exists() else set()
    answers = at_once(12, lambda i: upload(service, h, DATA / FARM, member="05762020", dataset=f"welle{i}",
                                           dry_run="true"))
    codes = sorted(r.status_code for r in answers)
    assert codes == [202] * 5 + [429] * 7, codes
    refused = [r.json()["description"] for r in answers if r.status_code == 429]
    assert set(refused) == {"member 05762020 already has 5 uploads waiting or running; try again later"}
    queued = {r.json()["id"] for r in answers if r.status_code == 202}
    assert {d.name for d in folders.iterdir()} - before <= queued      # a refused upload leaves no file behind
    for jid in queued:
        assert wait(service, h, jid, timeout=300)["status"] == "accepted"
