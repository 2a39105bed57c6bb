"""A self-contained OpenAPI document.

pygeoapi's document refers to schemas on schemas.opengis.net and
raw.githubusercontent.com. Clients that resolve references (schemathesis,
Swagger UI, code generators) fail offline, and pygeoapi 0.24 ships none of
those OGC schemas (only the OpenAPI 3.0 meta-schema and its own config
schema). Every external ``$ref`` is therefore replaced by a reference to an
equivalent component inlined here, written after OGC API Features Part 1
(17-069r4, ogcapi-features-1.yaml), CQL2 (21-065r2) and OGC API Records'
``sortby`` parameter. An external reference not known here is replaced by a
permissive inline definition, never left dangling.
"""
from __future__ import annotations

import copy
from typing import Any

from gdi.publish.tile_matrix import ADV_ID, WEB_MERCATOR_ID

LINK = {
    "type": "object",
    "required": ["href"],
    "properties": {
        "href": {"type": "string"},
        "rel": {"type": "string"},
        "type": {"type": "string"},
        "hreflang": {"type": "string"},
        "title": {"type": "string"},
        "length": {"type": "integer"},
        "templated": {"type": "boolean"},
    },
}
EXCEPTION = {
    "type": "object",
    "required": ["code"],
    "properties": {"code": {"type": "string"}, "type": {"type": "string"}, "description": {"type": "string"}},
    "additionalProperties": True,
}
GEOMETRY = {"nullable": True, "type": "object", "required": ["type"],
            "properties": {"type": {"type": "string"}, "coordinates": {"type": "array"},
                           "geometries": {"type": "array"}}}
FEATURE = {
    "type": "object",
    "required": ["type", "geometry", "properties"],
    "properties": {
        "type": {"type": "string", "enum": ["Feature"]},
        "id": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
        "geometry": {"$ref": "#/components/schemas/geometryGeoJSON"},
        "properties": {"type": "object", "nullable": True},
        "links": {"type": "array", "items": {"$ref": "#/components/schemas/link"}},
    },
}
FEATURE_COLLECTION = {
    "type": "object",
    "required": ["type", "features"],
    "properties": {
        "type": {"type": "string", "enum": ["FeatureCollection"]},
        "features": {"type": "array", "items": {"$ref": "#/components/schemas/featureGeoJSON"}},
        "links": {"type": "array", "items": {"$ref": "#/components/schemas/link"}},
        "timeStamp": {"type": "string", "format": "date-time"},
        "numberMatched": {"type": "integer", "minimum": 0},
        "numberReturned": {"type": "integer", "minimum": 0},
    },
}
LANDING_PAGE = {
    "type": "object",
    "required": ["links"],
    "properties": {"title": {"type": "string"}, "description": {"type": "string"},
                   "links": {"type": "array", "items": {"$ref": "#/components/schemas/link"}}},
}
EXTENT = {
    "type": "object",
    "properties": {
        "spatial": {"type": "object", "properties": {
            "bbox": {"type": "array", "minItems": 1,
                     "items": {"type": "array", "minItems": 4, "maxItems": 6, "items": {"type": "number"}}},
            "crs": {"type": "string"}}},
        "temporal": {"type": "object", "properties": {
            "interval": {"type": "array", "minItems": 1,
                         "items": {"type": "array", "minItems": 2, "maxItems": 2,
                                   "items": {"type": "string", "nullable": True}}},
            "trs": {"type": "string"}}},
    },
}
COLLECTION = {
    "type": "object",
    "required": ["id", "links"],
    "properties": {
        "id": {"type": "string"}, "title": {"type": "string"}, "description": {"type": "string"},
        "links": {"type": "array", "items": {"$ref": "#/components/schemas/link"}},
        "extent": {"$ref": "#/components/schemas/extent"},
        "itemType": {"type": "string"},
        "crs": {"type": "array", "items": {"type": "string"}},
        "storageCrs": {"type": "string"},
    },
}
# CQL2 JSON (21-065r2, cql2.json) is a large recursive schema; a filter is a JSON object.
CQL2_EXPRESSION = {
    "type": "object",
    "description": "A CQL2 JSON expression (OGC 21-065r2), e.g. "
                   '{"op": "=", "args": [{"property": "name"}, "Marburg"]}',
    "required": ["op", "args"],
    "properties": {"op": {"type": "string"}, "args": {"type": "array"}},
}


