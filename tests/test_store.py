"""The image store: content ids and the LRU bounds (unit tests of imagesense.store)."""

from __future__ import annotations

import pytest
from PIL import Image

from imagesense.errors import NotFound
from imagesense.images import DecodedImage
from imagesense.store import ImageStore, content_id

ME, THEM = "key:me", "key:them"


def decoded(width: int = 10, height: int = 10) -> DecodedImage:
    return DecodedImage(image=Image.new("RGB", (width, height)), format="png", byte_size=100)


def test_content_id_depends_only_on_the_bytes() -> None:
    assert content_id(b"abc") == content_id(b"abc") != content_id(b"abd")
    assert len(content_id(b"abc")) == 32


def test_least_recently_used_goes_first_when_over_the_count() -> None:
    store = ImageStore(max_images=2, max_bytes=10**9)
    store.put(ME, "a", decoded())
    store.put(ME, "b", decoded())
    store.get(ME, "a")  # touch: b is now the oldest
    store.put(ME, "c", decoded())
    assert store.peek(ME, "b") is None
    assert store.peek(ME, "a") is not None
    assert store.peek(ME, "c") is not None
    assert len(store) == 2


def test_byte_cap_evicts_but_keeps_the_newest() -> None:
    store = ImageStore(max_images=100, max_bytes=1000)  # 10×10 RGB = 300 bytes each
    for name in "abcd":
        store.put(ME, name, decoded())
    assert [name for name in "abcd" if store.peek(ME, name)] == ["b", "c", "d"]
    store.put(ME, "huge", decoded(100, 100))  # alone over the cap: kept, everything else evicted
    assert store.peek(ME, "huge") is not None
    assert len(store) == 1


def test_missing_and_deleted_images_are_404() -> None:
    store = ImageStore(max_images=2, max_bytes=10**6)
    store.put(ME, "a", decoded())
    store.delete(ME, "a")
    with pytest.raises(NotFound) as caught:
        store.get(ME, "a", field="image_ids")
    assert caught.value.field == "image_ids"
    with pytest.raises(NotFound):
        store.delete(ME, "a")


def test_an_image_is_its_owners_alone() -> None:
    store = ImageStore(max_images=10, max_bytes=10**6)
    mine = store.put(ME, "a", decoded())
    assert store.peek(THEM, "a") is None  # the same id under another owner is not there
    with pytest.raises(NotFound):
        store.get(THEM, "a")
    with pytest.raises(NotFound):
        store.delete(THEM, "a")
    assert store.get(ME, "a") is mine
    theirs = store.put(THEM, "a", decoded())  # the same bytes uploaded by both: two images
    assert len(store) == 2
    assert theirs.scoped_id != mine.scoped_id
