"""Plotly figures for the HTML report.

Figures are plain ``plotly.graph_objects.Figure`` objects keyed by a stable
name; :mod:`xdplug.report.html` places them next to their section and inlines
plotly.js once for all of them.
"""

from __future__ import annotations

import re

import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from .aggregate import ReportContext, as_float

KIND_COLORS = {"baseline": "#7f7f7f", "strategy": "#1f77b4"}
PALETTE = qualitative.Plotly + qualitative.D3 + qualitative.Dark24
PHASE_DASH = {"source": "dot", "target": "solid", "train": "solid"}
LAYOUT = {"template": "plotly_white", "height": 420, "margin": {"l": 60, "r": 20, "t": 60, "b": 80}}


def div_id(key: str) -> str:
    """``"bar:ndcg@10"`` -> ``"fig-bar-ndcg-10"``: a stable HTML id per figure."""
    return "fig-" + (re.sub(r"[^a-z0-9]+", "-", key.lower()).strip("-") or "x")


def _method_colors(ctx: ReportContext) -> dict[str, str]:
    return {s.method: PALETTE[i % len(PALETTE)] for i, s in enumerate(ctx.summaries)}


def bar_chart(ctx: ReportContext, metric: str) -> go.Figure | None:
    """Mean per method with std error bars; baselines grey, strategies blue, reference dashed."""
    rows = [s for s in ctx.summaries if metric in s.test]
    if not rows:
        return None
    fig = go.Figure()
    order = [s.method for s in rows]
    for kind, color in KIND_COLORS.items():
        part = [s for s in rows if s.kind == kind]
        if part:
            fig.add_bar(
                name=kind + "s",
                x=[s.method for s in part],
                y=[s.test[metric].mean for s in part],
                error_y={"type": "data", "array": [s.test[metric].std or 0.0 for s in part], "visible": True},
                marker_color=color,
                customdata=[[s.test[metric].std or 0.0, s.test[metric].n] for s in part],
                hovertemplate="%{x}<br>mean %{y:.4f} ± %{customdata[0]:.4f}<br>%{customdata[1]} seed(s)<extra></extra>",
            )
    ref = ctx.by_method.get(ctx.reference) if ctx.reference else None
    if ref is not None and metric in ref.test:
        fig.add_hline(y=ref.test[metric].mean, line_dash="dash", line_color="#d62728",
                      annotation_text=f"reference: {ref.method}", annotation_position="top left")
    fig.update_layout(title=f"Test {metric}: mean ± std over seeds", yaxis_title=metric, **LAYOUT)
    fig.update_xaxes(categoryorder="array", categoryarray=order)
    return fig


def cold_start_chart(ctx: ReportContext) -> go.Figure | None:
    """Primary metric by user group (users with few target interactions first), one line per method."""
    labels = [lb for lb in ctx.groups.user_groups if ctx.primary in ctx.groups.sliced[lb]]
    if not labels:
        return None
    colors = _method_colors(ctx)
    fig = go.Figure()
    for s in ctx.summaries:
        stats = [s.test.get(f"{ctx.primary}|{lb}") for lb in labels]
        if not any(stats):
            continue
        fig.add_scatter(
            name=s.method,
            x=labels,
            y=[st.mean if st else None for st in stats],
            error_y={"type": "data", "array": [(st.std or 0.0) if st else 0.0 for st in stats], "visible": True},
            mode="lines+markers",
            line={"color": colors[s.method], "dash": "solid" if s.kind == "strategy" else "dash"},
        )
    if not fig.data:
        return None
    fig.update_layout(title=f"Cold start: test {ctx.primary} by user group (target training interactions)",
                      xaxis_title="user group", yaxis_title=ctx.primary, **LAYOUT)
    return fig


def _first_seed_run(ctx: ReportContext, runs: list[dict]) -> dict | None:
    """The run of the report's first seed that has curves, else the first run with curves."""
    with_curves = [r for r in runs if r.get("curves")]
    seeds = ctx.data.get("seeds") or []
    if seeds:
        match = [r for r in with_curves if r.get("seed") == seeds[0]]
        if match:
            return match[0]
    return with_curves[0] if with_curves else None


def training_chart(ctx: ReportContext) -> go.Figure | None:
    """Training loss and validation metric by epoch, per method and phase (first seed)."""
    colors = _method_colors(ctx)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("training loss", f"validation {ctx.primary}"))
    for s in ctx.summaries:
        run = _first_seed_run(ctx, s.runs)
        if run is None:
            continue
        phases: dict[str, list[dict]] = {}
        for point in run["curves"]:
            phases.setdefault(str(point.get("phase") or "train"), []).append(point)
        for phase, points in phases.items():
            points = sorted(points, key=lambda p: as_float(p.get("epoch")) or 0.0)
            name = s.method if len(phases) == 1 else f"{s.method} · {phase}"
            line = {"color": colors[s.method], "dash": PHASE_DASH.get(phase, "dash")}
            epochs = [p.get("epoch") for p in points]
            fig.add_scatter(name=name, legendgroup=name, x=epochs, y=[as_float(p.get("loss")) for p in points],
                            mode="lines+markers", line=line, row=1, col=1)
            valid = [as_float(p.get("valid")) for p in points]
            if any(v is not None for v in valid):
                fig.add_scatter(name=name, legendgroup=name, showlegend=False, x=epochs, y=valid,
                                mode="lines+markers", line=line, connectgaps=True, row=1, col=2)
    if not fig.data:
        return None
    fig.update_xaxes(title_text="epoch")
    fig.update_layout(title="Training curves (first seed)", **LAYOUT)
    return fig


def tuning_chart(method: str, tuning: dict) -> go.Figure | None:
    """Each trial's validation value and the best so far, in trial order."""
    trials = sorted((t for t in tuning.get("trials") or [] if as_float(t.get("value")) is not None),
                    key=lambda t: as_float(t.get("number")) or 0.0)
    if not trials:
        return None
    maximize = str(tuning.get("direction", "maximize")).lower() != "minimize"
    numbers = [t.get("number") for t in trials]
    values = [as_float(t.get("value")) for t in trials]
    best, running = [], None
    for v in values:
        running = v if running is None else (max(running, v) if maximize else min(running, v))
        best.append(running)
    fig = go.Figure()
    fig.add_scatter(name="trial", x=numbers, y=values, mode="markers",
                    text=[str(t.get("params")) for t in trials], hovertemplate="trial %{x}: %{y:.4f}<br>%{text}")
    fig.add_scatter(name="best so far", x=numbers, y=best, mode="lines", line={"shape": "hv"})
    fig.update_layout(title=f"Tuning {method}: {len(trials)} trial(s), budget {tuning.get('budget', '–')}",
                      xaxis_title="trial", yaxis_title="validation value", **LAYOUT)
    return fig


def build_figures(ctx: ReportContext) -> dict[str, go.Figure]:
    """Every figure the data supports, keyed ``bar:<metric>``, ``coldstart``, ``training``, ``tuning:<method>``."""
    figures: dict[str, go.Figure | None] = {f"bar:{m}": bar_chart(ctx, m) for m in ctx.groups.main}
    figures["coldstart"] = cold_start_chart(ctx)
    figures["training"] = training_chart(ctx)
    for method, tuning in (ctx.data.get("tuning") or {}).items():
        figures[f"tuning:{method}"] = tuning_chart(str(method), tuning or {})
    return {k: f for k, f in figures.items() if f is not None}
