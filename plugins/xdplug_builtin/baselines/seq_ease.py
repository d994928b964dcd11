"""``seq-ease``: a closed-form next-item model over transitions, the item-to-item control.

Every position ``t >= 1`` of a training sequence is one example: its input is the user's last
``window`` items before it, the ``d``-th most recent weighted ``decay^(d-1)`` (row ``x_t``), its
output the item at ``t`` (row ``y_t``). The item-to-item matrix is the ridge regression of the
next item on the recent ones, in closed form like EASE:

    B = (X^T X + reg_weight * I)^-1 X^T Y

and a user's scores are ``x B`` with ``x`` built from the last ``window`` items of their input.
This is the transition part of SLIST (Choi et al., WWW 2021); without a diagonal constraint,
since a next item is never one of the items before it here (the preparation keeps one
interaction per user and item). ``pooled: true`` fits it on the users' two domains merged in
time (catalog rows as items) and ranks the target's columns.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from xdplug.api import (NEXT_ITEM, Baseline, ConfigError, Float, Int, Sequences, merged_sequences,
                        pooled_training_sequences)

#: the dense solve holds items x items float64 (20,000: 3.2 GB)
DENSE_MAX_ITEMS = 20_000


def recent_features(seqs: Sequences, positions: np.ndarray, window: int, decay: float, n_cols: int,
                    columns: np.ndarray | None = None) -> sp.csr_matrix:
    """One row per entry of ``positions`` (flat indices into ``seqs.indices``): the ``window`` items
    before it in its sequence, the ``d``-th most recent weighted ``decay^(d-1)``. ``columns`` maps an
    item to its column (-1: no column, left out)."""
    positions = np.asarray(positions, dtype=np.int64)
    offset = positions - np.repeat(seqs.indptr[:-1], seqs.lengths())[positions] if len(positions) else positions
    rows, cols, vals = [], [], []
    for d in range(1, window + 1):
        has = offset >= d
        item = seqs.indices[positions[has] - d]
        col = item if columns is None else columns[item]
        ok = col >= 0
        rows.append(np.flatnonzero(has)[ok])
        cols.append(col[ok])
        vals.append(np.full(int(ok.sum()), decay ** (d - 1)))
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                         shape=(len(positions), n_cols))


def query_features(seqs: Sequences, users: np.ndarray, window: int, decay: float, n_cols: int,
                   columns: np.ndarray | None = None) -> sp.csr_matrix:
    """One row per user: the last ``window`` items of their sequence, weighted as in training."""
    last, length = seqs.last(np.asarray(users, dtype=np.int64), window)
    rows, cols, vals = [], [], []
    for d in range(1, window + 1):
        has = np.flatnonzero(length >= d)
        item = last[has, length[has] - d]
        col = item if columns is None else columns[item]
        ok = col >= 0
        rows.append(has[ok])
        cols.append(col[ok])
        vals.append(np.full(int(ok.sum()), decay ** (d - 1)))
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                         shape=(len(length), n_cols))


def fit_transitions(seqs: Sequences, window: int, decay: float, reg_weight: float, n_cols: int,
                    columns: np.ndarray | None = None) -> np.ndarray:
    """``B`` of the module docstring, ``n_cols x n_cols`` float64."""
    offset = np.arange(len(seqs.indices)) - np.repeat(seqs.indptr[:-1], seqs.lengths())
    positions = np.flatnonzero(offset >= 1)
    x = recent_features(seqs, positions, window, decay, n_cols, columns)
    target = seqs.indices[positions] if columns is None else columns[seqs.indices[positions]]
    keep = target >= 0
    y = sp.csr_matrix((np.ones(int(keep.sum())), (np.flatnonzero(keep), target[keep])),
                      shape=(len(positions), n_cols))
    gram = (x.T @ x).toarray()
    gram[np.diag_indices(n_cols)] += reg_weight
    return np.linalg.solve(gram, (x.T @ y).toarray())


class TransitionScorer:
    """Scores from the last items of each user's input of the split ranked."""

    def __init__(self, weights: np.ndarray, data, params: dict, pooled: bool, target_cols: np.ndarray,
                 columns: np.ndarray | None, item_known: np.ndarray, device):
        self.weights, self.data, self.params, self.pooled = weights, data, params, pooled
        self.target_cols, self.columns, self.item_known, self.device = target_cols, columns, item_known, device

    def _from(self, seqs: Sequences, users: np.ndarray) -> torch.Tensor:
        x = query_features(seqs, users, self.params["window"], self.params["decay"], self.weights.shape[0],
                           self.columns)
        scores = np.asarray(x @ self.weights)[:, self.target_cols]
        return torch.as_tensor(scores.astype(np.float32), device=self.device)

    def inputs(self, split: str) -> Sequences:
        return merged_sequences(self.data, split) if self.pooled else self.data.sequences(split)

    def score_split(self, users: torch.Tensor, split: str) -> torch.Tensor:
        return self._from(self.inputs(split), users.cpu().numpy())

    def score(self, users: torch.Tensor) -> torch.Tensor:
        """Scores from each user's latest known history (the test targets' input)."""
        return self.score_split(users, "test")

    def score_history(self, items: list[int]) -> torch.Tensor:
        """A new user's scores from their target items, oldest first."""
        items = np.asarray(items, dtype=np.int64)
        if self.pooled:
            items = np.asarray(self.data.catalog.target_rows)[items]
        return self._from(Sequences(np.array([0, len(items)]), items), np.array([0]))


class SeqEASE(Baseline):
    name = "seq-ease"
    description = "Closed-form next-item regression over transitions from a user's last items (SLIT-style)"
    tasks = (NEXT_ITEM,)
    supports_pooling = True
    defaults = {
        "reg_weight": Float(100.0, 0, 1e9, low_open=True, help="L2 weight of the item-to-item matrix"),
        "window": Int(3, 1, 1000, help="how many of the last items predict the next"),
        "decay": Float(0.5, 0, 1, low_open=True, help="weight of the d-th most recent item: decay^(d-1)"),
    }
    search_space = {"params.reg_weight": {"type": "loguniform", "low": 1.0, "high": 1.0e4},
                    "params.window": {"type": "int", "low": 1, "high": 10},
                    "params.decay": {"type": "uniform", "low": 0.1, "high": 1.0}}

    def fit(self, ctx, pooled: bool = False):
        data = ctx.data
        target_rows = np.asarray(data.catalog.target_rows)
        if pooled:  # catalog rows -> columns: the target's items, then the other items the sequences hold
            seqs = pooled_training_sequences(data)
            space = np.concatenate([target_rows, np.setdiff1d(np.unique(seqs.indices), target_rows)])
            columns = np.full(len(data.catalog.keys), -1, dtype=np.int64)
            columns[space] = np.arange(len(space))
            n_cols, target_cols = len(space), np.arange(data.n_target_items)
        else:
            seqs, columns = data.sequences("train"), None
            n_cols, target_cols = data.n_target_items, np.arange(data.n_target_items)
        if n_cols > DENSE_MAX_ITEMS:
            raise ConfigError(f"baselines.{self.name}", f"{n_cols:,} items: the dense solve is refused above "
                              f"{DENSE_MAX_ITEMS:,} items (items x items float64)")
        p = self.params
        ctx.log(f"fitting seq-ease{' (pooled)' if pooled else ''} on {n_cols:,} items")
        weights = fit_transitions(seqs, p["window"], p["decay"], p["reg_weight"], n_cols, columns)
        known = np.abs(weights[:, target_cols]).sum(axis=0) > 0
        return TransitionScorer(weights, data, p, pooled, target_cols, columns, known, ctx.device)
