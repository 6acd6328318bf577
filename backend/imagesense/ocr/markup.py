"""A page's laid-out lines as plain text and as Markdown."""

from __future__ import annotations

from collections.abc import Sequence

from imagesense.ocr.layout import Block, Cell, Row


def cell_text(cell: Cell) -> str:
    return " ".join(line.text for line in cell)


def to_text(rows: Sequence[Row]) -> str:
    return "\n".join(" ".join(cell_text(cell) for cell in row) for row in rows)


_MARKDOWN_SPECIAL = str.maketrans({char: f"\\{char}" for char in "\\`*_[]#|<>"})


def _escape(text: str) -> str:
    return text.translate(_MARKDOWN_SPECIAL)


def to_markdown(blocks: Sequence[Block]) -> str:
    """Blocks as Markdown: tables as Markdown tables, each row of text a paragraph."""
    parts: list[str] = []
    for block in blocks:
        if block.kind == "table":
            parts.append(_table([[_escape(cell_text(cell)) for cell in row] for row in block.rows]))
        else:
            parts += [_escape(" ".join(cell_text(cell) for cell in row)) for row in block.rows]
    return "\n\n".join(parts)


def _table(cells: list[list[str]]) -> str:
    # A page has no header row to offer: the header stays empty and every row is a body row.
    width = len(cells[0])
    lines = ["|" + "   |" * width, "|" + " --- |" * width]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)
