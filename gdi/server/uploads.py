"""The upload service in front of pygeoapi: tokens, uploads, jobs, versions.

pygeoapi has no authentication; reading stays public, writing needs a token
and the member always comes from the token. 401 for a missing or wrong token,
403 for a valid token and a forbidden action.

Every error is an RFC 9457 problem document (``application/problem+json``):
``type``, ``title``, ``status`` and ``detail`` in the reader's language (the
``lang`` parameter, else ``Accept-Language``, else German), ``detail_de`` and
``detail_en``, and the keys clients read before there were problem documents,
``code`` (the status) and ``description`` (the English detail). Bad input is
a 400 wherever it arrives — a broken or non-UTF-8 form, a rollback body that
is not a JSON object — and a failure of our own is a 500 that is still such a
document and shows no traceback (the server log has it).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from flask import Blueprint, Response, current_app, g, jsonify, request, send_file
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

from gdi import settings
from gdi.collections import load_collections
from gdi.datasets import MAX_VERSION, DatasetNameError, check_dataset_name, version_number
from gdi.ingest import IngestRefused, authority
from gdi.ingest.reports import report_document
from gdi.ingest.territory import check_member_key
from gdi.messages import Lang, Text, as_text, choose_lang, echo, t, text_of
from gdi.server import jobs, tokens

bp = Blueprint("gdi_uploads", __name__)
PAGE = Path(__file__).with_name("upload_page.html")
PROBLEM = "application/problem+json"
OURS = re.compile(r"^/(upload|uploads|datasets)(/|$)")      # the paths whose errors are answered here
FORM_TYPES = {"multipart/form-data", "application/x-www-form-urlencoded"}
MAX_ROLLBACK_BODY = 64 * 1024       # {"to": 2} needs a few bytes

TITLES: dict[int, Text] = {        # RFC 9457 "about:blank": the title is the status phrase, localised
    400: t("Ungültige Anfrage", "Bad Request"),
    401: t("Nicht angemeldet", "Unauthorized"),
    403: t("Nicht erlaubt", "Forbidden"),
    404: t("Nicht gefunden", "Not Found"),
    405: t("Methode nicht erlaubt", "Method Not Allowed"),
    409: t("Konflikt", "Conflict"),
    413: t("Zu groß", "Content Too Large"),
    415: t("Nicht unterstütztes Format", "Unsupported Media Type"),
    429: t("Zu viele Anfragen", "Too Many Requests"),
    500: t("Interner Fehler", "Internal Server Error"),
}
TOKEN_REQUIRED = t("ein gültiger Zugangsschlüssel (Token) ist nötig (Authorization: Bearer …)",
                   "a valid upload token is required (Authorization: Bearer …)")
BROKEN_FORM = t("das Formular ist fehlerhaft (kein lesbares multipart/form-data oder application/"
                "x-www-form-urlencoded)", "the form is malformed (no readable multipart/form-data or "
                "application/x-www-form-urlencoded)")
NOT_A_FORM = t("ein Upload wird als multipart/form-data gesendet (Felder file, collection, …)",
               "an upload is sent as multipart/form-data (fields file, collection, …)")
NOT_JSON = t("der Inhalt ist kein JSON-Objekt (z. B. {\"to\": 2}, oder leer für die vorige Version)",
             "the body is not a JSON object (e.g. {\"to\": 2}, or empty for the previous version)")
INTERNAL = t("ein interner Fehler ist aufgetreten; er ist im Protokoll des Servers vermerkt",
             "an internal error occurred; it is recorded in the server's log")


class Problem(Exception):
    """An error answer, raised anywhere in a view and answered as a problem document."""

    def __init__(self, status: int, text: Text) -> None:
        super().__init__(text)
        self.status, self.text = status, text


def reader_lang() -> Lang:
    """The reader's language: ``lang`` in the query or the form, else ``Accept-Language``, else German."""
    form = g.get("gdi_form")
    chosen = request.args.get("lang") or (form.get("lang") if form is not None else None)
    return choose_lang(chosen, request.headers.get("Accept-Language"))


def problem(status: int, text: Text, headers: list[tuple[str, str]] | None = None) -> Response:
    """An RFC 9457 problem document in the reader's language, with both languages beside it."""
    lang = reader_lang()
    title = TITLES.get(status) or as_text(HTTP_STATUS_CODES.get(status, "Error"))
    detail = {code: text.render(code, "web") for code in ("de", "en")}
    response = jsonify({"type": "about:blank", "title": title.render(lang), "status": status,
                        "detail": detail[lang], "detail_de": detail["de"], "detail_en": detail["en"],
                        "code": status, "description": detail["en"]})
    response.status_code = status
    response.mimetype = PROBLEM
    for name, value in headers or ():
        response.headers[name] = value
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="gdi uploads"'
    response.headers["Content-Language"] = lang
    response.headers["Cache-Control"] = "no-store"
    response.vary.add("Accept-Language")
    return response


