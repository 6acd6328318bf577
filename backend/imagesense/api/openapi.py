"""Additions to the generated OpenAPI spec: the WebSocket stream's messages, which OpenAPI can't describe
as an operation, as named components, so that clients generated from the spec get typed events too."""

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


def add_stream_schemas(app: FastAPI) -> None:
    build_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        spec = build_openapi()
        components = spec.setdefault("components", {}).setdefault("schemas", {})
        for name, schema in stream_schemas().items():
            components.setdefault(name, schema)
        return spec

    app.openapi = openapi  # type: ignore[method-assign]
