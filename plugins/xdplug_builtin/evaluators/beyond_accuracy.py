"""What a method recommends besides hits: coverage, concentration, popularity bias.

Transfer from a source domain or from item text is expected to reach items the
target's interactions barely cover; these metrics show whether it does. They
follow RecBole 1.2.1's ItemCoverage, GiniIndex, AveragePopularity and
TailPercentage over the top-K lists of every evaluated user, with the item
popularity being the target training counts (``result.item_popularity``).

Deliberate differences from RecBole, both about items RecBole cannot see:

- the number of items is ``result.n_items`` (the real catalogue); RecBole's
  ``data.num_items`` also counts its padding item 0, which lowers coverage by a
  factor ``n / (n + 1)`` and shifts the Gini index slightly;
- RecBole's long-tail set is built from its training ``Counter``, which never
  holds items without training interactions, so cold items could never be tail
  items. With ``unseen_is_tail`` (default) items with zero training
  interactions are tail items too; the rest of the tail set is exactly
  RecBole's, so both agree whenever every item was seen in training. Set it to
  ``False`` for RecBole's numbers verbatim.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from xdplug.api import Bool, ConfigError, Evaluator, Float

from .ranking import mean

if TYPE_CHECKING:  # pragma: no cover
    from xdplug.api import RankingResult


def coverage(items: np.ndarray, n_items: int) -> float:
    """Share of the catalogue that appears in at least one top-K list."""
    items = items[items >= 0]
    return float(np.unique(items).size / n_items) if n_items else 0.0


def gini_index(items: np.ndarray, n_items: int) -> float:
    """RecBole's GiniIndex over how often each item is recommended (0 = even, ~1 = one item)."""
    items = items[items >= 0]
    if not items.size or not n_items:
        return 0.0
    counts = np.sort(np.unique(items, return_counts=True)[1])
    # never-recommended items hold the lowest ranks with a count of zero
    idx = np.arange(n_items - counts.size + 1, n_items + 1)
    return float(np.sum((2 * idx - n_items - 1) * counts) / items.size / n_items)


def tail_items(popularity: np.ndarray, tail_ratio: float, unseen_is_tail: bool = True) -> np.ndarray:
    """Boolean [n_items]: the long-tail items, by RecBole's ``tail_ratio`` rule.

    ``tail_ratio > 1`` is a count threshold (items seen at most that many
    times); ``0 < tail_ratio <= 1`` is a share: the ``max(int(n * ratio), 1)``
    least popular of the ``n`` items seen in training, ties by item index.
    """
    popularity = np.asarray(popularity)
    seen = popularity > 0
    tail = np.zeros(popularity.shape, dtype=bool)
    if tail_ratio > 1:
        tail = seen & (popularity <= tail_ratio)
    else:
        seen_idx = np.flatnonzero(seen)
        order = seen_idx[np.lexsort((seen_idx, popularity[seen_idx]))]
        cut = max(int(len(seen_idx) * tail_ratio), 1)
        tail[order[:cut]] = True
    if unseen_is_tail:
        tail |= ~seen
    return tail


def running_mean(values: np.ndarray) -> np.ndarray:
    """Mean of the first j + 1 columns, for every column j (RecBole's ``metric_info``)."""
    return np.cumsum(values, axis=1) / np.arange(1, values.shape[1] + 1)


class BeyondAccuracyEvaluator(Evaluator):
    """Item coverage, Gini index, average popularity and tail percentage at each K."""

    name = "beyond-accuracy"
    description = "Item coverage, Gini index, average popularity and long-tail share at each K"
    # a share of the seen items in (0, 1], or above 1 a count threshold (RecBole's rule)
    defaults = {"tail_ratio": Float(0.1, 0, 1e9, low_open=True), "unseen_is_tail": Bool(True)}
    scope = "run"
    #: a flatter exposure (lower Gini) and less popular recommendations are better; wider coverage and
    #: a larger tail share too
    directions = {"coverage": "higher", "gini": "lower", "avg_pop": "lower", "tail_pct": "higher"}

    def __init__(self, params: dict | None = None, path: str | None = None):
        super().__init__(params, path)
        if not self.params["tail_ratio"] > 0:
            raise ConfigError(
                f"{path or f'evaluator:{self.name}'}.tail_ratio",
                "must be a share in (0, 1] or a count threshold above 1",
            )

    def _columns(self, result: RankingResult):
        popularity = np.asarray(result.item_popularity, dtype=np.float64)
        topk = np.asarray(result.topk)
        valid = topk >= 0
        safe = np.where(valid, topk, 0)
        pop = np.where(valid, popularity[safe], 0.0)
        tail = tail_items(popularity, self.params["tail_ratio"], self.params["unseen_is_tail"])
        is_tail = np.where(valid, tail[safe], False).astype(np.float64)
        return running_mean(pop), running_mean(is_tail)

    def per_user(self, result: RankingResult) -> dict[str, np.ndarray]:
        """Average popularity and tail share per user (coverage and Gini are list-level)."""
        avg_pop, tail_pct = self._columns(result)
        out = {}
        for k in result.ks:
            col = min(k, avg_pop.shape[1]) - 1
            out[f"avg_pop@{k}"] = avg_pop[:, col]
            out[f"tail_pct@{k}"] = tail_pct[:, col]
        return out

    def evaluate(self, result: RankingResult) -> dict[str, float]:
        topk = np.asarray(result.topk)
        users = self.per_user(result)
        out = {}
        for k in result.ks:
            out[f"coverage@{k}"] = coverage(topk[:, :k].ravel(), result.n_items)
            out[f"gini@{k}"] = gini_index(topk[:, :k].ravel(), result.n_items)
            out[f"avg_pop@{k}"] = mean(users[f"avg_pop@{k}"])
            out[f"tail_pct@{k}"] = mean(users[f"tail_pct@{k}"])
        return out
