"""Estimate: visual tokens and expected time of a task for an image, without running it."""

from typing import Annotated

from fastapi import APIRouter, Depends, Form

from imagesense.api.deps import ClientDep, FilesField, ImageIdsField, ServiceDep, error_responses, many_images
from imagesense.api.forms import HISTORY_DESCRIPTION, estimate_options, parse_history
from imagesense.schemas.tasks import Estimate, Question, TaskOptions, TypedTask
from imagesense.service import TaskSpec

router = APIRouter(tags=["tasks"], responses=error_responses(400, 401, 403, 404, 413, 415, 422, 503))


@router.post("/estimate")
async def estimate(
    service: ServiceDep,
    client: ClientDep,
    task: Annotated[TypedTask, Form()],
    options: Annotated[TaskOptions, Depends(estimate_options)],
    files: FilesField = None,
    image_ids: ImageIdsField = None,
    question: Annotated[Question | None, Form(description="ask: the question.")] = None,
    history: Annotated[str | None, Form(description=HISTORY_DESCRIPTION)] = None,
) -> Estimate:
    images = await many_images(service, client, files, image_ids)
    spec = TaskSpec(task, images, options, question=question, history=parse_history(history), client=client.owner)
    return service.estimate(spec)
