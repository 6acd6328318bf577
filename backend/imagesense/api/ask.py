"""Ask: a question about one or more images, with the earlier turns of the conversation."""

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request

from imagesense.api.deps import ERROR_RESPONSES, ClientDep, FilesField, ImageIdsField, ServiceDep, many_images
from imagesense.api.forms import HISTORY_DESCRIPTION, ask_options, parse_history, parse_json_schema
from imagesense.schemas.tasks import JSON_SCHEMA_DESCRIPTION, Question, TaskOptions, TaskResult
from imagesense.service import TaskSpec

router = APIRouter(tags=["tasks"], responses=ERROR_RESPONSES)


@router.post("/ask")
async def ask(
    request: Request,
    service: ServiceDep,
    client: ClientDep,
    question: Annotated[Question, Form(description="The question about the images.")],
    options: Annotated[TaskOptions, Depends(ask_options)],
    files: FilesField = None,
    image_ids: ImageIdsField = None,
    history: Annotated[str | None, Form(description=HISTORY_DESCRIPTION)] = None,
    json_schema: Annotated[str | None, Form(description=f"{JSON_SCHEMA_DESCRIPTION} (JSON text)")] = None,
) -> TaskResult:
    turns = parse_history(history)
    schema = parse_json_schema(json_schema)
    images = await many_images(service, client, files, image_ids)
    spec = TaskSpec("ask", images, options, question=question, history=turns, client=client.owner, json_schema=schema)
    return await service.complete(spec, request.is_disconnected)
