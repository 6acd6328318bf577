"""WebSocket /api/v1/stream: run tasks and receive their tokens as they are generated.

One task at a time per socket; the socket stays open for the next. A ``{"type": "cancel"}`` message or
closing the socket cancels the running task, which frees its worker slot within one token.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import anyio
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ValidationError

from imagesense import budgets
from imagesense.api.deps import address_of, get_documents, get_keys, get_service
from imagesense.auth import SUBPROTOCOL, Client, bearer_token, subprotocol_token
from imagesense.documents.service import DocumentService
from imagesense.errors import ApiError, ValidationFailed, api_error_from, error_response, validation_error_from
from imagesense.handles import TaskHandle
from imagesense.jobs import JobCancelled, Output, Progress, Queued, Reset, Started
from imagesense.logs import request_id
from imagesense.schemas.stream import (
    CLIENT_MESSAGE,
    MAX_STREAM_MESSAGE_BYTES,
    CancelledEvent,
    DoneEvent,
    ErrorEvent,
    PageEvent,
    QueuedEvent,
    ResetEvent,
    StartedEvent,
    StreamRequest,
    TokenEvent,
)
from imagesense.schemas.tasks import AnyTaskResult
from imagesense.service import TaskService, TaskSpec

router = APIRouter(tags=["stream"])
# What sending to a socket whose client has left raises, depending on the server underneath.
_GONE = (WebSocketDisconnect, RuntimeError, OSError, anyio.ClosedResourceError, anyio.BrokenResourceError)
log = logging.getLogger(__name__)


def error_event(error: ApiError) -> ErrorEvent:
    return ErrorEvent(code=error.code, message=error.message, field=error.field, request_id=request_id.get())


class StreamSession:
    def __init__(self, websocket: WebSocket, service: TaskService, documents: DocumentService, client: Client) -> None:
        self.websocket = websocket
        self.service = service
        self.documents = documents
        self.client = client
        self.task: TaskHandle[AnyTaskResult] | None = None
        self.runner: asyncio.Task[None] | None = None

    async def send(self, event: BaseModel) -> None:
        with contextlib.suppress(*_GONE):  # the client may already be gone
            await self.websocket.send_text(event.model_dump_json())

    async def serve(self) -> None:
        try:
            while True:
                message = await self.websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                await self.handle(message.get("text"))
        except WebSocketDisconnect:
            pass
        finally:
            self.cancel()

    async def handle(self, raw: str | None) -> None:
        if raw is None:
            await self.send(error_event(ValidationFailed("messages are JSON text frames; a binary frame was sent")))
            return
        if len(raw.encode()) > MAX_STREAM_MESSAGE_BYTES:
            limit = MAX_STREAM_MESSAGE_BYTES
            await self.send(error_event(ValidationFailed(f"the message is over {limit} bytes, the limit")))
            return
        try:
            message = CLIENT_MESSAGE.validate_json(raw)
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
            self.task = await self.submit(message)
        except Exception as exc:  # noqa: BLE001 - known errors become events; anything else is a bug, logged
            await self.send(self.error_event_for(exc))
            return
        self.runner = asyncio.create_task(self.relay(self.task))

    async def submit(self, message: StreamRequest) -> TaskHandle[AnyTaskResult]:
        owner = self.client.owner
        if message.document_id is None:
            self.service.check_image_count(len(message.image_ids), "image_ids")  # before any lookup or decode
            images = await self.service.resolve(owner, message.image_ids)
        elif message.image_ids:
            raise ValidationFailed("send image_ids or a document_id, not both", field="document_id")
        else:
            document = await self.documents.resolve(owner, message.document_id)
            if message.task == "ocr":
                return await self.documents.ocr(document, message.pages, message.options, owner)
            budget = budgets.pixel_budget(message.task, message.options, self.service.settings)
            images = await self.documents.pages_as_images(document, message.pages, budget)
        spec = TaskSpec(
            message.task,
            images,
            message.options,
            question=message.question,
            history=message.history,
            client=owner,
            json_schema=message.json_schema,
        )
        return await self.service.submit(spec)

    @staticmethod
    def error_event_for(exc: Exception) -> ErrorEvent:
        error = api_error_from(exc)
        if error is None:
            log.error("stream task failed", exc_info=exc)
            return ErrorEvent(code="internal_error", message="the generation failed", request_id=request_id.get())
        return error_event(error)

    async def relay(self, task: TaskHandle[AnyTaskResult]) -> None:
        async for event in task.events():
            if isinstance(event, Queued):
                await self.send(QueuedEvent(position=event.position))
            elif isinstance(event, Started):
                await self.send(StartedEvent())
            elif isinstance(event, Output):
                await self.send(TokenEvent(text=event.text))
            elif isinstance(event, Reset):
                await self.send(ResetEvent())
            elif isinstance(event, Progress):
                await self.send(PageEvent(page=event.done, of=event.total))
        try:
            await self.send(DoneEvent(result=await task.result()))
        except JobCancelled:
            await self.send(CancelledEvent())
        except Exception as exc:  # noqa: BLE001 - report it and keep the socket usable
            await self.send(self.error_event_for(exc))

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()


@router.websocket("/stream")
async def stream(websocket: WebSocket) -> None:
    """Authenticated before the upgrade: a key as the subprotocol ``bearer.<key>`` (browsers, beside
    ``imagesense``) or an Authorization header (other clients); a refusal is an HTTP 401 in the JSON shape."""
    offered = websocket.headers.get("sec-websocket-protocol")
    presented = subprotocol_token(offered) or bearer_token(websocket.headers.get("authorization"))
    try:
        client = get_keys(websocket).client(presented, address_of(websocket))
    except ApiError as error:
        await refuse(websocket, error)
        return
    assert client is not None
    protocols = [protocol.strip() for protocol in (offered or "").split(",")]
    await websocket.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in protocols else None)
    await StreamSession(websocket, get_service(websocket), get_documents(websocket), client).serve()


async def refuse(websocket: WebSocket, error: ApiError) -> None:
    """An HTTP error answer instead of the upgrade, where the server can send one; else a policy close."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(error_response(error))
    else:
        await websocket.close(code=1008, reason=error.code)
