"""Dependencies: the objects built in the lifespan, the caller, and the image fields tasks share."""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, File, Form, UploadFile
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from imagesense.auth import ApiKeys, Client
from imagesense.documents.pdf import is_pdf
from imagesense.documents.service import DocumentService
from imagesense.documents.store import StoredDocument
from imagesense.errors import ValidationFailed
from imagesense.schemas.documents import MAX_PASSWORD_CHARS, PAGES_DESCRIPTION
from imagesense.schemas.errors import ErrorResponse
from imagesense.service import TaskService
from imagesense.store import StoredImage


def get_service(connection: HTTPConnection) -> TaskService:
    service: TaskService = connection.app.state.service
    return service


def get_keys(connection: HTTPConnection) -> ApiKeys:
    keys: ApiKeys = connection.app.state.keys
    return keys


@dataclass(frozen=True)
class AskInputs:
    files: list[UploadFile] | None
    image_ids: list[str] | None
    document_id: str | None
    pages: str | None
    password: str | None


def get_documents(connection: HTTPConnection) -> DocumentService:
    documents: DocumentService = connection.app.state.documents
    return documents


ServiceDep = Annotated[TaskService, Depends(get_service)]
DocumentsDep = Annotated[DocumentService, Depends(get_documents)]
# Declares the scheme in the OpenAPI spec, so generated clients send the key.
_BEARER = HTTPBearer(auto_error=False, description="An API key, when the server has them (IMAGESENSE_API_KEYS).")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]


def address_of(connection: HTTPConnection) -> str:
    return connection.client.host if connection.client else "unknown"


def authenticate(
    connection: HTTPConnection, keys: Annotated[ApiKeys, Depends(get_keys)], credentials: Credentials
) -> Client:
    """The caller; 401 without a right key when the server has keys."""
    presented = credentials.credentials if credentials else None
    client = keys.client(presented, address_of(connection))
    assert client is not None  # required: a missing key raised
    return client


def identify(
    connection: HTTPConnection, keys: Annotated[ApiKeys, Depends(get_keys)], credentials: Credentials
) -> Client | None:
    """The caller if a right key (or none needed); None for anyone else, for routes open to all."""
    return keys.client(credentials.credentials if credentials else None, address_of(connection), required=False)


ClientDep = Annotated[Client, Depends(authenticate)]


def error_responses(*statuses: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI entries for the errors a route can answer, all in the one error shape."""
    return {status: {"model": ErrorResponse} for status in statuses}


ERROR_RESPONSES = error_responses(400, 401, 403, 404, 413, 415, 422, 429, 503, 504)


async def read_upload(service: TaskService, client: Client, upload: UploadFile, field: str) -> StoredImage:
    # Read one byte past the limit: enough to refuse an oversize file without holding all of it.
    data = await upload.read(service.settings.max_upload_bytes + 1)
    return await service.upload(client.owner, data, field=field)


async def read_image_or_pdf(
    service: TaskService,
    documents: DocumentService,
    client: Client,
    upload: UploadFile,
    password: str | None,
    field: str,
) -> StoredImage | StoredDocument:
    """An uploaded file stored as what it is: a PDF (by its magic bytes) or an image."""
    data = await upload.read(service.settings.max_upload_bytes + 1)  # one byte past: enough to refuse
    if is_pdf(data):
        return await documents.upload(client.owner, data, password, field=field)
    return await service.upload(client.owner, data, field=field)


FileField = Annotated[
    UploadFile | None, File(description="The image file (JPEG, PNG, WebP, GIF, BMP, TIFF), or a PDF.")
]
DocumentIdField = Annotated[str | None, Form(description="Id of a PDF uploaded with POST /api/v1/documents.")]
PagesField = Annotated[str | None, Form(max_length=200, description=PAGES_DESCRIPTION)]
PasswordField = Annotated[
    str | None, Form(max_length=MAX_PASSWORD_CHARS, description="The password of an encrypted PDF.")
]
ImageIdField = Annotated[str | None, Form(description="Id of an image uploaded with POST /api/v1/images.")]
FilesField = Annotated[list[UploadFile] | None, File(description="Images (or give image_ids).")]
ImageIdsField = Annotated[list[str] | None, Form(description="Ids of uploaded images.")]


async def many_images(
    service: TaskService, client: Client, files: list[UploadFile] | None, image_ids: list[str] | None
) -> list[StoredImage]:
    """The images of an ask or estimate request: stored ids first, then uploads, within the limit."""
    uploads, ids = files or [], image_ids or []
    service.check_image_count(len(uploads) + len(ids), "files" if uploads else "image_ids")
    stored = await service.resolve(client.owner, ids)
    return stored + [await read_upload(service, client, upload, "files") for upload in uploads]


async def single_input(
    service: ServiceDep,
    documents: DocumentsDep,
    client: ClientDep,
    file: FileField = None,
    image_id: ImageIdField = None,
    document_id: DocumentIdField = None,
    password: PasswordField = None,
) -> StoredImage | StoredDocument:
    """The one input of an OCR, describe or extract request: an image or a PDF, uploaded or by id."""
    if sum(value is not None for value in (file, image_id, document_id)) != 1:
        raise ValidationFailed("send exactly one of `file`, `image_id` or `document_id`", field="file")
    if document_id is not None:
        return await documents.resolve(client.owner, document_id)
    if image_id is not None:
        return await service.store.fetch(client.owner, image_id, field="image_id")
    assert file is not None
    return await read_image_or_pdf(service, documents, client, file, password, "file")


InputDep = Annotated[StoredImage | StoredDocument, Depends(single_input)]


async def images_and_pages(
    service: TaskService,
    documents: DocumentService,
    client: Client,
    inputs: AskInputs,
    pixel_budget: int,
) -> list[StoredImage]:
    """An ask's images: stored ids, uploaded images, and the pages of PDFs (uploaded or by id) rendered
    at the task's pixel budget, within the per-request image limit."""
    limit = service.settings.max_images_per_request
    uploads, ids = inputs.files or [], inputs.image_ids or []
    service.check_image_count(len(uploads) + len(ids) + bool(inputs.document_id), "files" if uploads else "image_ids")
    images = await service.resolve(client.owner, ids)
    pdfs = [await documents.resolve(client.owner, inputs.document_id)] if inputs.document_id else []
    for upload in uploads:
        read = await read_image_or_pdf(service, documents, client, upload, inputs.password, "files")
        if isinstance(read, StoredDocument):
            pdfs.append(read)
        else:
            images.append(read)
    for pdf in pdfs:
        images += await documents.pages_as_images(pdf, inputs.pages, pixel_budget, max(1, limit - len(images)))
    return images
