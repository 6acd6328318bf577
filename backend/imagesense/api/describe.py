"""Describe: a brief or detailed description of one image."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from imagesense.api.deps import (
    ERROR_RESPONSES,
    ClientDep,
    FileField,
    ImageIdField,
    ServiceDep,
    single_image,
)
from imagesense.api.forms import describe_options
from imagesense.schemas.tasks import TaskOptions, TaskResult
from imagesense.service import TaskSpec

router = APIRouter(tags=["tasks"], responses=ERROR_RESPONSES)


@router.post("/describe")
async def describe(
    request: Request,
    service: ServiceDep,
    client: ClientDep,
    options: Annotated[TaskOptions, Depends(describe_options)],
    file: FileField = None,
    image_id: ImageIdField = None,
) -> TaskResult:
    image = await single_image(service, client, file, image_id)
    return await service.complete(TaskSpec("describe", [image], options, client=client.owner), request.is_disconnected)
