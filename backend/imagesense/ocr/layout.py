"""Reading order for detected text lines: page rotation, rows, plain text and Markdown.

Boxes stay in the coordinates of the image as uploaded (after EXIF orientation); only the ordering is
computed in the upright frame of the page, so a page photographed sideways or upside down still reads
top to bottom, left to right.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from imagesense.engine.protocol import Point, Rotation, TextLine


@dataclass(frozen=True)
class _Placed:
    line: TextLine
    left: float
    top: float
    right: float
    bottom: float

    @property
    def height(self) -> float:
        return self.bottom - self.top


def to_upright(point: Point, rotation: Rotation, width: int, height: int) -> Point:
    """Where an image point lies on the page turned back upright (image is ``width`` × ``height``)."""
    x, y = point
    if rotation == 90:
        return height - y, x
    if rotation == 180:
        return width - x, height - y
    if rotation == 270:
        return y, width - x
    return x, y


def reading_order(lines: Sequence[TextLine], rotation: Rotation, width: int, height: int) -> list[list[TextLine]]:
    """Group lines into rows (top to bottom) of segments (left to right) on the upright page."""
    placed = []
    for line in lines:
        corners = [to_upright(point, rotation, width, height) for point in line.box]
        xs, ys = [c[0] for c in corners], [c[1] for c in corners]
        placed.append(_Placed(line, min(xs), min(ys), max(xs), max(ys)))
    rows: list[list[_Placed]] = []
    for item in sorted(placed, key=lambda p: (p.top + p.bottom) / 2):
        row = rows[-1] if rows else None
        if row is not None and _same_row(row, item):
            row.append(item)
        else:
            rows.append([item])
    return [[p.line for p in sorted(row, key=lambda p: p.left)] for row in rows]


def _same_row(row: list[_Placed], item: _Placed) -> bool:
    top = min(p.top for p in row)
    bottom = max(p.bottom for p in row)
    overlap = min(bottom, item.bottom) - max(top, item.top)
    return overlap > 0.5 * min(item.height, bottom - top)


def to_text(rows: Sequence[Sequence[TextLine]]) -> str:
    return "\n".join(" ".join(line.text for line in row) for row in rows)


_MARKDOWN_SPECIAL = str.maketrans({char: f"\\{char}" for char in "\\`*_[]#|<>"})


def _escape(text: str) -> str:
    return text.translate(_MARKDOWN_SPECIAL)


def to_markdown(rows: Sequence[Sequence[TextLine]]) -> str:
    """Rows as Markdown: runs of two or more rows with the same number (≥ 2) of cells become a table."""
    blocks: list[str] = []
    index = 0
    while index < len(rows):
        cells = len(rows[index])
        end = index
        while end < len(rows) and cells >= 2 and len(rows[end]) == cells:
            end += 1
        if end - index >= 2:
            table = [[_escape(line.text) for line in row] for row in rows[index:end]]
            blocks.append(_table(table))
            index = end
        else:
            blocks.append(_escape(" ".join(line.text for line in rows[index])))
            index += 1
    return "\n\n".join(blocks)


def _table(cells: list[list[str]]) -> str:
    # A page has no header row to offer: the header stays empty and every row is a body row.
    width = len(cells[0])
    lines = ["|" + "   |" * width, "|" + " --- |" * width]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)
