"""The report's tables, as display-neutral :class:`~xdplug.report.blocks.Table` objects.

Numbers come from :mod:`xdplug.report.aggregate`; this module only decides
rows, columns, formatting and which cell is the best of its column.
"""

from __future__ import annotations

import json
from typing import Any

from .aggregate import (
    DONE,
    LEARNING_FLAG,
    LEARNING_MARKER,
    MethodSummary,
    ReportContext,
    Stat,
    as_float,
    holm_p,
    is_learning_flag,
    is_significant,
    note_parts,
    short_error,
)
from .blocks import Cell, Table
from .edges import describe_flag, method_edges

DASH = "–"


# --- formatting -------------------------------------------------------------


def fmt_num(value: Any, digits: int = 4) -> str:
    x = as_float(value)
    return DASH if x is None else f"{x:.{digits}f}"


def fmt_stat(stat: Stat | None, digits: int | None = None) -> str:
    """``0.2915 ± 0.0031``; a single seed shows its value alone (``0.2915``: no spread to report).

    Four decimals for rates, fewer for large values (average popularity 206.53).
    """
    if stat is None:
        return DASH
    if digits is None:
        digits = 4 if abs(stat.mean) < 10 else 2 if abs(stat.mean) < 1000 else 0
    if stat.std is None:
        return f"{stat.mean:.{digits}f}"
    return f"{stat.mean:.{digits}f} ± {stat.std:.{digits}f}"


def fmt_pct(value: float | None) -> str:
    return DASH if value is None else f"{value:+.2f}%"


def fmt_p(value: Any) -> str:
    p = as_float(value)
    if p is None:
        return DASH
    return f"{p:.1e}" if p < 0.001 else f"{p:.3f}"


def fmt_int(value: Any) -> str:
    x = as_float(value)
    return DASH if x is None else f"{int(round(x)):,}"


def fmt_fraction(value: Any) -> str:
    """Fractions in [0, 1] as percentages; anything else as given."""
    x = as_float(value)
    if x is None:
        return DASH
    return f"{x:.2%}" if 0.0 <= x <= 1.0 else f"{x:g}"


def fmt_value(value: Any) -> str:
    """Any config/protocol value on one line."""
    if value is None:
        return DASH
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str, sort_keys=True)
    return str(value)


