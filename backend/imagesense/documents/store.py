"""Uploaded PDFs, kept by owner and content id (least recently used out first), with their page list;
with a shared store (Redis), shared with every other replica."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass

from imagesense.documents.pdf import PageInfo
from imagesense.errors import NotFound
from imagesense.shared_store import BlockingCalls, SharedBlobs

Key = tuple[str, str]  # (owner, document id)


@dataclass(frozen=True)
class StoredDocument:
    owner: str
    document_id: str
    data: bytes
    password: str | None
    pages: list[PageInfo]

    @property
    def scoped_id(self) -> str:
        return f"{self.owner}/{self.document_id}"


class DocumentStore:
    def __init__(
        self,
        max_documents: int,
        max_bytes: int,
        shared: SharedBlobs | None = None,
        blocking: BlockingCalls | None = None,
    ) -> None:
        self._max_documents = max_documents
        self._max_bytes = max_bytes
        self._items: OrderedDict[Key, StoredDocument] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._shared = shared
        self._blocking = blocking or BlockingCalls(None)

    def put(self, document: StoredDocument) -> StoredDocument:
        if self._shared is not None:
            self._shared.put(_shared_key(document.owner, document.document_id), _packed(document))
        return self._keep(document)

    def _keep(self, document: StoredDocument) -> StoredDocument:
        key = (document.owner, document.document_id)
        with self._lock:
            self._remove(key)
            self._items[key] = document
            self._bytes += len(document.data)
            while len(self._items) > 1 and (len(self._items) > self._max_documents or self._bytes > self._max_bytes):
                self._remove(next(iter(self._items)))
        return document

    async def add(self, document: StoredDocument) -> StoredDocument:
        """``put`` for the event loop: the shared store's write runs on the store's executor."""
        return await self._blocking.run(self.put, document)

    async def fetch(self, owner: str, document_id: str, field: str = "document_id") -> StoredDocument:
        """``get`` for the event loop: a document kept here answers at once; the shared store is asked
        on the store's executor."""
        with self._lock:
            kept = (owner, document_id) in self._items
        if kept or self._shared is None:
            return self.get(owner, document_id, field)
        return await self._blocking.run(self.get, owner, document_id, field)

    def get(self, owner: str, document_id: str, field: str = "document_id") -> StoredDocument:
        with self._lock:
            found = self._items.get((owner, document_id))
            if found is not None:
                self._items.move_to_end((owner, document_id))
        if found is None and self._shared is not None:
            data = self._shared.get(_shared_key(owner, document_id))
            found = self._keep(_unpacked(owner, document_id, data)) if data is not None else None
        if found is None:
            raise NotFound(f"no document {document_id!r}; upload it with POST /api/v1/documents", field=field)
        return found

    def _remove(self, key: Key) -> None:
        if (old := self._items.pop(key, None)) is not None:
            self._bytes -= len(old.data)


def _shared_key(owner: str, document_id: str) -> str:
    return f"document:{owner}:{document_id}"


def _packed(document: StoredDocument) -> bytes:
    """The page list and password as a JSON line, then the PDF's bytes."""
    header = {"password": document.password, "pages": [asdict(page) for page in document.pages]}
    return json.dumps(header).encode() + b"\n" + document.data


def _unpacked(owner: str, document_id: str, packed: bytes) -> StoredDocument:
    header, _, data = packed.partition(b"\n")
    meta = json.loads(header)
    pages = [PageInfo(**page) for page in meta["pages"]]
    return StoredDocument(owner, document_id, data, meta["password"], pages)
