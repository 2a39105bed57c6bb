"""Bad input to the upload service: a 400 with an RFC 9457 problem document, in the reader's language.

A real server (gunicorn) on 127.0.0.1; every answer is read as a client reads it. The reader's
language is ``lang`` (query or form), then ``Accept-Language``, else German.
"""
from __future__ import annotations

import json
import os
import sqlite3
import zipfile
from pathlib import Path
from unittest import mock

import pytest
import requests
import yaml

from conftest import DATA, REPO, Server, free_port, run_gdi
from test_uploads import LIDL, bearer, report_of, token, wait

from gdi.datasets import DatasetNameError, check_dataset_name, version_number
from gdi.messages import as_text

MB = DATA / "boundaries" / "vg250ew_gemeinden_marburg-biedenkopf.geojson"
MAX_BYTES = 300_000          # the upload limit of this server (config/gdi.yml says 500 MB)
ROLLBACK = "/datasets/municipalities/06534/vg250ew/rollback"
PROBLEM = "application/problem+json"
TITLE_400 = {"de": "Ungültige Anfrage", "en": "Bad Request"}
NOT_JSON = {"de": 'der Inhalt ist kein JSON-Objekt (z. B. {"to": 2}, oder leer für die vorige Version)',
            "en": 'the body is not a JSON object (e.g. {"to": 2}, or empty for the previous version)'}
BROKEN_FORM = {"de": "das Formular ist fehlerhaft (kein lesbares multipart/form-data oder "
                     "application/x-www-form-urlencoded)",
               "en": "the form is malformed (no readable multipart/form-data or application/x-www-form-urlencoded)"}
TOKEN_REQUIRED = {"de": "ein gültiger Zugangsschlüssel (Token) ist nötig (Authorization: Bearer …)",
                  "en": "a valid upload token is required (Authorization: Bearer …)"}


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """Marburg-Biedenkopf's municipalities (dataset vg250ew, by the county), served with an upload limit
    of 300 kB; tokens for Marburg and the county."""
    home = tmp_path_factory.mktemp("upload-errors") / "home"
    home.mkdir(parents=True)
    (home / "store-url").write_text("")
    config = yaml.safe_load((REPO / "config" / "gdi.yml").read_text(encoding="utf-8"))
    config["uploads"]["max_bytes"] = MAX_BYTES
    (home / "gdi.yml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    with mock.patch.dict(os.environ, GDI_CONFIG=str(home / "gdi.yml")):
        run_gdi("ingest", str(MB), "--collection", "municipalities", "--member", "06534", "--admin",
                "--dataset", "vg250ew", home=home, check=True, store=None)
        srv = Server(home, free_port())
    srv.tokens = {"marburg": token(home, "06534014", "--name", "Stadt Marburg"),
                  "admin": token(home, "06534", "--admin", "--name", "Kreis GIS")}
    yield srv
    srv.stop()


def problem(r: requests.Response, status: int) -> dict:
    """The problem document of an answer, checked for its required members."""
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"] == PROBLEM, r.headers
    body = r.json()
    assert body["type"] == "about:blank" and body["status"] == status and body["code"] == status, body
    assert body["description"] == body["detail_en"], body
    assert "Traceback" not in r.text
    return body


def in_three_languages(send, status: int, detail: dict[str, str], title: dict[str, str] = TITLE_400):
    """send(params, headers) answered with `detail`: German by default, English for Accept-Language: en
    and for ?lang=en, German again for ?lang=de against Accept-Language: en."""
    for params, headers, lang in (({}, {}, "de"), ({}, {"Accept-Language": "en-GB,en;q=0.9"}, "en"),
                                  ({"lang": "en"}, {}, "en"), ({"lang": "de"}, {"Accept-Language": "en"}, "de")):
        r = send(params, headers)
        body = problem(r, status)
        assert r.headers["Content-Language"] == lang
        assert "Accept-Language" in r.headers["Vary"]
        assert body["title"] == title[lang]
        assert body["detail"] == detail[lang], (lang, body)
        assert (body["detail_de"], body["detail_en"]) == (detail["de"], detail["en"])


def web(text) -> dict[str, str]:
    """A message of the ingest or the dataset rules as the web shows it, in both languages."""
    text = as_text(text)
    return {"de": text.render("de", "web"), "en": text.render("en", "web")}


def version_rule() -> dict[str, str]:
    with pytest.raises(ValueError) as refused:
        version_number(-1)
    return web(refused.value.args[0])


def post_rollback(srv, body: bytes, content_type: str = "application/json"):
    def send(params, headers):
        return requests.post(srv.url + ROLLBACK, params=params, data=body, timeout=30,
                             headers={**bearer(srv.tokens["admin"]), "Content-Type": content_type, **headers})
    return send


@pytest.mark.parametrize("body", [b'{"to": 1e400}', b'{"to": "abc"}', b'{"to": true}', b'{"to": -1}',
                                  b'{"to": 18446744073709551616}', b'{"to": 1.5}', b'{"to": NaN}',
                                  b'{"to": {"n": 2}}', b'{"to": "' + b"9" * 5000 + b'"}'])
def test_rollback_to_that_is_no_version_number_is_400(service, body):
    in_three_languages(post_rollback(service, body), 400, version_rule())


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'"to"', b"2", b"null", b"\xff\xfe{}", b'{"to": 2',
                                  b"[" * 30_000 + b"]" * 30_000])
