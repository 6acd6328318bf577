"""Images named by URL in /v1 messages: ``data:`` URLs (images, or a PDF's pages), uploaded images
(``imagesense://<id>``), and
http(s) URLs under a prefix the operator allows — fetched with a time limit, a size cap, and redirects
followed only within what is allowed (a server-side fetch must not become a way into the network)."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from urllib.parse import SplitResult, urljoin, urlsplit

import httpx

from imagesense.documents.service import DocumentService
from imagesense.errors import InvalidImage, PayloadTooLarge, ValidationFailed
from imagesense.service import TaskService
from imagesense.settings import Settings
from imagesense.store import StoredImage

UPLOADED_SCHEME = "imagesense://"
MAX_REDIRECTS = 3


@dataclass(frozen=True)
class UrlPrefix:
    scheme: str
    host: str
    port: int | None
    path: str

    @classmethod
    def parse(cls, prefix: str) -> UrlPrefix:
        parts = urlsplit(prefix)
        return cls(parts.scheme.lower(), (parts.hostname or "").lower(), _port(parts), parts.path or "/")

    def covers(self, url: SplitResult) -> bool:
        same_origin = (url.scheme.lower(), (url.hostname or "").lower(), _port(url)) == (
            self.scheme,
            self.host,
            self.port,
        )
        return same_origin and not url.username and (url.path or "/").startswith(self.path)


def _port(parts: SplitResult) -> int | None:
    try:
        return parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())
    except ValueError:  # a port that isn't a number: matches no prefix
        return -1


class ImageUrls:
    """Loads the images of /v1 messages into the image store; made in the lifespan (it owns an HTTP client)."""

    def __init__(self, settings: Settings, service: TaskService, documents: DocumentService) -> None:
        self._service = service
        self._documents = documents
        self._max_bytes = settings.max_upload_bytes
        self._allowed = [UrlPrefix.parse(prefix) for prefix in settings.allowed_image_urls]
        self._http = httpx.AsyncClient(timeout=settings.image_url_timeout_s, follow_redirects=False)
        self._timeout_s = settings.image_url_timeout_s

    async def close(self) -> None:
        await self._http.aclose()

    @property
    def max_images(self) -> int:
        return self._service.settings.max_images_per_request

    def check_image_count(self, count: int, field: str) -> None:
        """The request's images counted before any is loaded: the one rule every surface applies."""
        self._service.check_image_count(count, field)

    async def load(self, owner: str, url: str, field: str, max_pages: int | None = None) -> list[StoredImage]:
        """The image a URL names; a PDF (a data: URL of application/pdf) gives its first pages, at most
        ``max_pages`` (by default as many as a request may carry), rendered at the largest pixel budget
        (each task's budget fits below)."""
        if url.startswith("data:application/pdf"):
            document = await self._documents.upload(owner, self.decode_data_url(url, field), None, field=field)
            budget = self._service.settings.vision_max_pixels
            return await self._documents.pages_as_images(document, None, budget, max(1, max_pages or self.max_images))
        return [await self._load_image(owner, url, field)]

    async def _load_image(self, owner: str, url: str, field: str) -> StoredImage:
        if url.startswith("data:"):
            return await self._service.upload(owner, self.decode_data_url(url, field), field=field)
        if url.startswith(UPLOADED_SCHEME):
            return await self._service.store.fetch(owner, url.removeprefix(UPLOADED_SCHEME), field=field)
        if urlsplit(url).scheme.lower() in ("http", "https"):
            return await self._service.upload(owner, await self.fetch(url, field), field=field)
        raise ValidationFailed(
            f"{field}: an image URL is a data: URL, {UPLOADED_SCHEME}<image_id>, or an allowed http(s) URL",
            field=field,
        )

    def decode_data_url(self, url: str, field: str) -> bytes:
        header, comma, payload = url.partition(",")
        if not comma or not header.endswith(";base64"):
            raise InvalidImage(f"{field}: a data: URL must be base64 (data:image/png;base64,...)", field=field)
        if len(payload) * 3 // 4 > self._max_bytes:
            raise PayloadTooLarge(f"{field}: the image is over {self._max_bytes} bytes, the limit", field=field)
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidImage(f"{field}: the data: URL is not valid base64", field=field) from None

    def _check_allowed(self, url: str, field: str) -> None:
        if not self._allowed:
            raise ValidationFailed(
                f"{field}: this server fetches no image URLs (IMAGESENSE_ALLOWED_IMAGE_URLS is empty); "
                "send the image as a data: URL or upload it and use imagesense://<image_id>",
                field=field,
            )
        if not any(prefix.covers(urlsplit(url)) for prefix in self._allowed):
            raise ValidationFailed(
                f"{field}: the URL is not under a prefix this server may fetch from (IMAGESENSE_ALLOWED_IMAGE_URLS)",
                field=field,
            )

    async def fetch(self, url: str, field: str) -> bytes:
        """The image's bytes; each redirect must lead to an allowed URL too."""
        for _ in range(MAX_REDIRECTS + 1):
            self._check_allowed(url, field)
            try:
                async with self._http.stream("GET", url) as response:
                    if response.is_redirect and "location" in response.headers:
                        url = urljoin(url, response.headers["location"])
                        continue
                    if response.status_code != 200:
                        raise InvalidImage(f"{field}: fetching the image gave HTTP {response.status_code}", field=field)
                    return await self._read_capped(response, field)
            except httpx.TimeoutException:
                raise InvalidImage(f"{field}: fetching the image took over {self._timeout_s} s", field=field) from None
            except httpx.HTTPError:
                raise InvalidImage(f"{field}: the image could not be fetched", field=field) from None
        raise InvalidImage(f"{field}: more than {MAX_REDIRECTS} redirects", field=field)

    async def _read_capped(self, response: httpx.Response, field: str) -> bytes:
        data = bytearray()
        async for chunk in response.aiter_bytes():
            data += chunk
            if len(data) > self._max_bytes:
                raise PayloadTooLarge(f"{field}: the image is over {self._max_bytes} bytes, the limit", field=field)
        return bytes(data)
