"""The `pages` selection of a document task: "1-3,5" → [1, 2, 3, 5]."""

from __future__ import annotations

import re

from imagesense.errors import ValidationFailed

_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


def select_pages(selection: str | None, count: int, field: str = "pages") -> list[int]:
    """Page numbers (from 1, in the order given, each once); None or empty selects every page."""
    if not selection or not selection.strip():
        return list(range(1, count + 1))
    chosen: list[int] = []
    for part in selection.split(","):
        match = _RANGE.match(part)
        if match is None:
            raise ValidationFailed(f"{field}: {part.strip()!r} is not a page or a range like 1-3", field=field)
        first = int(match.group(1))
        last = int(match.group(2) or first)
        if first < 1 or last < first or last > count:
            raise ValidationFailed(f"{field}: {part.strip()!r} is outside pages 1-{count}", field=field)
        chosen += [page for page in range(first, last + 1) if page not in chosen]
    return chosen
