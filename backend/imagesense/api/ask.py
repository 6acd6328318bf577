"""Ask: a question about one or more images, with the earlier turns of the conversation."""

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request

from imagesense import budgets
from imagesense.api.deps import (
    ERROR_RESPONSES,
    AskInputs,
    ClientDep,
    DocumentIdField,
    DocumentsDep,
    FilesField,
    ImageIdsField,
    PagesField,
    PasswordField,
    ServiceDep,
    images_and_pages,
)
from imagesense.api.forms import HISTORY_DESCRIPTION, ask_options, parse_history, parse_json_schema
from imagesense.schemas.tasks import JSON_SCHEMA_DESCRIPTION, Question, TaskOptions, TaskResult
from imagesense.service import TaskSpec

router = APIRouter(tags=["tasks"], responses=ERROR_RESPONSES)


@router.post("/ask")
async def ask(
    request: Request,
    service: ServiceDep,
    documents: DocumentsDep,
    client: ClientDep,
    question: Annotated[Question, Form(description="The question about the images.")],
    options: Annotated[TaskOptions, Depends(ask_options)],
    files: FilesField = None,
    image_ids: ImageIdsField = None,
    history: Annotated[str | None, Form(description=HISTORY_DESCRIPTION)] = None,
    json_schema: Annotated[str | None, Form(description=f"{JSON_SCHEMA_DESCRIPTION} (JSON text)")] = None,
    document_id: DocumentIdField = None,
    pages: PagesField = None,
    password: PasswordField = None,
) -> TaskResult:
    """An answer about images, or the pages of PDFs (files, or `document_id`), with earlier turns."""
    turns = parse_history(history)
    schema = parse_json_schema(json_schema)
    budget = budgets.pixel_budget("ask", options, service.settings)
    inputs = AskInputs(files, image_ids, document_id, pages, password)
    images = await images_and_pages(service, documents, client, inputs, budget)
    spec = TaskSpec("ask", images, options, question=question, history=turns, client=client.owner, json_schema=schema)
    return await service.complete(spec, request.is_disconnected)
