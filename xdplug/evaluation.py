"""Full-sort ranking of target users: the one evaluation every method goes through.

Every baseline and strategy exposes a scorer over the target's canonical item
indices. :func:`rank_users` scores each evaluated user against *all* target
items, removes the user's training items (as RecBole's full-sort evaluation
does) and keeps the top K. Evaluator plugins then turn the resulting
:class:`RankingResult` into metrics, so every method in a report is measured by
identical code on an identical split.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from .metrics import hit_matrix

if TYPE_CHECKING:  # pragma: no cover
    from .data.crossdomain import CrossDomainData


@dataclass
class RankingResult:
    """One method's rankings of the evaluated target users on one split (valid or test)."""

    #: canonical target user indices evaluated (users with at least one positive), shape [U]
    users: np.ndarray
    #: top-K canonical target item indices per user, best first, training items excluded; [U, K_max]
    topk: np.ndarray
    #: the user's held-out positives (canonical item indices), one array per user
    positives: list[np.ndarray]
    #: cut-offs to report, e.g. [10, 20, 50]; ``topk.shape[1] == max(ks)``
    ks: list[int]
    #: number of target items ranked
    n_items: int
    #: number of target training interactions of each evaluated user; [U]
    train_counts: np.ndarray
    #: number of target training interactions of each item; [n_items]
    item_popularity: np.ndarray
    #: upper bounds of the user groups by ``train_counts`` (cold-start slices)
    user_groups: list[int] = field(default_factory=lambda: [5, 10, 20, 50])
    #: canonical indices of cold items (no target training interaction), or None
    cold_items: np.ndarray | None = None
    #: top-K among the cold items only, -1 padded; [U, K_max], or None
    topk_cold: np.ndarray | None = None
    #: which target items the method could learn anything about (None: all)
    item_known: np.ndarray | None = None
    #: where users overlap: number of source training interactions of each evaluated user (0: none); [U]
    source_counts: np.ndarray | None = None

    def hits(self) -> np.ndarray:
        """Boolean [U, K_max]: is the item at rank r a held-out positive?"""
        return hit_matrix(self.topk, self.positives)

    def positive_counts(self) -> np.ndarray:
        return np.array([len(p) for p in self.positives], dtype=np.int64)


def rank_users(
    score_fn,
    users: np.ndarray,
    positives: list[np.ndarray],
    train_items: list[np.ndarray],
    n_items: int,
    k: int,
    batch_size: int = 1024,
    device: torch.device | str = "cpu",
    cold_items: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Top-``k`` items of each user over all ``n_items``, training items masked.

    ``score_fn(LongTensor users) -> FloatTensor[len(users), n_items]``. Returns
    the top-k matrix and, when ``cold_items`` is given, the top-k among cold
    items only (padded with -1 when there are fewer than k cold items).
    """
    k = min(k, n_items)
    topk = np.empty((len(users), k), dtype=np.int64)
    topk_cold = None
    cold_mask = None
    if cold_items is not None and len(cold_items):
        topk_cold = np.full((len(users), k), -1, dtype=np.int64)
        cold_mask = torch.zeros(n_items, dtype=torch.bool, device=device)
        cold_mask[torch.as_tensor(cold_items, device=device)] = True
        k_cold = min(k, len(cold_items))
    for start in range(0, len(users), batch_size):
        stop = min(start + batch_size, len(users))
        batch = torch.as_tensor(users[start:stop], dtype=torch.long, device=device)
        with torch.no_grad():
            scores = score_fn(batch).to(device=device, dtype=torch.float32).clone()
        if scores.shape != (stop - start, n_items):
            raise RuntimeError(
                f"scorer returned shape {tuple(scores.shape)}, expected {(stop - start, n_items)}"
            )
        rows = np.concatenate([np.full(len(train_items[u]), i) for i, u in
                               enumerate(range(start, stop))]) if stop > start else np.array([])
        cols = np.concatenate([train_items[u] for u in range(start, stop)])
        if len(cols):
            scores[torch.as_tensor(rows, dtype=torch.long, device=device),
                   torch.as_tensor(cols, dtype=torch.long, device=device)] = -torch.inf
        scores = torch.nan_to_num(scores, nan=-torch.inf)
        # ties broken by item index, so every method is ranked by the same rule
        top = torch.topk(scores, k, dim=1).indices
        topk[start:stop] = top.cpu().numpy()
        if cold_mask is not None:
            cold_scores = scores.masked_fill(~cold_mask, -torch.inf)
            top_cold = torch.topk(cold_scores, k_cold, dim=1).indices
            topk_cold[start:stop, :k_cold] = top_cold.cpu().numpy()
    return topk, topk_cold


# -- the fixed target split -------------------------------------------------------------


def split_users(data: CrossDomainData, split: str):
    """Users with held-out positives in ``split``, their positives and their masked items (cached)."""
    cache = data.split_cache
    if split not in cache:
        cache[split] = _split_users(data, split)
    return cache[split]


def _split_users(data: CrossDomainData, split: str):
    train = data.user_items("target", "train")
    held = data.user_items("target", split)
    masked = train
    if split == "test":  # as RecBole: the test ranking also excludes validation items
        valid = data.user_items("target", "valid")
        masked = [np.union1d(a, b) for a, b in zip(train, valid)]
    users = np.array([u for u in range(data.n_target_users) if len(held[u])], dtype=np.int64)
    return users, [held[u] for u in users], [masked[u] for u in users], np.array([len(train[u]) for u in users])


def rank_split(score_fn, data: CrossDomainData, split: str, ks: list[int], device, user_groups,
               item_known=None, batch_size: int = 1024) -> RankingResult:
    users, positives, masked, counts = split_users(data, split)
    cold = data.cold_items if len(data.cold_items) else None
    topk, topk_cold = rank_users(score_fn, users, positives, masked, data.n_target_items, max(ks),
                                 batch_size=batch_size, device=device, cold_items=cold)
    return RankingResult(users=users, topk=topk, positives=positives, ks=list(ks),
                         n_items=data.n_target_items, train_counts=counts,
                         item_popularity=data.target_item_popularity, user_groups=list(user_groups),
                         cold_items=cold, topk_cold=topk_cold, item_known=item_known,
                         source_counts=source_counts(data, users))


def source_counts(data: CrossDomainData, users: np.ndarray) -> np.ndarray | None:
    """Source training interactions of each target user in ``users`` (the same person's), or None
    when no user is in both domains."""
    if not len(data.shared_users):
        return None
    per_source = np.bincount(data.source_train[:, 0], minlength=data.n_source_users)
    counts = np.zeros(data.n_target_users, dtype=np.int64)
    counts[data.shared_users[:, 0]] = per_source[data.shared_users[:, 1]]
    return counts[users]
