"""User histories and user batches: the training unit of the transfer model.

The transfer model is inductive: a user is the pool of the items they
interacted with. Training therefore works on batches of *users*: each step
splits every user's history at random into input items (which form the user
vector) and held-out items (which the model must rank above all others).
One epoch visits every user once, which makes an epoch cheap and lets the
model learn from the whole history like an item-item model.
"""

from __future__ import annotations

import numpy as np
import torch


class Histories:
    """Per-user item lists of one domain (CSR arrays), item indices in catalog rows."""

    def __init__(self, pairs: np.ndarray, n_users: int, item_rows: np.ndarray):
        order = np.lexsort((pairs[:, 1], pairs[:, 0])) if len(pairs) else np.zeros(0, dtype=np.int64)
        users = pairs[order, 0] if len(pairs) else np.zeros(0, dtype=np.int64)
        self.items = item_rows[pairs[order, 1]] if len(pairs) else np.zeros(0, dtype=np.int64)
        self.local_items = pairs[order, 1] if len(pairs) else np.zeros(0, dtype=np.int64)
        counts = np.bincount(users, minlength=n_users)
        self.indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.n_users = n_users

    def lengths(self, users: np.ndarray) -> np.ndarray:
        return self.indptr[users + 1] - self.indptr[users]

    def gather(self, users: np.ndarray, local: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Flat items of ``users`` and the batch row of each."""
        starts = self.indptr[users]
        lens = self.indptr[users + 1] - starts
        rows = np.repeat(np.arange(len(users)), lens)
        offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens)
        flat = np.arange(lens.sum()) + offsets
        source = self.local_items if local else self.items
        return source[flat], rows

    def active_users(self) -> np.ndarray:
        return np.flatnonzero(np.diff(self.indptr) > 0)


def split_holdout(rows: np.ndarray, n_rows: int, holdout: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask of held-out entries; every user keeps at least one input item."""
    target = rng.random(len(rows)) < holdout
    if len(rows):
        inputs_per_row = np.bincount(rows[~target], minlength=n_rows)
        lacking = np.flatnonzero(inputs_per_row == 0)
        if len(lacking):
            # first entry of each row without input becomes an input
            first = np.searchsorted(rows, lacking)
            valid = first < len(rows)
            first = first[valid]
            target[first[rows[first] == lacking[valid]]] = False
    return target


class UserBatches:
    """An iterable of RecBole ``Interaction`` batches of user indices, one or two domains.

    With two domains every batch holds users of both (``"source"`` and
    ``"target"`` fields), so paired losses (MMD, DANN) see both at each
    step; the smaller domain cycles. RecBole's trainer iterates it like its
    own data loaders.
    """

    def __init__(self, users: dict[str, np.ndarray], batch_size: int, seed: int):
        self.users = {d: np.asarray(u, dtype=np.int64) for d, u in users.items() if len(u)}
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)
        self.shuffle = True
        self.dataset = None

    def __len__(self) -> int:
        return max(int(np.ceil(len(u) / self.batch_size)) for u in self.users.values())

    def __iter__(self):
        from recbole.data.interaction import Interaction

        n_batches = len(self)
        orders = {}
        for domain, users in self.users.items():
            per = int(np.ceil(len(users) / self.batch_size))
            reps = int(np.ceil(n_batches / per))
            orders[domain] = np.concatenate([self.rng.permutation(users) for _ in range(reps)])
        sizes = {d: int(np.ceil(len(u) / n_batches)) for d, u in self.users.items()}
        for b in range(n_batches):
            batch = {}
            for domain, order in orders.items():
                size = sizes[domain]
                batch[domain] = torch.as_tensor(order[b * size:(b + 1) * size])
            yield Interaction(batch)
