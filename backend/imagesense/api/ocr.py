"""OCR: all the text of one image, in reading order, lines kept."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from imagesense.api.deps import (
    ERROR_RESPONSES,
    FileField,
    ImageIdField,
    ServiceDep,
    single_image,
    task_options,
)
from imagesense.schemas.tasks import TaskOptions, TaskResult
from imagesense.service import TaskSpec

router = APIRouter(tags=["tasks"], responses=ERROR_RESPONSES)


@router.post("/ocr")
async def ocr(
    request: Request,
    service: ServiceDep,
    options: Annotated[TaskOptions, Depends(task_options)],
    file: FileField = None,
    image_id: ImageIdField = None,
) -> TaskResult:
    image = await single_image(service, file, image_id)
    return await service.run(TaskSpec("ocr", [image], options), request.is_disconnected)
