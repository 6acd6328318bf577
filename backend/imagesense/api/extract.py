"""Extract: the fields of a document (an image or a PDF's pages) as JSON valid against a schema."""

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request

from imagesense.api.deps import (
    ERROR_RESPONSES,
    ClientDep,
    DocumentsDep,
    InputDep,
    PagesField,
    ServiceDep,
)
from imagesense.api.forms import extract_options, parse_json_schema
from imagesense.extraction import Extraction, ExtractRequest
from imagesense.schemas.extract import ExtractResult, Preset
from imagesense.schemas.tasks import JSON_SCHEMA_DESCRIPTION, TaskOptions

router = APIRouter(tags=["tasks"], responses=ERROR_RESPONSES)


@router.post("/extract")
async def extract(
    request: Request,
    service: ServiceDep,
    documents: DocumentsDep,
    client: ClientDep,
    options: Annotated[TaskOptions, Depends(extract_options)],
    source: InputDep,
    pages: PagesField = None,
    json_schema: Annotated[str | None, Form(description=f"{JSON_SCHEMA_DESCRIPTION} (JSON text; or a preset)")] = None,
    preset: Annotated[Preset | None, Form(description="A built-in schema (instead of `json_schema`).")] = None,
    use_ocr_text: Annotated[
        bool, Form(description="Give the model the page's text too (a PDF's text layer, or fast OCR).")
    ] = True,
) -> ExtractResult:
    wanted = ExtractRequest(source, pages, parse_json_schema(json_schema), preset, use_ocr_text, options, client.owner)
    return await Extraction(service, documents).run(wanted, request.is_disconnected)
