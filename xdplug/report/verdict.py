"""The one paragraph a reader acts on: does the best transfer strategy beat the best baseline?"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .edges import describe_flag, tuning_edges
from .aggregate import MethodSummary, ReportContext, as_float, best_of_kind, holm_p, is_significant
from .tables import fmt_pct, fmt_stat, p_summary


@dataclass
class Verdict:
    """The verdict paragraph and the facts behind it (exported to report.json)."""

    text: str
    best_method: str | None = None
    best_baseline: str | None = None
    best_strategy: str | None = None
    metric: str | None = None
    improvement_pct: float | None = None
    p_ttest_holm: float | None = None
    p_wilcoxon_holm: float | None = None
    significant: bool | None = None
    #: True when the best strategy's mean beats the best baseline's
    strategy_wins: bool | None = None
    #: where the data has cold items: the best method on them (ranked among themselves), the
    #: slice's reference and the tested improvement over it
    cold_best_method: str | None = None
    cold_reference: str | None = None
    cold_improvement_pct: float | None = None
    #: the strongest method of the config's control set (``controls: strong``); the best baseline is
    #: this control unless another baseline of the config beats it
    best_control: str | None = None
    #: the verdict's methods whose tuned values lie at the edge of their search range
    at_edge: list[str] | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def _value(ctx: ReportContext, s: MethodSummary) -> str:
    stat = s.test[ctx.primary]
    seeds = "1 seed" if stat.n == 1 else f"{stat.n} seeds"
    return f"{ctx.primary} = {fmt_stat(stat)}, {seeds}"


def _tested_against(ctx: ReportContext, method: str, metric: str, reference: str) -> dict | None:
    """``method``'s comparison row on ``metric`` when it was tested against ``reference`` (a row
    against another method is no evidence for this pair)."""
    comp = ctx.comparison(method, metric)
    return comp if comp is not None and comp.get("reference") in (None, reference) else None


def _cold_items(ctx: ReportContext, verdict: Verdict) -> str:
    """The cold items' own sentence (only text reaches them, so their leader can differ from the
    all-items one), tested against the slice's reference; empty where no run measured them."""
    metric = f"{ctx.primary}|{ctx.cold_slice}"
    measured = [s for s in ctx.summaries if s.mean(metric) is not None and not s.n_not_learned]
    reference = ctx.slice_reference(ctx.cold_slice)
    if not measured or reference is None:
        return ""
    best = max(measured, key=lambda s: s.mean(metric))
    stat = fmt_stat(best.test[metric])
    verdict.cold_best_method, verdict.cold_reference = best.method, reference
    if best.method == reference:
        return f"On the cold items (ranked among themselves), {reference} leads ({metric} = {stat})."
    comp = _tested_against(ctx, best.method, metric, reference)
    pct = as_float(comp.get("improvement_pct")) if comp else None
    verdict.cold_improvement_pct = pct
    against = f"{fmt_pct(pct)} against {reference}, " if pct is not None else f"against {reference}: "
    return (f"On the cold items (ranked among themselves), {best.method} leads ({metric} = {stat}; "
            f"{against}{p_summary(comp)}).")


