"""Schemathesis hooks (SCHEMATHESIS_HOOKS=fuzz_hooks): image parts of uploads are real images of every
accepted format and size shape, as well as garbage, so the fuzzer reaches past the decoder."""

from __future__ import annotations

import dataclasses
import io
import os
from typing import Any

import schemathesis
from hypothesis import strategies as st
from PIL import Image

FORMATS = {
    "image/png": "PNG",
    "image/jpeg": "JPEG",
    "image/webp": "WEBP",
    "image/gif": "GIF",
    "image/bmp": "BMP",
    "image/tiff": "TIFF",
}


@st.composite
def real_image(draw: st.DrawFn, fmt: str) -> bytes:
    width = draw(st.integers(1, 1200))
    height = draw(st.integers(1, 900))
    mode = draw(
        st.sampled_from(["RGB", "L", "RGBA", "P", "1"] if fmt in ("PNG", "TIFF", "WEBP", "GIF") else ["RGB", "L"])
    )
    color = draw(st.integers(0, 255))
    image = Image.new(mode, (width, height), color if mode in ("L", "P", "1") else (color, 255 - color, 90))
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    data = buffer.getvalue()
    if draw(st.booleans()) and len(data) > 16:  # sometimes cut short: a truncated upload
        data = data[: draw(st.integers(8, len(data) - 1))]
    return data


for media_type, fmt in FORMATS.items():
    schemathesis.openapi.media_type(media_type, st.one_of(real_image(fmt), real_image(fmt), st.binary(max_size=2048)))


# An image the test uploaded before the run: half the generated bodies point at it instead of their own
# (random, unknown) ids and files, so fuzzed options reach the model and not only the validation.
KNOWN_IMAGE = os.environ.get("IMAGESENSE_FUZZ_IMAGE_ID")
_ONE_IMAGE, _MANY_IMAGES = ("/api/v1/ocr", "/api/v1/describe"), ("/api/v1/ask", "/api/v1/estimate")


def _with_known_image(path: str, fields: dict[str, Any]) -> dict[str, Any]:
    fields = dict(fields)
    if path in _ONE_IMAGE:
        fields.pop("file", None)
        fields["image_id"] = KNOWN_IMAGE
    else:
        fields.pop("files", None)
        fields["image_ids"] = [KNOWN_IMAGE]
    return fields


@schemathesis.hook
def flatmap_body(context: schemathesis.HookContext, body: Any) -> st.SearchStrategy[Any]:
    path = context.operation.path if context.operation is not None else ""
    fields = getattr(body, "body", body)
    if not KNOWN_IMAGE or path not in _ONE_IMAGE + _MANY_IMAGES or not isinstance(fields, dict):
        return st.just(body)
    known = _with_known_image(path, fields)
    return st.sampled_from([body, dataclasses.replace(body, body=known) if hasattr(body, "body") else known])
