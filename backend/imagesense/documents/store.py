"""Uploaded PDFs, kept by owner and content id (least recently used out first), with their page list."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from imagesense.documents.pdf import PageInfo
from imagesense.errors import NotFound

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
    def __init__(self, max_documents: int, max_bytes: int) -> None:
        self._max_documents = max_documents
        self._max_bytes = max_bytes
        self._items: OrderedDict[Key, StoredDocument] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def put(self, document: StoredDocument) -> StoredDocument:
        key = (document.owner, document.document_id)
        with self._lock:
            self._remove(key)
            self._items[key] = document
            self._bytes += len(document.data)
            while len(self._items) > 1 and (len(self._items) > self._max_documents or self._bytes > self._max_bytes):
                self._remove(next(iter(self._items)))
        return document

    def get(self, owner: str, document_id: str, field: str = "document_id") -> StoredDocument:
        with self._lock:
            found = self._items.get((owner, document_id))
            if found is None:
                raise NotFound(f"no document {document_id!r}; upload it with POST /api/v1/documents", field=field)
            self._items.move_to_end((owner, document_id))
            return found

    def _remove(self, key: Key) -> None:
        if (old := self._items.pop(key, None)) is not None:
            self._bytes -= len(old.data)