def _flat_items(params: dict, prefix: str = ""):
    for key, value in params.items():
        if isinstance(value, dict) and value:
            yield from _flat_items(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def fmt_params(value: Any) -> str:
    """Parameters a reader can scan: ``model.dim=64, lr=0.001`` (nested mappings dotted), not JSON."""
    if not isinstance(value, dict):
        return fmt_value(value)
    return ", ".join(f"{k}={fmt_value(v)}" for k, v in _flat_items(value)) or DASH


def fmt_seconds(value: Any) -> str:
    x = as_float(value)
    return DASH if x is None else f"{x:.1f}"


def seeds_cell(s: MethodSummary) -> str:
    """Finished seeds, with what happened to the others."""
    text = str(s.n_done) if s.n_done == s.n_runs else f"{s.n_done}/{s.n_runs}"
    extra = []
    if s.n_failed:
        extra.append(f"{s.n_failed} failed")
    if s.n_not_applicable:
        extra.append(f"{s.n_not_applicable} n/a")
    return f"{text} ({', '.join(extra)})" if extra else text


def method_cell(s: MethodSummary) -> str:
    """The method's name, marked † when one of its finished runs did not learn."""
    return f"{s.method} {LEARNING_MARKER}" if s.n_not_learned else s.method


def kind_label(ctx: ReportContext, s: MethodSummary) -> str:
    """``baseline (control)`` for a method of the config's control set, else the method's kind."""
    return f"{s.kind} (control)" if ctx.is_control(s.method) else s.kind


def kind_cell(ctx: ReportContext, s: MethodSummary) -> str:
    label = kind_label(ctx, s)
    if s.method != ctx.reference:
        return label
    return f"{label[:-1]}, reference)" if label.endswith(")") else f"{label} (reference)"


def _is_best(value: float | None, best: float | None) -> bool:
    return value is not None and best is not None and abs(value - best) <= 1e-12 * max(1.0, abs(best))


# --- result tables ----------------------------------------------------------


def main_table(ctx: ReportContext) -> Table:
    """Mean ± std per method for the main metrics, ranked by the primary metric, best value bold."""
    metrics = ctx.groups.main
    best = ctx.best_values(metrics)
    columns = ["Method", "Kind", "Seeds", *metrics]
    with_delta = ctx.reference is not None and bool(ctx.primary)
    if with_delta:
        columns.append(f"Δ {ctx.primary} vs {ctx.reference}")
    rows = []
    for s in ctx.summaries:
        row = [Cell(method_cell(s)), Cell(kind_cell(ctx, s)), Cell(seeds_cell(s))]
        row += [Cell(fmt_stat(s.test.get(m)), _is_best(s.mean(m), best.get(m))) for m in metrics]
        if with_delta:
            if s.method == ctx.reference:
                row.append(Cell("reference"))
            else:
                pct, marker, _ = ctx.improvement(s.method, ctx.primary)
                row.append(Cell(f"{fmt_pct(pct)} {marker}".rstrip() if pct is not None else DASH))
        rows.append(row)
    numeric = [False, False, True] + [True] * len(metrics) + ([True] if with_delta else [])
    return Table(columns, rows, numeric)


def metric_table(ctx: ReportContext, metrics: list[str], only_with_values: bool = True, notes: bool = False,
                 highlight: bool = False, reference: str | None = None) -> Table:
    """Mean ± std of ``metrics`` per method, best value per column bold; ``highlight`` also marks the
    reference's row (``reference``, else the report's) and each column's best strategy (the two a
    reader compares in a slice)."""
    best = ctx.best_values(metrics)
    best_strategy = best_strategy_values(ctx, metrics) if highlight else {}
    columns = ["Method", "Kind", *metrics] + (["Note"] if notes else [])
    rows, highlighted = [], []
    for s in ctx.summaries:
        if only_with_values and not any(m in s.test for m in metrics):
            continue
        if highlight and s.method == (reference or ctx.reference):
            highlighted.append(len(rows))
        row = [Cell(s.method), Cell(kind_cell(ctx, s))]
        row += [Cell(fmt_stat(s.test.get(m)), _is_best(s.mean(m), best.get(m)),
                     s.kind == "strategy" and _is_best(s.mean(m), best_strategy.get(m))) for m in metrics]
        if notes:
            row.append(Cell("; ".join(s.notes)))
        rows.append(row)
    numeric = [False, False] + [True] * len(metrics) + ([False] if notes else [])
    return Table(columns, rows, numeric, highlighted)


def best_strategy_values(ctx: ReportContext, metrics: list[str]) -> dict[str, float]:
    """The best strategy's mean per metric (max, or min where smaller is better)."""
    out: dict[str, float] = {}
    for m in metrics:
        values = [v for s in ctx.summaries if s.kind == "strategy" and (v := s.mean(m)) is not None]
        if values:
            out[m] = max(values) if ctx.higher_is_better(m) else min(values)
    return out


def user_group_table(ctx: ReportContext, base: str, groups: list[str] | None = None) -> Table:
    """One metric per user group (columns ordered by training-interaction count, or ``groups``)."""
    labels = [lb for lb in (ctx.groups.user_groups if groups is None else groups) if base in ctx.groups.sliced[lb]]
    table = metric_table(ctx, [f"{base}|{lb}" for lb in labels], highlight=True)
    table.columns = ["Method", "Kind", *(slice_header(ctx, lb) for lb in labels)]
    return table


def slice_header(ctx: ReportContext, label: str) -> str:
    """``users 1-5 (n=212)``: a group's label with its number of users, where the evaluator counted them."""
    size = ctx.slice_size(label)
    return label if size is None else f"{label} (n={size:,.0f})"


def slice_table(ctx: ReportContext, label: str) -> Table:
    """Every metric measured on one slice (e.g. cold items), with each method's notes."""
    bases = ctx.groups.sliced[label]
    table = metric_table(ctx, [f"{b}|{label}" for b in bases], notes=True, highlight=True,
                         reference=ctx.slice_reference(label))
    table.columns = ["Method", "Kind", *bases, "Note"]
    return table


def improvement_table(ctx: ReportContext, metrics: list[str] | None = None) -> Table:
    """Every comparison row (of ``metrics`` only, where given): improvement over the reference and both
    paired tests."""
    columns = [
        "Method", "Metric", "Mean", "Reference mean", "Improvement", "Marker", "t", "p t-test (Holm)",
        "p Wilcoxon (Holm)", "Effect size", "Users", "Seeds", "Significant",
    ]
    rank = {s.method: i for i, s in enumerate(ctx.summaries)}
    metric_rank = {m: i for i, m in enumerate(ctx.groups.all)}
    comps = sorted(
        (c for c in ctx.comparisons.values() if metrics is None or str(c.get("metric")) in metrics),
        key=lambda c: (rank.get(str(c.get("method")), len(rank)), metric_rank.get(str(c.get("metric")), len(metric_rank))),
    )
    rows = []
    for c in comps:
        pct, marker, _ = ctx.improvement(str(c.get("method")), str(c.get("metric")))
        rows.append([
            Cell(str(c.get("method"))),
            Cell(str(c.get("metric")) + ("" if c.get("reference") in (None, ctx.reference)
                                         else f" (vs {c.get('reference')})")),
            Cell(fmt_num(c.get("mean"))),
            Cell(fmt_num(c.get("reference_mean"))),
            Cell(fmt_pct(pct)),
            Cell(marker),
            Cell(fmt_num(c.get("t_stat"), 2)),
            Cell(fmt_p(c.get("p_ttest_holm"))),
            Cell(fmt_p(c.get("p_wilcoxon_holm"))),
            Cell(fmt_num(c.get("effect_size"), 3)),
            Cell(fmt_int(c.get("n_users"))),
            Cell(fmt_int(c.get("n_seeds"))),
            Cell("yes" if is_significant(c) else "no"),
        ])
    numeric = [False, False, True, True, True, False, True, True, True, True, True, True, False]
    return Table(columns, rows, numeric)


def failures_table(ctx: ReportContext) -> Table:
    """Runs that did not finish, with the one line that says why."""
    rows = [
        [Cell(str(r.get("method"))), Cell(str(r.get("kind"))), Cell(str(r.get("seed"))),
         Cell(str(r.get("status"))), Cell(short_error(r.get("error") or r.get("notes")) or DASH)]
        for r in unfinished_runs(ctx)
    ]
    return Table(["Method", "Kind", "Seed", "Status", "Error"], rows)


def unfinished_runs(ctx: ReportContext) -> list[dict]:
    return [r for r in ctx.data.get("runs") or [] if r.get("status") != DONE]


def run_status(run: dict) -> str:
    """``done``, ``failed``, ...; ``done (did not learn)`` for a finished run flagged by the runner."""
    status = str(run.get("status"))
    if status == DONE and any(is_learning_flag(n) for n in note_parts(run)):
        return f"{status} ({LEARNING_FLAG})"
    return status


def tuning_seconds(tuning: dict | None) -> float | None:
    """A method's tuning study, in seconds: the sum of its counted trials' times (None: not tuned)."""
    times = [t for row in (tuning or {}).get("trials") or [] if (t := as_float(row.get("time_s"))) is not None]
    return sum(times) if times else None


def timings_table(ctx: ReportContext) -> Table:
    """Wall-clock time and peak memory of every run; a tuned method's whole study on its tuning seed's row."""
    tuning = ctx.data.get("tuning") or {}
    rows = [
        [Cell(str(r.get("method"))), Cell(str(r.get("kind"))), Cell(str(r.get("seed"))), Cell(run_status(r)),
         Cell(fmt_seconds(r.get("time_s"))),
         Cell(fmt_seconds(tuning_seconds(tuning.get(s.method)))
              if r.get("seed") == (tuning.get(s.method) or {}).get("seed") else DASH),
         Cell(fmt_num(r.get("peak_rss_mb"), 0))]
        for s in ctx.summaries
        for r in s.runs
    ]
    return Table(["Method", "Kind", "Seed", "Status", "Time (s)", "Tuning (s)", "Peak RSS (MB)"], rows,
                 [False, False, True, False, True, True, True])


# --- protocol tables --------------------------------------------------------


def evaluator_table(columns: list[str], rows: list[dict]) -> Table:
    """A report evaluator's rows, one column per key it declares (``row_keys``)."""
    numeric = [all(as_float(r.get(c)) is not None for r in rows) and not all(isinstance(r.get(c), bool) for r in rows)
               for c in columns]
    body = [[Cell(fmt_num(r.get(c)) if num else fmt_value(r.get(c))) for c, num in zip(columns, numeric)]
            for r in rows]
    return Table(list(columns), body, numeric)


def key_value_table(pairs: list[tuple[str, Any]], columns: tuple[str, str] = ("Setting", "Value")) -> Table:
    return Table(list(columns), [[Cell(k), Cell(fmt_value(v))] for k, v in pairs])


def domains_table(dataset: dict) -> Table:
    """Size, sparsity and text coverage of the source and target domains."""
    rows = []
    for name, d in (dataset.get("domains") or {}).items():
        d = d or {}
        label = f"{name} ({d['name']})" if d.get("name") else str(name)
        rows.append([
            Cell(label), Cell(fmt_int(d.get("users"))), Cell(fmt_int(d.get("items"))),
            Cell(fmt_int(d.get("interactions"))), Cell(fmt_fraction(d.get("sparsity"))),
            Cell(fmt_fraction(d.get("text_coverage"))),
        ])
    return Table(["Domain", "Users", "Items", "Interactions", "Sparsity", "Text coverage"], rows,
                 [False, True, True, True, True, True])


def overlap_table(overlap: dict) -> Table:
    return Table(
        ["Overlap", "Count", "Fraction"],
        [
            [Cell("users"), Cell(fmt_int(overlap.get("users"))), Cell(fmt_fraction(overlap.get("user_fraction")))],
            [Cell("items"), Cell(fmt_int(overlap.get("items"))), Cell(fmt_fraction(overlap.get("item_fraction")))],
        ],
        [False, True, True],
    )


def split_table(split: dict) -> Table:
    names = list(split)
    return Table(["Target split", *names], [[Cell("interactions"), *(Cell(fmt_int(split[n])) for n in names)]],
                 [False] + [True] * len(names))


def methods_table(ctx: ReportContext) -> Table:
    """What each method is made of and the hyper-parameters it ran with (first run's spec)."""
    rows = []
    for s in ctx.summaries:
        spec = next((r.get("spec") for r in s.runs if r.get("spec")), None) or {}
        parts = {k: v for k, v in spec.items() if k not in ("params", "name")}
        components = " + ".join(f"{k}={v}" for k, v in parts.items()) or DASH
        rows.append([Cell(s.method), Cell(kind_label(ctx, s)), Cell(components),
                     Cell(fmt_params(spec.get("params") or {}))])
    return Table(["Method", "Kind", "Components", "Parameters"], rows)


def tuning_table(method: str, tuning: dict) -> Table:
    """Every trial of one method's hyper-parameter search."""
    rows = [
        [Cell((f"{t['stage']} " if t.get("stage") else "") + str(t.get("number"))), Cell(fmt_num(t.get("value"))),
         Cell(fmt_params(t.get("params")))]
        for t in tuning.get("trials") or []
    ]
    return Table(["Trial", "Value", "Parameters"], rows, [True, True, False])


#: a study whose best value last improved within this final share of its trials has not converged
CONVERGED_TAIL = 0.2


def convergence(tuning: dict) -> str:
    """``converged`` or ``still improving (best at trial 28 of 30)``: did the best validation value
    move within the last ``CONVERGED_TAIL`` of the trials (in trial order)? A staged search: each
    stage's and the blend's, ``ease: converged; blend: ...``."""
    stages = (tuning.get("staged") or {}).get("stages")
    if stages is not None:
        names = [s.get("name") for s in stages] + (["weights"] if "weights" in tuning["staged"] else [])
        return "; ".join(f"{name}: " + convergence({**tuning, "staged": None, "trials": [
            tr for tr in tuning.get("trials") or [] if tr.get("stage") == name]}) for name in names)
    trials = sorted((tr for tr in tuning.get("trials") or [] if as_float(tr.get("value")) is not None),
                    key=lambda tr: tr.get("number") or 0)
    if not trials:
        return DASH
    sign = -1.0 if str(tuning.get("direction", "maximize")).lower() == "minimize" else 1.0
    values = [sign * as_float(tr["value"]) for tr in trials]
    first_best = values.index(max(values))  # the trial that reached the final best
    if first_best > 0 and first_best >= len(values) * (1 - CONVERGED_TAIL):
        return f"still improving (best at trial {first_best + 1} of {len(values)})"
    return "converged"


def budget_text(tuning: dict) -> str:
    """A method's budget: ``30 trials``, or a staged search's fits by stage and its blend evaluations,
    ``30 fits (ease 15, lowpass 5, ials 10) + 64 blend evaluations of stored scores``."""
    staged = tuning.get("staged") or {}
    if not staged.get("stages"):
        return f"{fmt_value(tuning.get('budget'))} trials"
    split = ", ".join(f"{s.get('name')} {fmt_value(s.get('budget'))}" for s in staged["stages"])
    blend = (staged.get("weights") or {}).get("budget")
    return (f"{fmt_value(tuning.get('budget'))} fits ({split})"
            + (f" + {fmt_value(blend)} blend evaluations of stored scores" if blend is not None else ""))


def tuning_summary_table(ctx: ReportContext) -> Table:
    """Budget, trials run, best validation value, whether it still moved, and the chosen parameters."""
    rows = []
    for method, t in (ctx.data.get("tuning") or {}).items():
        t = t or {}
        values = [v for tr in t.get("trials") or [] if (v := as_float(tr.get("value"))) is not None]
        maximize = str(t.get("direction", "maximize")).lower() != "minimize"
        best = (max(values) if maximize else min(values)) if values else None
        flags = method_edges(t)
        rows.append([
            Cell(str(method) + (" (control)" if ctx.is_control(str(method)) else "")),
            Cell(budget_text(t) if t.get("staged") else fmt_value(t.get("budget"))),
            Cell(str(len(t.get("trials") or []))),
            Cell(fmt_num(best)), Cell(convergence(t)), Cell(fmt_params(t.get("chosen"))),
            Cell("; ".join(describe_flag(f) for f in flags) or DASH),
        ])
    return Table(["Method", "Budget", "Trials", "Best value", "Search", "Chosen", "At the edge of its range"], rows,
                 [False, True, True, True, False, False, False])


def p_summary(comp: dict | None) -> str:
    """``paired t-test p_holm = 0.004, Wilcoxon p_holm = 0.012, 943 users, 2 seeds`` for the verdict."""
    if not comp:
        return "no significance test available"
    if holm_p(comp) is None:
        return "no p-value available"
    parts = [f"paired t-test p_holm = {fmt_p(comp.get('p_ttest_holm'))}"]
    if as_float(comp.get("p_wilcoxon_holm")) is not None:
        parts.append(f"Wilcoxon p_holm = {fmt_p(comp.get('p_wilcoxon_holm'))}")
    if as_float(comp.get("n_users")) is not None:
        parts.append(f"{fmt_int(comp.get('n_users'))} users")
    if as_float(comp.get("n_seeds")) is not None:
        n = fmt_int(comp.get("n_seeds"))
        parts.append(f"{n} seed" if n == "1" else f"{n} seeds")
    return ", ".join(parts)


def higher_better_note(ctx: ReportContext, metrics: list[str]) -> str:
    lower = [m for m in metrics if not ctx.higher_is_better(m)]
    return f" Lower is better for {', '.join(lower)}." if lower else ""
