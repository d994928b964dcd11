"""The next-item protocol's data: each user's interactions in time order, the split, the inputs.

Under ``dataset.protocol.task: next-item`` (docs/protocol.md, section 3) a target user's
interactions are ordered by timestamp, ties broken by their order in the cleaned table (a
stable sort), and the held-out targets are single interactions:

* ``leave-one-out``: the last one is the test target, the second-last the validation target,
  the rest is training (a user with fewer than three interactions is all training and never
  evaluated, as in SASRec's own partition);
* ``global-time``: the target's interactions, in global time order, are cut at the
  ``protocol.split`` fractions into a training, a validation and a test window; a user's first
  interaction in the validation window is their validation target when they have training
  interactions, their first in the test window their test target when they have any earlier
  interaction. Validation-window interactions are part of the test input, never trained on.

Each target's *input* is the user's known interactions strictly before it: the training
sequence for a validation target, the training sequence plus the validation target (or the
validation window) for a test target. ``dataset.sparse.keep`` keeps the most recent fraction of
each training sequence. Nothing here knows any model: :class:`Sequences` is the one form every
method reads (RecBole's sequential datasets are built from it in ``xdplug/recbole/sequences.py``).
"""

from __future__ import annotations

import numpy as np

from ..errors import DataError
from ..tasks import GLOBAL_TIME, LEAVE_ONE_OUT

#: the split names whose input sequences :meth:`CrossDomainData.sequences` gives
SPLITS = ("train", "valid", "test")


