"""Paired per-user significance of every method against the reference baseline.

A difference in mean NDCG between two methods says little on its own: the
protocol (docs/protocol.md, section 2) asks for a paired per-user test against the best
baseline. Runs are paired by seed (each seed fixes one split shared by every
method) and, within a seed, by user id. Each user's value is the mean over the
seeds in which both methods ranked that user, so several seeds sharpen each
user's value instead of counting the same user several times.

For each compared method and metric the row holds a paired t-test
(``scipy.stats.ttest_rel``), a Wilcoxon signed-rank test
(``scipy.stats.wilcoxon``), both Holm-Bonferroni corrected across the compared
methods (per metric and per test), Cohen's d_z and the relative improvement.

Conventions where the statistics are undefined:

- all per-user differences zero (e.g. a method compared with itself): both
  p-values are 1.0 and the t statistic is 0 (scipy gives NaN or raises);
- any other NaN from scipy (e.g. a single paired user): p = 1.0, t = 0;
- d_z is 0 when the differences have no spread (or a single user);
- improvement is NaN when the reference's mean is 0 (0 when both are 0);
- a method with no seed in common with the reference, or no paired user,
  gets no row (there is nothing to compare); a single seed is fine.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
from scipy import stats

from xdplug.api import Evaluator, Float, List

logger = logging.getLogger(__name__)


def holm(p_values) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values, in the input's order.

    With the m p-values sorted ascending, the i-th (from 1) is multiplied by
    ``m - i + 1``; the running maximum keeps the adjusted values monotone, and
    they are capped at 1.
    """
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    scaled = p[order] * (m - np.arange(m))
    adjusted = np.minimum(np.maximum.accumulate(scaled), 1.0)
    out = np.empty(m)
    out[order] = adjusted
    return out


def paired_tests(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """t-test, Wilcoxon and d_z of ``x - y`` with the conventions of the module docstring."""
    diff = np.asarray(x, dtype=np.float64) - np.asarray(y, dtype=np.float64)
    if not np.any(diff):
        return {"t_stat": 0.0, "p_ttest": 1.0, "p_wilcoxon": 1.0, "effect_size": 0.0}
    with warnings.catch_warnings():
        # tiny samples, ties and zeros make scipy warn; the numbers are still its own
        warnings.simplefilter("ignore")
        t = stats.ttest_rel(x, y)
        t_stat, p_t = float(t.statistic), float(t.pvalue)
        try:
            p_w = float(stats.wilcoxon(x, y).pvalue)
        except ValueError:  # pragma: no cover - scipy refuses degenerate input
            p_w = float("nan")
    std = float(np.std(diff, ddof=1)) if diff.size > 1 else 0.0
    return {
        "t_stat": 0.0 if np.isnan(t_stat) else t_stat,
        "p_ttest": 1.0 if np.isnan(p_t) else p_t,
        "p_wilcoxon": 1.0 if np.isnan(p_w) else p_w,
        "effect_size": float(diff.mean() / std) if std > 0 else 0.0,
    }


def paired_users(method_runs: dict, reference_runs: dict, metric: str):
    """Per-user values of both methods, each averaged over the seeds they share.

    A user whose value is NaN in either run of a seed (outside a slice) is not paired in that seed.

    ``*_runs`` map seed -> run dict. Returns ``(user ids, method values,
    reference values, seeds used)``.
    """
    seeds = sorted(
        s for s in set(method_runs) & set(reference_runs)
        if metric in method_runs[s]["per_user"] and metric in reference_runs[s]["per_user"]
    )
    users, a_parts, b_parts = [], [], []
    for seed in seeds:
        a, b = method_runs[seed], reference_runs[seed]
        a_users, b_users = np.asarray(a["users"]), np.asarray(b["users"])
        common, ia, ib = np.intersect1d(a_users, b_users, return_indices=True)
        a_values = np.asarray(a["per_user"][metric], dtype=np.float64)[ia]
        b_values = np.asarray(b["per_user"][metric], dtype=np.float64)[ib]
        measured = np.isfinite(a_values) & np.isfinite(b_values)  # a slice (cold items) leaves NaN elsewhere
        users.append(common[measured])
        a_parts.append(a_values[measured])
        b_parts.append(b_values[measured])
    if not seeds:
        return np.array([], dtype=np.int64), np.array([]), np.array([]), seeds
    all_users = np.concatenate(users)
    uniq, inverse, counts = np.unique(all_users, return_inverse=True, return_counts=True)
    a_mean = np.bincount(inverse, weights=np.concatenate(a_parts), minlength=uniq.size) / counts
    b_mean = np.bincount(inverse, weights=np.concatenate(b_parts), minlength=uniq.size) / counts
    return uniq, a_mean, b_mean, seeds


#: the keys of every comparison row, in display order
ROW_KEYS = (
    "method", "reference", "metric", "mean", "reference_mean", "improvement_pct",
    "t_stat", "p_ttest", "p_ttest_holm", "p_wilcoxon", "p_wilcoxon_holm",
    "effect_size", "significant", "n_users", "n_seeds",
)


class SignificanceEvaluator(Evaluator):
    """Paired t-test and Wilcoxon per user against a reference method, Holm-corrected."""

    name = "significance"
    description = "Paired per-user t-test and Wilcoxon vs the reference, Holm-corrected, with effect sizes"
    defaults = {"metrics": List(["ndcg@10", "recall@10"], str), "alpha": Float(0.05, 0, 1, low_open=True, high_open=True)}
    scope = "report"
    row_keys = ROW_KEYS
    #: the report marks a row by the larger of the two Holm-corrected p-values
    p_value_keys = ("p_ttest_holm", "p_wilcoxon_holm")

    def compare(self, runs: list[dict], reference: str) -> list[dict]:
        by_method: dict[str, dict[int, dict]] = {}
        for run in runs:
            seeds = by_method.setdefault(run["method"], {})
            if run["seed"] in seeds:
                logger.warning("several runs of %r with seed %s; the last one is used",
                               run["method"], run["seed"])
            seeds[run["seed"]] = run
        if reference not in by_method:
            logger.warning("reference method %r has no finished run; no comparison", reference)
            return []
        rows: list[dict] = []
        for metric in self.params["metrics"]:
            metric_rows = []
            for method, method_runs in by_method.items():
                if method == reference:
                    continue
                users, a, b, seeds = paired_users(method_runs, by_method[reference], metric)
                if not users.size:
                    logger.info("%s has no run paired with %s on %s; no row", method, reference, metric)
                    continue
                mean, ref_mean = float(a.mean()), float(b.mean())
                if ref_mean:
                    improvement = (mean - ref_mean) / ref_mean * 100.0
                else:
                    improvement = 0.0 if mean == ref_mean else float("nan")
                metric_rows.append({
                    "method": method,
                    "reference": reference,
                    "metric": metric,
                    "mean": mean,
                    "reference_mean": ref_mean,
                    "improvement_pct": improvement,
                    **paired_tests(a, b),
                    "n_users": int(users.size),
                    "n_seeds": len(seeds),
                })
            for test in ("p_ttest", "p_wilcoxon"):
                adjusted = holm([row[test] for row in metric_rows])
                for row, p in zip(metric_rows, adjusted):
                    row[f"{test}_holm"] = float(p)
            for row in metric_rows:
                row["significant"] = bool(
                    row["p_ttest_holm"] < self.params["alpha"]
                    and row["p_wilcoxon_holm"] < self.params["alpha"]
                )
            rows.extend(metric_rows)
        return [{key: row[key] for key in ROW_KEYS} for row in rows]
