"""Reading order for detected text lines: page rotation, skew, columns, rows, plain text and Markdown.

Boxes stay in the coordinates of the image as uploaded (after EXIF orientation); only the ordering is
computed in the upright frame of the page, so a page photographed sideways or upside down still reads
top to bottom, left to right.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from imagesense.engine.protocol import Point, Rotation, TextLine

MIN_LINES_TO_CUT = 4
PARAGRAPH_GAP = 1.5  # a vertical gap this many line heights high separates blocks
COLUMN_LINE_SHARE = 0.25  # a column's lines span at least this share of the block (table cells don't)


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


Row = list[TextLine]


@dataclass(frozen=True)
class Block:
    """A run of rows read together: running text, or a table (every row the same number of cells ≥ 2)."""

    kind: Literal["text", "table"]
    rows: list[Row]


def page_blocks(lines: Sequence[TextLine], rotation: Rotation, width: int, height: int) -> list[Block]:
    """The page's blocks in reading order, each its rows (top to bottom) of segments (left to right),
    on the upright, deskewed page: columns separated by a gutter are read one after the other."""
    placed = _deskewed([_upright(line, rotation, width, height) for line in lines])
    return [block for region in _blocks(placed) for block in split_tables(_rows(region))]


def reading_order(lines: Sequence[TextLine], rotation: Rotation, width: int, height: int) -> list[Row]:
    return [row for block in page_blocks(lines, rotation, width, height) for row in block.rows]


def split_tables(rows: Sequence[Row]) -> list[Block]:
    """Runs of two or more rows with the same number (≥ 2) of cells are tables; the rest is text."""
    blocks: list[Block] = []
    index = 0
    while index < len(rows):
        cells = len(rows[index])
        end = index
        while end < len(rows) and cells >= 2 and len(rows[end]) == cells:
            end += 1
        if end - index >= 2:
            blocks.append(Block("table", list(rows[index:end])))
            index = end
            continue
        if blocks and blocks[-1].kind == "text":
            blocks[-1].rows.append(rows[index])
        else:
            blocks.append(Block("text", [rows[index]]))
        index += 1
    return blocks


def _upright(line: TextLine, rotation: Rotation, width: int, height: int) -> tuple[TextLine, list[Point]]:
    return line, [to_upright(point, rotation, width, height) for point in line.box]


def _slope(corners: list[Point]) -> float | None:
    """The angle of a line's top edge (radians), for lines long enough to tell."""
    (x0, y0), (x1, y1), _, (x3, y3) = corners
    length, thickness = math.hypot(x1 - x0, y1 - y0), math.hypot(x3 - x0, y3 - y0)
    if length <= 2 * thickness:
        return None
    # The corners start at the text's top-left in the image; on a page turned upright they may start
    # at any corner, so only the angle modulo a quarter turn is the skew.
    quarter = math.pi / 2
    return (math.atan2(y1 - y0, x1 - x0) + quarter / 2) % quarter - quarter / 2


def _deskewed(lines: list[tuple[TextLine, list[Point]]]) -> list[_Placed]:
    """Boxes turned by the page's skew (the median slope of its lines), so rows are level again."""
    slopes = [slope for _, corners in lines if (slope := _slope(corners)) is not None]
    angle = -statistics.median(slopes) if slopes else 0.0
    cos, sin = math.cos(angle), math.sin(angle)
    placed = []
    for line, corners in lines:
        turned = [(x * cos - y * sin, x * sin + y * cos) for x, y in corners]
        xs, ys = [c[0] for c in turned], [c[1] for c in turned]
        placed.append(_Placed(line, min(xs), min(ys), max(xs), max(ys)))
    return placed


def _rows(placed: list[_Placed]) -> list[list[TextLine]]:
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


def _blocks(items: list[_Placed]) -> list[list[_Placed]]:
    """Recursive XY-cut: a gutter between two columns of prose first (read left, then right), else
    the widest gap between paragraphs; a table's short cells are never split into columns."""
    if len(items) < MIN_LINES_TO_CUT:
        return [items]
    line_height = statistics.median(p.height for p in items)
    gutter = _widest_gap([(p.left, p.right) for p in items])
    if gutter is not None and gutter[1] - gutter[0] >= line_height:
        cut = (gutter[0] + gutter[1]) / 2
        left, right = [p for p in items if p.right <= cut], [p for p in items if p.left >= cut]
        block_width = max(p.right for p in items) - min(p.left for p in items)
        if _prose(left, block_width) and _prose(right, block_width):
            return _blocks(left) + _blocks(right)
    gap = _widest_gap([(p.top, p.bottom) for p in items])
    if gap is not None and gap[1] - gap[0] >= PARAGRAPH_GAP * line_height:
        cut = (gap[0] + gap[1]) / 2
        return _blocks([p for p in items if p.bottom <= cut]) + _blocks([p for p in items if p.top >= cut])
    return [items]


def _widest_gap(spans: list[tuple[float, float]]) -> tuple[float, float] | None:
    """The widest stretch no span covers, between the first span's start and the last one's end."""
    widest: tuple[float, float] | None = None
    ordered = sorted(spans)
    reach = ordered[0][1]
    for start, end in ordered[1:]:
        if start > reach and (widest is None or start - reach > widest[1] - widest[0]):
            widest = (reach, start)
        reach = max(reach, end)
    return widest


def _prose(side: list[_Placed], block_width: float) -> bool:
    """Lines of running text (a column), not the short cells of a table."""
    if len(side) < 2:
        return False
    return statistics.median(p.right - p.left for p in side) >= COLUMN_LINE_SHARE * block_width


def to_text(rows: Sequence[Sequence[TextLine]]) -> str:
    return "\n".join(" ".join(line.text for line in row) for row in rows)


_MARKDOWN_SPECIAL = str.maketrans({char: f"\\{char}" for char in "\\`*_[]#|<>"})


def _escape(text: str) -> str:
    return text.translate(_MARKDOWN_SPECIAL)


def to_markdown(rows: Sequence[Row]) -> str:
    """Rows as Markdown: tables (see ``split_tables``) as Markdown tables, other rows as paragraphs."""
    parts: list[str] = []
    for block in split_tables(rows):
        if block.kind == "table":
            parts.append(_table([[_escape(line.text) for line in row] for row in block.rows]))
        else:
            parts += [_escape(" ".join(line.text for line in row)) for row in block.rows]
    return "\n\n".join(parts)


def _table(cells: list[list[str]]) -> str:
    # A page has no header row to offer: the header stays empty and every row is a body row.
    width = len(cells[0])
    lines = ["|" + "   |" * width, "|" + " --- |" * width]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)