def _json(schema_ref: str, description: str, media: str = "application/json") -> dict:
    return {"description": description,
            "content": {media: {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}},
                        "text/html": {"schema": {"type": "string"}}}}


SCHEMAS = {
    "link": LINK,
    "exception": EXCEPTION,
    "geometryGeoJSON": GEOMETRY,
    "featureGeoJSON": FEATURE,
    "featureCollectionGeoJSON": FEATURE_COLLECTION,
    "landingPage": LANDING_PAGE,
    "extent": EXTENT,
    "collection": COLLECTION,
    "cql2expression": CQL2_EXPRESSION,
}
RESPONSES = {
    "LandingPage": _json("landingPage", "The landing page provides links to the API definition, the conformance "
                                        "statements and to the feature collections in this dataset."),
    "Collection": _json("collection", "Information about the feature collection."),
    "Features": _json("featureCollectionGeoJSON", "The response is a document consisting of features in the "
                                                  "collection.", "application/geo+json"),
    "Feature": _json("featureGeoJSON", "Fetch the feature with id `featureId` in the feature collection.",
                     "application/geo+json"),
    "InvalidParameter": _json("exception", "A query parameter has an invalid value."),
    "NotFound": _json("exception", "The requested resource does not exist on the server."),
    "ServerError": _json("exception", "A server error occurred."),
}
PARAMETERS = {
    "featureId": {"name": "featureId", "in": "path", "description": "local identifier of a feature",
                  "required": True, "schema": {"type": "string"}},
    "datetime": {"name": "datetime", "in": "query", "required": False, "style": "form", "explode": False,
                 "description": "Either a date-time or an interval, half-bounded or bounded (RFC 3339), "
                                "e.g. `2018-02-12T23:20:50Z`, `2018-02-12T00:00:00Z/..`.",
                 "schema": {"type": "string"}},
    "sortby": {"name": "sortby", "in": "query", "required": False, "style": "form", "explode": False,
               "description": "Comma-separated properties to sort by; a leading `-` sorts descending, "
                              "`+` (default) ascending.",
               "schema": {"type": "array", "minItems": 1,
                          "items": {"type": "string", "pattern": "[+|-]?[A-Za-z_].*"}}},
    # OGC API Tiles (ogcapi-tiles-1.yaml): the tile of one collection (gdi/publish/tile_provider_base.py)
    "tileMatrixSetId": {"name": "tileMatrixSetId", "in": "path", "required": True,
                        "description": "The tile matrix set: WebMercatorQuad (web maps) or AdV_25832 (ETRS89 / UTM 32N, "
                                       "the AdV's grid of basemap.de).",
                        "schema": {"type": "string", "enum": [WEB_MERCATOR_ID, ADV_ID]}},
    "tileMatrix": {"name": "tileMatrix", "in": "path", "required": True,
                   "description": "The zoom level (tile matrix) of the tile matrix set, e.g. `12`.",
                   "schema": {"type": "string"}},
    "tileRow": {"name": "tileRow", "in": "path", "required": True, "description": "The row of the tile (from the top).",
                "schema": {"type": "integer", "minimum": 0}},
    "tileCol": {"name": "tileCol", "in": "path", "required": True,
                "description": "The column of the tile (from the left).", "schema": {"type": "integer", "minimum": 0}},
}
# external reference → (component section, component name)
KNOWN = {
    "ogcapi-features-1.yaml#/components/responses/": "responses",
    "ogcapi-features-1.yaml#/components/parameters/": "parameters",
    "ogcapi-tiles-1.yaml#/components/schemas/link": ("schemas", "link"),
    "ogcapi-tiles-1.yaml#/components/parameters/": "parameters",
    "schemas/exception.yaml": ("schemas", "exception"),
    "cql2/1.0/cql2.json": ("schemas", "cql2expression"),
    "parameters/sortby.yaml": ("parameters", "sortby"),
}
LIBRARY = {"schemas": SCHEMAS, "responses": RESPONSES, "parameters": PARAMETERS}


