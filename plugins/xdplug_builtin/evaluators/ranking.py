"""The ``ranking`` evaluator: Recall, NDCG, MRR, Hit and Precision at every K, RecBole 1.2.1's definitions.

The maths is xdplug's one implementation (:mod:`xdplug.metrics`, re-exported by
``xdplug.api``), shared with early stopping, export and update; the tests check
it agrees with ``recbole.evaluator.metrics``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from xdplug.api import (METRICS, ConfigError, Evaluator, List, hit_matrix, mean, metric_matrix,  # noqa: F401
                        pad_columns, per_user_metrics)

if TYPE_CHECKING:  # pragma: no cover
    from xdplug.api import RankingResult

def check_metric_names(cls: type, names, path: str | None) -> None:
    unknown = [m for m in names if m not in METRICS]
    if unknown:
        raise ConfigError(
            f"{path or f'evaluator:{cls.name}'}.metrics",
            f"unknown metric(s) {', '.join(map(repr, unknown))}; known: {', '.join(METRICS)}",
        )


class RankingEvaluator(Evaluator):
    """Recall / NDCG / MRR / Hit / Precision at every K of the result."""

    name = "ranking"
    description = "RecBole's full-sort Recall, NDCG, MRR, Hit and Precision at each K"
    defaults = {"metrics": List(list(METRICS), str)}
    scope = "run"

    def __init__(self, params: dict | None = None, path: str | None = None):
        super().__init__(params, path)
        check_metric_names(type(self), self.params["metrics"], path)

    def per_user(self, result: RankingResult) -> dict[str, np.ndarray]:
        return per_user_metrics(
            result.hits(), result.positive_counts(), result.ks, tuple(self.params["metrics"])
        )

    def evaluate(self, result: RankingResult) -> dict[str, float]:
        return {key: mean(values) for key, values in self.per_user(result).items()}
