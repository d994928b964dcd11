"""Plotly figures for the HTML report.

Figures are plain ``plotly.graph_objects.Figure`` objects keyed by a stable
name; :mod:`xdplug.report.html` places them next to their section and inlines
plotly.js once for all of them.
"""

from __future__ import annotations

import re

import plotly.graph_objects as go
from plotly.colors import qualitative

from .aggregate import ReportContext, as_float
from .tables import fmt_params, method_cell

KIND_COLORS = {"baseline": "#7f7f7f", "strategy": "#1f77b4"}
REFERENCE_COLOR = "#d62728"
PALETTE = qualitative.Plotly + qualitative.D3 + qualitative.Dark24
LAYOUT = {"template": "plotly_white", "height": 420, "margin": {"l": 60, "r": 20, "t": 60, "b": 80}}
#: the confidence level of the primary chart's intervals
CI_LEVEL = 0.95
#: the primary chart's axis spans the methods within this share of the best mean; the ones further
#: below sit at its left edge (their values stay in the column on the right)
ZOOM_WITHIN = 0.25


def div_id(key: str) -> str:
    """``"tuning:EASE"`` -> ``"fig-tuning-ease"``: a stable HTML id per figure."""
    return "fig-" + (re.sub(r"[^a-z0-9]+", "-", key.lower()).strip("-") or "x")


def _method_colors(ctx: ReportContext) -> dict[str, str]:
    return {s.method: PALETTE[i % len(PALETTE)] for i, s in enumerate(ctx.summaries)}


def _seed_words(ns: list[int]) -> str:
    lo, hi = min(ns), max(ns)
    return (f"{lo} seed" if hi == 1 else f"{lo} seeds") if lo == hi else f"{lo}–{hi} seeds"


def _primary_rows(ctx: ReportContext):
    """``(rows, reference, far)``: methods with a primary value (best first), the reference's summary,
    and the methods more than ``ZOOM_WITHIN`` below the best strategy, the reference and the best method
    (whichever is lowest), drawn at the axis' left edge: the methods a reader compares always show."""
    pm = ctx.primary
    rows = [s for s in ctx.summaries if s.test.get(pm)]
    ref = ctx.by_method.get(ctx.reference) if ctx.reference else None
    ref = ref if ref is not None and ref.test.get(pm) else None
    far: list = []
    keep = [s for s in (rows[:1] + [ref] + [next((s for s in rows if s.kind == "strategy"), None)]) if s]
    if rows and ctx.higher_is_better(pm) and min(s.test[pm].mean for s in keep) > 0:
        floor = min(s.test[pm].mean for s in keep) * (1 - ZOOM_WITHIN)
        far = [s for s in rows if s.test[pm].mean < floor]
    return rows, ref, far


def primary_caption(ctx: ReportContext) -> str:
    """What the primary chart's whiskers are (or that there are none), under the chart."""
    rows, ref, far = _primary_rows(ctx)
    if not rows:
        return ""
    ns = [s.test[ctx.primary].n for s in rows]
    line = f" Dashed red line: the reference, {ref.method}." if ref is not None else ""
    if max(ns) < 2:
        text = ("One seed: no confidence interval can be computed, so the differences shown may be within "
                "seed-to-seed noise; run more seeds (and read the paired per-user tests below)." + line)
    else:
        one = " Methods with one finished seed have no interval." if min(ns) < 2 else ""
        band = "; the shaded band is the reference's" if ref is not None and ref.test[ctx.primary].n > 1 else ""
        text = (f"Whiskers: {CI_LEVEL:.0%} confidence interval of the mean over seeds (Student's t, n-1 degrees "
                f"of freedom){band}; with few seeds they are wide, and the paired per-user tests below are the "
                f"sharper comparison.{one}{line}")
    text += " Right: each mean and its change against the reference (markers as in the table below)."
    text += " The axis is zoomed to the data: it does not start at 0"
    if far:
        text += (f"; methods far below the ones compared ({', '.join(s.method for s in far)}) sit at its left "
                 "edge (◀)")
    return text + "."


