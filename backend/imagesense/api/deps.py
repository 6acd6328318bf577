"""Dependencies: the objects built in the lifespan, and the image fields tasks share."""

from typing import Annotated

from fastapi import Depends, File, Form, UploadFile
from starlette.requests import HTTPConnection

from imagesense.errors import ValidationFailed
from imagesense.schemas.errors import ErrorResponse
from imagesense.service import TaskService
from imagesense.store import StoredImage


def get_service(connection: HTTPConnection) -> TaskService:
    service: TaskService = connection.app.state.service
    return service


ServiceDep = Annotated[TaskService, Depends(get_service)]


def error_responses(*statuses: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI entries for the errors a route can answer, all in the one error shape."""
    return {status: {"model": ErrorResponse} for status in statuses}


ERROR_RESPONSES = error_responses(400, 404, 413, 415, 422, 429, 503, 504)


async def read_upload(service: TaskService, upload: UploadFile, field: str) -> StoredImage:
    # Read one byte past the limit: enough to refuse an oversize file without holding all of it.
    data = await upload.read(service.settings.max_upload_bytes + 1)
    return await service.upload(data, field=field)


FileField = Annotated[UploadFile | None, File(description="The image file (JPEG, PNG, WebP, GIF, BMP, TIFF).")]
ImageIdField = Annotated[str | None, Form(description="Id of an image uploaded with POST /api/v1/images.")]
FilesField = Annotated[list[UploadFile] | None, File(description="Images (or give image_ids).")]
ImageIdsField = Annotated[list[str] | None, Form(description="Ids of uploaded images.")]


async def many_images(
    service: TaskService, files: list[UploadFile] | None, image_ids: list[str] | None
) -> list[StoredImage]:
    """The images of an ask or estimate request: stored ids first, then uploads, within the limit."""
    uploads, ids = files or [], image_ids or []
    service.check_image_count(len(uploads) + len(ids), "files" if uploads else "image_ids")
    return service.resolve(ids) + [await read_upload(service, upload, "files") for upload in uploads]


async def single_image(service: TaskService, file: UploadFile | None, image_id: str | None) -> StoredImage:
    """The one image of an OCR or describe request: an upload or a stored id, not both."""
    if (file is None) == (image_id is None):
        raise ValidationFailed("send exactly one of `file` or `image_id`", field="file")
    if file is not None:
        return await read_upload(service, file, "file")
    assert image_id is not None
    return service.store.get(image_id, field="image_id")
