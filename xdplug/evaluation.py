"""Full-sort ranking of target users: the one evaluation every method goes through.

Every baseline and strategy exposes a scorer over the target's canonical item
indices. :func:`rank_users` scores each evaluated user against *all* target
items, removes the user's training items (as RecBole's full-sort evaluation
does) and keeps the top K. Evaluator plugins then turn the resulting
:class:`RankingResult` into metrics, so every method in a report is measured by
identical code on an identical split.

Memory: users are scored in batches sized so that one batch's score block and its
working copy stay within a budget (:func:`memory_budget`: ``XDPLUG_EVAL_MEMORY_MB``,
default :data:`MEMORY_MB` MiB; a resource setting, so no part of a run's identity), at
most ``batch_size`` users. Whenever one user's whole row fits (every catalogue up to
tens of millions of items at the default), each row is ranked by ``torch.topk`` as it
always was, so results do not depend on the budget. Past that, items are scored in
chunks (by the scorer's optional ``score_items(users, start, stop)``, else sliced from one
user's row) and merged into a running top-k; ties then go to the lower item index
(``torch.topk`` over a whole row leaves equal scores in its own order). Training
items are masked from CSR arrays (:class:`UserItems`), not per-user Python loops.

Under ``dataset.protocol.task: next-item`` each evaluated user has one target per split and the
masked items are that target's input sequence (docs/protocol.md, section 3); a scorer with
``score_split(users, split)`` is called with the split it ranks (:func:`split_scorer`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch

from .errors import ConfigError
from .metrics import hit_matrix
from .options import Float
from .tasks import NEXT_ITEM

if TYPE_CHECKING:  # pragma: no cover
    from .data.crossdomain import CrossDomainData

#: ranking memory budget (MiB) when neither ``memory_mb`` nor ``$XDPLUG_EVAL_MEMORY_MB`` is set
MEMORY_MB = 1024
MEMORY_ENV = "XDPLUG_EVAL_MEMORY_MB"
MEMORY_OPTION = Float(MEMORY_MB, 0, 2**24, low_open=True, help="MiB for one ranking batch's scores")
#: bytes per (user, item) of a full-row batch: the scorer's float32 block, our copy and slack
#: for the scorer's own temporaries
ROW_BYTES = 12
#: bytes per (user, item) of an item chunk: the block, our copy, the int64 order keys and
#: their temporaries
CHUNK_BYTES = 32
#: the item chunk width a chunked scorer's user batch is sized for
MIN_CHUNK = 4096


class UserItems:
    """One sorted item array per user as CSR ``indptr``/``indices``; reads like a list of arrays.

    Per-user Python lists cost ~100 bytes and a loop step per user; at 10^6 users the
    split, the masking and the hit matrix use the two arrays directly.
    """

    def __init__(self, indptr: np.ndarray, indices: np.ndarray):
        self.indptr = np.asarray(indptr, dtype=np.int64)
        self.indices = np.asarray(indices)

    @classmethod
    def from_arrays(cls, arrays) -> UserItems:
        lengths = np.fromiter((len(a) for a in arrays), dtype=np.int64, count=len(arrays))
        indices = np.concatenate([np.asarray(a) for a in arrays]) if len(arrays) else np.zeros(0, np.int64)
        return cls(np.concatenate([[0], np.cumsum(lengths)]), indices)

    @classmethod
    def from_csr(cls, matrix, rows: np.ndarray | None = None) -> UserItems:
        """The rows (all, or ``rows``) of a scipy CSR matrix."""
        if rows is not None:
            matrix = matrix[rows]
        return cls(matrix.indptr, matrix.indices)

    def __len__(self) -> int:
        return len(self.indptr) - 1

    def __getitem__(self, row):
        if isinstance(row, slice):
            return [self[i] for i in range(*row.indices(len(self)))]
        row = int(row) + len(self) if row < 0 else int(row)
        if not 0 <= row < len(self):
            raise IndexError(f"row {row} out of range for {len(self)} users")
        return self.indices[self.indptr[row]:self.indptr[row + 1]]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def lengths(self) -> np.ndarray:
        return np.diff(self.indptr)

    def pairs(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """(row within ``start:stop``, item) of every entry of users ``start:stop``."""
        lo, hi = self.indptr[start], self.indptr[stop]
        rows = np.repeat(np.arange(stop - start), np.diff(self.indptr[start:stop + 1]))
        return rows, self.indices[lo:hi]


@dataclass
class RankingResult:
    """One method's rankings of the evaluated target users on one split (valid or test)."""

    #: canonical target user indices evaluated (users with at least one positive), shape [U]
    users: np.ndarray
    #: top-K canonical target item indices per user, best first, training items excluded; [U, K_max]
    topk: np.ndarray
    #: the user's held-out positives (canonical item indices), one array per user (a list or :class:`UserItems`)
    positives: list[np.ndarray] | UserItems
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
        if isinstance(self.positives, UserItems):
            return self.positives.lengths()
        return np.array([len(p) for p in self.positives], dtype=np.int64)