# -- the upload service (gdi/server/uploads.py): not pygeoapi's, added so clients see it too ---------------
PROBLEM = {
    "type": "object",
    "description": "An RFC 9457 problem document: `detail` in the reader's language (`lang`, then "
                   "`Accept-Language`, else German), both languages beside it; `code` and `description` "
                   "(English) as clients read them before.",
    "required": ["type", "title", "status", "detail", "detail_de", "detail_en", "code", "description"],
    "properties": {
        "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
        "detail": {"type": "string"}, "detail_de": {"type": "string"}, "detail_en": {"type": "string"},
        "code": {"type": "integer"}, "description": {"type": "string"},
    },
}
_NULLABLE_STRING = {"type": "string", "nullable": True}
UPLOAD_JOB = {
    "type": "object",
    "required": ["id", "status", "member", "collection", "progress", "message", "message_de", "message_en", "links"],
    "properties": {
        "id": {"type": "string"},
        "status": {"type": "string", "enum": ["queued", "running", "accepted", "rejected", "failed"]},
        "member": {"type": "string"}, "collection": {"type": "string"}, "dataset": _NULLABLE_STRING,
        "file": {"type": "string"}, "uploader": _NULLABLE_STRING, "created": {"type": "string"},
        "started": _NULLABLE_STRING, "finished": _NULLABLE_STRING,
        "progress": {"type": "object", "properties": {"stage": _NULLABLE_STRING,
                                                      "fraction": {"type": "number", "nullable": True}}},
        "counts": {"type": "object", "nullable": True, "additionalProperties": {"type": "integer"}},
        "message": {**_NULLABLE_STRING, "description": "why the upload was refused, in the reader's language"},
        "message_de": _NULLABLE_STRING, "message_en": _NULLABLE_STRING,
        "version": {"type": "integer", "nullable": True},
        "links": {"type": "array", "items": {"$ref": "#/components/schemas/link"}},
    },
}
DATASET_CHANGE = {
    "type": "object",
    "required": ["collection", "member", "dataset", "version", "count"],
    "properties": {"collection": {"type": "string"}, "member": {"type": "string"}, "dataset": {"type": "string"},
                   "version": {"type": "integer"}, "count": {"type": "integer"}},
}
MEMBER_PATTERN = r"^(\d{5}|\d{8})$"
DATASET_PATTERN = r"^[\w.-]{1,100}$"


def _problem(description: str) -> dict:
    return {"description": description,
            "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/problem"}}}}


def _ok(description: str, schema: dict, media: str = "application/json") -> dict:
    return {"description": description, "content": {media: {"schema": schema}}}


def _path_param(name: str, description: str, **schema) -> dict:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string", **schema}}


