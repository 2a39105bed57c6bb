"""Running a WSGI app to the end and keeping its whole answer: for middleware that must see the body.

The response cache (to store it) and the queryables fix (to rewrite it) both need it; one home.
"""
from __future__ import annotations

from collections.abc import Callable


def run_buffered(app: Callable, environ: dict) -> tuple[str, list[tuple[str, str]], bytes]:
    """(status, headers, body) of app's answer to environ, the iterable closed as WSGI requires."""
    captured: dict = {}

    def capture(status, headers, exc_info=None):
        captured["status"], captured["headers"] = status, headers
        return lambda data: captured.setdefault("written", []).append(data)

    result = app(environ, capture)
    try:
        body = b"".join([*captured.get("written", []), *result])
    finally:
        if hasattr(result, "close"):
            result.close()
    return captured["status"], captured["headers"], body


def with_length(headers: list[tuple[str, str]], body: bytes) -> list[tuple[str, str]]:
    """headers with a Content-Length that fits body (any old one dropped)."""
    return [(k, v) for k, v in headers if k.lower() != "content-length"] + [("Content-Length", str(len(body)))]
