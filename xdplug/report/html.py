"""Render the report blocks as one self-contained HTML page with plotly figures.

The page works offline and from a file: no CDN, no external script. plotly.js
is inlined exactly once in the head; every figure is emitted with
``include_plotlyjs=False`` and reuses it.
"""

from __future__ import annotations

import html

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from .blocks import Block, Bullets, Code, Details, FigureRef, Heading, Paragraph, Table
from .figures import div_id

STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1200px;
       padding: 0 1em; color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 0.8em 0 1.2em; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; vertical-align: top; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
pre { background: #f7f7f7; border: 1px solid #ddd; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
details { margin: 0.6em 0 1em; }
summary { cursor: pointer; font-weight: 600; }
p.verdict { font-size: 1.08em; background: #eef5ff; border-left: 4px solid #1f77b4; padding: 0.7em 1em; }
.figure { margin: 1em 0 1.5em; }
p.caption { font-size: 0.9em; color: #555; margin: -0.8em 0 1.5em; }
tr.reference td { background: #fdecea; }
td.highlight { background: #dbe9f6; }
"""


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _table(table: Table) -> str:
    head = "".join(f"<th>{_esc(c)}</th>" for c in table.columns)
    body = []
    for i, row in enumerate(table.rows):
        cells = []
        for cell, num in zip(row, table.numeric):
            text = f"<strong>{_esc(cell.text)}</strong>" if cell.bold and cell.text else _esc(cell.text)
            classes = " ".join(c for c, on in (("num", num), ("highlight", cell.highlight and cell.text)) if on)
            cells.append(f'<td class="{classes}">{text}</td>' if classes else f"<td>{text}</td>")
        tr = '<tr class="reference">' if i in table.highlighted else "<tr>"
        body.append(tr + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def figure_html(key: str, fig: go.Figure) -> str:
    """One figure's div and plotting call, relying on the page's single inlined plotly.js."""
    inner = fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id(key),
                        config={"displaylogo": False, "responsive": True})
    return f'<div class="figure">{inner}</div>'


def render_blocks(blocks: list[Block], figures: dict[str, go.Figure], verdict_heading: str = "Verdict") -> list[str]:
    out: list[str] = []
    after_verdict = False
    for block in blocks:
        if isinstance(block, Heading):
            level = min(max(block.level, 1), 6)
            out.append(f"<h{level}>{_esc(block.text)}</h{level}>")
            after_verdict = block.text == verdict_heading
            continue
        if isinstance(block, Paragraph):
            cls = ' class="verdict"' if after_verdict else ""
            out.append(f"<p{cls}>{_esc(block.text)}</p>")
        elif isinstance(block, Bullets):
            out.append("<ul>" + "".join(f"<li>{_esc(i)}</li>" for i in block.items) + "</ul>")
        elif isinstance(block, Table):
            out.append(_table(block))
        elif isinstance(block, Code):
            out.append(f"<pre><code>{_esc(block.text)}</code></pre>")
        elif isinstance(block, Details):
            out.append(f"<details><summary>{_esc(block.summary)}</summary>")
            out += render_blocks(block.blocks, figures)
            out.append("</details>")
        elif isinstance(block, FigureRef) and block.key in figures:
            out.append(figure_html(block.key, figures[block.key]))
            if block.caption:
                out.append(f'<p class="caption">{_esc(block.caption)}</p>')
        after_verdict = False
    return out


def render_html(title: str, blocks: list[Block], figures: dict[str, go.Figure]) -> str:
    """The full page: styles and plotly.js inline in the head, then the report body."""
    body = "\n".join(render_blocks(blocks, figures))
    plotly_js = get_plotlyjs() if figures else ""
    script = f'<script type="text/javascript">{plotly_js}</script>' if plotly_js else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_esc(title)}</title>\n<style>{STYLE}</style>\n{script}\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
    )