def memory_budget(memory_mb: float | None = None) -> int:
    """Bytes one ranking batch may hold: ``memory_mb``, else ``$XDPLUG_EVAL_MEMORY_MB``, else :data:`MEMORY_MB`."""
    path, value = "memory_mb", memory_mb
    if value is None:
        raw = os.environ.get(MEMORY_ENV, "").strip()
        path, value = MEMORY_ENV, MEMORY_MB
        if raw:
            try:
                value = float(raw)
            except ValueError:
                raise ConfigError(MEMORY_ENV, f"expected {MEMORY_OPTION.describe()} (MiB), got {raw!r}") from None
    return max(1, int(MEMORY_OPTION.check(value, path) * 2**20))


def item_scorer(score_fn):
    """The scorer's optional ``score_items(users, start, stop) -> [len(users), stop - start]``, or None.

    Looked up on ``score_fn`` itself or, for a bound ``score`` method, on its object.
    """
    found = getattr(score_fn, "score_items", None)
    if found is None and getattr(score_fn, "__name__", None) == "score":
        found = getattr(getattr(score_fn, "__self__", None), "score_items", None)
    return found if callable(found) else None


class Plan(NamedTuple):
    users: int  #: users per batch
    width: int  #: items per chunk (``n_items`` for whole rows)
    chunked: bool  #: item chunks with a running top-k merge, else ``torch.topk`` over whole rows


