"""A tiny document model shared by the Markdown and HTML renderers.

The report is built once as a list of blocks; each renderer only decides how a
block looks. That keeps the two formats saying the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Cell:
    """One table cell: plain text (renderers escape it) and whether it is the column's best."""

    text: str
    bold: bool = False


@dataclass
class Table:
    """Column headers, rows of cells, and which columns are numbers (right-aligned)."""

    columns: list[str]
    rows: list[list[Cell]]
    numeric: list[bool] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.numeric:
            self.numeric = [False] * len(self.columns)


@dataclass
class Heading:
    level: int
    text: str


@dataclass
class Paragraph:
    text: str


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Code:
    text: str


@dataclass
class Details:
    """Collapsed content: full tracebacks, the resolved config, long tables."""

    summary: str
    blocks: list


@dataclass
class FigureRef:
    """Where a plot goes; only the HTML renderer draws it."""

    key: str


Block = Heading | Paragraph | Bullets | Table | Code | Details | FigureRef
