"""``example-novelty``: how surprising the recommended items are (mean self-information).

novelty@K of a user = mean over the top-K items of ``-log2 p(i)``, where
``p(i)`` is the item's share of the target's training interactions
(add-one smoothed, so cold items are the most novel). Higher is more novel.
"""

from __future__ import annotations

import numpy as np

from xdplug.api import Evaluator


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