def primary_chart(ctx: ReportContext) -> go.Figure | None:
    """Each method's primary metric (best on top) with its t-interval over seeds and the reference line."""
    pm = ctx.primary
    rows, ref, far = _primary_rows(ctx)
    if not rows:
        return None
    near = [s for s in rows if s not in far]
    half = {s.method: s.test[pm].interval(CI_LEVEL) for s in rows}
    lo = min(s.test[pm].mean - (half[s.method] or 0.0) for s in near)
    hi = max(s.test[pm].mean + (half[s.method] or 0.0) for s in near)
    pad = (hi - lo) * 0.06 or abs(hi) * 0.05 or 0.01
    edge = lo - pad * 0.5
    fig = go.Figure()
    groups = [("reference", REFERENCE_COLOR, "diamond", lambda s: s is ref),
              ("baseline", KIND_COLORS["baseline"], "circle", lambda s: s is not ref and s.kind == "baseline"),
              ("strategy", KIND_COLORS["strategy"], "circle", lambda s: s is not ref and s.kind != "baseline")]
    for label, color, symbol, member in groups:
        part = [s for s in near if member(s)]
        if part:
            widths = [half[s.method] for s in part]
            fig.add_scatter(
                name=f"reference: {ref.method}" if label == "reference" else label, legendgroup=label,
                x=[s.test[pm].mean for s in part], y=[method_cell(s) for s in part], mode="markers",
                marker={"color": color, "size": 11, "symbol": symbol},
                error_x=({"type": "data", "array": [w or 0.0 for w in widths], "visible": True, "thickness": 2,
                          "width": 6} if any(w is not None for w in widths) else None),
                customdata=[[w if w is not None else float("nan"), s.test[pm].n] for s, w in zip(part, widths)],
                hovertemplate="%{y}<br>mean %{x:.4f}<br>± %{customdata[0]:.4f} (" + f"{CI_LEVEL:.0%}"
                              + " interval)<br>%{customdata[1]} seed(s)<extra></extra>",
            )
        clipped = [s for s in far if member(s)]
        if clipped:
            if not part:  # the group's legend entry, as a plain marker
                fig.add_scatter(name=label, legendgroup=label, x=[None], y=[None], mode="markers",
                                marker={"color": color, "size": 11, "symbol": symbol})
            fig.add_scatter(
                name=label, legendgroup=label, showlegend=False, x=[edge] * len(clipped),
                y=[method_cell(s) for s in clipped], mode="markers",
                marker={"color": color, "size": 11, "symbol": "triangle-left"},
                customdata=[[s.test[pm].mean] for s in clipped],
                hovertemplate="%{y}<br>mean %{customdata[0]:.4f} (off the axis)<extra></extra>",
            )
    # the value and the change against the reference, in a column right of the plot
    for s in rows:
        pct, marker, _ = ctx.improvement(s.method, pm)
        change = "reference" if s is ref else (f"{pct:+.2f}% {marker}".rstrip() if pct is not None else "")
        fig.add_annotation(x=1.0, xref="paper", xanchor="left", xshift=10, y=method_cell(s), yref="y",
                           text=f"{s.test[pm].mean:.4f}  {change}", showarrow=False, align="left",
                           font={"size": 13, "color": REFERENCE_COLOR if s is ref else "#333"})
    if ref is not None:
        rmean, rhalf = ref.test[pm].mean, half[ref.method]
        if rhalf:
            fig.add_vrect(x0=rmean - rhalf, x1=rmean + rhalf, fillcolor=REFERENCE_COLOR, opacity=0.08, line_width=0,
                          layer="below")
        fig.add_vline(x=rmean, line_dash="dash", line_color=REFERENCE_COLOR, line_width=1.5)
    ns = [s.test[pm].n for s in rows]
    spread = (f"mean and {CI_LEVEL:.0%} interval over {_seed_words(ns)}" if max(ns) > 1
              else "one seed, no interval")
    layout = dict(LAYOUT, height=max(260, 120 + 36 * len(rows)), margin={"l": 20, "r": 180, "t": 80, "b": 50})
    fig.update_layout(title=f"Test {pm} by method ({spread})", xaxis_title=f"test {pm}",
                      legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "left", "x": 0},
                      **layout)
    fig.update_xaxes(range=[lo - pad, hi + pad], zeroline=False)
    fig.update_yaxes(categoryorder="array", categoryarray=[method_cell(s) for s in reversed(rows)],
                     automargin=True, tickfont={"size": 13})
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


def _target_validated(point: dict) -> bool:
    """A curve point scored on the target's validation split (source pretraining validates on source)."""
    if as_float(point.get("valid")) is None:
        return False
    on = point.get("validated_on")
    return on != "source" if on is not None else str(point.get("phase") or "train") != "source"


