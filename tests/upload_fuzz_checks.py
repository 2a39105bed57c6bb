"""A Schemathesis check, loaded by tests/test_upload_fuzz.py (SCHEMATHESIS_HOOKS): every 4xx or 5xx of the
upload service is an RFC 9457 problem document with the detail in both languages.

gunicorn refuses some requests itself before the application sees them (a header line over its limit or
with control characters: 400, 431); those answers are its own HTML and are let through here.
"""
import json

import schemathesis

REQUIRED = ("type", "title", "status", "detail", "detail_de", "detail_en", "code", "description")


@schemathesis.check
def problem_document(ctx, response, case):
    if response.status_code < 400:
        return None
    content_type = (response.headers.get("content-type") or [""])[0]
    if content_type.startswith("text/html") and response.status_code in {400, 431} and b"<h1><p>" in response.content:
        return None          # gunicorn's own refusal of the request line or a header (its error page)
    if content_type != "application/problem+json":
        raise AssertionError(f"{response.status_code} answered as {content_type!r}, not application/problem+json")
    body = json.loads(response.content)
    missing = [key for key in REQUIRED if key not in body]
    if missing:
        raise AssertionError(f"the problem document lacks {missing}: {body}")
    if body["status"] != response.status_code or body["detail"] not in (body["detail_de"], body["detail_en"]):
        raise AssertionError(f"the problem document does not match its answer: {body}")
    if "Traceback" in response.text:
        raise AssertionError("a traceback in the answer")
    return None
