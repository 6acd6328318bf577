"""OCR: all the text of one image or PDF, in reading order, lines kept."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from imagesense.api.deps import (
    ERROR_RESPONSES,
    ClientDep,
    DocumentsDep,
    InputDep,
    PagesField,
    ServiceDep,
)
from imagesense.api.forms import ocr_options
from imagesense.documents.store import StoredDocument
from imagesense.schemas.tasks import OcrResult, TaskOptions
from imagesense.service import TaskSpec

router = APIRouter(tags=["tasks"], responses=ERROR_RESPONSES)


@router.post("/ocr")
async def ocr(
    request: Request,
    service: ServiceDep,
    documents: DocumentsDep,
    client: ClientDep,
    options: Annotated[TaskOptions, Depends(ocr_options)],
    source: InputDep,
    pages: PagesField = None,
) -> OcrResult:
    """The text of one image (the fast engine with line boxes, or the VLM: see `engine`), or of a PDF's
    pages: text-layer pages read exactly, scanned ones by the fast engine, one result per page."""
    if isinstance(source, StoredDocument):
        handle = await documents.ocr(source, pages, options, client.owner)
        result = await service.follow(handle, request.is_disconnected)
    else:
        result = await service.complete(
            TaskSpec("ocr", [source], options, client=client.owner), request.is_disconnected
        )
    assert isinstance(result, OcrResult)  # the OCR task always yields an OcrResult
    return result
