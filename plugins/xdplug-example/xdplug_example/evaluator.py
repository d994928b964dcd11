"""``example-novelty``: how surprising the recommended items are (mean self-information).

novelty@K of a user = mean over the top-K items of ``-log2 p(i)``, where
``p(i)`` is the item's share of the target's training interactions
(add-one smoothed, so cold items are the most novel). Higher is more novel.
"""

from __future__ import annotations

import numpy as np

from xdplug.api import Evaluator, List


def self_information(popularity: np.ndarray) -> np.ndarray:
    popularity = np.asarray(popularity, dtype=np.float64)
    p = (popularity + 1.0) / (popularity.sum() + len(popularity))
    return -np.log2(p)


class Novelty(Evaluator):
    name = "example-novelty"
    description = "Mean self-information -log2 p(item) of the top-K items (example plugin)"
    scope = "run"

    def per_user(self, result):
        info = self_information(result.item_popularity)
        topk = np.asarray(result.topk)
        out = {}
        for k in result.ks:
            top = topk[:, :k]
            values = np.where(top >= 0, info[np.clip(top, 0, None)], np.nan)
            counts = (top >= 0).sum(1)
            out[f"novelty@{k}"] = np.where(counts > 0, np.nansum(values, 1) / np.maximum(counts, 1), 0.0)
        return out

    def evaluate(self, result):
        return {key: float(values.mean()) if len(values) else 0.0 for key, values in self.per_user(result).items()}


class WinRate(Evaluator):
    """``example-wins``: per metric, on how many users a method beats the reference (a sign test).

    A report-scope evaluator declares its rows' keys (``row_keys``) and which of them
    is a p-value behind the report's markers (``p_value_keys``); the report shows a
    table of exactly these columns, whatever the evaluator is called.
    """

    name = "example-wins"
    description = "Users on which each method beats the reference, with a two-sided sign test (example plugin)"
    defaults = {"metrics": List(["ndcg@10"], str)}
    scope = "report"
    row_keys = ("method", "reference", "metric", "wins", "losses", "ties", "win_rate", "p_sign")
    p_value_keys = ("p_sign",)

    def compare(self, runs, reference):
        from scipy.stats import binomtest

        by_method = {}
        for run in runs:
            by_method.setdefault(run["method"], []).append(run)
        rows = []
        for metric in self.params["metrics"]:
            ref = {(r["seed"], int(u)): v for r in by_method.get(reference, [])
                   for u, v in zip(r["users"], r["per_user"].get(metric, []))}
            for method, method_runs in by_method.items():
                if method == reference:
                    continue
                diffs = np.array([v - ref[(r["seed"], int(u))] for r in method_runs
                                  for u, v in zip(r["users"], r["per_user"].get(metric, []))
                                  if (r["seed"], int(u)) in ref])
                wins, losses = int((diffs > 0).sum()), int((diffs < 0).sum())
                p = binomtest(wins, wins + losses).pvalue if wins + losses else 1.0
                rows.append({"method": method, "reference": reference, "metric": metric, "wins": wins,
                             "losses": losses, "ties": int((diffs == 0).sum()),
                             "win_rate": wins / max(len(diffs), 1), "p_sign": float(p)})
        return rows
