"""WebSocket /api/v1/stream: run tasks and receive their tokens as they are generated.

One task at a time per socket; the socket stays open for the next. A ``{"type": "cancel"}`` message or
closing the socket cancels the running task, which frees its worker slot within one token.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import anyio
from fastapi import APIRouter, FastAPI, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.json_schema import JsonSchemaMode

from imagesense.api.deps import get_service
from imagesense.errors import ApiError, JobCancelled, validation_error_from
from imagesense.pool import Output, Queued, Started
from imagesense.runs import Run
from imagesense.schemas.stream import (
    CancelledEvent,
    ClientMessage,
    DoneEvent,
    ErrorEvent,
    QueuedEvent,
    ServerEvent,
    StartedEvent,
    StreamRequest,
    TokenEvent,
)
from imagesense.schemas.tasks import AnyTaskResult
from imagesense.service import TaskService, TaskSpec

router = APIRouter(tags=["stream"])
# What sending to a socket whose client has left raises, depending on the server underneath.
_GONE = (WebSocketDisconnect, RuntimeError, OSError, anyio.ClosedResourceError, anyio.BrokenResourceError)
_CLIENT_MESSAGE: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)


def error_event(error: ApiError) -> ErrorEvent:
    return ErrorEvent(code=error.code, message=error.message, field=error.field)


class StreamSession:
    def __init__(self, websocket: WebSocket, service: TaskService) -> None:
        self.websocket = websocket
        self.service = service
        self.job: Run[AnyTaskResult] | None = None
        self.runner: asyncio.Task[None] | None = None

    async def send(self, event: BaseModel) -> None:
        with contextlib.suppress(*_GONE):  # the client may already be gone
            await self.websocket.send_text(event.model_dump_json())

    async def serve(self) -> None:
        try:
            while True:
                await self.handle(await self.websocket.receive_text())
        except WebSocketDisconnect:
            pass
        finally:
            self.cancel()

    async def handle(self, raw: str) -> None:
        try:
            message = _CLIENT_MESSAGE.validate_json(raw)
        except ValidationError as exc:
            await self.send(error_event(validation_error_from(list(exc.errors()))))
            return
        if not isinstance(message, StreamRequest):
            self.cancel()
        elif self.runner is not None and not self.runner.done():
            await self.send(ErrorEvent(code="busy", message="a task is already running on this socket"))
        else:
            await self.start(message)

    async def start(self, message: StreamRequest) -> None:
        try:
            spec = TaskSpec(
                message.task,
                self.service.resolve(message.image_ids),
                message.options,
                question=message.question,
                history=message.history,
            )
            self.job = self.service.submit(spec)
        except ApiError as error:
            await self.send(error_event(error))
            return
        self.runner = asyncio.create_task(self.relay(self.job))

    async def relay(self, job: Run[AnyTaskResult]) -> None:
        async for event in job.events():
            if isinstance(event, Queued):
                await self.send(QueuedEvent(position=event.position))
            elif isinstance(event, Started):
                await self.send(StartedEvent())
            elif isinstance(event, Output):
                await self.send(TokenEvent(text=event.text))
        try:
            await self.send(DoneEvent(result=await job.result()))
        except JobCancelled:
            await self.send(CancelledEvent())
        except ApiError as error:
            await self.send(error_event(error))
        except Exception:  # noqa: BLE001 - report it and keep the socket usable
            await self.send(ErrorEvent(code="internal_error", message="the generation failed"))

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()


def stream_schemas() -> dict[str, Any]:
    """JSON schemas of the stream's messages, for the OpenAPI components (WebSockets aren't in OpenAPI),
    so that clients generated from the spec get typed events too."""
    ref = "#/components/schemas/{model}"
    schemas: dict[str, Any] = {}
    messages: list[tuple[str, TypeAdapter[Any], JsonSchemaMode]] = [
        ("ClientMessage", _CLIENT_MESSAGE, "validation"),  # what clients send: defaults may be left out
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


@router.websocket("/stream")
async def stream(websocket: WebSocket) -> None:
    await websocket.accept()
    await StreamSession(websocket, get_service(websocket)).serve()
