"""Render the report blocks as GitHub-flavoured Markdown (readable raw, renders on any forge)."""

from __future__ import annotations

import html
import re

from .blocks import Block, Bullets, Cell, Code, Details, FigureRef, Heading, Paragraph, Table

# Always special: backslash, backtick, star, pipe, brackets. An underscore only
# outside a word (GFM ignores intraword "p_holm"); "<" only where it could open a tag.
_SPECIAL = re.compile(r"[\\`*|\[\]]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])|<(?=[A-Za-z/!?])")


def escape(text: str) -> str:
    """Escape Markdown syntax so method names, markers and errors show literally (``**`` stays two stars)."""
    return _SPECIAL.sub(lambda m: "\\" + m.group(0), str(text)).replace("\n", " ")


def _table(table: Table) -> list[str]:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cells) + " |"

    out = [line([escape(c) for c in table.columns])]
    out.append(line(["---:" if num else "---" for num in table.numeric]))
    for row in table.rows:
        out.append(line([_cell(c) for c in row]))
    return out


def _cell(cell: Cell) -> str:
    """Bold for the column's best, italic for a highlighted cell (both: bold italic)."""
    text = escape(cell.text)
    if not cell.text:
        return text
    if cell.bold:
        text = f"**{text}**"
    return f"*{text}*" if cell.highlight else text


def _code(text: str) -> list[str]:
    """A fenced block whose fence is longer than any backtick run inside, so tracebacks cannot end it."""
    runs = [len(m) for m in re.findall(r"`+", text)]
    fence = "`" * max(3, max(runs, default=0) + 1)
    return [fence, text.rstrip("\n"), fence]


def render_blocks(blocks: list[Block]) -> list[str]:
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out += ["#" * block.level + " " + escape(block.text), ""]
        elif isinstance(block, Paragraph):
            out += [escape(block.text), ""]
        elif isinstance(block, Bullets):
            out += [f"- {escape(item)}" for item in block.items] + [""]
        elif isinstance(block, Table):
            out += _table(block) + [""]
        elif isinstance(block, Code):
            out += _code(block.text) + [""]
        elif isinstance(block, Details):
            # GitHub renders <details>; the blank lines let Markdown inside it render too
            out += ["<details>", f"<summary>{html.escape(block.summary)}</summary>", ""]
            out += render_blocks(block.blocks)
            out += ["</details>", ""]
        elif isinstance(block, FigureRef):
            continue
    return out


def render_markdown(blocks: list[Block]) -> str:
    """The report as Markdown; plots live in report.html only."""
    lines = render_blocks(blocks)
    if lines and lines[0].startswith("# "):
        lines[4:4] = ["Plots: see report.html beside this file.", ""]
    return "\n".join(lines).rstrip() + "\n"
