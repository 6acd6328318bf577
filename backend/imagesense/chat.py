"""/v1 chat completions as service tasks: an OpenAI request → a ``chat`` TaskSpec, and the task's
result or events → an OpenAI response or Server-Sent Events. Same pool, limits, deadlines, logs and
metrics as every other task: a chat is one more task."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from imagesense import __version__
from imagesense.auth import Client
from imagesense.engine.protocol import ChatMessage, ImagePart, Role, TextPart
from imagesense.errors import (
    ApiError,
    ClientGone,
    InternalError,
    NotFound,
    ShuttingDown,
    ValidationFailed,
    api_error_from,
    openai_error_body,
)
from imagesense.handles import TaskHandle
from imagesense.image_urls import ImageUrls
from imagesense.jobs import JobCancelled, Output, Progress, Queued
from imagesense.schemas.openai_compat import (
    MAX_CHAT_TEXT_CHARS,
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatFinishReason,
    ChatMessageIn,
    Choice,
    ChunkChoice,
    CompletionHead,
    CompletionUsage,
    Delta,
    PromptTokensDetails,
)
from imagesense.schemas.tasks import AnyTaskResult, Resolution, TaskOptions
from imagesense.service import TaskSpec
from imagesense.store import StoredImage

MODEL_ALIAS = "imagesense"
FINGERPRINT = f"imagesense-{__version__}"
# The typed API's field names as /v1 calls them, for the errors the service raises.
FIELDS = {
    "json_schema": "response_format",
    "max_new_tokens": "max_tokens",
    "image_ids": "messages",
    "question": "messages",
    "history": "messages",
}
DETAIL_ORDER: dict[Resolution, int] = {"low": 0, "auto": 1, "high": 2}


def completion_head(request_id: str, model: str) -> CompletionHead:
    """What every chunk and response of one completion repeats."""
    return CompletionHead(
        id=f"chatcmpl-{request_id}", created=int(time.time()), model=model, system_fingerprint=FINGERPRINT
    )


def check_model(requested: str, served: str) -> None:
    if requested not in (served, MODEL_ALIAS):
        raise NotFound(
            f"model {requested!r} is not served here; GET /v1/models lists {served!r} (or use {MODEL_ALIAS!r})",
            field="model",
        )


async def chat_spec(request: ChatCompletionRequest, client: Client, urls: ImageUrls) -> TaskSpec:
    """The task of a chat request: its messages with image placeholders, and the images loaded — after
    every part is checked and the images are counted, so an over-limit request decodes, fetches and
    renders nothing."""
    messages = [(message, _parts(message, f"messages[{n}].content")) for n, message in enumerate(request.messages)]
    _check_parts(messages)
    references = sum(isinstance(part, _ImageRef) for _message, found in messages for _place, part, _ in found)
    if references:
        urls.check_image_count(references, "messages")
    conversation: list[ChatMessage] = []
    images: list[StoredImage] = []
    details: list[Resolution] = []
    loaded_references = 0
    for message, found in messages:
        parts: list[TextPart | ImagePart] = []
        for place, part, detail in found:
            if isinstance(part, str):
                parts.append({"type": "text", "text": part})
                continue
            # A PDF gives as many pages as the limit leaves beside the images still to come.
            room = urls.max_images - len(images) - (references - loaded_references - 1)
            loaded = await urls.load(client.owner, part.url, place, max_pages=room)
            loaded_references += 1
            images += loaded
            details += [detail] * len(loaded)
            parts += [{"type": "image"} for _ in loaded]
        role: Role = "system" if message.role == "developer" else message.role
        conversation.append({"role": role, "content": parts})
    return TaskSpec(
        "chat",
        images,
        _options(request, max(details, key=DETAIL_ORDER.__getitem__, default="auto")),
        client=client.owner,
        conversation=conversation,
        json_schema=_schema(request),
        stop=(request.stop,) if isinstance(request.stop, str) else tuple(request.stop or ()),
        fields=FIELDS,
    )


@dataclass(frozen=True)
class _ImageRef:
    url: str


def _parts(message: ChatMessageIn, place: str) -> list[tuple[str, str | _ImageRef, Resolution]]:
    """(where, text or image, detail) for each part of a message, in order."""
    if message.content is None or isinstance(message.content, str):
        return [(place, message.content or "", "auto")]
    found: list[tuple[str, str | _ImageRef, Resolution]] = []
    for index, part in enumerate(message.content):
        where = f"{place}[{index}]"
        if part.type == "text":
            found.append((where, part.text, "auto"))
        elif isinstance(part.image_url, str):
            found.append((f"{where}.image_url", _ImageRef(part.image_url), "auto"))
        else:
            found.append((f"{where}.image_url", _ImageRef(part.image_url.url), part.image_url.detail))
    return found


def _check_parts(messages: list[tuple[ChatMessageIn, list[tuple[str, str | _ImageRef, Resolution]]]]) -> None:
    """Images only in user messages, and the text within its limit: checked before anything is loaded."""
    for message, found in messages:
        for place, part, _detail in found:
            if isinstance(part, _ImageRef) and message.role != "user":
                raise ValidationFailed(f"{place}: images go in user messages", field=place)
    total = sum(len(part) for _message, found in messages for _place, part, _ in found if isinstance(part, str))
    if total > MAX_CHAT_TEXT_CHARS:
        raise ValidationFailed(
            f"messages: {total} characters of text; the limit is {MAX_CHAT_TEXT_CHARS}", field="messages"
        )


def _options(request: ChatCompletionRequest, detail: Resolution) -> TaskOptions:
    return TaskOptions(
        max_new_tokens=request.max_completion_tokens or request.max_tokens,
        resolution=detail,
        temperature=request.temperature or 0.0,  # greedy unless asked: as the typed API
        top_p=request.top_p or 1.0,
        seed=request.seed,
    )


def _schema(request: ChatCompletionRequest) -> Mapping[str, Any] | None:
    response_format = request.response_format
    if response_format is None or response_format.type == "text":
        return None
    if response_format.type == "json_object":
        return {"type": "object"}
    if response_format.json_schema is None:
        raise ValidationFailed(
            "response_format: json_schema is required with type json_schema", field="response_format.json_schema"
        )
    return response_format.json_schema.schema_


def finish_reason(result: AnyTaskResult) -> ChatFinishReason:
    # A loop cut short by the repetition guard is an incomplete answer, as one cut by the token limit.
    return "stop" if result.finish_reason == "stop" else "length"


def usage(result: AnyTaskResult) -> CompletionUsage:
    counted = result.usage
    return CompletionUsage(
        prompt_tokens=counted.prompt_tokens,
        completion_tokens=counted.completion_tokens,
        total_tokens=counted.prompt_tokens + counted.completion_tokens,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=counted.cached_tokens),
    )


def completion(result: AnyTaskResult, head: CompletionHead) -> ChatCompletion:
    return ChatCompletion(
        **head.model_dump(),
        choices=[Choice(message=AssistantMessage(content=result.text), finish_reason=finish_reason(result))],
        usage=usage(result),
    )


def _chunk(head: CompletionHead, choices: list[ChunkChoice], usage: CompletionUsage | None = None) -> str:
    chunk = ChatCompletionChunk(**head.model_dump(), choices=choices, usage=usage)
    return f"data: {chunk.model_dump_json()}\n\n"


async def event_stream(
    handle: TaskHandle[AnyTaskResult], ids: CompletionHead, include_usage: bool
) -> AsyncIterator[str]:
    """The SSE body: the role, the text as it comes, the finish reason, the usage if asked, [DONE].
    An answer cut short (a shutdown, a timeout, a failure) ends with an error chunk instead, never with a
    finish reason or [DONE]: SDKs raise it rather than take the cut text as a whole answer. A client
    that leaves ends this generator (the server cancels it), and that cancels the job."""
    try:
        yield _chunk(ids, [ChunkChoice(delta=Delta(role="assistant", content=""))])
        async for event in handle.events():
            if isinstance(event, Output) and event.text:
                yield _chunk(ids, [ChunkChoice(delta=Delta(content=event.text))])
            elif isinstance(event, Queued):  # a comment: keeps proxies from closing a quiet connection
                yield f": queued, position {event.position}\n\n"
            elif isinstance(event, Progress):
                yield f": page {event.done} of {event.total}\n\n"
        try:
            result = await handle.result()
        except JobCancelled as cancelled:
            yield f"data: {json.dumps(_stream_error(_cut_short(cancelled)))}\n\n"
            return
        except Exception as exc:  # noqa: BLE001 - the status is sent: say what went wrong in the stream
            yield f"data: {json.dumps(_stream_error(exc))}\n\n"
            return
        yield _chunk(ids, [ChunkChoice(delta=Delta(), finish_reason=finish_reason(result))])
        if include_usage:
            yield _chunk(ids, [], usage(result))
        yield "data: [DONE]\n\n"
    finally:
        handle.cancel()  # nothing if it ended; a client gone mid-stream frees the slot


def _cut_short(cancelled: JobCancelled) -> ApiError:
    if cancelled.by_shutdown:
        return ShuttingDown("the service shut down before the answer was complete; retry")
    return ClientGone("the request was cancelled before the answer was complete")


def _stream_error(exc: Exception) -> dict[str, Any]:
    error: ApiError = api_error_from(exc) or InternalError("the generation failed; the log has the details")
    return openai_error_body(error)
