"""A tiny document model shared by the Markdown and HTML renderers.

The report is built once as a list of blocks; each renderer only decides how a
block looks. That keeps the two formats saying the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Cell:
    """One table cell: plain text (renderers escape it), whether it is the column's best, and whether
    it is highlighted (the best strategy of a slice column)."""

    text: str
    bold: bool = False
    highlight: bool = False


@dataclass
class Table:
    """Column headers, rows of cells, which columns are numbers (right-aligned), and which rows are
    highlighted (``highlighted``: row indices, e.g. the reference's)."""

    columns: list[str]
    rows: list[list[Cell]]
    numeric: list[bool] = field(default_factory=list)
    highlighted: list[int] = field(default_factory=list)

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
    """Where a plot goes, with the caption under it; only the HTML renderer draws either."""

    key: str
    caption: str = ""


Block = Heading | Paragraph | Bullets | Table | Code | Details | FigureRef
