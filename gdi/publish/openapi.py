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
}
# external reference → (component section, component name)
KNOWN = {
    "ogcapi-features-1.yaml#/components/responses/": "responses",
    "ogcapi-features-1.yaml#/components/parameters/": "parameters",
    "ogcapi-tiles-1.yaml#/components/schemas/link": ("schemas", "link"),
    "schemas/exception.yaml": ("schemas", "exception"),
    "cql2/1.0/cql2.json": ("schemas", "cql2expression"),
    "parameters/sortby.yaml": ("parameters", "sortby"),
}
LIBRARY = {"schemas": SCHEMAS, "responses": RESPONSES, "parameters": PARAMETERS}


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
