"""OCR: all the text of one image, in reading order, lines kept."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from imagesense.api.deps import ERROR_RESPONSES, ClientDep, FileField, ImageIdField, ServiceDep, single_image
from imagesense.api.forms import ocr_options
from imagesense.schemas.tasks import OcrResult, TaskOptions
from imagesense.service import TaskSpec

router = APIRouter(tags=["tasks"], responses=ERROR_RESPONSES)


@router.post("/ocr")
async def ocr(
    request: Request,
    service: ServiceDep,
    client: ClientDep,
    options: Annotated[TaskOptions, Depends(ocr_options)],
    file: FileField = None,
    image_id: ImageIdField = None,
) -> OcrResult:
    """The text of one image: from the fast engine with line boxes, or from the VLM (see `engine`)."""
    image = await single_image(service, client, file, image_id)
    result = await service.complete(TaskSpec("ocr", [image], options, client=client.owner), request.is_disconnected)
    assert isinstance(result, OcrResult)  # the OCR task always yields an OcrResult
    return result
