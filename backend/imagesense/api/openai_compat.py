"""/v1: the OpenAI-compatible API (models, chat completions), for the SDKs and tools that speak it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from starlette.requests import HTTPConnection

from imagesense import chat
from imagesense.api.deps import ClientDep, ServiceDep, authenticate
from imagesense.image_urls import ImageUrls
from imagesense.logs import request_id
from imagesense.schemas.openai_compat import (
    Architecture,
    ChatCompletion,
    ChatCompletionRequest,
    ModelCard,
    ModelList,
    OpenAIError,
)
from imagesense.service import TaskService

ERRORS: dict[int | str, dict[str, object]] = {
    status: {"model": OpenAIError} for status in (400, 401, 403, 404, 413, 429, 503, 504)
}
router = APIRouter(prefix="/v1", tags=["openai"], responses=ERRORS)


def get_image_urls(connection: HTTPConnection) -> ImageUrls:
    urls: ImageUrls = connection.app.state.image_urls
    return urls


def served_model(service: TaskService) -> str:
    return service.settings.served_model_name or service.settings.model


@router.get("/models", dependencies=[Depends(authenticate)])
async def list_models(service: ServiceDep) -> ModelList:
    """The model this server serves (whether or not it has finished loading: /api/v1/ready says)."""
    modalities = Architecture(input_modalities=["text", "image"], output_modalities=["text"])
    card = ModelCard(id=served_model(service), created=service.started_at, architecture=modalities)
    return ModelList(data=[card])


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}},
)
async def chat_completions(
    body: ChatCompletionRequest,
    http: Request,
    service: ServiceDep,
    client: ClientDep,
    urls: Annotated[ImageUrls, Depends(get_image_urls)],
) -> ChatCompletion | StreamingResponse:
    """A chat completion; with ``stream: true``, Server-Sent Events of ``chat.completion.chunk``s."""
    model = served_model(service)
    chat.check_model(body.model, model)
    spec = await chat.chat_spec(body, client, urls)
    ids = chat.completion_head(request_id.get() or "", model)
    if not body.stream:
        return chat.completion(await service.complete(spec, http.is_disconnected), ids)
    handle = await service.submit(spec)  # refusals (429, 503, 400) come before the stream starts, with their status
    include_usage = body.stream_options is not None and body.stream_options.include_usage
    return StreamingResponse(
        chat.event_stream(handle, ids, include_usage),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