def upload_paths(collection_ids: list[str], max_version: int) -> dict:
    """The paths and components of the upload service: uploads and their jobs and reports, the versions
    of a dataset, rollback and withdrawal. Writing needs an upload token (``gdi token create``)."""
    lang = [{"$ref": "#/components/parameters/lang"}, {"$ref": "#/components/parameters/acceptLanguage"}]
    secured = {"security": [{"uploadToken": []}], "tags": ["uploads"]}
    errors = {"400": _problem("Malformed input (a form, a body, a name in the path)."),
              "401": _problem("No valid upload token."),
              "403": _problem("The token may not act for this member or collection."),
              "404": _problem("No such upload, report, collection, dataset or version.")}
    collection = _path_param("collectionId", "a collection", enum=sorted(collection_ids))
    member = _path_param("member", "a member's key: the 8-digit AGS of a municipality or the 5-digit key "
                                   "of the county", pattern=MEMBER_PATTERN)
    dataset = _path_param("dataset", "a dataset of the member", pattern=DATASET_PATTERN)
    upload_id = _path_param("uploadId", "the id of an upload (its job)")
    versions = {**secured, "summary": "The versions of a member's datasets (or of one)",
                "responses": {"200": _ok("The versions, oldest first.", {
                    "type": "object", "required": ["versions"],
                    "properties": {"versions": {"type": "array", "items": {"type": "object"}}}}), **errors}}
    change = _ok("The dataset after the change: its live version and feature count.",
                 {"$ref": "#/components/schemas/datasetChange"})
    paths = {
        "/upload": {"get": {"tags": ["uploads"], "summary": "The upload page (German and English)",
                            "parameters": [{"$ref": "#/components/parameters/lang"}],
                            "responses": {"200": _ok("The page.", {"type": "string"}, "text/html")}}},
        "/uploads": {
            "get": {**secured, "summary": "The token's uploads (an admin token: everyone's)", "parameters": lang,
                    "responses": {"200": _ok("The uploads, newest first.", {
                        "type": "object", "required": ["uploads"],
                        "properties": {"uploads": {"type": "array",
                                                   "items": {"$ref": "#/components/schemas/uploadJob"}}}}),
                        "401": errors["401"]}},
            "post": {**secured, "summary": "Upload a file: queued as a job that normalises, checks and publishes it",
                     "parameters": lang,
                     "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                         "type": "object", "required": ["file", "collection"],
                         "properties": {
                             "file": {"type": "string", "format": "binary"},
                             "collection": {"type": "string", "enum": sorted(collection_ids)},
                             "member": {"type": "string", "pattern": MEMBER_PATTERN,
                                        "description": "for an admin token: the member to upload for"},
                             "dataset": {"type": "string", "pattern": DATASET_PATTERN},
                             "crs": {"type": "string", "description": "e.g. EPSG:25832, when the file has none"},
                             "encoding": {"type": "string", "description": "e.g. cp1252, for a Shapefile"},
                             "layer": {"type": "string", "description": "the layer or file of a multi-layer upload"},
                             "dry_run": {"type": "string", "enum": ["true", "false"]},
                             "lang": {"type": "string", "enum": ["de", "en"]}}}}}},
                     "responses": {"202": {**_ok("The job, queued.", {"$ref": "#/components/schemas/uploadJob"}),
                                           "headers": {"Location": {"schema": {"type": "string"}}}},
                                   **{k: v for k, v in errors.items() if k != "404"},
                                   "413": _problem("The upload is larger than the configured maximum."),
                                   "415": _problem("Not a form."),
                                   "429": _problem("The member has as many uploads waiting as it may.")}},
        },
        "/uploads/{uploadId}": {"get": {
            **secured, "summary": "An upload's job: status, progress, counts, message, report links",
            "parameters": [upload_id, *lang],
            "responses": {"200": _ok("The job.", {"$ref": "#/components/schemas/uploadJob"}), **errors}}},
        "/uploads/{uploadId}/report.json": {"get": {
            **secured, "summary": "The ingest report (both languages)", "parameters": [upload_id, *lang],
            "responses": {"200": _ok("The report.", {"type": "object"}), **errors}}},
        "/uploads/{uploadId}/report.html": {"get": {
            **secured, "summary": "The ingest report as a page in the reader's language",
            "parameters": [upload_id, *lang],
            "responses": {"200": _ok("The report.", {"type": "string"}, "text/html"), **errors}}},
        "/datasets/{collectionId}/{member}/versions": {"get": {**versions, "parameters": [collection, member, *lang]}},
        "/datasets/{collectionId}/{member}/{dataset}/versions": {"get": {
            **versions, "parameters": [collection, member, dataset, *lang]}},
        "/datasets/{collectionId}/{member}/{dataset}/rollback": {"post": {
            **secured, "summary": "Make an earlier version live again (without `to`: the one before the live one)",
            "parameters": [collection, member, dataset, *lang],
            "requestBody": {"required": False, "content": {"application/json": {"schema": {
                "type": "object", "properties": {"to": {"type": "integer", "minimum": 1, "maximum": max_version}}}}}},
            "responses": {"200": change, **errors,
                          "409": _problem("The territory's keys are in use by other collections.")}}},
        "/datasets/{collectionId}/{member}/{dataset}": {"delete": {
            **secured, "summary": "Withdraw a dataset (a version of its own; a rollback brings it back)",
            "parameters": [collection, member, dataset, *lang],
            "responses": {"200": change, **errors,
                          "409": _problem("The territory's keys are in use by other collections.")}}},
    }
    components = {
        "schemas": {"problem": PROBLEM, "uploadJob": UPLOAD_JOB, "datasetChange": DATASET_CHANGE},
        "parameters": {
            "lang": {"name": "lang", "in": "query", "required": False, "description": "the reader's language",
                     "schema": {"type": "string", "enum": ["de", "en"]}},
            "acceptLanguage": {"name": "Accept-Language", "in": "header", "required": False,
                               "description": "the reader's languages, when `lang` is not given",
                               "schema": {"type": "string"}},
        },
        "securitySchemes": {"uploadToken": {"type": "http", "scheme": "bearer",
                                            "description": "an upload token (`gdi token create`)"}},
    }
    return {"paths": paths, "components": components,
            "tags": [{"name": "uploads", "description": "Uploads, versions and withdrawal (upload token)"}]}


