"""Uploaded images: store once, refer to them by id in tasks and on the stream."""

from typing import Annotated

from fastapi import APIRouter, File, Response, UploadFile

from imagesense.api.deps import ClientDep, ServiceDep, error_responses, read_upload
from imagesense.schemas.images import ImageInfo
from imagesense.store import StoredImage

router = APIRouter(prefix="/images", tags=["images"])


def image_info(item: StoredImage) -> ImageInfo:
    decoded = item.decoded
    return ImageInfo(
        image_id=item.image_id,
        width=decoded.width,
        height=decoded.height,
        format=decoded.format,
        bytes=decoded.byte_size,
    )


@router.post("", status_code=201, responses=error_responses(400, 401, 403, 413, 415, 422))
async def upload_image(service: ServiceDep, client: ClientDep, file: Annotated[UploadFile, File()]) -> ImageInfo:
    """Store an image; the same bytes always get the same id. Only the client (key) that uploaded it can
    use, see or delete it."""
    return image_info(await read_upload(service, client, file, "file"))


@router.get("/{image_id}", responses=error_responses(401, 404, 422))
async def get_image(service: ServiceDep, client: ClientDep, image_id: str) -> ImageInfo:
    return image_info(await service.store.fetch(client.owner, image_id))


@router.delete("/{image_id}", status_code=204, responses=error_responses(401, 403, 404, 422))
async def delete_image(service: ServiceDep, client: ClientDep, image_id: str) -> Response:
    await service.store.remove(client.owner, image_id)
    return Response(status_code=204)