def test_rollback_body_that_is_no_json_object_is_400(service, body):
    in_three_languages(post_rollback(service, body), 400, NOT_JSON)


def test_rollback_form_with_a_bad_to_is_400(service):
    in_three_languages(post_rollback(service, b"to=zwei", "application/x-www-form-urlencoded"), 400, version_rule())


def test_rollback_body_beyond_64_kb_is_413(service):
    r = post_rollback(service, b'{"to": 1, "x": "' + b"x" * 70_000 + b'"}')({}, {})
    body = problem(r, 413)
    assert (body["detail_de"], body["detail_en"]) == ("der Inhalt ist länger als 64 kB", "the body is longer than 64 kB")


def multipart(parts: bytes, boundary: str = "XyZ") -> tuple[bytes, str]:
    return parts, f"multipart/form-data; boundary={boundary}"


def field(name: bytes, value: bytes, filename: bytes | None = None) -> bytes:
    disposition = b'form-data; name="' + name + b'"' + (b'; filename="' + filename + b'"' if filename else b"")
    return b"--XyZ\r\nContent-Disposition: " + disposition + b"\r\n\r\n" + value + b"\r\n"


def post_upload(srv, body: bytes, content_type: str, secret: str | None = None):
    def send(params, headers):
        return requests.post(srv.url + "/uploads", params=params, data=body, timeout=30,
                             headers={**bearer(secret or srv.tokens["marburg"]), "Content-Type": content_type,
                                      **headers})
    return send


@pytest.mark.parametrize("body", [
    b"hello world",                                                            # no multipart at all
    field(b"collection", b"supply_points"),                                    # no closing boundary
    field(b"collection", b"supply_points") + b"--XyZ\r\n",                     # cut off after a boundary
    b"--XyZ\r\nContent-Disposition form-data\r\n\r\nx\r\n--XyZ--\r\n",         # a broken part header
    field(b"\xff\xfe", b"supply_points") + b"--XyZ--\r\n",                     # a field name not in UTF-8
    field(b"file", b"{}", filename=b"hof\xe4den.geojson") + b"--XyZ--\r\n",    # a Latin-1 file name
    # parts without a name (found by Schemathesis: a 500)
    field(b'y>\x12\\', b"1") + field(b"collection", b"supply_points") + b"--XyZ--\r\n",
    b"--XyZ\r\nContent-Disposition: form-data; filename=\"a.zip\"\r\n\r\nPK\r\n--XyZ--\r\n",
])
def test_a_broken_or_non_utf8_multipart_form_is_400(service, body):
    in_three_languages(post_upload(service, *multipart(body)), 400, BROKEN_FORM)


def test_a_multipart_without_boundary_is_400(service):
    in_three_languages(post_upload(service, b"--XyZ--\r\n", "multipart/form-data"), 400, BROKEN_FORM)


