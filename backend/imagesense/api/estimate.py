"""Estimate: visual tokens and expected time of a task for an image, without running it."""

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, UploadFile

from imagesense.api.ask import parse_history
from imagesense.api.deps import ServiceDep, error_responses, many_images, task_options
from imagesense.schemas.tasks import DescribeDetail, Estimate, OcrEngine, TaskName, TaskOptions
from imagesense.service import TaskSpec

router = APIRouter(tags=["tasks"], responses=error_responses(400, 404, 413, 415, 422, 503))


@router.post("/estimate")
async def estimate(
    service: ServiceDep,
    task: Annotated[TaskName, Form()],
    options: Annotated[TaskOptions, Depends(task_options)],
    files: Annotated[list[UploadFile] | None, File(description="Images (or give image_ids).")] = None,
    image_ids: Annotated[list[str] | None, Form(description="Ids of uploaded images.")] = None,
    question: Annotated[str | None, Form(max_length=4000)] = None,
    history: Annotated[str | None, Form(description="Earlier turns as JSON, as for /ask.")] = None,
    detail: Annotated[DescribeDetail, Form()] = "brief",
    engine: Annotated[OcrEngine | None, Form()] = None,
) -> Estimate:
    images = await many_images(service, files, image_ids)
    spec_options = options.model_copy(update={"detail": detail, "engine": engine})
    return service.estimate(TaskSpec(task, images, spec_options, question=question, history=parse_history(history)))
