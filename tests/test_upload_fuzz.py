"""Schemathesis against the upload service, as its OpenAPI document (served at /openapi) describes it.

A real server on 127.0.0.1 with Marburg-Biedenkopf's municipalities and a dataset of Marburg. The upload
routes (tag ``uploads``) are run with an admin token on PostGIS and with Marburg's token on the GeoPackage
store (each pairing about a minute; all four would double the time for little more), each operation with
at most 50 examples, valid and invalid: no answer may be a 5xx, and every 4xx is an RFC 9457 problem
document (tests/upload_fuzz_checks.py).
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from conftest import DATA, Server, free_port, fresh_store, run_gdi, run_schemathesis
from test_uploads import LIDL, token

CHECKS = Path(__file__).with_name("upload_fuzz_checks.py")
OPERATIONS = 10          # the upload service's operations in the OpenAPI document (gdi/publish/openapi.py)


@pytest.fixture(scope="module")
def service(request, tmp_path_factory):
    """The server, on the store the test names (indirect parametrisation)."""
    kind = request.param
    home = tmp_path_factory.mktemp(f"upload-fuzz-{kind}") / "home"
    home.mkdir(parents=True)
    store = fresh_store(kind, request)
    (home / "store-url").write_text(store or "")
    run_gdi("ingest", str(DATA / "boundaries" / "vg250ew_gemeinden_marburg-biedenkopf.geojson"),
            "--collection", "municipalities", "--member", "06534", "--admin", "--dataset", "vg250ew",
            home=home, check=True, store=store)
    run_gdi("ingest", str(DATA / LIDL), "--collection", "supply_points", "--member", "06534014",
            "--dataset", "bleibt", home=home, check=True, store=store)
    srv = Server(home, free_port())
    srv.tokens = {"admin": token(home, "06534", "--admin", "--name", "Kreis GIS"),
                  "member": token(home, "06534014", "--name", "Stadt Marburg")}
    yield srv
    srv.stop()


@pytest.mark.parametrize("service", ["gpkg"], indirect=True)
def test_the_openapi_document_describes_the_upload_routes(service):
    doc = requests.get(f"{service.url}/openapi?f=json", timeout=30).json()
    ours = [(path, method) for path, item in doc["paths"].items() for method, op in item.items()
            if isinstance(op, dict) and "uploads" in op.get("tags", [])]
    assert len(ours) == OPERATIONS, ours
    assert doc["paths"]["/uploads"]["post"]["security"] == [{"uploadToken": []}]
    assert doc["components"]["securitySchemes"]["uploadToken"] == {
        "type": "http", "scheme": "bearer", "description": "an upload token (`gdi token create`)"}
    form = doc["paths"]["/uploads"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["properties"]["collection"]["enum"] == ["municipalities", "supply_points"]
    assert form["required"] == ["file", "collection"]


@pytest.mark.parametrize("service, who", [("gpkg", "member"), ("postgis", "admin")], indirect=["service"])
def test_schemathesis_finds_no_server_error_in_the_upload_service(service, who, tmp_path):
    started = time.monotonic()
    tested = run_schemathesis(
        f"{service.url}/openapi?f=json", "--include-tag", "uploads",
        "--header", f"Authorization: Bearer {service.tokens[who]}",
        "--checks", "not_a_server_error,problem_document", "--phases", "examples,coverage,fuzzing",
        "--max-examples", "50", "--workers", "2", "--generation-database", "none",
        report_dir=tmp_path, timeout=150, hooks=CHECKS)
    assert tested == OPERATIONS
    log = (service.home / f"server-{service.port}.log").read_text(errors="replace")
    assert "Traceback" not in log, log[-5000:]
    print(f"schemathesis ({who}): {time.monotonic() - started:.0f} s")