@pytest.mark.parametrize("first", [b"", field(b"collection", b"supply_points")])
def test_a_form_value_not_in_utf8_is_400(service, first):
    """Also as the second value of a field given twice."""
    body = first + field(b"collection", b"Stra\xdfen") + field(b"file", b"{}", filename=b"a.geojson") + b"--XyZ--\r\n"
    in_three_languages(post_upload(service, *multipart(body)), 400,
                       {"de": "das Formular ist kein UTF-8-Text: 'Stra\ufffden'",
                        "en": "the form is not UTF-8 text: 'Stra\ufffden'"})


def test_an_upload_that_is_no_form_is_415(service):
    in_three_languages(post_upload(service, b'{"collection": "supply_points"}', "application/json"), 415,
                       {"de": "ein Upload wird als multipart/form-data gesendet (Felder file, collection, …)",
                        "en": "an upload is sent as multipart/form-data (fields file, collection, …)"},
                       {"de": "Nicht unterstütztes Format", "en": "Unsupported Media Type"})


def test_the_lang_form_field_chooses_the_language(service):
    body = field(b"lang", b"en") + field(b"collection", b"parcels") + b"--XyZ--\r\n"
    r = post_upload(service, *multipart(body))({}, {})
    assert problem(r, 400)["detail"] == "unknown collection 'parcels'"
    r = post_upload(service, *multipart(field(b"collection", b"parcels") + b"--XyZ--\r\n"))({}, {})
    assert problem(r, 400)["detail"] == "unbekannte Sammlung 'parcels'"


def test_unknown_form_fields_are_fine(service):
    with open(DATA / LIDL, "rb") as fh:
        r = requests.post(f"{service.url}/uploads", headers=bearer(service.tokens["marburg"]), timeout=60,
                          data={"collection": "supply_points", "dry_run": "true", "frobnicate": "yes", "x" * 300: "1"},
                          files={"file": ("lidl.geojson", fh)})
    assert r.status_code == 202, r.text
    assert wait(service, service.tokens["marburg"], r.json()["id"])["status"] == "accepted"


def test_an_upload_over_the_limit_is_413(service):
    r = requests.post(f"{service.url}/uploads", headers=bearer(service.tokens["marburg"]), timeout=60,
                      data={"collection": "supply_points"}, files={"file": ("gross.geojson", b" " * (MAX_BYTES + 1))})
    body = problem(r, 413)
    assert (body["title"], body["detail"]) == ("Zu groß", "der Upload ist größer als das eingestellte Maximum (293 kB)")
    assert body["detail_en"] == "the upload is larger than the configured maximum (293 kB)"


@pytest.mark.parametrize("authorization", ["Bearer " + "x" * 7000, "Bearer gdi_\xe4\xf6\xfc", "Bearer", "Basic Zm9vOmJhcg==",
                                           "bearer    gdi_", "Bearer gdi_\t\t"])
def test_odd_authorization_headers_are_401(service, authorization):
    def send(params, headers):
        return requests.get(f"{service.url}/uploads", params=params, timeout=30,
                            headers={"Authorization": authorization.encode("latin-1"), **headers})
    in_three_languages(send, 401, TOKEN_REQUIRED, {"de": "Nicht angemeldet", "en": "Unauthorized"})
    r = send({}, {})
    assert r.headers["WWW-Authenticate"] == 'Bearer realm="gdi uploads"'


@pytest.mark.parametrize("accept", ["", "*", "xx;q=abc,,,;;", "en;q=0, de;q=0", "fr-CH, fr;q=0.9", "en;q=nan",
                                    "de;q=inf", "ü" * 2000])
def test_odd_accept_language_falls_back_to_german(service, accept):
    r = requests.get(f"{service.url}/uploads", headers={"Accept-Language": accept.encode("latin-1")}, timeout=30)
    assert problem(r, 401)["detail"] == TOKEN_REQUIRED["de"]


