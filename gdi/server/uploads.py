"""The upload service in front of pygeoapi: tokens, uploads, jobs, versions.

pygeoapi has no authentication; reading stays public, writing needs a token
and the member always comes from the token. 401 for a missing or wrong token,
403 for a valid token and a forbidden action.
"""
from __future__ import annotations

import json
from pathlib import Path

from flask import Blueprint, Response, jsonify, request, send_file
from werkzeug.exceptions import RequestEntityTooLarge

from gdi import settings
from gdi.collections import load_collections
from gdi.datasets import DatasetNameError, check_dataset_name, version_number
from gdi.ingest import IngestRefused, authority
from gdi.ingest.territory import check_member_key
from gdi.server import jobs, tokens

bp = Blueprint("gdi_uploads", __name__)
PAGE = Path(__file__).with_name("upload_page.html")


def _error(status: int, message: str) -> Response:
    response = jsonify({"code": status, "description": message})
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="gdi uploads"'
    response.headers["Cache-Control"] = "no-store"
    return response


def _token() -> tokens.Token | None:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() != "bearer ":
        return None
    return tokens.verify(header[7:].strip())


def _job_json(job: dict) -> dict:
    base = f"/uploads/{job['id']}"
    links = [{"rel": "self", "type": "application/json", "href": base}]
    if job.get("report"):
        links += [{"rel": "report", "type": "application/json", "href": base + "/report.json"},
                  {"rel": "report", "type": "text/html", "hreflang": "de", "href": base + "/report.html"},
                  {"rel": "report", "type": "text/html", "hreflang": "en", "href": base + "/report.html?lang=en"}]
    return {
        "id": job["id"], "status": job["status"], "member": job["member"], "collection": job["collection"],
        "dataset": job["dataset"], "file": job["file"], "uploader": job["uploader"],
        "created": job["created"], "started": job["started"], "finished": job["finished"],
        "progress": {"stage": job["stage"], "fraction": job["progress"]},
        "counts": json.loads(job["counts"]) if job.get("counts") else None,
        "message": job["message"], "version": job["version"], "links": links,
    }


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
    token = _token()
    if token is None:
        return _error(401, "a valid upload token is required (Authorization: Bearer …)")
    try:
        form, files = request.form, request.files
    except RequestEntityTooLarge:
        return _error(413, "the upload is larger than the configured maximum")
    member = (form.get("member") or "").strip() or token.member
    try:
        member = check_member_key(member)
    except ValueError as exc:
        return _error(400, str(exc))
    if not token.may_act_for(member):
        return _error(403, f"this token writes only for member {token.member}, not {member}")
    collection = (form.get("collection") or "").strip()
    colls = load_collections()
    if collection not in colls:
        return _error(400, f"unknown collection '{collection[:40]}'")
    try:
        authority.check_write_right(colls[collection], token.admin)
    except IngestRefused as exc:
        return _error(403, str(exc))
    upload = files.get("file")
    if upload is None or not upload.filename:
        return _error(400, "no file in the form field 'file'")
    limit = settings.get().uploads.max_queued_per_member
    options = {k: (form.get(k) or "").strip() for k in ("dataset", "crs", "encoding", "layer")}
    try:
        if options["dataset"]:
            check_dataset_name(options["dataset"])
    except DatasetNameError as exc:
        return _error(400, f"form field 'dataset': {exc}")
    options["dry_run"] = (form.get("dry_run") or "").lower() in {"1", "true", "yes", "on"}
    options["admin"] = token.admin
    try:
        jid = jobs.submit(token_id=token.id, member=member,
                          uploader=f"token:{token.id}" + (f" ({token.name})" if token.name else ""),
                          collection=collection, file_name=upload.filename, save=upload.save, options=options,
                          limit=limit)
    except jobs.QueueFull as exc:
        return _error(429, str(exc))
    response = jsonify(_job_json(jobs.get(jid)))
    response.status_code = 202
    response.headers["Location"] = f"/uploads/{jid}"
    return response