def with_uploads(oas: dict, extra: dict) -> dict:
    """pygeoapi's document with the upload service's paths and components (``upload_paths``) added."""
    doc = copy.deepcopy(oas)
    doc.setdefault("paths", {}).update(extra["paths"])
    components = doc.setdefault("components", {})
    for section, items in extra["components"].items():
        components.setdefault(section, {}).update(items)
    doc.setdefault("tags", []).extend(extra["tags"])
    return doc


# JSON Schema keywords of a property (gdi.publish.config.property_schemas) an OpenAPI 3.0 schema has too
OPENAPI_SCHEMA_KEYS = ("type", "format", "title", "maxLength", "pattern")


def property_parameter(name: str, schema: dict) -> dict:
    """The query parameter ``name=value`` (features whose property equals the value) with the property's
    type: Masterportal's filter reads each property's type from exactly these parameters."""
    typed = {k: schema[k] for k in OPENAPI_SCHEMA_KEYS if k in schema}
    if "values" in schema:                          # pygeoapi's word for a vocabulary; OpenAPI's is enum
        typed["enum"] = list(schema["values"])
    return {"name": name, "in": "query", "required": False, "style": "form", "explode": False,
            "description": f"features whose `{name}` equals the value", "schema": typed}


def with_property_parameters(oas: dict, properties: dict[str, dict[str, dict]]) -> dict:
    """pygeoapi's document with one typed query parameter per queryable property on each
    ``/collections/{id}/items`` GET, from the collection's declared properties (``properties``:
    collection id → property → JSON Schema). pygeoapi 0.24 writes such parameters from the provider's
    fields, but with its own ``values`` keyword, which is no OpenAPI; ours replace them."""
    doc = copy.deepcopy(oas)
    for cid, schemas in properties.items():
        get = doc.get("paths", {}).get(f"/collections/{cid}/items", {}).get("get")
        if get is None:
            continue
        kept = [p for p in get.get("parameters", []) if not (isinstance(p, dict) and p.get("name") in schemas)]
        get["parameters"] = kept + [property_parameter(n, s) for n, s in schemas.items()]
    return doc


def _local(ref: str) -> str | None:
    for suffix, target in KNOWN.items():
        if isinstance(target, tuple) and ref.endswith(suffix):
            return f"#/components/{target[0]}/{target[1]}"
        if isinstance(target, str) and suffix in ref:
            name = ref.split(suffix, 1)[1]
            if name in LIBRARY[target]:
                return f"#/components/{target}/{name}"
    return None


def _fallback(parent_key: Any) -> dict:
    if parent_key == "parameters":
        return {"name": "unused", "in": "query", "required": False, "schema": {"type": "string"}}
    if isinstance(parent_key, str) and (parent_key.isdigit() or parent_key == "default"):
        return {"description": "Response"}
    return {}


def bundle(oas: dict) -> dict:
    """A copy of ``oas`` whose every ``$ref`` resolves inside the document."""
    doc = copy.deepcopy(oas)
    components = doc.setdefault("components", {})
    for section, items in LIBRARY.items():
        target = components.setdefault(section, {})
        for name, value in items.items():
            target.setdefault(name, copy.deepcopy(value))

    def walk(node: Any, parent_key: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and not ref.startswith("#"):
                local = _local(ref)
                if local is not None:
                    return {"$ref": local}
                return _fallback(parent_key)
            return {k: walk(v, k) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, parent_key) for v in node]
        return node

    return walk(doc, None)


def external_refs(doc: Any) -> list[str]:
    """Every ``$ref`` that does not point into the document itself."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and not ref.startswith("#"):
                found.append(ref)
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(doc)
    return found
