"""Additions to the generated OpenAPI spec: the WebSocket stream's messages, which OpenAPI can't describe
as an operation, as named components, so that clients generated from the spec get typed events too; and
the image types each multipart file part accepts (`encoding`), which FastAPI does not declare."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import TypeAdapter
from pydantic.json_schema import JsonSchemaMode

from imagesense.schemas.stream import CLIENT_MESSAGE, ServerEvent


def stream_schemas() -> dict[str, Any]:
    """JSON schemas of the stream's messages, by component name."""
    ref = "#/components/schemas/{model}"
    schemas: dict[str, Any] = {}
    messages: list[tuple[str, TypeAdapter[Any], JsonSchemaMode]] = [
        ("ClientMessage", CLIENT_MESSAGE, "validation"),  # what clients send: defaults may be left out
        ("ServerEvent", TypeAdapter(ServerEvent), "serialization"),  # what they receive: every field
    ]
    for name, adapter, mode in messages:
        schema = adapter.json_schema(ref_template=ref, mode=mode)
        schemas.update(schema.pop("$defs", {}))
        schemas[name] = schema
    return schemas


IMAGE_PARTS = ("file", "files")  # the multipart fields that carry images
IMAGE_MEDIA_TYPES = "image/jpeg, image/png, image/webp, image/gif, image/bmp, image/tiff"


def declare_image_parts(spec: dict[str, Any]) -> None:
    """Every multipart body's image fields accept the decodable image types (see images.py)."""
    components = spec.get("components", {}).get("schemas", {})
    for path in spec.get("paths", {}).values():
        for operation in path.values():
            form = operation.get("requestBody", {}).get("content", {}).get("multipart/form-data")
            if form is None:
                continue
            name = form["schema"].get("$ref", "").rsplit("/", 1)[-1]
            fields = components.get(name, {}).get("properties", {})
            encoding = {field: {"contentType": IMAGE_MEDIA_TYPES} for field in IMAGE_PARTS if field in fields}
            if encoding:
                form["encoding"] = encoding


def add_stream_schemas(app: FastAPI) -> None:
    build_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        spec = build_openapi()
        components = spec.setdefault("components", {}).setdefault("schemas", {})
        for name, schema in stream_schemas().items():
            components.setdefault(name, schema)
        declare_image_parts(spec)
        # /ready takes a key but needs none: optional security is an empty alternative.
        spec["paths"]["/api/v1/ready"]["get"]["security"] = [{}, {"HTTPBearer": []}]
        return spec

    app.openapi = openapi  # type: ignore[method-assign]
