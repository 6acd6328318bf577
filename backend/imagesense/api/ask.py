"""Ask: a question about one or more images, with the earlier turns of the conversation."""

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request

from imagesense.api.deps import ERROR_RESPONSES, ClientDep, FilesField, ImageIdsField, ServiceDep, many_images
from imagesense.api.forms import HISTORY_DESCRIPTION, ask_options, parse_history
from imagesense.schemas.tasks import Question, TaskOptions, TaskResult
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
) -> TaskResult:
    turns = parse_history(history)
    images = await many_images(service, client, files, image_ids)
    spec = TaskSpec("ask", images, options, question=question, history=turns, client=client.owner)
    return await service.complete(spec, request.is_disconnected)
