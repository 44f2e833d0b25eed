"""The OpenAPI document as the server really answers.

FastAPI documents a 422 for every operation with parameters; the STAC API
answers 400 instead (see :mod:`arcodex.server._errors`), and also 404 (an
unknown Collection or Item) and 413 (a body beyond ``server.max_body_bytes``),
each with the STAC error body. This rewrites the generated document to say so,
so that clients and schemathesis check responses against what is sent.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["document_errors"]

ERROR_SCHEMA: dict[str, Any] = {
    "title": "STAC API error",
    "type": "object",
    "required": ["code", "description"],
    "properties": {"code": {"type": "string"}, "description": {"type": "string"}},
}
_REF = {"$ref": "#/components/schemas/STACError"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _REF}}}


def document_errors(app: FastAPI) -> None:
    """Make ``app``'s OpenAPI document list the error responses it sends."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        doc = generate()
        doc.setdefault("components", {}).setdefault("schemas", {})["STACError"] = ERROR_SCHEMA
        for path, item in doc.get("paths", {}).items():
            for method, operation in item.items():
                if not isinstance(operation, dict) or "responses" not in operation:
                    continue
                responses = operation["responses"]
                responses.pop("422", None)
                responses["400"] = _error("A malformed request, or one beyond the server's bounds")
                if "{" in path:
                    responses["404"] = _error("No such Collection or Item")
                if method in ("post", "put", "patch"):
                    responses["413"] = _error("A body larger than server.max_body_bytes")
                # Any request may carry a token the catalog does not accept, or exceed its
                # token's rate; what needs a role says so.
                responses.setdefault("401", _error("A missing, unknown or expired token"))
                responses.setdefault("429", _error("Over the token's rate limit"))
                if method == "post" or path.startswith("/datasets/"):
                    responses.setdefault("403", _error("The user's role does not allow this"))
                if method == "post":
                    responses.setdefault("409", _error("The change conflicts with the state"))
                if path.startswith(("/datasets/", "/zarr/")):
                    responses.setdefault("503", _error("The dataset cannot be read now"))
                if path.endswith("/download"):
                    responses.setdefault("413", _error("Over server.download_max_bytes"))
        _document_fields(doc)
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]


def _document_fields(doc: dict[str, Any]) -> None:
    """Item lists that take ``fields`` answer Items of the fields asked for (always ``id``
    and ``type``), not whole Items: document them so (``FieldsItemCollection``)."""
    schemas = doc.get("components", {}).get("schemas", {})
    if "Item" not in schemas or "ItemCollection" not in schemas:
        return
    item = copy.deepcopy(schemas["Item"])
    item["required"] = ["type", "id"]
    item["description"] = "An Item; with `fields`, only the fields asked for (id and type always)"
    collection = copy.deepcopy(schemas["ItemCollection"])
    collection["properties"]["features"]["items"] = {"$ref": "#/components/schemas/FieldsItem"}
    schemas["FieldsItem"] = item
    schemas["FieldsItemCollection"] = collection
    whole = "#/components/schemas/ItemCollection"
    for path in ("/stac/search", "/stac/collections/{collection_id}/items"):
        for operation in doc.get("paths", {}).get(path, {}).values():
            content = operation.get("responses", {}).get("200", {}).get("content", {})
            for media in content.values():
                if media.get("schema", {}).get("$ref") == whole:
                    media["schema"] = {"$ref": "#/components/schemas/FieldsItemCollection"}