@pytest.mark.parametrize("authorization, status", [("Bearer " + "x" * 9000, 431), ("Bearer gdi_" + "\x7f" * 40, 400)])
def test_a_header_the_http_server_refuses_is_4xx_not_500(service, authorization, status):
    """gunicorn itself refuses a header field over 8190 bytes (431) or with control characters (400),
    before the application sees it (its answer is its own, not a problem document)."""
    r = requests.get(f"{service.url}/uploads", headers={"Authorization": authorization}, timeout=30)
    assert r.status_code == status


def test_unknown_paths_and_methods_are_problems(service):
    in_three_languages(lambda params, headers: requests.get(f"{service.url}/uploads/abc/def", params=params,
                                                            headers=headers, timeout=30),
                       404, {"de": "hier gibt es nichts: /uploads/abc/def", "en": "nothing here: /uploads/abc/def"},
                       {"de": "Nicht gefunden", "en": "Not Found"})
    r = requests.put(f"{service.url}/uploads", timeout=30)
    body = problem(r, 405)
    assert set(r.headers["Allow"].replace(" ", "").split(",")) == {"GET", "HEAD", "OPTIONS", "POST"}
    assert body["detail"].startswith("PUT ist hier nicht erlaubt (erlaubt: ")
    r = requests.get(f"{service.url}/uploads/x/report.json", headers=bearer(service.tokens["admin"]), timeout=30)
    assert problem(r, 404)["detail"] == "kein Upload x"
    # pygeoapi's own paths keep pygeoapi's answers
    r = requests.get(f"{service.url}/collections/nowhere?f=json", timeout=30)
    assert r.status_code == 404 and r.headers["Content-Type"] != PROBLEM


@pytest.mark.parametrize("path", ["/datasets/municipalities/06534%00/versions",
                                  "/datasets/municipalities/%E2%80%8F06534/vg250ew/versions",
                                  "/datasets/municipalities/0653401499999999999999/vg250ew/versions"])
def test_a_malformed_member_in_the_path_is_400(service, path):
    r = requests.get(service.url + path, headers=bearer(service.tokens["admin"]), timeout=30)
    body = problem(r, 400)
    assert "member key" in body["detail_en"] and body["detail"] == body["detail_de"] != body["detail_en"]


def test_a_bad_dataset_name_in_the_form_names_the_field(service):
    with pytest.raises(DatasetNameError) as refused:
        check_dataset_name("..")
    rule = web(refused.value.args[0])
    body = field(b"collection", b"supply_points") + field(b"dataset", b"..") + \
        field(b"file", b"{}", filename=b"a.geojson") + b"--XyZ--\r\n"
    in_three_languages(post_upload(service, *multipart(body)), 400,
                       {"de": "Formularfeld 'dataset': " + rule["de"], "en": "form field 'dataset': " + rule["en"]})


def _jobs_db(srv) -> sqlite3.Connection:
    return sqlite3.connect(srv.home / "service.sqlite", timeout=30, isolation_level=None)


def _insert_job(srv, jid: str, **columns) -> None:
    row = {"id": jid, "member": "06534014", "token_id": "t", "uploader": "test", "collection": "supply_points",
           "file": "a.geojson", "path": "/nonexistent", "options": "{}", "status": "failed",
           "created": "2026-01-01T00:00:00Z", **columns}
    with _jobs_db(srv) as conn:
        conn.execute(f"INSERT INTO jobs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", tuple(row.values()))


def test_a_failure_of_ours_is_a_500_problem_without_traceback(service):
    _insert_job(service, "kaputt0000000001", counts="{not json")
    r = requests.get(f"{service.url}/uploads/kaputt0000000001", headers=bearer(service.tokens["admin"]),
                     params={"lang": "en"}, timeout=30)
    body = problem(r, 500)
    assert (body["title"], body["detail"]) == (
        "Internal Server Error", "an internal error occurred; it is recorded in the server's log")
    assert "JSONDecodeError" not in r.text and "kaputt" not in r.text
    assert "JSONDecodeError" in (service.home / f"server-{service.port}.log").read_text()
    with _jobs_db(service) as conn:
        conn.execute("DELETE FROM jobs WHERE id = 'kaputt0000000001'")     # the listings of later tests read it


