"""Comparison reports: does transfer beat the best baseline on the target domain?

:func:`write_report` turns the runner's report data (runs, comparisons,
dataset summary, tuning) into ``report.md``, ``report.html`` (self-contained,
offline plots), ``results.csv``, ``summary.csv`` and ``report.json``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from .aggregate import ReportContext, build_context
from ..atomicfile import write_files_atomically
from .document import build_document, title
from .files import report_json, results_frame, summary_frame, to_csv
from .figures import build_figures
from .html import render_html
from .markdown import render_markdown
from .verdict import Verdict, make_verdict

#: keys of :func:`write_report`'s result and the file each names
REPORT_FILES = {
    "markdown": "report.md",
    "html": "report.html",
    "results": "results.csv",
    "summary": "summary.csv",
    "json": "report.json",
}


def render_report(data: dict, generated_at: str | None = None) -> dict[str, str]:
    """Every report file's text, keyed like :data:`REPORT_FILES`; nothing touches the disk."""
    generated_at = generated_at or datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    ctx = build_context(data)
    verdict = make_verdict(ctx)
    figures = build_figures(ctx)
    return {
        "markdown": render_markdown(build_document(ctx, verdict, (), generated_at)),
        "html": render_html(title(ctx), build_document(ctx, verdict, figures.keys(), generated_at), figures),
        "results": to_csv(results_frame(ctx)),
        "summary": to_csv(summary_frame(ctx)),
        "json": report_json(ctx, verdict.as_dict(), generated_at),
    }


def write_report(data: dict, out_dir: str | Path, *, generated_at: str | None = None) -> dict[str, Path]:
    """Render the report and write its five files atomically into ``out_dir``; return their paths.

    Everything is rendered before anything is written, and every file goes
    through a temp file plus ``os.replace``, so a failure leaves either the
    previous report or none — never a partial one. ``generated_at`` pins the
    timestamp (byte-identical reports for identical data).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    texts = render_report(data, generated_at)
    paths = {key: out / name for key, name in REPORT_FILES.items()}
    write_files_atomically({paths[key]: texts[key].encode("utf-8") for key in REPORT_FILES})
    return paths


__all__ = ["REPORT_FILES", "ReportContext", "Verdict", "build_context", "make_verdict", "render_report", "write_report"]
