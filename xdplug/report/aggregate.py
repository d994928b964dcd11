"""The numbers behind every table and plot of a report.

Everything the renderers show is computed here once, from the runner's report
data: mean ± std per method and metric over the finished seeds, which metrics
are main / beyond-accuracy / slices, the reference, the comparison rows and
their significance markers. Markdown, HTML and the CSV/JSON exports then agree
by construction.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

#: metric families that measure ranking accuracy (the rest is "beyond accuracy")
ACCURACY_FAMILIES = frozenset({"ndcg", "recall", "mrr", "hit", "precision", "map"})
#: metric families that count users rather than measure anything ("n_users|users 1-5")
COUNT_FAMILIES = frozenset({"n_users"})
#: Holm-corrected p-value thresholds and their markers, strictest first
MARKERS = ((0.01, "**"), (0.05, "*"))
ALPHA = 0.05
DONE, FAILED, NOT_APPLICABLE = "done", "failed", "not_applicable"


def split_metric(name: str) -> tuple[str, str | None]:
    """Split ``"ndcg@10|users 1-5"`` into ``("ndcg@10", "users 1-5")``; unsliced metrics give ``None``."""
    base, sep, label = name.partition("|")
    return base, (label if sep else None)


def metric_family(name: str) -> str:
    """``"NDCG@10|cold items"`` -> ``"ndcg"``: what kind of metric, independent of cut-off and slice."""
    return split_metric(name)[0].split("@")[0].strip().lower()


def metric_k(name: str) -> int | None:
    """The cut-off of a metric (``ndcg@10`` -> 10), or None."""
    base = split_metric(name)[0]
    _, sep, k = base.partition("@")
    return int(k) if sep and k.isdigit() else None


def higher_is_better(name: str, lower_is_better=()) -> bool:
    """Which direction "best" means when a column's best value is marked: ``lower_is_better`` are the
    metric families the evaluators declare so (the report data's ``lower_is_better``)."""
    return metric_family(name) not in lower_is_better


def as_float(value: Any) -> float | None:
    """A finite float, or None for anything missing, non-numeric or NaN (numpy scalars included)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def short_error(error: Any, width: int = 120) -> str:
    """One line that says what went wrong: a traceback's last line, otherwise the first line."""
    if not error:
        return ""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    if not lines:
        return ""
    line = lines[-1] if lines[0].startswith("Traceback") else lines[0]
    return line if len(line) <= width else line[: width - 1] + "…"


#: how a run's ``notes`` start when training did not learn (the runner's flag; xdplug.training.DID_NOT_LEARN)
LEARNING_FLAG = "did not learn"
#: the marker next to a method in the results table when one of its runs did not learn
LEARNING_MARKER = "†"


def note_parts(run: dict) -> list[str]:
    """A run's notes, one per part (the runner joins several with ``"; "``)."""
    return [part.strip() for part in str(run.get("notes") or "").split("; ") if part.strip()]


def is_learning_flag(note: str) -> bool:
    return note.startswith(LEARNING_FLAG + ":")


@dataclass
class Stat:
    """Mean ± sample std (ddof=1) of one metric over the finished seeds; ``std`` is None for one seed."""

    mean: float
    std: float | None
    n: int

    @classmethod
    def of(cls, values: list[float]) -> Stat | None:
        if not values:
            return None
        n = len(values)
        mean = sum(values) / n
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
        return cls(mean, std, n)

    def interval(self, level: float = 0.95) -> float | None:
        """Half-width of the t-based confidence interval of the mean over seeds (Student's t with n-1
        degrees of freedom); None below two seeds, where there is no spread to build one from."""
        if self.std is None or self.n < 2:
            return None
        from scipy.stats import t

        return float(t.ppf(0.5 + level / 2, self.n - 1)) * self.std / math.sqrt(self.n)


@dataclass
class MethodSummary:
    """One method of the report: its runs and their aggregated metrics."""

    method: str
    kind: str
    runs: list[dict] = field(default_factory=list)
    test: dict[str, Stat] = field(default_factory=dict)
    valid: dict[str, Stat] = field(default_factory=dict)
    time_s: Stat | None = None
    peak_rss_mb: float | None = None

    def _count(self, status: str) -> int:
        return sum(1 for r in self.runs if r.get("status") == status)

    @property
    def n_runs(self) -> int:
        return len(self.runs)

    @property
    def n_done(self) -> int:
        return self._count(DONE)

    @property
    def n_failed(self) -> int:
        return self._count(FAILED)

    @property
    def n_not_applicable(self) -> int:
        return self._count(NOT_APPLICABLE)

    @property
    def done_runs(self) -> list[dict]:
        return [r for r in self.runs if r.get("status") == DONE]

    @property
    def notes(self) -> list[str]:
        """Distinct run notes (e.g. "cannot score cold items (ID-only)"), in order; not the did-not-learn flags."""
        seen: list[str] = []
        for run in self.runs:
            for note in note_parts(run):
                if note not in seen and not is_learning_flag(note):
                    seen.append(note)
        return seen

    @property
    def learning_flags(self) -> list[tuple[Any, str]]:
        """``(seed, reason)`` of every finished run flagged "did not learn" (xdplug.training.learning_problem)."""
        return [(run.get("seed"), note) for run in self.done_runs for note in note_parts(run)
                if is_learning_flag(note)]

    @property
    def n_not_learned(self) -> int:
        """Finished runs with at least one did-not-learn flag."""
        return sum(1 for run in self.done_runs if any(is_learning_flag(n) for n in note_parts(run)))

    def mean(self, metric: str) -> float | None:
        stat = self.test.get(metric)
        return stat.mean if stat else None


@dataclass
class MetricGroups:
    """Which test metrics go into which section."""

    #: every test metric key seen, in display order
    all: list[str]
    #: unsliced accuracy metrics at the primary cut-off, primary first (main table, bar charts)
    main: list[str]
    #: unsliced accuracy metrics at other cut-offs
    other_accuracy: list[str]
    #: unsliced non-accuracy metrics at the primary cut-off or without one (coverage, gini, ...)
    beyond: list[str]
    #: unsliced non-accuracy metrics at other cut-offs
    beyond_other: list[str]
    #: unsliced cold-start measures ("cold_hit_share@10", "cold_known_frac")
    cold: list[str]
    #: user-group slice labels ("users 1-5", ...), ordered by group size
    user_groups: list[str]
    #: other slice labels (the evaluators' declared slices: the cold items, ...), in order of appearance
    other_slices: list[str]
    #: base metrics available per slice label (user counts excluded)
    sliced: dict[str, list[str]]
    #: metric key holding the number of users of a slice label ("n_users|users 1-5")
    counts: dict[str, str]
    #: source-history slice labels ("source history 0", "source history 1-20", ...), where users overlap
    source_groups: list[str] = field(default_factory=list)


def _group_sort_key(label: str) -> tuple[float, str]:
    numbers = re.findall(r"\d+", label)
    return (float(numbers[0]) if numbers else math.inf, label)


def classify_metrics(data: dict, primary: str) -> MetricGroups:
    """Sort every test metric into the report's sections (declared order first, then as seen)."""
    order: list[str] = []
    seen: set[str] = set()

    def add(name: str) -> None:
        if name not in seen:
            seen.add(name)
            order.append(name)

    for name in data.get("metrics") or []:
        add(str(name))
    for run in data.get("runs") or []:
        for name in ((run.get("metrics") or {}).get("test") or {}):
            add(str(name))
    if primary:
        add(primary)

    unsliced = [m for m in order if split_metric(m)[1] is None]
    primary_k = metric_k(primary) if primary else None
    main = [primary] if primary else []
    main += [
        m
        for m in unsliced
        if m != primary and metric_family(m) in ACCURACY_FAMILIES and metric_k(m) == primary_k
    ]
    other_accuracy = [m for m in unsliced if m not in main and metric_family(m) in ACCURACY_FAMILIES]
    rest = [m for m in unsliced if m not in main and m not in other_accuracy and metric_family(m) not in COUNT_FAMILIES]
    cold = [m for m in rest if metric_family(m).startswith("cold")]
    beyond = [m for m in rest if m not in cold and metric_k(m) in (primary_k, None)]
    beyond_other = [m for m in rest if m not in cold and m not in beyond]

    sliced: dict[str, list[str]] = {}
    counts: dict[str, str] = {}
    for m in order:
        base, label = split_metric(m)
        if label is None:
            continue
        if metric_family(base) in COUNT_FAMILIES:
            counts[label] = m
            sliced.setdefault(label, [])
        else:
            sliced.setdefault(label, []).append(base)
    user_groups = sorted((lb for lb in sliced if lb.lower().startswith("users")), key=_group_sort_key)
    source_groups = sorted((lb for lb in sliced if lb.lower().startswith("source history")), key=_group_sort_key)
    other_slices = [lb for lb in sliced if lb not in user_groups and lb not in source_groups]
    # main metrics first within each slice, in the main order
    rank = {m: i for i, m in enumerate(main + other_accuracy + beyond + beyond_other)}
    for bases in sliced.values():
        bases.sort(key=lambda b: rank.get(b, len(rank)))
    return MetricGroups(order, main, other_accuracy, beyond, beyond_other, cold, user_groups, other_slices,
                        sliced, counts, source_groups)


@dataclass
class ReportContext:
    """Everything the renderers need, computed once from the runner's report data."""

    data: dict
    primary: str
    summaries: list[MethodSummary]
    groups: MetricGroups
    reference: str | None
    comparisons: dict[tuple[str, str], dict]

    @property
    def by_method(self) -> dict[str, MethodSummary]:
        return {s.method: s for s in self.summaries}

    @property
    def controls(self) -> list[str]:
        """The methods the config's control set added (``controls: strong``), in config order."""
        from ..controls import control_methods

        return control_methods(self.data.get("config") or {})

    def is_control(self, method: str) -> bool:
        return method in self.controls

    def slice_size(self, label: str) -> float | None:
        """Mean number of users in a slice over every finished run (the evaluators' ``n_users|<label>``)."""
        key = self.groups.counts.get(label)
        if key is None:
            return None
        values = [st.mean for s in self.summaries if (st := s.test.get(key)) is not None]
        return sum(values) / len(values) if values else None

    @property
    def cold_slice(self) -> str | None:
        """The label of the slice ranked among cold items only, as its evaluator declares it (or None)."""
        return self.data.get("cold_slice")

    def higher_is_better(self, metric: str) -> bool:
        """Is a larger value of ``metric`` better (by its evaluator's declared direction)?"""
        return higher_is_better(metric, self.data.get("lower_is_better") or ())

    def slice_reference(self, label: str) -> str | None:
        """The method a slice is tested against where it has its own reference (the cold items)."""
        return self.data.get("cold_reference") if label is not None and label == self.cold_slice else None

    def comparison(self, method: str, metric: str) -> dict | None:
        return self.comparisons.get((method, metric))

    def best_values(self, metrics: list[str]) -> dict[str, float]:
        """Best mean per metric over methods (max, or min where smaller is better)."""
        best: dict[str, float] = {}
        for metric in metrics:
            values = [s.mean(metric) for s in self.summaries if s.mean(metric) is not None]
            if values:
                best[metric] = max(values) if self.higher_is_better(metric) else min(values)
        return best

    def improvement(self, method: str, metric: str) -> tuple[float | None, str, dict | None]:
        """Improvement (%) of ``method`` over the reference on ``metric``, its marker and its comparison row.

        The comparison row's own ``improvement_pct`` wins (it is the number that
        was tested); without one the improvement comes from the means and has
        no marker, since nothing was tested.
        """
        comp = self.comparison(method, metric)  # a slice may be tested against a reference of its own
        if comp is None and (not self.reference or method == self.reference):
            return None, "", None
        if comp is not None:
            pct = as_float(comp.get("improvement_pct"))
            if pct is None:
                pct = _pct(as_float(comp.get("mean")), as_float(comp.get("reference_mean")))
            return pct, significance_marker(comp), comp
        ref = self.by_method.get(self.reference)
        mine = self.by_method.get(method)
        if ref is None or mine is None:
            return None, "", None
        return _pct(mine.mean(metric), ref.mean(metric)), "", None


def _pct(value: float | None, reference: float | None) -> float | None:
    if value is None or reference is None or reference == 0:
        return None
    return (value / reference - 1.0) * 100.0


#: what the improvement table shows of a comparison row; an evaluator whose rows carry other
#: keys (its declared ``row_keys``) gets a table of its own instead
IMPROVEMENT_KEYS = frozenset({"method", "reference", "metric", "mean", "reference_mean", "improvement_pct", "t_stat",
                              "p_ttest", "p_ttest_holm", "p_wilcoxon", "p_wilcoxon_holm", "effect_size", "n_users",
                              "n_seeds", "significant"})
#: where :func:`build_context` puts a comparison row's declared p-value keys (its evaluator's ``p_value_keys``)
P_VALUE_KEYS = "_p_value_keys"


def holm_p(comp: dict) -> float | None:
    """The p-value behind the markers: the larger Holm-corrected p of the paired t-test and Wilcoxon.

    Both tests must agree, as in the significance evaluator's own ``significant``
    flag; where only one test ran, its p-value alone.
    """
    ps = [p for key in comp.get(P_VALUE_KEYS, ()) if (p := as_float(comp.get(key))) is not None]
    return max(ps) if ps else None


def is_significant(comp: dict) -> bool:
    """The evaluator's verdict where it gave one, else both Holm-corrected tests at α = 0.05."""
    flag = comp.get("significant")
    if flag is not None:
        return bool(flag)
    p = holm_p(comp)
    return p is not None and p < ALPHA


def significance_marker(comp: dict | None) -> str:
    """``**`` for p < 0.01, ``*`` for p < 0.05 (Holm-corrected), else ``""``."""
    if not comp:
        return ""
    p = holm_p(comp)
    if p is None:
        return ""
    for threshold, marker in MARKERS:
        if p < threshold:
            return marker
    return ""


def _stats(runs: list[dict], split: str) -> dict[str, Stat]:
    values: dict[str, list[float]] = {}
    for run in runs:
        for name, value in (((run.get("metrics") or {}).get(split)) or {}).items():
            x = as_float(value)
            if x is not None:
                values.setdefault(str(name), []).append(x)
    return {name: stat for name, vs in values.items() if (stat := Stat.of(vs)) is not None}


def summarize(data: dict, primary: str) -> list[MethodSummary]:
    """One summary per method, best primary-metric mean first; methods without it keep their run order at the end."""
    summaries: dict[str, MethodSummary] = {}
    for run in data.get("runs") or []:
        method = str(run.get("method"))
        if method not in summaries:
            summaries[method] = MethodSummary(method, str(run.get("kind") or "strategy"))
        summaries[method].runs.append(run)
    for summary in summaries.values():
        done = summary.done_runs
        summary.test = _stats(done, "test")
        summary.valid = _stats(done, "valid")
        summary.time_s = Stat.of([t for r in done if (t := as_float(r.get("time_s"))) is not None])
        peaks = [p for r in summary.runs if (p := as_float(r.get("peak_rss_mb"))) is not None]
        summary.peak_rss_mb = max(peaks) if peaks else None

    sign = 1.0 if higher_is_better(primary, data.get("lower_is_better") or ()) else -1.0
    ordered = list(summaries.values())
    ranked = sorted((s for s in ordered if s.mean(primary) is not None), key=lambda s: -sign * s.mean(primary))
    return ranked + [s for s in ordered if s.mean(primary) is None]


def best_of_kind(summaries: list[MethodSummary], kind: str, primary: str) -> MethodSummary | None:
    """The highest-ranked method of a kind with a primary-metric value (summaries are already ranked)."""
    return next((s for s in summaries if s.kind == kind and s.mean(primary) is not None), None)


def build_context(data: dict) -> ReportContext:
    """Aggregate the runner's report data once for every renderer."""
    metrics = data.get("metrics") or []
    primary = str(data.get("primary_metric") or (metrics[0] if metrics else ""))
    summaries = summarize(data, primary)
    reference = data.get("reference")
    if reference is None:
        # the runner names the best baseline; recompute it only where it could not
        best = best_of_kind(summaries, "baseline", primary)
        reference = best.method if best else None
    comparisons: dict[tuple[str, str], dict] = {}
    for comp in _declared_rows(data):
        key = (str(comp.get("method")), str(comp.get("metric")))
        if comp.get("reference") in (None, reference) or key not in comparisons:
            comparisons[key] = comp
    groups = classify_metrics(data, primary)
    return ReportContext(data, primary, summaries, groups, reference, comparisons)


def _declared_rows(data: dict) -> list[dict]:
    """The comparison rows, each with its evaluator's declared p-value keys (``P_VALUE_KEYS``).

    Report data with ``comparison_tables`` (the runner's) says which keys hold the
    p-values behind the markers; bare ``comparisons`` (older report data) are read
    with the p-value keys they carry (``p_*_holm``).
    """
    tables = data.get("comparison_tables")
    if tables is None:
        return [dict(c, **{P_VALUE_KEYS: tuple(k for k in c if k.startswith("p_") and k.endswith("_holm"))})
                for c in data.get("comparisons") or []]
    return [dict(c, **{P_VALUE_KEYS: tuple(t.get("p_value_keys") or ())}) for t in tables
            if set(t.get("row_keys") or ()) <= IMPROVEMENT_KEYS for c in t.get("rows") or []]


def evaluator_tables(data: dict) -> list[tuple[str, list[str], list[dict]]]:
    """``(evaluator, columns, rows)`` of report evaluators whose rows carry keys of their own.

    Rows shaped like the improvement table's (mean and reference mean, p-values) are shown
    there; an evaluator declaring other ``row_keys`` gets a table of exactly those columns.
    """
    out = []
    for table in data.get("comparison_tables") or []:
        keys = list(table.get("row_keys") or [])
        if table.get("rows") and not set(keys) <= IMPROVEMENT_KEYS:
            out.append((str(table.get("evaluator")), keys, list(table["rows"])))
    return out
