"""Uploaded PDFs: store once, see their pages, refer to them by id in tasks."""

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Response, UploadFile

from imagesense.api.deps import ClientDep, DocumentsDep, ServiceDep, error_responses
from imagesense.documents.pages import select_pages
from imagesense.documents.store import StoredDocument
from imagesense.schemas.documents import MAX_PASSWORD_CHARS, DocumentInfo, PageInfo
from imagesense.schemas.tasks import MIN_PIXEL_BUDGET

router = APIRouter(prefix="/documents", tags=["documents"])
MAX_THUMBNAIL_PIXELS = 512 * 512


def document_info(document: StoredDocument) -> DocumentInfo:
    pages = [
        PageInfo(page=p.number, width_pt=p.width_pt, height_pt=p.height_pt, has_text=p.has_text) for p in document.pages
    ]
    return DocumentInfo(document_id=document.document_id, bytes=len(document.data), pages=pages)


@router.post("", status_code=201, responses=error_responses(400, 401, 403, 413, 415, 422))
async def upload_document(
    service: ServiceDep,
    documents: DocumentsDep,
    client: ClientDep,
    file: Annotated[UploadFile, File(description="A PDF.")],
    password: Annotated[str | None, Form(max_length=MAX_PASSWORD_CHARS, description="For an encrypted PDF.")] = None,
) -> DocumentInfo:
    """Store a PDF and list its pages (which have a text layer). Encrypted ones need their password."""
    data = await file.read(service.settings.max_upload_bytes + 1)
    return document_info(await documents.upload(client.owner, data, password, field="file"))


@router.get("/{document_id}", responses=error_responses(401, 404, 422))
async def get_document(documents: DocumentsDep, client: ClientDep, document_id: str) -> DocumentInfo:
    return document_info(await documents.resolve(client.owner, document_id))


@router.get(
    "/{document_id}/pages/{page}.png",
    responses={200: {"content": {"image/png": {}}}, **error_responses(401, 404, 422)},
    response_class=Response,
)
async def page_image(
    documents: DocumentsDep,
    client: ClientDep,
    document_id: str,
    page: int,
    max_pixels: Annotated[int, Query(ge=MIN_PIXEL_BUDGET, le=MAX_THUMBNAIL_PIXELS)] = 160 * 220,
) -> Response:
    """A page rendered as PNG (thumbnails for a page picker)."""
    document = await documents.resolve(client.owner, document_id)
    numbers = select_pages(str(page), len(document.pages), field="page")
    [image] = await documents.page_images(document, numbers, max_pixels)
    return Response(await documents.png(image), media_type="image/png")
