"""gdi behind Debian's nginx with the shipped deploy/nginx/gdi.conf: every link carries the public URL.

nginx runs as a plain process (not root: as nobody when the tests run as root) on a free port of
127.0.0.1, with the shipped site file — only its upstream addresses, listen port and paths replaced —
in front of real `gdi serve` processes (two on PostGIS, sharing one database). The crawl follows every
kind of answer through nginx and checks that no link leaves ``http://127.0.0.1:<nginx>/gdi``.
"""
from __future__ import annotations

import contextlib
import gzip
import http.client
import json
import random
import re
import time
from urllib.parse import urljoin, urlsplit

import pytest
import requests
import yaml

from conftest import DATA, REPO, Server, free_port, fresh_store, ingest_boundaries, run_gdi
from gdi import settings
from gdi.server.public_url import Links, TrustedProxy, is_trusted, own_tags, tagged
from nginx_proxy import SITE, Crawl, Nginx

UNTRUSTED = "127.0.0.2"            # a client address outside the default server.trusted_proxies


# -- the rules, without a server -------------------------------------------------------------------

def test_links_move_to_the_public_base_and_prefix():
    moved = Links("http://127.0.0.1:5000", "https://geo.example.de:8443/gdi", "/gdi")
    assert moved.body(b'{"href": "/uploads/1", "a":"http://127.0.0.1:5000/collections?f=json",'
                      b'"b":"http://127.0.0.1:50001/x","c":"http://127.0.0.1:5000","d":"/viewer"}',
                      "application/json") == \
        (b'{"href": "/gdi/uploads/1", "a":"https://geo.example.de:8443/gdi/collections?f=json",'
         b'"b":"http://127.0.0.1:50001/x","c":"https://geo.example.de:8443/gdi","d":"/viewer"}')
    page = (b'<a href="/viewer">m</a><script src="/vendor/l.js"></script><link href=\'/static/a.css\'>'
            b"<a href=\"//other.example/x\"><script>s.replace(/'/g, \"\"); u = root + '/collections/';</script>")
    assert moved.body(page, "text/html; charset=utf-8") == \
        (b'<a href="/gdi/viewer">m</a><script src="/gdi/vendor/l.js"></script><link href=\'/gdi/static/a.css\'>'
         b"<a href=\"//other.example/x\"><script>s.replace(/'/g, \"\"); u = root + '/collections/';</script>")
    assert moved.url("/static/img/favicon.ico") == "/gdi/static/img/favicon.ico"
    assert moved.header("Link", '<http://127.0.0.1:5000/a?f=json>; rel="next", </b>; rel="prev"') == \
        '<https://geo.example.de:8443/gdi/a?f=json>; rel="next", </gdi/b>; rel="prev"'
    assert moved.url("https://other.example/x") == "https://other.example/x"


def test_links_when_the_configured_url_is_the_public_one_with_its_path():
    """server.url https://geo.example.de/gdi (the deployment the README describes): the map's paths that
    already carry /gdi keep one, the other root-relative ones get it."""
    same = Links("https://geo.example.de/gdi", "https://geo.example.de/gdi", "/gdi")
    assert same.body(b'<script src="/vendor/l.js"></script><a href="/gdi/collections/x"><a href="/gdi">'
                     b'<a href="/gdix"> https://geo.example.de/gdi/x https://geo.example.de/gdix', "text/html") == \
        (b'<script src="/gdi/vendor/l.js"></script><a href="/gdi/collections/x"><a href="/gdi">'
         b'<a href="/gdi/gdix"> https://geo.example.de/gdi/x https://geo.example.de/gdix')
    assert same.body(b'{"href":"/uploads/1","a":{"href":"/gdi/uploads/2"}}', "application/json") == \
        b'{"href":"/gdi/uploads/1","a":{"href":"/gdi/uploads/2"}}'
    assert (same.url("/gdi/uploads/1"), same.url("/uploads/1")) == ("/gdi/uploads/1", "/gdi/uploads/1")
    other = Links("https://geo.example.de/gdi", "http://10.0.0.5:8080/x", "/x")
    assert other.body(b'<img src="/gdi/collections/x"> https://geo.example.de/gdi/y', "text/html") == \
        b'<img src="/x/collections/x"> http://10.0.0.5:8080/x/y'