def test_old_plain_job_messages_still_read(service):
    _insert_job(service, "alt0000000000001", status="rejected", message="the file is empty")
    job = requests.get(f"{service.url}/uploads/alt0000000000001", headers=bearer(service.tokens["marburg"]),
                       timeout=30).json()
    assert (job["message"], job["message_de"], job["message_en"]) == ("the file is empty",) * 3


def test_an_interrupted_job_says_so_in_both_languages(service, monkeypatch):
    from gdi.server import jobs

    _insert_job(service, "lief000000000001", status="running")
    monkeypatch.setenv("GDI_HOME", str(service.home))
    assert jobs.recover_interrupted() == 1
    url = f"{service.url}/uploads/lief000000000001"
    de = requests.get(url, headers=bearer(service.tokens["marburg"]), timeout=30).json()
    en = requests.get(url, headers={**bearer(service.tokens["marburg"]), "Accept-Language": "en"}, timeout=30).json()
    assert de["status"] == "failed"
    assert de["message"] == de["message_de"] == en["message_de"] == (
        "abgebrochen: der Server wurde während dieses Auftrags beendet; nichts davon wurde veröffentlicht")
    assert en["message"] == en["message_en"] == de["message_en"] == (
        "interrupted: the server stopped during this job; nothing of it was published")


def _upload(srv, path: Path, lang: str | None = None, **form) -> dict:
    form.setdefault("collection", "supply_points")
    with open(path, "rb") as fh:
        r = requests.post(f"{srv.url}/uploads", headers=bearer(srv.tokens["marburg"]), data=form,
                          files={"file": (path.name, fh)}, timeout=60)
    assert r.status_code == 202, r.text
    headers = {**bearer(srv.tokens["marburg"]), **({"Accept-Language": lang} if lang else {})}
    job = wait(srv, srv.tokens["marburg"], r.json()["id"])
    return requests.get(f"{srv.url}/uploads/{job['id']}", headers=headers, timeout=30).json()


def test_a_refused_upload_says_why_in_both_languages(service, tmp_path):
    bad = tmp_path / "kaputt.gpkg"
    bad.write_bytes(b"SQLite format 3\x00" + b"\x00" * 100)
    job = _upload(service, bad)
    assert job["status"] == "rejected" and job["message_en"] and job["message_de"]
    report = report_of(service, service.tokens["marburg"], job)
    assert report["surface"] == "web"
    assert (job["message"], job["message_de"], job["message_en"]) == (
        report["refusal_de"], report["refusal_de"], report["refusal"])
    en = requests.get(f"{service.url}/uploads/{job['id']}?lang=en", headers=bearer(service.tokens["marburg"]),
                      timeout=30).json()
    assert en["message"] == report["refusal"]
    listed = requests.get(f"{service.url}/uploads", headers={**bearer(service.tokens["marburg"]),
                                                             "Accept-Language": "en"}, timeout=30).json()
    assert next(j for j in listed["uploads"] if j["id"] == job["id"])["message"] == report["refusal"]


def test_a_web_upload_of_two_layers_names_the_form_field_never_the_flag(service, tmp_path):
    lidl = json.loads((DATA / LIDL).read_text(encoding="utf-8"))
    archive = tmp_path / "zwei.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("lidl.geojson", json.dumps(lidl))
        zf.writestr("lidl_kopie.geojson", json.dumps(lidl))
    job = _upload(service, archive)
    assert job["status"] == "rejected"
    assert "Feld „Ebene“" in job["message_de"] and "field “Layer”" in job["message_en"], job
    report = report_of(service, service.tokens["marburg"], job)
    assert "Feld „Ebene“" in report["refusal_de"] and "field “Layer”" in report["refusal"]
    html = {lang: requests.get(f"{service.url}/uploads/{job['id']}/report.html?lang={lang}",
                               headers=bearer(service.tokens["marburg"]), timeout=30).text for lang in ("de", "en")}
    assert "Feld „Ebene“" in html["de"] and "field “Layer”" in html["en"]
    for text in (job["message_de"], job["message_en"], report["refusal_de"], report["refusal"], *html.values()):
        assert "--layer" not in text
