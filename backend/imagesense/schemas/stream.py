"""Messages of the WebSocket stream at /api/v1/stream."""

from typing import Annotated, Literal

from pydantic import Discriminator, Field, Tag, TypeAdapter

from imagesense.schemas.base import ApiModel
from imagesense.schemas.documents import PAGES_DESCRIPTION
from imagesense.schemas.tasks import (
    JSON_SCHEMA_DESCRIPTION,
    MAX_IMAGES_PER_REQUEST,
    AnyTaskResult,
    History,
    JsonSchema,
    Question,
    TaskOptions,
    TypedTask,
)

MAX_STREAM_MESSAGE_BYTES = 1024 * 1024  # a stream message carries ids and text, never images


class StreamRequest(ApiModel):
    """Client → server: start a task on images uploaded through POST /api/v1/images."""

    type: Literal["run"] = "run"
    task: TypedTask
    image_ids: list[str] = Field(default_factory=list, max_length=MAX_IMAGES_PER_REQUEST)
    document_id: str | None = Field(None, description="A PDF uploaded with POST /api/v1/documents (instead of images).")
    pages: str | None = Field(None, max_length=200, description=PAGES_DESCRIPTION)
    question: Question | None = None
    history: History = Field(default_factory=list)
    options: TaskOptions = Field(default_factory=TaskOptions)
    json_schema: JsonSchema | None = Field(None, description=f"Ask only: {JSON_SCHEMA_DESCRIPTION}")


class CancelRequest(ApiModel):
    """Client → server: stop the running task (closing the socket does too)."""

    type: Literal["cancel"]


def _client_message_type(value: object) -> str:
    # A run request may leave out "type": anything without one is a run.
    found = value.get("type", "run") if isinstance(value, dict) else getattr(value, "type", "run")
    return str(found)


ClientMessage = Annotated[
    Annotated[StreamRequest, Tag("run")] | Annotated[CancelRequest, Tag("cancel")],
    Discriminator(_client_message_type),
]
CLIENT_MESSAGE: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)


class QueuedEvent(ApiModel):
    type: Literal["queued"] = "queued"
    position: int = Field(description="1 = next to start.")


class StartedEvent(ApiModel):
    type: Literal["started"] = "started"


class TokenEvent(ApiModel):
    type: Literal["token"] = "token"
    text: str


class PageEvent(ApiModel):
    """A document task has finished `page` of its `of` pages."""

    type: Literal["page"] = "page"
    page: int
    of: int


class DoneEvent(ApiModel):
    type: Literal["done"] = "done"
    result: AnyTaskResult = Field(description="The same typed result as the HTTP endpoint's.")


class ErrorEvent(ApiModel):
    type: Literal["error"] = "error"
    code: str
    message: str
    field: str | None = None
    request_id: str | None = Field(None, description="The socket's request id: the server's log has the details.")


class ResetEvent(ApiModel):
    """Discard the text received so far: the tokens that follow replace it (auto OCR, when the VLM takes
    over from the fast engine, or when it fails and the fast engine's text is sent again)."""

    type: Literal["reset"] = "reset"


class CancelledEvent(ApiModel):
    type: Literal["cancelled"] = "cancelled"


ServerEvent = Annotated[
    QueuedEvent | StartedEvent | TokenEvent | ResetEvent | PageEvent | DoneEvent | ErrorEvent | CancelledEvent,
    Field(discriminator="type"),
]
