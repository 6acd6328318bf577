"""Uploaded images, kept in memory by content id with a least-recently-used bound on count and bytes,
and — with a shared store (Redis) — their bytes shared with every other replica."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from imagesense.errors import NotFound
from imagesense.images import DecodedImage
from imagesense.shared_store import BlockingCalls, SharedBlobs


def content_id(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


@dataclass(frozen=True)
class StoredImage:
    owner: str  # the client that uploaded it: only it can use, see or delete it
    image_id: str
    decoded: DecodedImage
    shared: bool = False  # its bytes are in the shared store too (uploads; not pages rendered here)

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

    def __init__(
        self,
        max_images: int,
        max_bytes: int,
        shared: SharedBlobs | None = None,
        decode: Callable[[bytes], DecodedImage] | None = None,
        blocking: BlockingCalls | None = None,
    ) -> None:
        self._max_images = max_images
        self._max_bytes = max_bytes
        self._items: OrderedDict[Key, StoredImage] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._shared = shared
        self._decode = decode
        self._blocking = blocking or BlockingCalls(None)

    def put(self, owner: str, image_id: str, decoded: DecodedImage, data: bytes | None = None) -> StoredImage:
        """Keep an image; ``data`` (its uploaded bytes) also goes to the shared store, if there is one."""
        shared = self._shared is not None and data is not None
        if self._shared is not None and data is not None:
            self._shared.put(_shared_key(owner, image_id), data)  # first: a failure stores nothing
        return self._keep(StoredImage(owner, image_id, decoded, shared))

    def _keep(self, item: StoredImage) -> StoredImage:
        key = (item.owner, item.image_id)
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
        if self._shared is None or (item is not None and not item.shared):
            return item
        if item is not None:  # still shared? A delete through another replica must win
            if self._shared.exists(_shared_key(owner, image_id)):
                return item
            with self._lock:
                self._remove(key)
            return None
        data = self._shared.get(_shared_key(owner, image_id))
        if data is None or self._decode is None:
            return None
        return self._keep(StoredImage(owner, image_id, self._decode(data), shared=True))

    async def lookup(self, owner: str, image_id: str) -> StoredImage | None:
        """``peek`` for the event loop: an image kept here and not shared answers at once; anything that
        asks the shared store (and may decode its bytes) runs on the store's executor."""
        if self._shared is None:
            return self.peek(owner, image_id)
        with self._lock:
            item = self._items.get((owner, image_id))
        if item is not None and not item.shared:
            return self.peek(owner, image_id)
        return await self._blocking.run(self.peek, owner, image_id)

    async def fetch(self, owner: str, image_id: str, field: str = "image_id") -> StoredImage:
        """``get`` for the event loop (see ``lookup``)."""
        item = await self.lookup(owner, image_id)
        if item is None:
            raise NotFound(f"no image with id {image_id!r}: upload it with POST /api/v1/images", field=field)
        return item

    async def add(self, owner: str, image_id: str, decoded: DecodedImage, data: bytes | None = None) -> StoredImage:
        """``put`` for the event loop: the shared store's write runs on the store's executor."""
        if self._shared is None or data is None:
            return self.put(owner, image_id, decoded, data)
        return await self._blocking.run(self.put, owner, image_id, decoded, data)

    async def remove(self, owner: str, image_id: str) -> None:
        """``delete`` for the event loop."""
        await self._blocking.run(self.delete, owner, image_id)

    def get(self, owner: str, image_id: str, field: str = "image_id") -> StoredImage:
        item = self.peek(owner, image_id)
        if item is None:
            raise NotFound(f"no image with id {image_id!r}: upload it with POST /api/v1/images", field=field)
        return item

    def delete(self, owner: str, image_id: str) -> None:
        shared = self._shared is not None and self._shared.delete(_shared_key(owner, image_id))
        with self._lock:
            if not self._remove((owner, image_id)) and not shared:
                raise NotFound(f"no image with id {image_id!r}", field="image_id")

    def _remove(self, key: Key) -> bool:
        item = self._items.pop(key, None)
        if item is None:
            return False
        self._bytes -= item.memory_bytes
        return True

    def problem(self) -> str | None:
        """What is wrong with the shared store, if there is one and it doesn't answer."""
        return self._shared.problem() if self._shared is not None else None

    def __len__(self) -> int:
        return len(self._items)


def _shared_key(owner: str, image_id: str) -> str:
    return f"image:{owner}:{image_id}"