def curve_methods(ctx: ReportContext) -> tuple[list[tuple[str, dict]], list[str]]:
    """``([(method, run)], [method])``: methods whose first-seed run was validated on the target over
    more than one epoch (they are drawn), and finished methods that were not (closed-form fits, one epoch)."""
    drawn, skipped = [], []
    for s in ctx.summaries:
        run = _first_seed_run(ctx, s.runs)
        points = [p for p in (run or {}).get("curves") or [] if _target_validated(p)]
        if len(points) > 1:
            drawn.append((s.method, run))
        elif s.done_runs:
            skipped.append(s.method)
    return drawn, skipped


def training_chart(ctx: ReportContext) -> go.Figure | None:
    """Validation primary metric by epoch (first seed), one line per trained method and target phase.

    Validation scores are comparable across methods, raw losses are not; methods fitted in one
    step have no curve and are left out, and the reference's validation score is the dashed line.
    """
    drawn, _ = curve_methods(ctx)
    if not drawn:
        return None
    colors = _method_colors(ctx)
    fig = go.Figure()
    for method, run in drawn:
        phases: dict[str, list[dict]] = {}
        for point in run["curves"]:
            if _target_validated(point):
                phases.setdefault(str(point.get("phase") or "train"), []).append(point)
        for n, (phase, points) in enumerate(phases.items(), 1):
            points = sorted(points, key=lambda p: as_float(p.get("epoch")) or 0.0)
            name = method if len(phases) == 1 else f"{method} · {phase}"
            # the last phase trained the state the run serves: solid; earlier phases dotted
            dash = "solid" if n == len(phases) else "dot"
            fig.add_scatter(
                name=name, x=[p.get("epoch") for p in points], y=[as_float(p.get("valid")) for p in points],
                mode="lines+markers", line={"color": colors[method], "dash": dash},
                marker={"size": [10 if p.get("best") else 5 for p in points]},
                hovertemplate="%{fullData.name}<br>epoch %{x}: %{y:.4f}<extra></extra>",
            )
    ref = ctx.by_method.get(ctx.reference) if ctx.reference else None
    ref_run = next((r for r in (ref.done_runs if ref else [])
                    if r.get("seed") == (ctx.data.get("seeds") or [None])[0]), None)
    ref_valid = as_float(((ref_run or {}).get("metrics") or {}).get("valid", {}).get(ctx.primary))
    if ref_valid is not None:
        fig.add_hline(y=ref_valid, line_dash="dash", line_color=REFERENCE_COLOR, line_width=1.5,
                      annotation_text=f"reference: {ref.method}", annotation_position="bottom right",
                      annotation_font_color=REFERENCE_COLOR)
    epochs = [as_float(x) for trace in fig.data for x in trace.x if as_float(x) is not None]
    if epochs and max(epochs) <= 12:
        fig.update_xaxes(tick0=0, dtick=1)  # whole epochs, not 0.5
    seed = drawn[0][1].get("seed")
    rows = -(-len(fig.data) // 4)  # legend rows below the plot, about four entries a row
    layout = dict(LAYOUT, height=420 + 22 * rows, margin={"l": 60, "r": 20, "t": 60, "b": 60 + 22 * rows})
    fig.update_layout(title=f"Validation {ctx.primary} by epoch (seed {seed}; large marker: the kept epoch)",
                      xaxis_title="epoch", yaxis_title=f"validation {ctx.primary}",
                      legend={"orientation": "h", "yanchor": "top", "y": -0.16, "xanchor": "left", "x": 0},
                      **layout)
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
                    text=[fmt_params(t.get("params")) for t in trials],
                    hovertemplate="trial %{x}: %{y:.4f}<br>%{text}<extra></extra>")
    fig.add_scatter(name="best so far", x=numbers, y=best, mode="lines", line={"shape": "hv"})
    fig.update_layout(title=f"Tuning {method}: {len(trials)} trial(s), budget {tuning.get('budget', '–')}",
                      xaxis_title="trial", yaxis_title="validation value", **LAYOUT)
    return fig


def build_figures(ctx: ReportContext) -> dict[str, go.Figure]:
    """Every figure the data supports, keyed ``primary``, ``training``, ``tuning:<method>``.

    One chart for the decision (the primary metric with its intervals); the other metrics and
    the slices are compact tables, where a reader compares numbers rather than bar heights.
    """
    figures: dict[str, go.Figure | None] = {"primary": primary_chart(ctx)}
    figures["training"] = training_chart(ctx)
    for method, tuning in (ctx.data.get("tuning") or {}).items():
        figures[f"tuning:{method}"] = tuning_chart(str(method), tuning or {})
    return {k: f for k, f in figures.items() if f is not None}