def test_a_rewritten_answer_has_a_tag_of_its_base():
    assert tagged([("ETag", '"f-1"'), ("ETag", 'W/"2"'), ("Content-Type", "text/html")], "ab12") == \
        [("ETag", '"f-1-ab12"'), ("ETag", 'W/"2-ab12"'), ("Content-Type", "text/html")]
    assert own_tags('"f-1-ab12", W/"2-ab12" , "3-cd34", "4"', "ab12") == '"f-1", W/"2", "3-cd34", "4"'


def _call(app, environ: dict) -> tuple[str, dict]:
    seen: dict = {}

    def start(status, headers, exc_info=None):
        seen["status"] = status
    body = b"".join(app(dict({"REQUEST_METHOD": "GET", "PATH_INFO": "/", "wsgi.url_scheme": "http",
                              "HTTP_HOST": "127.0.0.1:5000", "SCRIPT_NAME": ""}, **environ), start))
    return seen["status"], json.loads(body)


def test_only_a_trusted_proxy_moves_the_public_url():
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({k: environ.get(k) for k in ("gdi.public_url", "SCRIPT_NAME", "REMOTE_ADDR",
                                                        "HTTP_X_FORWARDED_HOST")}).encode()]

    proxy = TrustedProxy(app, lambda: "http://127.0.0.1:5000/", lambda: ["127.0.0.1", "10.1.0.0/16"])
    forwarded = {"HTTP_X_FORWARDED_PROTO": "https", "HTTP_X_FORWARDED_HOST": "geo.example.de:8443",
                 "HTTP_X_FORWARDED_PREFIX": "/gdi/", "HTTP_X_FORWARDED_FOR": "192.0.2.7"}
    assert _call(proxy, {"REMOTE_ADDR": "10.1.2.3", **forwarded}) == ("200 OK", {
        "gdi.public_url": "https://geo.example.de:8443/gdi", "SCRIPT_NAME": "/gdi", "REMOTE_ADDR": "192.0.2.7",
        "HTTP_X_FORWARDED_HOST": "geo.example.de:8443"})
    assert _call(proxy, {"REMOTE_ADDR": "::ffff:127.0.0.1", **forwarded})[1]["gdi.public_url"] == \
        "https://geo.example.de:8443/gdi"
    assert _call(proxy, {"REMOTE_ADDR": "10.2.0.1", **forwarded}) == ("200 OK", {
        "gdi.public_url": "http://127.0.0.1:5000", "SCRIPT_NAME": "", "REMOTE_ADDR": "10.2.0.1",
        "HTTP_X_FORWARDED_HOST": None})
    assert _call(proxy, {"REMOTE_ADDR": "127.0.0.1"})[1]["gdi.public_url"] == "http://127.0.0.1:5000"
    # a header werkzeug cannot parse as a list is no forwarded value; one that is no host is refused
    assert _call(proxy, {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_HOST": 'x"><script>'})[1]["gdi.public_url"] \
        == "http://127.0.0.1:5000"
    status, problem = _call(proxy, {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_HOST": "evil.example/<b>"})
    assert (status, problem["status"], problem["detail_de"], problem["detail_en"]) == (
        "400 Bad Request", 400,
        "der vorgeschaltete Proxy hat keine gültige öffentliche Adresse übermittelt (X-Forwarded-Proto: http oder "
        "https, X-Forwarded-Host: Name[:Port], X-Forwarded-Prefix: /Pfad)",
        "the reverse proxy sent no valid public address (X-Forwarded-Proto: http or https, X-Forwarded-Host: "
        "name[:port], X-Forwarded-Prefix: /path)")
    assert _call(proxy, {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_PROTO": "javascript"})[0] == "400 Bad Request"
    assert (is_trusted("127.0.0.1", ("127.0.0.1",)), is_trusted("127.0.0.2", ("127.0.0.1",)),
            is_trusted("fe80::1%eth0", ("fe80::/10",)), is_trusted("unix", ("127.0.0.1",))) == \
        (True, False, True, False)


def test_gunicorn_trusts_the_same_proxies(tmp_path, monkeypatch):
    from gdi.server.run import gunicorn_args

    config = tmp_path / "gdi.yml"
    config.write_text("server:\n  trusted_proxies: [10.0.0.5, 10.0.1.0/24]\n", encoding="utf-8")
    monkeypatch.setenv("GDI_CONFIG", str(config))
    args = gunicorn_args("127.0.0.1", 5000, 2, 2, tmp_path / "pid")
    assert args[args.index("--forwarded-allow-ips") + 1] == "10.0.0.5,10.0.1.0/24"


def test_the_shipped_nginx_site_streams_uploads_up_to_gdis_limit():
    text = SITE.read_text(encoding="utf-8")
    size = re.findall(r"^\s*client_max_body_size (\d+)m;", text, re.M)
    shipped = yaml.safe_load((REPO / "config" / "gdi.yml").read_text(encoding="utf-8"))["uploads"]["max_bytes"]
    assert [int(s) * 2**20 for s in size] == [settings.Uploads().max_bytes] == [shipped]
    for directive in ("proxy_request_buffering off;", "proxy_set_header X-Forwarded-Proto $scheme;",
                      "proxy_set_header X-Forwarded-Host $http_host;", "proxy_set_header X-Forwarded-Prefix /gdi;",
                      "location /gdi/ {", "proxy_pass http://gdi/;", "gzip off;"):
        assert re.search(rf"^\s*{re.escape(directive)}", text, re.M), directive


# -- nginx in front of real servers ----------------------------------------------------------------

@contextlib.contextmanager
def deployment(request, tmp_path_factory, kind: str, servers: int, public_url: bool):
    """Fresh boundaries on a store, the map drawn from tiles (viewer.tiles_above: 0, so the page holds tile
    URLs), `gdi serve` × servers (one database, one GDI_URL) and nginx in front. GDI_URL is the first
    server's own address, or with public_url nginx's public URL (as the README's deployment has it)."""
    with pytest.MonkeyPatch.context() as mp:
        home = tmp_path_factory.mktemp(f"proxy-{kind}") / "home"
        home.mkdir()
        url = fresh_store(kind, request)
        mp.setenv("GDI_HOME", str(home))
        if url:
            mp.setenv("GDI_STORE", url)
        else:
            mp.delenv("GDI_STORE", raising=False)
        ingest_boundaries(request, home)
        (home / "store-url").write_text(url or "")
        ports = [free_port() for _ in range(servers)]
        nginx_port = free_port()
        configured = f"http://127.0.0.1:{nginx_port}/gdi" if public_url else f"http://127.0.0.1:{ports[0]}"
        text = (REPO / "config" / "gdi.yml").read_text(encoding="utf-8")
        changed = text.replace("\n  tiles_above: 20000 ", "\n  tiles_above: 0     ").replace(
            "\n  url: http://127.0.0.1:5000 ", f"\n  url: {configured} ")
        assert changed.count("tiles_above: 0 ") == 1 and changed.count(f"url: {configured} ") == 1
        config = home.parent / "gdi.yml"
        config.write_text(changed, encoding="utf-8")
        mp.setenv("GDI_CONFIG", str(config))
        mp.setenv("GDI_URL", configured)        # every server the same (metadata identifiers derive from it)
        started: list[Server] = []
        nginx = None
        try:
            for port in ports:
                started.append(Server(home, port))
            secret = run_gdi("token", "create", "--member", "06534", "--admin", home=home,
                             check=True).stdout.strip().splitlines()[-1]
            nginx = Nginx(ports, nginx_port)
            yield {"nginx": nginx, "servers": started, "secret": secret, "home": home, "configured": configured}
        finally:
            if nginx is not None:
                nginx.stop()
            for srv in started:
                srv.stop()


@pytest.fixture(scope="module", params=[("gpkg", 1, False), ("postgis", 2, False), ("gpkg", 1, True)],
                ids=["gpkg", "postgis", "gpkg-public-url"])
def behind_nginx(request, tmp_path_factory):
    """One `gdi serve` on the GeoPackage store, two on PostGIS, configured with the first one's address;
    and the README's deployment: GDI_URL and server.url the public URL with its /gdi path."""
    kind, servers, public_url = request.param
    with deployment(request, tmp_path_factory, kind, servers, public_url) as setup:
        yield setup


def bearer(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}


def wait_job(url: str, secret: str, timeout: float = 180) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = requests.get(url, headers=bearer(secret), timeout=30)
        assert r.status_code == 200, r.text
        job = r.json()
        if job["status"] not in {"queued", "running"}:
            return job
        time.sleep(0.3)
    raise AssertionError(f"{url} did not finish")


def test_every_link_through_nginx_carries_the_public_url(behind_nginx):
    nginx, secret = behind_nginx["nginx"], behind_nginx["secret"]
    ports = [s.port for s in behind_nginx["servers"]]
    public = nginx.url
    crawl = Crawl(public, ports)

    # an upload through nginx: its Location, status, report links (JSON, HTML) all below /gdi/
    lidl = DATA / "poi" / "lidl_marburg-biedenkopf_hoexter_umland.geojson"
    with open(lidl, "rb") as fh:
        r = requests.post(public + "/uploads", headers=bearer(secret), data={"collection": "supply_points"},
                          files={"file": (lidl.name, fh)}, timeout=60)
    assert r.status_code == 202, r.text
    crawl.check(r)
    jid = r.json()["id"]
    assert r.headers["Location"] == f"/gdi/uploads/{jid}"
    assert r.json()["links"] == [{"rel": "self", "type": "application/json", "href": f"/gdi/uploads/{jid}"}]
    job = wait_job(urljoin(public, r.headers["Location"]), secret)
    assert job["status"] == "accepted", job
    assert [link["href"] for link in job["links"]] == [
        f"/gdi/uploads/{jid}", f"/gdi/uploads/{jid}/report.json", f"/gdi/uploads/{jid}/report.html?lang=de",
        f"/gdi/uploads/{jid}/report.html?lang=en"]
    for link in job["links"]:
        answer = crawl.get(urljoin(public, link["href"]), headers=bearer(secret))
        assert (answer.status_code, answer.headers["Content-Type"].split(";")[0]) == (200, link["type"]), link
    listed = crawl.get("/uploads", headers=bearer(secret)).json()["uploads"]
    assert [u["links"][0]["href"] for u in listed] == [f"/gdi/uploads/{jid}"]

    items = crawl.get("/collections/supply_points/items?f=json&limit=2").json()
    fid = items["features"][0]["id"]
    assert items["numberMatched"] == job["counts"]["accepted"] > 2
    pages = [items]
    while len(pages) < 3:        # the next links carry the public URL and lead on
        nxt = next(link["href"] for link in pages[-1]["links"] if link["rel"] == "next")
        assert nxt.startswith(public + "/collections/supply_points/items?")
        pages.append(crawl.get(nxt).json())
    assert len({f["id"] for p in pages for f in p["features"]}) == 6

    deadline = time.time() + 120           # the running server redraws the map from tiles after the upload
    while "vectorGrid.protobuf" not in requests.get(public + "/viewer", timeout=30).text:
        assert time.time() < deadline, "the map was not redrawn with the uploaded points as tiles"
        time.sleep(0.5)

    start = ["/", "/?f=json", "/?f=html", "/?f=jsonld", "/conformance?f=json", "/conformance?f=html",
             "/collections?f=json", "/collections?f=html", "/collections/supply_points?f=json",
             "/collections/supply_points?f=html", "/collections/supply_points/items?f=html&limit=3",
             f"/collections/supply_points/items/{fid}?f=json", f"/collections/supply_points/items/{fid}?f=html",
             "/collections/supply_points/queryables?f=json", "/collections/supply_points/queryables?f=html",
             "/collections/supply_points/schema?f=json", "/collections/supply_points/tiles?f=json",
             "/collections/supply_points/tiles?f=html", "/collections/supply_points/tiles/WebMercatorQuad?f=json",
             "/collections/supply_points/tiles/WebMercatorQuad/metadata?f=tilejson", "/TileMatrixSets?f=json",
             "/TileMatrixSets/WebMercatorQuad?f=json", "/openapi?f=json", "/openapi?f=html", "/api?f=json", "/api",
             "/viewer", "/viewer?lang=en", "/viewer/", "/upload", "/collections/municipalities/metadata",
             "/csw?service=CSW&version=2.0.2&request=GetCapabilities", "/collections/catalogue/items?f=json",
             "/collections/catalogue/items?f=html"]
    for path in start:
        answer = crawl.get(path)
        assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
    for accept in ("gzip", "identity"):      # compressed or not, cached or not: the same links
        answer = crawl.get("/collections/supply_points/items?f=json&limit=50", headers={"Accept-Encoding": accept})
        # gzip passes nginx as gdi made it (its own tag), and nginx compresses nothing itself
        assert (answer.headers.get("Content-Encoding"), answer.headers["ETag"].endswith('-gz"')) == \
            (("gzip", True) if accept == "gzip" else (None, False))

    favicon = crawl.get("/favicon.ico", allow_redirects=False)
    assert (favicon.status_code, favicon.headers["Location"]) == (302, "/gdi/static/img/favicon.ico")
    tilejson = crawl.get("/collections/supply_points/tiles/WebMercatorQuad/metadata?f=tilejson").json()
    template = tilejson["tiles"][0]
    assert template.startswith(public + "/collections/supply_points/tiles/WebMercatorQuad/"), template
    # the tiles' path is written below server.url's path and taken below the page's own root (map.js)
    viewer = crawl.get("/viewer").text
    written = urlsplit(behind_nginx["configured"]).path
    assert f"'{written}/collections/supply_points/tiles/WebMercatorQuad/{{z}}/{{y}}/{{x}}?f=mvt'" in viewer
    assert '<script src="/gdi/vendor/leaflet/dist/leaflet.js"></script>' in viewer and '"/vendor/' not in viewer
    openapi = crawl.get("/openapi?f=json").json()
    assert [s["url"] for s in openapi["servers"]] == [public]

    # every link found, followed once: templates and other hosts aside, each answers (through nginx)
    followed = ok = 0
    queue = sorted(crawl.links | crawl.rooted)
    done = set(crawl.seen)
    while queue and followed < 400:
        url = queue.pop(0)
        if url in done or "{" in url or "%7B" in url or "/uploads" in url or "/download" in url:
            continue
        done.add(url)
        answer = crawl.get(url)
        followed += 1
        # as the server answers it directly (pygeoapi links a few things it does not serve, e.g.
        # /tileMatrixSets?f=html, and the catalogue as CSV, which gdi answers 400)
        direct = requests.get(f"http://127.0.0.1:{ports[0]}" + url[len(public):], timeout=60).status_code
        assert answer.status_code == direct, (url, crawl.found_in.get(url), answer.status_code, answer.text[:300])
        ok += direct == 200
        queue += sorted((crawl.links | crawl.rooted) - done - set(queue))
    assert followed > 100 and ok > followed - 5, (followed, ok)
    print(f"through nginx: {len(crawl.seen)} answers checked, {followed} links followed ({ok} answered 200)")
    # one tile of the map's template and the downloads' headers, also through nginx
    tile = crawl.get(template.replace("{z}", "12").replace("{y}", "1378").replace("{x}", "2147"))
    assert tile.status_code == 200 and tile.headers["Content-Type"].startswith("application/vnd.mapbox-vector-tile")
    download = requests.head(public + "/collections/supply_points/download?f=gpkg", timeout=60)
    assert download.status_code == 200 and download.headers["Content-Disposition"].startswith("attachment")
    # a download (text, but a file) is passed through as the server sends it, not rewritten
    csv = requests.get(public + "/collections/supply_points/download?f=csv", timeout=60)
    direct = requests.get(f"http://127.0.0.1:{ports[0]}/collections/supply_points/download?f=csv", timeout=60)
    assert (csv.status_code, csv.content, csv.headers["Content-Length"]) == \
        (200, direct.content, direct.headers["Content-Length"])
    assert nginx.error_log().count("[error]") == 0, nginx.error_log()


def test_the_map_through_nginx_loads_everything_below_the_public_url(behind_nginx):
    """Headless Chromium opens the map at nginx's /gdi/viewer: its scripts, styles, distance bands and
    vector tiles all come through nginx, below /gdi/, and the tiles are drawn."""
    from playwright.sync_api import sync_playwright

    from conftest import is_tile, launch_chromium, offline_page

    nginx = behind_nginx["nginx"]
    backends = [f":{s.port}/" for s in behind_nginx["servers"]]
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page, problems, blocked = offline_page(browser, viewport=(1366, 900))
            seen: list[tuple[str, int]] = []
            page.on("response", lambda r: seen.append((r.url, r.status)))
            page.goto(nginx.url + "/viewer", wait_until="load")
            page.wait_for_selector("html[data-gdi-ready='1']", state="attached")
            page.wait_for_function("""() => { var g = gdiMap.tiled[0]; if (!g || !g._vectorTiles) return false;
                var n = 0; for (var k in g._vectorTiles) n += Object.keys(g._vectorTiles[k]._features || {}).length;
                return n > 0 && document.querySelectorAll('.leaflet-gdiTiles-pane svg path').length > 0; }""",
                                   timeout=30000)
            local = [(u, code) for u, code in seen if urlsplit(u).hostname == "127.0.0.1"]
            assert local and all(u.startswith(nginx.url + "/") for u, _ in local), local
            assert not any(b in u for u, _ in local for b in backends)
            assert all(code in {200, 204} for _, code in local), local
            kinds = {"vendor" if "/gdi/vendor/" in u else "tile" if "f=mvt" in u else "bands" if "bands" in u
                     else "page" if u.endswith("/gdi/viewer") else u for u, _ in local}
            assert {"vendor", "tile", "page"} <= kinds, kinds
            assert not problems and all(is_tile(u) for u in blocked), (problems, blocked)   # only the base map
            page.context.close()
        finally:
            browser.close()


def test_the_upload_page_through_nginx_uploads_and_shows_the_report(behind_nginx):
    """The upload page at nginx's /gdi/upload: its scripts reach the API below /gdi/ (collections, the
    upload, its status and report), and the report is shown."""
    from playwright.sync_api import sync_playwright

    from conftest import launch_chromium

    nginx = behind_nginx["nginx"]
    lidl = DATA / "poi" / "lidl_marburg-biedenkopf_hoexter_umland.geojson"
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 1400})
            seen: list[tuple[str, str, int]] = []
            errors: list[str] = []
            page.on("response", lambda r: seen.append((r.request.method, r.url, r.status)))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(nginx.url + "/upload")
            page.fill("#token", behind_nginx["secret"])
            page.select_option("#collection", "supply_points")
            page.set_input_files("#file", str(lidl))
            page.click("button[type=submit]")
            page.wait_for_selector("#report h2", timeout=120000)
            assert "angenommen" in page.inner_text("#state") and page.inner_text("#stage") == "(fertig)"
            assert errors == []
            assert all(u.startswith(nginx.url + "/") for _, u, _ in seen), seen
            paths = {(m, urlsplit(u).path.split("/uploads/")[0] + ("/uploads/…" if "/uploads/" in u else ""))
                     for m, u, _ in seen}
            assert {("GET", "/gdi/upload"), ("GET", "/gdi/collections"), ("POST", "/gdi/uploads"),
                    ("GET", "/gdi/uploads/…")} <= paths, paths
            assert all(code in {200, 202} for _, _, code in seen), seen
        finally:
            browser.close()


def _direct(port: int, path: str, headers: dict, source: str = "127.0.0.1") -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(source, 0))
    try:
        conn.request("GET", path, headers=headers)
        r = conn.getresponse()
        body = r.read()
        heads = {k.lower(): v for k, v in r.getheaders()}
        if heads.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        return r.status, heads, body
    finally:
        conn.close()


def test_the_response_cache_keeps_each_public_url_to_its_own_clients(behind_nginx):
    """Two proxied hosts alternately and an untrusted client naming a third, on cached paths: each answer
    carries its own base only, the ETags differ, and one base's ETag never makes a 304 for another."""
    srv = behind_nginx["servers"][0]
    configured = behind_nginx["configured"]
    bases = {"a": ("https", "a.example:8443", "/gdi"), "b": ("http", "b.example", "/karte")}
    paths = ["/?f=json", "/collections?f=json", "/collections/supply_points/items?f=json&limit=3",
             "/collections/supply_points?f=html"]
    tags: dict[tuple[str, str, str], str] = {}
    for _ in range(4):             # several rounds: both workers, from the cache and rendered
        for path in paths:
            for accept in ("gzip", "identity"):
                for name, (proto, host, prefix) in bases.items():
                    status, heads, body = _direct(srv.port, path, {
                        "X-Forwarded-Proto": proto, "X-Forwarded-Host": host, "X-Forwarded-Prefix": prefix,
                        "Accept-Encoding": accept})
                    own = f"{proto}://{host}{prefix}"
                    others = [f"{p}://{h}" for n, (p, h, _) in bases.items() if n != name] + [configured,
                                                                                                "evil.example"]
                    text = body.decode()
                    assert status == 200 and own in text and not any(o in text for o in others), (name, path)
                    assert tags.setdefault((name, path, accept), heads["etag"]) == heads["etag"]
                status, heads, body = _direct(srv.port, path, {"X-Forwarded-Host": "evil.example",
                                                               "X-Forwarded-Proto": "https",
                                                               "X-Forwarded-Prefix": "/evil",
                                                               "Accept-Encoding": accept}, source=UNTRUSTED)
                text = body.decode()
                assert status == 200 and configured in text and "evil.example" not in text and "/evil" not in text, path
                assert tags.setdefault(("direct", path, accept), heads["etag"]) == heads["etag"]
    # the map page, a file with one tag of its own: rewritten per base, tagged per base
    heads = {name: {"X-Forwarded-Proto": p, "X-Forwarded-Host": h, "X-Forwarded-Prefix": x}
             for name, (p, h, x) in bases.items()}
    page = {name: _direct(srv.port, "/viewer", heads[name]) for name in bases}
    page["direct"] = _direct(srv.port, "/viewer", {})
    assert [page[n][0] for n in page] == [200, 200, 200]
    assert len({page[n][1]["etag"] for n in page}) == 3
    assert '"/gdi/vendor/leaflet/dist/leaflet.js"' in page["a"][2].decode()
    assert '"/karte/vendor/leaflet/dist/leaflet.js"' in page["b"][2].decode()
    assert '"/vendor/leaflet/dist/leaflet.js"' in page["direct"][2].decode()
    assert _direct(srv.port, "/viewer", {**heads["a"], "If-None-Match": page["a"][1]["etag"]})[:2][0] == 304
    status, again, body = _direct(srv.port, "/viewer", {**heads["b"], "If-None-Match": page["a"][1]["etag"]})
    assert (status, again["etag"]) == (200, page["b"][1]["etag"]) and b'"/karte/vendor/' in body
    status, again, _ = _direct(srv.port, "/viewer", {"If-None-Match": page["a"][1]["etag"]})
    assert status == 200
    assert _direct(srv.port, "/viewer", {**heads["b"], "If-None-Match": page["b"][1]["etag"]})[1]["etag"] == \
        page["b"][1]["etag"]
    for path in paths:
        for accept in ("gzip", "identity"):
            assert len({tags[(n, path, accept)] for n in ("a", "b", "direct")}) == 3
        # b's client revalidating with a's tag gets b's page, not a 304
        status, _, body = _direct(srv.port, path, {"X-Forwarded-Host": "b.example", "X-Forwarded-Proto": "http",
                                                   "X-Forwarded-Prefix": "/karte",
                                                   "If-None-Match": tags[("a", path, "identity")]})
        assert status == 200 and "http://b.example/karte" in body.decode()
        status, _, _ = _direct(srv.port, path, {"X-Forwarded-Host": "b.example", "X-Forwarded-Proto": "http",
                                                "X-Forwarded-Prefix": "/karte",
                                                "If-None-Match": tags[("b", path, "identity")]})
        assert status == 304


def test_a_large_upload_streams_through_nginx(behind_nginx, tmp_path):
    """An upload of several MB passes nginx as it arrives (proxy_request_buffering off: nothing is
    written to nginx's disk first) and is ingested by gdi."""
    nginx, secret = behind_nginx["nginx"], behind_nginx["secret"]
    rng = random.Random(14)
    n = 40_000
    features = [{"type": "Feature", "properties": {"name": f"Automat {i}", "shop": "vending_machine",
                                                    "addr:city": "Marburg"},
                 "geometry": {"type": "Point", "coordinates": [round(8.745 + rng.random() * 0.05, 7),
                                                               round(50.795 + rng.random() * 0.03, 7)]}}
                for i in range(n)]
    path = tmp_path / "automaten.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8")
    size = path.stat().st_size
    assert size > 5 * 2**20
    started = time.monotonic()
    with open(path, "rb") as fh:
        r = requests.post(nginx.url + "/uploads", headers=bearer(secret),
                          data={"collection": "supply_points", "dataset": "automaten"},
                          files={"file": (path.name, fh)}, timeout=120)
    sent = time.monotonic() - started
    assert r.status_code == 202, r.text
    job = wait_job(urljoin(nginx.url, r.headers["Location"]), secret)
    assert job["status"] == "accepted", job
    assert job["counts"]["accepted"] == n, job["counts"]
    body_temp = nginx.dir / "client_body"
    assert not body_temp.exists() or list(body_temp.iterdir()) == []
    assert "buffered to a temporary file" not in nginx.error_log()
    print(f"upload of {size / 2**20:.1f} MB through nginx: sent in {sent:.2f} s")