def plan_batches(n_users: int, n_items: int, batch_size: int, budget: int, chunked_scorer: bool) -> Plan:
    """Batch and chunk sizes: item chunks only when not even one user's whole row fits the budget.

    Whole rows are ranked by ``torch.topk`` as they always were, so results never depend on
    the budget or on ``score_items`` for any catalogue one row of which fits. In chunks, a
    scorer with ``score_items`` is asked for many users at a time, any other for one user.
    """
    rows_fit = budget // max(1, n_items * ROW_BYTES)
    if rows_fit >= 1:
        return Plan(max(1, min(batch_size, rows_fit, n_users)), n_items, False)
    if not chunked_scorer:  # the scorer hands out whole rows: one user at a time, walked in chunks
        return Plan(1, int(min(n_items, max(1, budget // CHUNK_BYTES))), True)
    users = max(1, min(batch_size, n_users, budget // (CHUNK_BYTES * min(n_items, MIN_CHUNK))))
    return Plan(users, int(min(n_items, max(1, budget // (CHUNK_BYTES * users)))), True)


def rank_users(
    score_fn,
    users: np.ndarray,
    positives,
    train_items,
    n_items: int,
    k: int,
    batch_size: int = 1024,
    device: torch.device | str = "cpu",
    cold_items: np.ndarray | None = None,
    memory_mb: float | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Top-``k`` items of each user over all ``n_items``, training items masked.

    ``score_fn(LongTensor users) -> FloatTensor[len(users), n_items]``. Returns
    the top-k matrix and, when ``cold_items`` is given, the top-k among cold
    items only (padded with -1 when there are fewer than k cold items).
    ``train_items`` is one array per user (a list, or :class:`UserItems`). Batches are
    sized by :func:`memory_budget`; see the module docstring for the item-chunked path.
    """
    k = min(k, n_items)
    train = train_items if isinstance(train_items, UserItems) else UserItems.from_arrays(train_items)
    topk = np.empty((len(users), k), dtype=np.int64)
    topk_cold = None
    cold_mask = None
    k_cold = 0
    if cold_items is not None and len(cold_items):
        topk_cold = np.full((len(users), k), -1, dtype=np.int64)
        cold_mask = torch.zeros(n_items, dtype=torch.bool, device=device)
        cold_mask[torch.as_tensor(cold_items, device=device)] = True
        k_cold = min(k, len(cold_items))
    chunked = item_scorer(score_fn)
    n_batch, width, by_chunks = plan_batches(len(users), n_items, batch_size, memory_budget(memory_mb),
                                             chunked is not None)
    for start in range(0, len(users), n_batch):
        stop = min(start + n_batch, len(users))
        batch = torch.as_tensor(users[start:stop], dtype=torch.long, device=device)
        rows, cols = train.pairs(start, stop)
        if not by_chunks:
            top, top_cold = _rank_rows(score_fn, batch, rows, cols, n_items, k, k_cold, cold_mask, device)
        else:
            top, top_cold = _rank_chunks(score_fn, chunked, batch, rows, cols, n_items, width, k, k_cold,
                                         cold_mask, device)
        topk[start:stop] = top
        if top_cold is not None:
            topk_cold[start:stop, :k_cold] = top_cold
    return topk, topk_cold


def _checked(scores: torch.Tensor, shape: tuple, device) -> torch.Tensor:
    """The scorer's block as a float32 tensor of our own (a copy only when ``to`` made none)."""
    if tuple(scores.shape) != shape:
        raise RuntimeError(f"scorer returned shape {tuple(scores.shape)}, expected {shape}")
    out = scores.to(device=device, dtype=torch.float32)
    return out.clone() if out is scores else out


def _rank_rows(score_fn, batch, rows, cols, n_items, k, k_cold, cold_mask, device):
    """Whole rows, ``torch.topk`` over each: exactly the ranking (and tie order) xdplug always had."""
    with torch.no_grad():
        scores = _checked(score_fn(batch), (len(batch), n_items), device)
    if len(cols):
        scores[torch.as_tensor(rows, dtype=torch.long, device=device),
               torch.as_tensor(cols, dtype=torch.long, device=device)] = -torch.inf
    # NaN ranks last; masked (-inf) items become the lowest finite value, as they always did
    scores.nan_to_num_(nan=-torch.inf)
    top = torch.topk(scores, k, dim=1).indices.cpu().numpy()
    if cold_mask is None:
        return top, None
    scores.masked_fill_(~cold_mask, -torch.inf)
    return top, torch.topk(scores, k_cold, dim=1).indices.cpu().numpy()


def _rank_chunks(score_fn, chunked, batch, rows, cols, n_items, width, k, k_cold, cold_mask, device):
    """Item chunks with a running top-k merge; ties go to the lower item index (see :func:`order_keys`)."""
    best = best_cold = None
    full = None
    for lo in range(0, n_items, width):
        hi = min(lo + width, n_items)
        with torch.no_grad():
            if chunked is not None:
                scores = _checked(chunked(batch, lo, hi), (len(batch), hi - lo), device)
            else:
                if full is None:
                    full = score_fn(batch)
                    if tuple(full.shape) != (len(batch), n_items):
                        raise RuntimeError(f"scorer returned shape {tuple(full.shape)}, "
                                           f"expected {(len(batch), n_items)}")
                scores = full[:, lo:hi].to(device=device, dtype=torch.float32, copy=True)
        inside = (cols >= lo) & (cols < hi)
        if inside.any():
            scores[torch.as_tensor(rows[inside], dtype=torch.long, device=device),
                   torch.as_tensor(cols[inside] - lo, dtype=torch.long, device=device)] = -torch.inf
        scores.nan_to_num_(nan=-torch.inf)
        best = _merge(best, scores, lo, k)
        if cold_mask is not None:
            scores.masked_fill_(~cold_mask[lo:hi], -torch.inf)
            best_cold = _merge(best_cold, scores, lo, k)
        del scores
    top = _items(best)
    return top, None if best_cold is None else _items(best_cold)[:, :k_cold]


def order_keys(scores: torch.Tensor, items: torch.Tensor | int) -> torch.Tensor:
    """int64 keys, one per score, ordered as (score descending, item index ascending) and all distinct.

    The float's bits made monotone (negative floats flipped) in the high 32 bits, the item's
    complement in the low 32, so ``torch.topk`` on the keys has no ties to break. ``items``:
    each score's item index, or the first item's when the columns are consecutive items.
    """
    bits = (scores + 0.0).view(torch.int32)  # + 0.0: -0.0 ties with 0.0, as in the comparison
    bits = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits).to(torch.int64)
    if isinstance(items, int):
        items = torch.arange(items, items + scores.shape[1], dtype=torch.int64, device=scores.device)
    return bits.mul_(1 << 32).add_((1 << 32) - 1 - items)


def _merge(best: torch.Tensor | None, scores: torch.Tensor, lo: int, k: int) -> torch.Tensor:
    """The top ``k`` keys of the running best and this chunk.

    A float ``torch.topk`` finds the chunk's candidates; only rows where more items tie with
    the k-th score than fit are keyed in full, to pick the lowest item indices among them.
    """
    width = min(k, scores.shape[1])
    values, where = torch.topk(scores, width, dim=1)
    keys = order_keys(values, where.add_(lo))
    tied = (scores >= values[:, -1:]).sum(dim=1) > width
    if tied.any():
        rows = tied.nonzero().squeeze(1)
        keys[rows] = torch.topk(order_keys(scores[rows], lo), width, dim=1).values
    if best is not None:
        keys = torch.cat([best, keys], dim=1)
    return torch.topk(keys, min(k, keys.shape[1]), dim=1).values


def _items(keys: torch.Tensor) -> np.ndarray:
    return ((1 << 32) - 1 - (keys & 0xFFFFFFFF)).cpu().numpy()


# -- the fixed target split -------------------------------------------------------------


#: the seed of the evaluated-user sample (``evaluation.max_users``): fixed, so every method and
#: every run of a split ranks the same users
EVAL_SAMPLE_SEED = 20261201


def split_users(data: CrossDomainData, split: str):
    """Users with held-out positives in ``split``, their positives and their masked items (cached).

    With ``data.max_eval_users`` > 0, a seeded sample of at most that many of those users (sorted),
    identical for every method ranked on this split."""
    limit = getattr(data, "max_eval_users", 0) or 0
    cache = data.split_cache
    key = split if not limit else (split, limit)
    if key not in cache:
        cache[key] = _split_users(data, split, limit)
    return cache[key]


def _split_users(data: CrossDomainData, split: str, limit: int = 0):
    train = data.matrix("target", "train")
    held = data.matrix("target", split)
    masked = train
    if data.task == NEXT_ITEM:  # the items of the target's input sequence (protocol.md, section 3)
        masked = data.sequences(split).matrix(data.n_target_items)
    elif split == "test":  # as RecBole: the test ranking also excludes validation items
        masked = train + data.matrix("target", "valid")
        masked.sort_indices()
    users = np.flatnonzero(np.diff(held.indptr)).astype(np.int64)
    if 0 < limit < len(users):
        users = np.sort(np.random.default_rng(EVAL_SAMPLE_SEED).choice(users, size=limit, replace=False))
    counts = np.diff(train.indptr)[users].astype(np.int64)
    return users, UserItems.from_csr(held, users), UserItems.from_csr(masked, users), counts


def rank_split(score_fn, data: CrossDomainData, split: str, ks: list[int], device, user_groups,
               item_known=None, batch_size: int = 1024, memory_mb: float | None = None) -> RankingResult:
    users, positives, masked, counts = split_users(data, split)
    if data.task == NEXT_ITEM:
        score_fn = split_scorer(score_fn, split)
    cold = data.cold_items if len(data.cold_items) else None
    topk, topk_cold = rank_users(score_fn, users, positives, masked, data.n_target_items, max(ks),
                                 batch_size=batch_size, device=device, cold_items=cold, memory_mb=memory_mb)
    return RankingResult(users=users, topk=topk, positives=positives, ks=list(ks),
                         n_items=data.n_target_items, train_counts=counts,
                         item_popularity=data.target_item_popularity, user_groups=list(user_groups),
                         cold_items=cold, topk_cold=topk_cold, item_known=item_known,
                         source_counts=source_counts(data, users))


def split_scorer(score_fn, split: str):
    """Next-item task: ``score_fn`` bound to the split it ranks.

    A scorer whose ranking depends on the user's input sequence has ``score_split(users, split)``
    (looked up on ``score_fn`` or, for a bound ``score`` method, on its object); the input of a
    validation target is not that of a test target. Any other scorer is returned as it is.
    """
    found = getattr(score_fn, "score_split", None)
    if found is None and getattr(score_fn, "__name__", None) == "score":
        found = getattr(getattr(score_fn, "__self__", None), "score_split", None)
    if not callable(found):
        return score_fn

    def bound(users):
        return found(users, split)

    return bound


def source_counts(data: CrossDomainData, users: np.ndarray) -> np.ndarray | None:
    """Source training interactions of each target user in ``users`` (the same person's), or None
    when no user is in both domains."""
    if not len(data.shared_users):
        return None
    per_source = np.bincount(data.source_train[:, 0], minlength=data.n_source_users)
    counts = np.zeros(data.n_target_users, dtype=np.int64)
    counts[data.shared_users[:, 0]] = per_source[data.shared_users[:, 1]]
    return counts[users]
