"""Cold-start slices: where transfer should matter most.

Averages over all users hide the question a cross-domain method must answer:
does it help the users and items the target barely knows? Two slices:

**User groups.** Users are grouped by their number of target training
interactions (``result.train_counts``) with the upper bounds
``result.user_groups``: ``[5, 10, 20, 50]`` gives ``1-5``, ``6-10``,
``11-20``, ``21-50`` and ``51+``. Users with no target training interaction
at all (possible in the sparse-target regime) form a group ``0`` that is
reported only when it has users. Each group reports the mean NDCG / Recall /
Hit at each K over its users, computed exactly as the ``ranking`` evaluator
does, and its user count. ``n_users|users X`` is always reported (0 for an
empty group, so tables keep their shape); an empty group has no metric keys.

**Source-history groups** (where users overlap: ``result.source_counts``).
The same metrics by the size of the user's history in the *source* domain,
with the upper bounds ``source_groups``: ``[20]`` gives ``source history 0``
(no source history), ``1-20`` (few) and ``21+`` (many); every group reports
``n_users|source history X``. It shows who gains from reading the other
domain.

**Cold items** (when ``result.cold_items`` is set). The ranking among cold
items only (``result.topk_cold``) is scored against each user's positives
restricted to cold items, over the users with at least one cold positive. The
share of all-items hits that are cold items (``cold_hit_share@K``) shows
whether a method ever surfaces them in the normal ranking. When the method
says which items it could learn about (``result.item_known``),
``cold_known_frac`` is the fraction of cold items among them: an ID-only model
reports 0 there, and its cold-item numbers are what it actually produced
(typically random order), not left out.

``per_user`` returns the cold-item slice's values per user (``ndcg@10|cold items``, ...), NaN
for a user without a cold test positive, so the report can test the slice's differences per
user (the significance evaluator pairs only users with a value in both runs). The group values
are the ``ranking`` evaluator's per-user values sliced by group: nothing new to test.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import TYPE_CHECKING

import numpy as np

from xdplug.api import Evaluator, List, csr_lists

from .ranking import check_metric_names, hit_matrix, mean, per_user_metrics

if TYPE_CHECKING:  # pragma: no cover
    from xdplug.api import RankingResult

logger = logging.getLogger(__name__)


def user_group_labels(bounds: list[int]) -> tuple[np.ndarray, list[str]]:
    """Edges for ``np.searchsorted(edges, counts)`` and one label per group.

    Group 0 holds the users with no training interaction (counts <= 0) unless
    ``bounds`` already starts at 0; each next group is ``(lower, upper]``, the
    last is ``upper+``.
    """
    bounds = sorted({int(b) for b in bounds if int(b) >= 0})
    edges = bounds if bounds and bounds[0] == 0 else [0, *bounds]
    labels = ["0"]
    for lower, upper in zip(edges[:-1], edges[1:]):
        labels.append(str(upper) if upper == lower + 1 else f"{lower + 1}-{upper}")
    labels.append(f"{edges[-1] + 1}+")
    return np.asarray(edges), labels


def cold_item_mask(result: RankingResult) -> np.ndarray:
    """``mask[item]`` is True for the cold items, sized to cover every item a ranking names."""
    cold = np.asarray(result.cold_items)
    size = max(int(result.n_items), int(cold.max(initial=-1)) + 1, int(np.asarray(result.topk).max(initial=-1)) + 1)
    mask = np.zeros(size, dtype=bool)
    mask[cold] = True
    return mask


def cold_positives(positives, is_cold_item: np.ndarray) -> tuple[SimpleNamespace, np.ndarray]:
    """Each user's positives that are cold items, as CSR over the users with any; and the count per user.

    One mask lookup over all positives: a per-user ``np.isin`` against the cold items costs
    users x cold items.
    """
    indptr, items = csr_lists(positives)
    items = items.astype(np.int64)
    keep = is_cold_item[items]
    row_of = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    counts = np.bincount(row_of[keep], minlength=len(indptr) - 1).astype(np.int64)
    eligible = counts[counts > 0]
    return SimpleNamespace(indptr=np.concatenate([[0], np.cumsum(eligible)]), indices=items[keep]), counts


class ColdStartEvaluator(Evaluator):
    """Metrics per user-activity group and on cold items."""

    name = "cold-start"
    description = "Metrics by user training-interaction group and on cold (target-unseen) items"
    defaults = {"metrics": List(["ndcg", "recall", "hit"], str),
                "source_groups": List([20], int, 1, 10**9)}
    scope = "run"
    slices = {"users": "users grouped by their target training interactions (users 1-5, ...)",
              "source history": "users grouped by their source interactions (source history 0, ...)",
              "cold items": "target items without training interactions, ranked among themselves"}
    cold_slice = "cold items"

    def __init__(self, params: dict | None = None, path: str | None = None):
        super().__init__(params, path)
        check_metric_names(type(self), self.params["metrics"], path)

    def per_user(self, result: RankingResult) -> dict[str, np.ndarray]:
        """The cold-item slice's metrics per user, NaN where a user has no cold test positive."""
        if result.cold_items is None or result.topk_cold is None:
            return {}
        rows, values = self._cold_slice(result, cold_item_mask(result))
        out = {}
        for key, per_user in values.items():
            full = np.full(len(result.users), np.nan)
            full[rows] = per_user
            out[f"{key}|{self.cold_slice}"] = full
        return out

    def _cold_slice(self, result: RankingResult,
                    is_cold_item: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The rows of users with a cold test positive, and their metrics on the cold-only ranking
        (none without one)."""
        cold_pos, cold_counts = cold_positives(result.positives, is_cold_item)
        rows = np.flatnonzero(cold_counts > 0)
        if not rows.size or result.topk_cold is None:
            return rows, {}
        pos_index = hit_matrix(np.asarray(result.topk_cold)[rows], cold_pos)
        return rows, per_user_metrics(pos_index, cold_counts[rows], result.ks, tuple(self.params["metrics"]))

    def evaluate(self, result: RankingResult) -> dict[str, float]:
        hits = result.hits()
        out = self._user_groups(result, hits)
        if result.source_counts is not None:
            out.update(self._groups(result, hits, result.source_counts, [0, *self.params["source_groups"]],
                                    "source history"))
        if result.cold_items is not None:
            out.update(self._cold_items(result, hits))
        return out

    # -- user groups -----------------------------------------------------------
    def _user_groups(self, result: RankingResult, hits: np.ndarray) -> dict[str, float]:
        return self._groups(result, hits, result.train_counts, result.user_groups, "users")

    def _groups(self, result: RankingResult, hits: np.ndarray, counts, bounds, name: str) -> dict[str, float]:
        metrics = tuple(self.params["metrics"])
        values = per_user_metrics(hits, result.positive_counts(), result.ks, metrics)
        edges, labels = user_group_labels(bounds)
        group = np.searchsorted(edges, np.asarray(counts), side="left")
        implicit_zero = edges[0] == 0 and 0 not in bounds
        out: dict[str, float] = {}
        for g, label in enumerate(labels):
            members = group == g
            n = int(members.sum())
            if g == 0 and implicit_zero and n == 0:
                continue
            suffix = f"|{name} {label}"
            if n:
                for key, per_user in values.items():
                    out[key + suffix] = float(per_user[members].mean())
            out["n_users" + suffix] = float(n)
        return out

    # -- cold items ------------------------------------------------------------
    def _cold_items(self, result: RankingResult, hits: np.ndarray) -> dict[str, float]:
        cold = np.asarray(result.cold_items)
        topk = np.asarray(result.topk)
        out: dict[str, float] = {}
        is_cold_item = cold_item_mask(result)
        rows, values = self._cold_slice(result, is_cold_item)
        n_eligible = int(rows.size)
        if n_eligible and result.topk_cold is None:
            logger.warning("cold items given without a cold-only ranking; cold-item metrics skipped")
        for key, per_user in values.items():
            out[f"{key}|{self.cold_slice}"] = mean(per_user)
        out[f"n_users|{self.cold_slice}"] = float(n_eligible)

        is_cold = (topk >= 0) & is_cold_item[np.maximum(topk, 0)]
        for k in result.ks:
            all_hits = int(hits[:, :k].sum())
            cold_hits = int((hits[:, :k] & is_cold[:, :k]).sum())
            out[f"cold_hit_share@{k}"] = cold_hits / all_hits if all_hits else 0.0

        if result.item_known is not None and cold.size:
            out["cold_known_frac"] = float(np.asarray(result.item_known, dtype=bool)[cold].mean())
        return out
