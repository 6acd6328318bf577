"""Uploaded images, kept in memory by content id with a least-recently-used bound on count and bytes."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

from imagesense.errors import NotFound
from imagesense.images import DecodedImage


def content_id(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


@dataclass(frozen=True)
class StoredImage:
    image_id: str
    decoded: DecodedImage

    @property
    def memory_bytes(self) -> int:
        return self.decoded.width * self.decoded.height * 3


class ImageStore:
    def __init__(self, max_images: int, max_bytes: int) -> None:
        self._max_images = max_images
        self._max_bytes = max_bytes
        self._items: OrderedDict[str, StoredImage] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def put(self, image_id: str, decoded: DecodedImage) -> StoredImage:
        item = StoredImage(image_id, decoded)
        with self._lock:
            self._remove(image_id)
            self._items[image_id] = item
            self._bytes += item.memory_bytes
            # Evict the oldest, never the one just added (even if it alone is over the byte cap).
            while len(self._items) > 1 and (len(self._items) > self._max_images or self._bytes > self._max_bytes):
                self._remove(next(iter(self._items)))
        return item

    def peek(self, image_id: str) -> StoredImage | None:
        with self._lock:
            item = self._items.get(image_id)
            if item is not None:
                self._items.move_to_end(image_id)
            return item

    def get(self, image_id: str, field: str = "image_id") -> StoredImage:
        item = self.peek(image_id)
        if item is None:
            raise NotFound(f"no image with id {image_id!r}: upload it with POST /api/v1/images", field=field)
        return item

    def delete(self, image_id: str) -> None:
        with self._lock:
            if not self._remove(image_id):
                raise NotFound(f"no image with id {image_id!r}", field="image_id")

    def _remove(self, image_id: str) -> bool:
        item = self._items.pop(image_id, None)
        if item is None:
            return False
        self._bytes -= item.memory_bytes
        return True

    def __len__(self) -> int:
        return len(self._items)