def _owned_job(jid: str):
    token = _token()
    if token is None:
        return None, _error(401, "a valid upload token is required (Authorization: Bearer …)")
    job = jobs.get(jid)
    if job is None:
        return None, _error(404, f"no upload {jid}")
    if not token.may_act_for(job["member"]):
        return None, _error(403, "this upload belongs to another member")
    return job, None


@bp.route("/uploads", methods=["GET"])
def list_uploads():
    token = _token()
    if token is None:
        return _error(401, "a valid upload token is required (Authorization: Bearer …)")
    rows = jobs.list_jobs(None if token.admin else token.member)
    return jsonify({"uploads": [_job_json(j) for j in rows]})


@bp.route("/uploads/<jid>")
def get_upload(jid: str):
    job, err = _owned_job(jid)
    return err or jsonify(_job_json(job))


@bp.route("/uploads/<jid>/report.json")
@bp.route("/uploads/<jid>/report.html")
def get_report(jid: str):
    job, err = _owned_job(jid)
    if err:
        return err
    if not job.get("report"):
        return _error(404, "the report is not written yet")
    reports = settings.paths().reports
    if request.path.endswith(".json"):
        return send_file(reports / f"{job['report']}.json", mimetype="application/json")
    name = f"{job['report']}.en.html" if request.args.get("lang") == "en" else f"{job['report']}.html"
    response = send_file(reports / name, mimetype="text/html")
    response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    return response


def _dataset_access(collection: str, member: str, dataset: str | None = None):
    token = _token()
    if token is None:
        return None, None, _error(401, "a valid upload token is required (Authorization: Bearer …)")
    if dataset is not None:
        try:
            check_dataset_name(dataset)
        except DatasetNameError as exc:
            return None, None, _error(400, str(exc))
    colls = load_collections()
    if collection not in colls:
        return None, None, _error(404, f"unknown collection '{collection}'")
    if not token.may_act_for(member):
        return None, None, _error(403, f"this token acts only for member {token.member}")
    return token, colls[collection], None


@bp.route("/datasets/<collection>/<member>/versions")
@bp.route("/datasets/<collection>/<member>/<dataset>/versions")
def versions(collection: str, member: str, dataset: str | None = None):
    token, coll, err = _dataset_access(collection, member, dataset)
    if err:
        return err
    from gdi.store import open_store

    return jsonify({"versions": [v.__dict__ for v in open_store().history(coll, member, dataset)]})


@bp.route("/datasets/<collection>/<member>/<dataset>/rollback", methods=["POST"])
def rollback(collection: str, member: str, dataset: str):
    token, coll, err = _dataset_access(collection, member, dataset)
    if err:
        return err
    body = request.get_json(silent=True)
    body = body if isinstance(body, dict) else {}
    try:
        to = version_number(body.get("to", request.form.get("to")))
    except ValueError as exc:
        return _error(400, str(exc))
    from gdi.ingest.pipeline import rollback as checked_rollback
    from gdi.store.base import VersionNotFound

    return _change_dataset(
        coll, token, VersionNotFound, collection, member, dataset,
        lambda store: checked_rollback(coll, member, dataset, to_version=to, admin=token.admin,
                                       uploader=f"token:{token.id}", store=store))


@bp.route("/datasets/<collection>/<member>/<dataset>", methods=["DELETE"])
def withdraw(collection: str, member: str, dataset: str):
    token, coll, err = _dataset_access(collection, member, dataset)
    if err:
        return err
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
        return _error(404, str(exc))
    except IngestRefused as exc:
        return _error(403 if coll.write == "county" and not token.admin else 409, str(exc))
    publish(store=store, viewer=False)      # the server's map refresher follows
    return jsonify({"collection": collection, "member": member, "dataset": dataset, "version": info.version,
                    "count": info.count})


def install(app) -> None:
    app.config["MAX_CONTENT_LENGTH"] = settings.get().uploads.max_bytes
    app.register_blueprint(bp)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_exc):
        return _error(413, "the upload is larger than the configured maximum")
