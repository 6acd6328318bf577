"""Reading order for detected text lines: page rotation, skew, columns, rows, plain text and Markdown.

Boxes stay in the coordinates of the image as uploaded (after EXIF orientation); only the ordering is
computed in the upright frame of the page, so a page photographed sideways or upside down still reads
top to bottom, left to right.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from imagesense.engine.protocol import Point, Rotation, TextLine

MIN_LINES_TO_CUT = 4
PARAGRAPH_GAP = 1.5  # a vertical gap this many line heights high separates blocks
WRAPPED_GAP_SHARE = 0.7  # a wrapped cell's next line sits closer than this share of the gap between rows
COLUMN_LINE_SHARE = 0.25  # a column's lines span at least this share of the block (table cells don't)
LEVEL_TOLERANCE = math.radians(3)  # a line within this of the page's skew runs level with the page


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


Cell = list[TextLine]  # one or more lines read together: a wrapped table cell has several
Row = list[Cell]  # a row's cells, left to right


@dataclass(frozen=True)
class Block:
    """A run of rows read together: running text, or a table (every row the same number of cells ≥ 2)."""

    kind: Literal["text", "table"]
    rows: list[Row]

    @property
    def lines(self) -> list[TextLine]:
        return [line for row in self.rows for cell in row for line in cell]


@dataclass(frozen=True)
class PageLayout:
    blocks: list[Block]  # in reading order
    # How far the lines run level with each other: the share, by length, of the lines long enough to
    # show a slope that run within LEVEL_TOLERANCE of the page's skew. Low on text set along a curve
    # or scattered at angles across a photo, where no row order is trustworthy.
    confidence: float


def page_layout(lines: Sequence[TextLine], rotation: Rotation, width: int, height: int) -> PageLayout:
    """The page's blocks in reading order, each its rows (top to bottom) of cells (left to right),
    on the upright, deskewed page: columns separated by a gutter are read one after the other."""
    upright = [_upright(line, rotation, width, height) for line in lines]
    measured = [(slope, _extent(corners)) for _, corners in upright if (slope := _slope(corners)) is not None]
    skew = statistics.median(slope for slope, _ in measured) if measured else 0.0
    placed = _deskewed(upright, skew)
    blocks = [block for run in _stacked(_blocks(placed)) for block in split_tables(_cells(_rows(run)))]
    level = sum(length for slope, length in measured if abs(_quarter_turn(slope - skew)) <= LEVEL_TOLERANCE)
    return PageLayout(blocks, level / sum(length for _, length in measured) if measured else 1.0)


def page_blocks(lines: Sequence[TextLine], rotation: Rotation, width: int, height: int) -> list[Block]:
    return page_layout(lines, rotation, width, height).blocks


def _stacked(regions: list[list[_Placed]]) -> list[list[_Placed]]:
    """Regions in reading order joined where each lies wholly below the one before — paragraphs of
    one column, or a table's rows spaced apart — so a table spread over them is still found; a column
    beside another starts a new run."""
    runs: list[list[_Placed]] = []
    for region in regions:
        if runs and min(p.top for p in region) >= max(p.bottom for p in runs[-1]):
            runs[-1] = runs[-1] + region
        else:
            runs.append(region)
    return runs


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
    along, across = (x1 - x0, y1 - y0), (x3 - x0, y3 - y0)
    if math.hypot(*across) > math.hypot(*along):
        along, across = across, along  # the detector starts a sideways page's boxes on their short edge
    if math.hypot(*along) <= 2 * math.hypot(*across):
        return None
    # On a page turned upright the corners may start at any corner of the text, so only the angle
    # modulo a quarter turn is the skew.
    return _quarter_turn(math.atan2(along[1], along[0]))


def _quarter_turn(angle: float) -> float:
    """An angle modulo a quarter turn, in [−45°, 45°)."""
    quarter = math.pi / 2
    return (angle + quarter / 2) % quarter - quarter / 2


def _extent(corners: list[Point]) -> float:
    return math.dist(corners[0], corners[1]) + math.dist(corners[0], corners[3])


def _deskewed(lines: list[tuple[TextLine, list[Point]]], skew: float) -> list[_Placed]:
    """Boxes turned back by the page's skew (the median slope of its lines), so rows are level again."""
    angle = -skew
    cos, sin = math.cos(angle), math.sin(angle)
    placed = []
    for line, corners in lines:
        turned = [(x * cos - y * sin, x * sin + y * cos) for x, y in corners]
        xs, ys = [c[0] for c in turned], [c[1] for c in turned]
        placed.append(_Placed(line, min(xs), min(ys), max(xs), max(ys)))
    return placed


def _rows(placed: list[_Placed]) -> list[list[_Placed]]:
    rows: list[list[_Placed]] = []
    for item in sorted(placed, key=lambda p: (p.top + p.bottom) / 2):
        row = rows[-1] if rows else None
        if row is not None and _same_row(row, item):
            row.append(item)
        else:
            rows.append([item])
    return [sorted(row, key=lambda p: p.left) for row in rows]


def _cells(rows: list[list[_Placed]]) -> list[Row]:
    """Rows of cells. A row that only continues cells of the row above — a table cell wrapped onto a
    second line — joins that row, so the table still reads row by row."""
    merged: list[list[list[_Placed]]] = []
    gaps = [min(p.top for p in below) - max(p.bottom for p in above) for above, below in itertools.pairwise(rows)]
    row_gap = statistics.median(gaps) if gaps else 0.0
    for index, row in enumerate(rows):
        following = rows[index + 1] if index + 1 < len(rows) else None
        columns = _continued_columns(merged[-1], row, following, row_gap) if merged else None
        if columns is None:
            merged.append([[item] for item in row])
            continue
        for item, column in zip(row, columns, strict=True):
            merged[-1][column].append(item)
    return [[[item.line for item in cell] for cell in row] for row in merged]


def _continued_columns(
    above: list[list[_Placed]], row: list[_Placed], following: list[_Placed] | None, row_gap: float
) -> list[int] | None:
    """The columns of ``above`` that ``row``'s lines continue, or None when it is a row of its own:
    each line must start under a different cell of a row of ≥ 2 cells, fit before the next cell, and
    follow its cell closer than a line's height and clearly closer than rows follow each other (a
    lone price under the price column of evenly spaced rows is a row whose label went unread). A row
    under the first cell alone is only a continuation when the table goes on below it (else it is
    the text after a table)."""
    if len(above) < 2 or len(row) >= len(above):
        return None
    lefts = [min(item.left for item in cell) for cell in above]
    columns = []
    for item in row:
        column = max((c for c, left in enumerate(lefts) if left <= item.left + item.height), default=None)
        if column is None or column in columns:
            return None
        next_left = lefts[column + 1] if column + 1 < len(lefts) else math.inf
        cell_bottom = max(part.bottom for part in above[column])
        gap = item.top - cell_bottom
        if item.left > lefts[column] + item.height or item.right > next_left:
            return None
        if gap > item.height or gap > WRAPPED_GAP_SHARE * row_gap:
            return None
        columns.append(column)
    if columns == [0] and (following is None or len(following) != len(above)):
        return None
    return columns


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