def make_verdict(ctx: ReportContext) -> Verdict:
    """State the best method, the best baseline, and whether transfer beat it significantly — or that it did not."""
    pm = ctx.primary
    measured = [s for s in ctx.summaries if s.mean(pm) is not None]
    # a method with a run that did not learn scores as a (nearly) untrained model: it neither wins
    # nor sets the bar, so it is left out of the decision (and the verdict says so)
    ranked = [s for s in measured if not s.n_not_learned]
    failed = sum(s.n_failed + s.n_not_applicable for s in ctx.summaries)
    tail = f" {failed} run(s) failed or were not applicable; see below." if failed else ""
    not_learned = [s.method for s in ctx.summaries if s.n_not_learned]
    if not_learned:
        tail += (f" Left out of this decision: {', '.join(not_learned)}, whose "
                 f"{sum(s.n_not_learned for s in ctx.summaries)} finished run(s) did not learn (their scores are "
                 "those of a (nearly) untrained model; see below).")
    if not ranked:
        what = (f"No method with a test {pm or 'metric'} learned in all its runs, so there is nothing to compare."
                if measured else f"No run produced a test {pm or 'metric'}, so there is nothing to compare.")
        return Verdict(f"{what}{tail}", metric=pm)

    best = ranked[0]
    by_method = ctx.by_method
    best_baseline = best_of_kind(ranked, "baseline", pm)
    baseline = by_method.get(ctx.reference) if ctx.reference else None
    if baseline is None or baseline.mean(pm) is None or baseline.n_not_learned:
        baseline = best_baseline
    strategy = best_of_kind(ranked, "strategy", pm)
    label = "Best baseline" if baseline is best_baseline else "Reference baseline (evaluation.reference)"
    control = next((s for s in ranked if ctx.is_control(s.method)), None)
    if baseline is not None and baseline is control:
        label += " (the strongest control)"
    verdict = Verdict("", best.method, baseline.method if baseline else None,
                      strategy.method if strategy else None, pm)
    verdict.best_control = control.method if control else None

    sentences = [f"Best method: {best.method} ({_value(ctx, best)})."]
    if baseline is None:
        sentences.append("No baseline finished, so transfer cannot be judged against classic CF.")
        if strategy is not None and strategy is not best:
            sentences.append(f"Best strategy: {strategy.method} ({_value(ctx, strategy)}).")
    elif strategy is None:
        sentences.append(f"{label}: {baseline.method} ({_value(ctx, baseline)}).")
        sentences.append("No transfer strategy produced a result, so only baselines were compared.")
    else:
        if baseline is not best:
            sentences.append(f"{label}: {baseline.method} ({_value(ctx, baseline)}).")
        else:
            sentences.append(f"{label}: {baseline.method}.")
        comp = _tested_against(ctx, strategy.method, pm, baseline.method)
        pct = as_float(comp.get("improvement_pct")) if comp else None
        if pct is None and baseline.mean(pm):
            pct = (strategy.mean(pm) / baseline.mean(pm) - 1.0) * 100.0
        significant = is_significant(comp) if comp else None
        wins = strategy.mean(pm) > baseline.mean(pm)
        verdict.improvement_pct = pct
        verdict.significant = significant
        verdict.strategy_wins = wins
        if comp:
            verdict.p_ttest_holm = as_float(comp.get("p_ttest_holm"))
            verdict.p_wilcoxon_holm = as_float(comp.get("p_wilcoxon_holm"))
        tested = comp is not None and holm_p(comp) is not None
        sig_word = ("significant" if significant else "not significant") + " at α = 0.05 (Holm-corrected)"
        if wins:
            sentences.append(
                f"{strategy.method} beats {baseline.method} by {fmt_pct(pct)} ({p_summary(comp)})"
                + (f": {sig_word}." if tested else ".")
            )
            if tested and significant:
                sentences.append(f"Transfer pays off on this target: use {strategy.method}.")
            elif tested:
                sentences.append(
                    f"The gain is within noise; {baseline.method} is the simpler choice until more seeds or "
                    "users confirm it."
                )
            else:
                sentences.append("Without a paired test the gain is unconfirmed; run the significance evaluator.")
        else:
            sentences.append(
                f"No strategy beat the best baseline: the best strategy, {strategy.method} "
                f"({_value(ctx, strategy)}), is {fmt_pct(pct)} against {baseline.method} ({p_summary(comp)})"
                + (f"; the difference is {sig_word}." if tested else ".")
            )
            sentences.append(f"Transfer does not pay off here: stay with {baseline.method}.")
    if control is not None and baseline is not None and baseline is not control:
        sentences.append(f"The strongest control is {control.method} ({_value(ctx, control)}).")
    cold = _cold_items(ctx, verdict)
    edge = _at_edge(ctx, verdict, [baseline, control, strategy])
    verdict.text = " ".join(sentences + ([cold] if cold else []) + ([edge] if edge else [])) + tail
    return verdict


def _at_edge(ctx: ReportContext, verdict: Verdict, named: list) -> str:
    """A sentence where a method the verdict names chose a tuned value at the edge of its search range."""
    edges = tuning_edges(ctx.data.get("tuning"))
    methods = list(dict.fromkeys(s.method for s in named if s is not None and s.method in edges))
    if not methods:
        return ""
    verdict.at_edge = methods
    parts = [f"{m} ({', '.join(describe_flag(f) for f in edges[m])})" for m in methods]
    return ("Tuned at the edge of its search range, so it may be stronger than shown: " + "; ".join(parts)
            + " (see Tuning).")