def time_order(users: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Row indices grouped by user (ascending), each user's rows by time; ties keep the row order."""
    by_time = np.argsort(np.asarray(times, dtype=np.float64), kind="stable")
    return by_time[np.argsort(np.asarray(users)[by_time], kind="stable")]


def _positions(grouped_users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's position in its user's run and the run's length, for rows grouped by user."""
    n = len(grouped_users)
    if not n:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    starts = np.flatnonzero(np.concatenate([[True], grouped_users[1:] != grouped_users[:-1]]))
    sizes = np.diff(np.concatenate([starts, [n]]))
    position = np.arange(n) - np.repeat(starts, sizes)
    return position, np.repeat(sizes, sizes)


def keep_recent(grouped_users: np.ndarray, keep: float) -> np.ndarray:
    """Boolean mask keeping the most recent ``keep`` fraction of each user's run (at least one row),
    for rows grouped by user in time order; the quota rounds as the general protocol's sparse regime."""
    position, size = _positions(grouped_users)
    quota = np.maximum(1, np.round(size * keep)).astype(np.int64)
    return position >= size - quota


def next_item_split(users: np.ndarray, times: np.ndarray, mode: str = LEAVE_ONE_OUT,
                    ratios=(0.8, 0.1, 0.1), keep: float = 1.0) -> dict[str, np.ndarray]:
    """Row indices of ``train``, ``valid``, ``test`` (the targets) and ``test_input`` (what precedes
    each test target), each grouped by user in time order. ``keep`` < 1 thins the training rows
    (most recent kept) before the test inputs are formed, so they hold the thinned sequence."""
    users = np.asarray(users, dtype=np.int64)
    times = np.asarray(times, dtype=np.float64)
    if np.isnan(times).any():
        raise DataError(f"{int(np.isnan(times).sum())} target interactions have no timestamp; the next-item "
                        "protocol orders each user's interactions by time", "target domain", "timestamp")
    rows = time_order(users, times)
    grouped = users[rows]
    position, size = _positions(grouped)
    if mode == LEAVE_ONE_OUT:
        evaluated = size >= 3
        test = evaluated & (position == size - 1)
        valid = evaluated & (position == size - 2)
        train = ~(test | valid)
        seen = valid  # known before the test target, never trained on
    elif mode == GLOBAL_TIME:
        n = len(rows)
        rank = np.empty(n, dtype=np.int64)
        rank[np.argsort(times, kind="stable")] = np.arange(n)
        total = float(sum(ratios))
        cut1, cut2 = int(n * ratios[0] / total), int(n * (ratios[0] + ratios[1]) / total)
        window = np.where(rank[rows] < cut1, 0, np.where(rank[rows] < cut2, 1, 2))
        train = window == 0
        starts = position == 0
        has_train = _running_any(train, starts)  # a training row earlier in the user's run
        has_known = _running_any(window < 2, starts)
        valid = (window == 1) & _first_in_run(window == 1, starts) & has_train
        test = (window == 2) & _first_in_run(window == 2, starts) & has_known
        seen = window == 1  # the validation window: test input only (kept below for users with a test target)
    else:
        raise ValueError(f"sequence_split must be {LEAVE_ONE_OUT!r} or {GLOBAL_TIME!r}, got {mode!r}")
    if keep < 1.0:
        kept = np.zeros(len(rows), dtype=bool)
        kept[train] = keep_recent(grouped[train], keep)
        train = kept
    test_users = np.zeros(users.max(initial=-1) + 1, dtype=bool)
    test_users[grouped[test]] = True
    test_input = (train | seen) & test_users[grouped]
    return {"train": rows[train], "valid": rows[valid], "test": rows[test], "test_input": rows[test_input]}


def _running_any(flag: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Per row: was ``flag`` true on an earlier row of the same run? (``starts`` marks each run's first row.)"""
    flag = np.asarray(flag, dtype=np.int64)
    before = np.cumsum(flag) - flag  # flags strictly before each row, over the whole array
    run = np.cumsum(starts) - 1
    return before - before[np.flatnonzero(starts)][run] > 0


def _first_in_run(flag: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Per row: is it the first row of its run with ``flag``?"""
    return flag & ~_running_any(flag, starts)


class Sequences:
    """One time-ordered item sequence per row (a canonical target user), as CSR arrays.

    ``indptr``/``indices`` read like :class:`xdplug.evaluation.UserItems` (masking uses them
    as they are); ``times`` holds each entry's timestamp where known; ``domains`` (merged
    sequences only) each entry's domain, 0 target and 1 source (a shared item is one catalog row
    in both, so the item alone does not say where the event happened).
    """

    def __init__(self, indptr: np.ndarray, indices: np.ndarray, times: np.ndarray | None = None,
                 domains: np.ndarray | None = None):
        self.indptr = np.asarray(indptr, dtype=np.int64)
        self.indices = np.asarray(indices, dtype=np.int64)
        self.times = None if times is None else np.asarray(times, dtype=np.float64)
        self.domains = None if domains is None else np.asarray(domains, dtype=np.int8)

    @classmethod
    def from_pairs(cls, pairs: np.ndarray, n_rows: int, times: np.ndarray | None = None,
                   domains: np.ndarray | None = None) -> Sequences:
        """From ``[n, 2]`` (row, item) pairs already grouped by row in ascending order, time-ordered."""
        rows = np.asarray(pairs[:, 0], dtype=np.int64)
        if len(rows) and (np.diff(rows) < 0).any():
            raise ValueError("pairs must be grouped by row in ascending order")
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n_rows))])
        return cls(indptr, pairs[:, 1], times, domains)

    def __len__(self) -> int:
        return len(self.indptr) - 1

    def __getitem__(self, row: int) -> np.ndarray:
        return self.indices[self.indptr[row]:self.indptr[row + 1]]

    def lengths(self) -> np.ndarray:
        return np.diff(self.indptr)

    def owners(self) -> np.ndarray:
        """The row of every entry."""
        return np.repeat(np.arange(len(self)), self.lengths())

    def last(self, rows: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The most recent ``n`` items of each of ``rows``, oldest first, left-aligned and padded with
        -1 (``[len(rows), n]``), and how many each row has."""
        rows = np.asarray(rows, dtype=np.int64)
        end = self.indptr[rows + 1]
        start = np.maximum(self.indptr[rows], end - n)
        length = end - start
        index = start[:, None] + np.arange(n)[None, :]
        inside = np.arange(n)[None, :] < length[:, None]
        if not len(self.indices):
            return np.full((len(rows), n), -1, dtype=np.int64), length
        out = np.where(inside, self.indices[np.minimum(index, len(self.indices) - 1)], -1)
        return out.astype(np.int64), length

    def matrix(self, n_items: int):
        """A binary rows x ``n_items`` CSR matrix of the sequences' items."""
        import scipy.sparse as sp

        m = sp.csr_matrix((np.ones(len(self.indices), dtype=np.float32), self.indices, self.indptr),
                          shape=(len(self), n_items))
        m.sum_duplicates()
        m.data[:] = 1.0
        m.sort_indices()
        return m


def source_sequences(data) -> Sequences:
    """The source domain's training interactions, one time-ordered sequence per source user
    (items as source indices); needs the source timestamps a next-item preparation stores."""
    pairs, times = data.source_train, data.times.get("source_train")
    if times is None:
        raise DataError("these prepared data have no source timestamps (prepared for the general protocol)",
                        str(data.folder), "dataset.protocol.task")
    if np.isnan(times).any():
        raise DataError(f"{int(np.isnan(times).sum())} source interactions have no timestamp; merging a user's "
                        "two domains in time needs them", "source domain", "timestamp")
    order = time_order(pairs[:, 0], times)
    return Sequences.from_pairs(pairs[order], data.n_source_users, times[order])


def merged_sequences(data, split: str) -> Sequences:
    """Each target user's input of ``split`` merged in time with the same person's source events that
    happened strictly before it (items as catalog rows), for the pooled controls.

    The cut-off of a user is the time of the target their input precedes: the validation target
    for ``valid``, the test target for ``test``, and for ``train`` the earliest held-out target (no
    cut-off for a user without one). At equal times target events come first. Users who are not in
    the source keep their target input.
    """
    cat = data.catalog
    target = data.sequences(split)
    n = data.n_target_users
    cutoff = np.full(n, np.inf)
    held = {"train": ("valid", "test"), "valid": ("valid",), "test": ("test",)}[split]
    for part in held:
        pairs = data.target_valid if part == "valid" else data.target_test
        np.minimum.at(cutoff, pairs[:, 0], data.times[f"target_{part}"])
    rows_t = target.owners()
    items_t = np.asarray(cat.target_rows)[target.indices]
    times_t = target.times
    src = source_sequences(data)
    shared = data.shared_users
    rows_s, items_s, times_s = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], [np.zeros(0)]
    if len(shared):
        person = np.full(data.n_source_users, -1, dtype=np.int64)
        person[shared[:, 1]] = shared[:, 0]
        owner = person[src.owners()]
        keep = owner >= 0
        keep[keep] = src.times[keep] < cutoff[owner[keep]]
        rows_s, items_s, times_s = [owner[keep]], [np.asarray(cat.source_rows)[src.indices[keep]]], [src.times[keep]]
    rows = np.concatenate([rows_t] + rows_s)
    items = np.concatenate([items_t] + items_s)
    times = np.concatenate([times_t] + times_s)
    domains = np.concatenate([np.zeros(len(rows_t), np.int8), np.ones(len(rows) - len(rows_t), np.int8)])
    order = time_order(rows, times)
    return Sequences.from_pairs(np.stack([rows[order], items[order]], axis=1), n, times[order], domains[order])


def pooled_training_sequences(data) -> Sequences:
    """The pooled controls' training sequences (items as catalog rows): every target user's merged
    training sequence (:func:`merged_sequences`), then, where items are shared, the sequence of
    every source-only user who has a shared item (a source-only user with none connects to nothing
    in the target)."""
    merged = merged_sequences(data, "train")
    if not len(data.shared_items):
        return merged
    src = source_sequences(data)
    in_target = np.zeros(data.n_source_users, dtype=bool)
    if len(data.shared_users):
        in_target[data.shared_users[:, 1]] = True
    shared_item = np.zeros(data.n_source_items, dtype=bool)
    shared_item[data.shared_items[:, 1]] = True
    owners = src.owners()
    touches = np.zeros(data.n_source_users, dtype=bool)
    touches[owners[shared_item[src.indices]]] = True
    extra = touches & ~in_target
    keep = extra[owners]
    renumber = np.cumsum(extra) - 1 + len(merged)
    rows = np.concatenate([merged.owners(), renumber[owners[keep]]])
    items = np.concatenate([merged.indices, np.asarray(data.catalog.source_rows)[src.indices[keep]]])
    times = np.concatenate([merged.times, src.times[keep]])
    domains = np.concatenate([merged.domains, np.ones(int(keep.sum()), np.int8)])
    return Sequences.from_pairs(np.stack([rows, items], axis=1), len(merged) + int(extra.sum()), times, domains)
