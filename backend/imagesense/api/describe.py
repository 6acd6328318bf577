"""Describe: a brief or detailed description of one image (or of a PDF's pages)."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from imagesense import budgets
from imagesense.api.deps import (
    ERROR_RESPONSES,
    ClientDep,
    DocumentsDep,
    InputDep,
    PagesField,
    ServiceDep,
)
from imagesense.api.forms import describe_options
from imagesense.documents.store import StoredDocument
from imagesense.schemas.tasks import TaskOptions, TaskResult
from imagesense.service import TaskSpec

router = APIRouter(tags=["tasks"], responses=ERROR_RESPONSES)


@router.post("/describe")
async def describe(
    request: Request,
    service: ServiceDep,
    documents: DocumentsDep,
    client: ClientDep,
    options: Annotated[TaskOptions, Depends(describe_options)],
    source: InputDep,
    pages: PagesField = None,
) -> TaskResult:
    if isinstance(source, StoredDocument):
        budget = budgets.pixel_budget("describe", options, service.settings)
        images = await documents.pages_as_images(source, pages, budget)
    else:
        images = [source]
    return await service.complete(TaskSpec("describe", images, options, client=client.owner), request.is_disconnected)
