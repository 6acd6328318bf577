"""The image store: content ids and the LRU bounds (unit tests of imagesense.store)."""

from __future__ import annotations

import pytest
from PIL import Image

from imagesense.errors import NotFound
from imagesense.images import DecodedImage
from imagesense.store import ImageStore, content_id


def decoded(width: int = 10, height: int = 10) -> DecodedImage:
    return DecodedImage(image=Image.new("RGB", (width, height)), format="png", byte_size=100)


def test_content_id_depends_only_on_the_bytes() -> None:
    assert content_id(b"abc") == content_id(b"abc") != content_id(b"abd")
    assert len(content_id(b"abc")) == 32


def test_least_recently_used_goes_first_when_over_the_count() -> None:
    store = ImageStore(max_images=2, max_bytes=10**9)
    store.put("a", decoded())
    store.put("b", decoded())
    store.get("a")  # touch: b is now the oldest
    store.put("c", decoded())
    assert store.peek("b") is None
    assert store.peek("a") is not None
    assert store.peek("c") is not None
    assert len(store) == 2


def test_byte_cap_evicts_but_keeps_the_newest() -> None:
    store = ImageStore(max_images=100, max_bytes=1000)  # 10×10 RGB = 300 bytes each
    for name in "abcd":
        store.put(name, decoded())
    assert [name for name in "abcd" if store.peek(name)] == ["b", "c", "d"]
    store.put("huge", decoded(100, 100))  # alone over the cap: kept, everything else evicted
    assert store.peek("huge") is not None
    assert len(store) == 1


def test_missing_and_deleted_images_are_404() -> None:
    store = ImageStore(max_images=2, max_bytes=10**6)
    store.put("a", decoded())
    store.delete("a")
    with pytest.raises(NotFound) as caught:
        store.get("a", field="image_ids")
    assert caught.value.field == "image_ids"
    with pytest.raises(NotFound):
        store.delete("a")
