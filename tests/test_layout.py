"""Reading order: rows along the text's own slope, columns read one after the other, tables kept in
rows, and never an order worse than the engine's own on a single-column page."""

from __future__ import annotations

import math

import pytest

from imagesense.devtools.samples import character_error_rate, sample
from imagesense.engine.protocol import TextLine
from imagesense.engine.rapidocr import RapidOcrEngine
from imagesense.ocr.layout import page_blocks, reading_order
from imagesense.ocr.markup import to_text
from imagesense.ocr.results import ocr_blocks, ocr_table


def line(text: str, left: float, top: float, width: float, height: float = 20, degrees: float = 0) -> TextLine:
    """A text line's box, turned by ``degrees`` about its top-left corner."""
    cos, sin = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    corners = [(0.0, 0.0), (width, 0.0), (width, height), (0.0, height)]
    box = tuple((left + x * cos - y * sin, top + x * sin + y * cos) for x, y in corners)
    return TextLine(text, 0.99, box)  # type: ignore[arg-type]


def test_sloping_lines_stay_whole_rows() -> None:
    """At 4°, a 900 px line drops 63 px from end to end: more than the line spacing. Grouping by raw y
    would split and interleave rows; along the slope each line is one row."""
    lines = []
    for index in range(4):
        top = 100 + 40 * index
        lines += [line(f"row{index}-a", 50, top, 400, degrees=4), line(f"row{index}-b", 470, top + 29, 400, degrees=4)]
    text = to_text(reading_order(lines, 0, 1000, 400))
    assert text.splitlines() == [f"row{index}-a row{index}-b" for index in range(4)]


def test_two_columns_are_read_one_after_the_other() -> None:
    left = [line(f"left {n} of the column text", 40, 40 + 40 * n, 380) for n in range(5)]
    right = [line(f"right {n} of the column text", 480, 40 + 40 * n, 380) for n in range(5)]
    rows = reading_order(right + left, 0, 900, 300)
    assert to_text(rows).splitlines() == [item.text for item in left + right]


def test_a_table_is_not_cut_into_columns() -> None:
    cells = []
    for row in range(5):
        cells += [line(f"item {row}", 40, 40 + 40 * row, 90), line(f"{row}.50", 600, 40 + 40 * row, 50)]
    rows = reading_order(cells, 0, 700, 300)
    assert [len(row) for row in rows] == [2] * 5


def test_a_wrapped_cell_stays_in_its_row() -> None:
    """A description wrapped onto a second line inside its cell: the row reads whole, the table keeps
    four cells a row, and the wrapped line is in the description's cell."""
    cells = []
    for row, top in enumerate([40, 100, 160]):
        cells += [line(f"A-{row}", 40, top, 60), line(f"first part {row}", 200, top, 160)]
        cells += [line(f"{row}", 560, top, 20), line(f"{row}.00", 680, top, 60)]
    cells.append(line("wrapped part 1", 200, 125, 150))  # under row 1's description, a line lower
    [block] = page_blocks(cells, 0, 800, 300)
    assert block.kind == "table"
    assert [len(row) for row in block.rows] == [4, 4, 4]
    assert [item.text for item in block.rows[1][1]] == ["first part 1", "wrapped part 1"]
    assert to_text(block.rows).splitlines()[1] == "A-1 first part 1 wrapped part 1 1 1.00"


def test_a_line_after_a_table_is_not_a_wrapped_cell() -> None:
    """Under the first column with nothing after it (a receipt's "Thank you!"): text after the table."""
    cells = []
    for row in range(3):
        cells += [line(f"item {row}", 40, 40 + 40 * row, 90), line(f"{row}.50", 600, 40 + 40 * row, 50)]
    cells.append(line("Thank you!", 40, 160, 120))
    blocks = page_blocks(cells, 0, 700, 300)
    assert [block.kind for block in blocks] == ["table", "text"]
    assert blocks[1].lines[0].text == "Thank you!"


@pytest.fixture(scope="module")
def engine() -> RapidOcrEngine:
    reader = RapidOcrEngine(threads=2)
    reader.warm_up()
    return reader


SINGLE_COLUMN = [
    "document",
    "skewed_3",
    "skewed_minus_4",
    "skewed_5",
    "skewed_zh",
    "receipt",
    "chinese",
    "perspective_page",
]


@pytest.mark.parametrize("name", SINGLE_COLUMN)
def test_never_worse_than_the_engine_own_order(engine: RapidOcrEngine, name: str) -> None:
    page = sample(name)
    reading = engine.read(page.image)
    ours = to_text(reading_order(reading.lines, reading.rotation, page.image.width, page.image.height))
    raw = "\n".join(item.text for item in reading.lines)
    assert character_error_rate(ours, page.text) <= character_error_rate(raw, page.text)


def test_blocks_and_tables_come_with_the_result(engine: RapidOcrEngine) -> None:
    """The receipt: its item rows are a table (two cells each), the title and thanks are text."""
    page = sample("receipt")
    reading = engine.read(page.image)
    blocks = page_blocks(reading.lines, reading.rotation, page.image.width, page.image.height)
    ordered = [item for block in blocks for item in block.lines]
    described = ocr_blocks(blocks)
    assert [block.kind for block in described] == ["text", "table", "text"]
    assert [index for block in described for index in block.lines] == list(range(len(ordered)))
    [table] = [ocr_table(block) for block in blocks if block.kind == "table"]
    assert (table.rows, table.columns) == (6, 2)
    assert [cell.text for cell in table.cells[-2:]] == ["TOTAL", "11.55"]


def test_two_column_blocks_are_separate(engine: RapidOcrEngine) -> None:
    page = sample("two_columns")
    reading = engine.read(page.image)
    blocks = page_blocks(reading.lines, reading.rotation, page.image.width, page.image.height)
    assert [len(block.rows) for block in blocks] == [5, 5]
    assert blocks[0].rows[0][0][0].text.startswith("Solar")


@pytest.mark.parametrize(("name", "shape"), [("table_wrapped", (5, 4)), ("invoice", (4, 3))])
def test_tables_are_read_row_by_row_with_their_cells(engine: RapidOcrEngine, name: str, shape: tuple[int, int]) -> None:
    """Rendered tables: one table of the printed rows × columns, each cell's text as printed (a
    wrapped cell's two lines joined)."""
    page = sample(name)
    reading = engine.read(page.image)
    blocks = page_blocks(reading.lines, reading.rotation, page.image.width, page.image.height)
    [table] = [ocr_table(block) for block in blocks if block.kind == "table"]
    assert (table.rows, table.columns) == shape
    rows = [" ".join(cell.text for cell in table.cells if cell.row == row) for row in range(table.rows)]
    printed = [row for row in page.lines if row in rows]
    assert rows == printed
