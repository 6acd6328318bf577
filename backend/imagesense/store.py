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
    owner: str  # the client that uploaded it: only it can use, see or delete it
    image_id: str
    decoded: DecodedImage

    @property
    def scoped_id(self) -> str:
        """What the image is known by inside the service (prefix cache keys): its owner's and its own id."""
        return f"{self.owner}/{self.image_id}"

    @property
    def memory_bytes(self) -> int:
        return self.decoded.width * self.decoded.height * 3


Key = tuple[str, str]  # (owner, image id): the same bytes uploaded by two clients are two images


class ImageStore:
    """Images by owner and content id. Ids are content hashes, so predictable: the owner in the key is
    what keeps one client from using, seeing or deleting another's images (or learning it has one)."""

    def __init__(self, max_images: int, max_bytes: int) -> None:
        self._max_images = max_images
        self._max_bytes = max_bytes
        self._items: OrderedDict[Key, StoredImage] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def put(self, owner: str, image_id: str, decoded: DecodedImage) -> StoredImage:
        item = StoredImage(owner, image_id, decoded)
        key = (owner, image_id)
        with self._lock:
            self._remove(key)
            self._items[key] = item
            self._bytes += item.memory_bytes
            # Evict the oldest, never the one just added (even if it alone is over the byte cap).
            while len(self._items) > 1 and (len(self._items) > self._max_images or self._bytes > self._max_bytes):
                self._remove(next(iter(self._items)))
        return item

    def peek(self, owner: str, image_id: str) -> StoredImage | None:
        key = (owner, image_id)
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
            return item

    def get(self, owner: str, image_id: str, field: str = "image_id") -> StoredImage:
        item = self.peek(owner, image_id)
        if item is None:
            raise NotFound(f"no image with id {image_id!r}: upload it with POST /api/v1/images", field=field)
        return item

    def delete(self, owner: str, image_id: str) -> None:
        with self._lock:
            if not self._remove((owner, image_id)):
                raise NotFound(f"no image with id {image_id!r}", field="image_id")

    def _remove(self, key: Key) -> bool:
        item = self._items.pop(key, None)
        if item is None:
            return False
        self._bytes -= item.memory_bytes
        return True

    def __len__(self) -> int:
        return len(self._items)