def _too_large() -> Text:
    limit = settings.get().uploads.max_bytes
    size = f"{round(limit / 2**20)} MB" if limit >= 2**20 else f"{round(limit / 1024)} kB"
    return t(f"der Upload ist größer als das eingestellte Maximum ({size})",
             f"the upload is larger than the configured maximum ({size})")


def _http_text(exc: HTTPException) -> Text:
    """What a werkzeug error (routing, body limits, bad request) says, in both languages."""
    if exc.code == 404:
        path = echo(request.path, 80)
        return t(f"hier gibt es nichts: {path}", f"nothing here: {path}")
    if exc.code == 405:
        allowed = ", ".join(getattr(exc, "valid_methods", None) or ())
        return t(f"{echo(request.method)} ist hier nicht erlaubt (erlaubt: {allowed})",
                 f"{echo(request.method)} is not allowed here (allowed: {allowed})")
    if exc.code == 413:
        return _too_large()
    if exc.code == 400:
        return t("die Anfrage ist fehlerhaft", "the request is malformed")
    return as_text(exc.description or HTTP_STATUS_CODES.get(exc.code or 500, "error"))


def answer_error(exc: Exception) -> Response:
    """Every error of the upload routes as a problem document; a failure of ours is logged, never shown."""
    if isinstance(exc, Problem):
        return problem(exc.status, exc.text)
    if isinstance(exc, HTTPException) and exc.code and exc.code < 500:
        headers = [(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"]
        return problem(exc.code, _http_text(exc), headers)
    current_app.log_exception((type(exc), exc, exc.__traceback__))
    return problem(500, INTERNAL)


bp.register_error_handler(Exception, answer_error)


def _token() -> tokens.Token | None:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() != "bearer ":
        return None
    return tokens.verify(header[7:].strip())


def _require_token() -> tokens.Token:
    token = _token()
    if token is None:
        raise Problem(401, TOKEN_REQUIRED)
    return token


def _form():
    """The form of the request (form, files), parsed strictly.

    werkzeug answers a broken multipart body with an empty form, drops a part whose headers are not
    UTF-8, keeps a part without a name under None and puts U+FFFD for bytes of a value that are not
    UTF-8: each of these is a 400 here.
    """
    if "gdi_form" not in g:
        parser = request.make_form_data_parser()
        parser.silent = False
        try:
            _stream, form, files = parser.parse(request.stream, request.mimetype, request.content_length,
                                                request.mimetype_params)
        except ValueError as exc:              # UnicodeDecodeError too
            raise Problem(400, BROKEN_FORM) from exc
        if None in form or None in files:     # a part without a (readable) name: RFC 7578 requires one
            raise Problem(400, BROKEN_FORM)
        texts = [*form.keys(), *files.keys(), *(value for _, value in form.items(multi=True)),
                 *(f.filename or "" for _, f in files.items(multi=True))]          # every value of a repeated field
        bad = next((n for n in texts if "\ufffd" in n), None)
        if bad is not None:
            raise Problem(400, t(f"das Formular ist kein UTF-8-Text: {echo(bad)!r}",
                                 f"the form is not UTF-8 text: {echo(bad)!r}"))
        g.gdi_form, g.gdi_files = form, files
    return g.gdi_form, g.gdi_files


def _job_json(job: dict) -> dict:
    base = f"/uploads/{job['id']}"
    links = [{"rel": "self", "type": "application/json", "href": base}]
    if job.get("report"):
        links += [{"rel": "report", "type": "application/json", "href": base + "/report.json"},
                  {"rel": "report", "type": "text/html", "hreflang": "de", "href": base + "/report.html?lang=de"},
                  {"rel": "report", "type": "text/html", "hreflang": "en", "href": base + "/report.html?lang=en"}]
    message = jobs.message_of(job)
    both = {lang: message.render(lang, "web") if message is not None else None for lang in ("de", "en")}
    return {
        "id": job["id"], "status": job["status"], "member": job["member"], "collection": job["collection"],
        "dataset": job["dataset"], "file": job["file"], "uploader": job["uploader"],
        "created": job["created"], "started": job["started"], "finished": job["finished"],
        "progress": {"stage": job["stage"], "fraction": job["progress"]},
        "counts": json.loads(job["counts"]) if job.get("counts") else None,
        "message": both[reader_lang()], "message_de": both["de"], "message_en": both["en"],
        "version": job["version"], "links": links,
    }


@bp.after_request
def _vary(response: Response) -> Response:
    response.vary.add("Accept-Language")        # messages follow the reader's language
    return response


@bp.route("/upload")
def upload_page():
    response = send_file(PAGE, mimetype="text/html")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'self'")
    return response


@bp.route("/uploads", methods=["POST"])
def create_upload():
    token = _require_token()
    if request.mimetype not in FORM_TYPES:
        raise Problem(415, NOT_A_FORM)
    form, files = _form()
    member = (form.get("member") or "").strip() or token.member
    try:
        member = check_member_key(member)
    except ValueError as exc:
        raise Problem(400, text_of(exc)) from exc
    if not token.may_act_for(member):
        raise Problem(403, t(f"dieser Zugangsschlüssel schreibt nur für das Mitglied {token.member}, nicht für {member}",
                             f"this token writes only for member {token.member}, not {member}"))
    collection = (form.get("collection") or "").strip()
    colls = load_collections()
    if collection not in colls:
        shown = echo(collection)
        raise Problem(400, t(f"unbekannte Sammlung '{shown}'", f"unknown collection '{shown}'"))
    try:
        authority.check_write_right(colls[collection], token.admin)
    except IngestRefused as exc:
        raise Problem(403, text_of(exc)) from exc
    upload = files.get("file")
    if upload is None or not upload.filename:
        raise Problem(400, t("keine Datei im Formularfeld 'file'", "no file in the form field 'file'"))
    limit = settings.get().uploads.max_queued_per_member
    options = {k: (form.get(k) or "").strip() for k in ("dataset", "crs", "encoding", "layer")}
    try:
        if options["dataset"]:
            check_dataset_name(options["dataset"])
    except DatasetNameError as exc:
        reason = text_of(exc)
        raise Problem(400, Text(f"Formularfeld 'dataset': {reason.de}", f"form field 'dataset': {reason.en}")) from exc
    options["dry_run"] = (form.get("dry_run") or "").lower() in {"1", "true", "yes", "on"}
    options["admin"] = token.admin
    try:
        jid = jobs.submit(token_id=token.id, member=member,
                          uploader=f"token:{token.id}" + (f" ({token.name})" if token.name else ""),
                          collection=collection, file_name=upload.filename, save=upload.save, options=options,
                          limit=limit)
    except jobs.QueueFull as exc:
        raise Problem(429, text_of(exc)) from exc
    response = jsonify(_job_json(jobs.get(jid)))
    response.status_code = 202
    response.headers["Location"] = f"/uploads/{jid}"
    return response


def _owned_job(jid: str) -> dict:
    token = _require_token()
    job = jobs.get(jid)
    if job is None:
        shown = echo(jid)
        raise Problem(404, t(f"kein Upload {shown}", f"no upload {shown}"))
    if not token.may_act_for(job["member"]):
        raise Problem(403, t("dieser Upload gehört einem anderen Mitglied", "this upload belongs to another member"))
    return job


@bp.route("/uploads", methods=["GET"])
def list_uploads():
    token = _require_token()
    rows = jobs.list_jobs(None if token.admin else token.member)
    return jsonify({"uploads": [_job_json(j) for j in rows]})


@bp.route("/uploads/<jid>")
def get_upload(jid: str):
    return jsonify(_job_json(_owned_job(jid)))


@bp.route("/uploads/<jid>/report.json")
@bp.route("/uploads/<jid>/report.html")
def get_report(jid: str):
    job = _owned_job(jid)
    not_yet = t("der Prüfbericht ist noch nicht geschrieben", "the report is not written yet")
    if not job.get("report"):
        raise Problem(404, not_yet)
    if request.path.endswith(".json"):
        kind, mimetype = "json", "application/json"
    else:
        kind, mimetype = ("html_en" if reader_lang() == "en" else "html"), "text/html"
    document = report_document(job["report"], kind)      # PostGIS: from the store, whichever server wrote it
    if document is None:
        raise Problem(404, not_yet)
    if isinstance(document, Path):
        response = send_file(document, mimetype=mimetype)
    else:
        response = Response(document, mimetype=mimetype)
    if mimetype == "text/html":
        response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    return response


def _dataset_access(collection: str, member: str, dataset: str | None = None):
    token = _require_token()
    if dataset is not None:
        try:
            check_dataset_name(dataset)
        except DatasetNameError as exc:
            raise Problem(400, text_of(exc)) from exc
    try:
        member = check_member_key(member)
    except ValueError as exc:
        raise Problem(400, text_of(exc)) from exc
    colls = load_collections()
    if collection not in colls:
        shown = echo(collection)
        raise Problem(404, t(f"unbekannte Sammlung '{shown}'", f"unknown collection '{shown}'"))
    if not token.may_act_for(member):
        raise Problem(403, t(f"dieser Zugangsschlüssel handelt nur für das Mitglied {token.member}",
                             f"this token acts only for member {token.member}"))
    return token, colls[collection], member


@bp.route("/datasets/<collection>/<member>/versions")
@bp.route("/datasets/<collection>/<member>/<dataset>/versions")
def versions(collection: str, member: str, dataset: str | None = None):
    _, coll, member = _dataset_access(collection, member, dataset)
    from gdi.store import open_store

    return jsonify({"versions": [v.__dict__ for v in open_store().history(coll, member, dataset)]})


def _requested_version() -> int | None:
    """``to`` of a rollback: from a JSON object, a form, or nothing at all (the version before the live one).
    Any other body is a 400, never read as "no version given"."""
    if request.mimetype in FORM_TYPES:
        value = _form()[0].get("to")
    else:
        data = request.stream.read(MAX_ROLLBACK_BODY + 1)
        if len(data) > MAX_ROLLBACK_BODY:
            raise Problem(413, t("der Inhalt ist länger als 64 kB", "the body is longer than 64 kB"))
        if not data.strip():
            return None
        try:
            body = json.loads(data)
        except (ValueError, RecursionError) as exc:     # not UTF-8, not JSON, nested beyond the parser
            raise Problem(400, NOT_JSON) from exc
        if not isinstance(body, dict):
            raise Problem(400, NOT_JSON)
        value = body.get("to")
    if isinstance(value, str) and len(value.strip()) > len(str(MAX_VERSION)):
        value = MAX_VERSION + 1         # out of range either way; int() would refuse 4300 digits in its own words
    try:
        return version_number(value)
    except ValueError as exc:
        raise Problem(400, text_of(exc)) from exc


@bp.route("/datasets/<collection>/<member>/<dataset>/rollback", methods=["POST"])
def rollback(collection: str, member: str, dataset: str):
    token, coll, member = _dataset_access(collection, member, dataset)
    to = _requested_version()
    from gdi.ingest.pipeline import rollback as checked_rollback
    from gdi.store.base import VersionNotFound

    return _change_dataset(
        coll, token, VersionNotFound, collection, member, dataset,
        lambda store: checked_rollback(coll, member, dataset, to_version=to, admin=token.admin,
                                       uploader=f"token:{token.id}", store=store))


@bp.route("/datasets/<collection>/<member>/<dataset>", methods=["DELETE"])
def withdraw(collection: str, member: str, dataset: str):
    token, coll, member = _dataset_access(collection, member, dataset)
    from gdi.ingest.pipeline import withdraw as checked_withdraw
    from gdi.store.base import DatasetNotFound

    uploader = f"token:{token.id}" + (f" ({token.name})" if token.name else "")
    return _change_dataset(
        coll, token, DatasetNotFound, collection, member, dataset,
        lambda store: checked_withdraw(coll, member, dataset, admin=token.admin, store=store, uploader=uploader))


def _change_dataset(coll, token, missing: type[Exception], collection: str, member: str, dataset: str, change):
    """Run a rollback or withdrawal (change(store) → DatasetInfo) and publish: 404 when the version or
    dataset is missing, 403 for a member on a county collection, 409 when the territory keys forbid it."""
    from gdi.publish import publish
    from gdi.store import open_store

    store = open_store()
    try:
        info = change(store)
    except missing as exc:
        raise Problem(404, text_of(exc)) from exc
    except IngestRefused as exc:
        raise Problem(403 if coll.write == "county" and not token.admin else 409, text_of(exc)) from exc
    publish(store=store, viewer=False)      # the server's map refresher follows
    return jsonify({"collection": collection, "member": member, "dataset": dataset, "version": info.version,
                    "count": info.count})


def install(app) -> None:
    app.config["MAX_CONTENT_LENGTH"] = settings.get().uploads.max_bytes
    app.register_blueprint(bp)

    def routing_error(exc: HTTPException):
        """A path or method no route matches (404, 405) or a body over the limit (413) never reaches the
        blueprint's handler: under the upload paths it is a problem document too, elsewhere pygeoapi's."""
        return answer_error(exc) if OURS.match(request.path) else exc

    for code in (404, 405, 413):
        app.register_error_handler(code, routing_error)
