"""Simple transfer controls that a strategy must beat where they apply.

``text-knn`` scores an item by the mean cosine similarity of its text vector
to the user's training items (the same encoder and text cache as the
strategies), so it reaches cold items through text alone. ``source-pop``
ranks target items by their popularity in the source domain; it needs items
shared between the domains.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from xdplug.api import GENERAL, NEXT_ITEM, Baseline, ConfigError, Int, NotApplicableError

from ._text import TextBaseline, encode_texts

#: above this many target items text-knn keeps its similarity sparse (each item's ``neighbors``
#: nearest, found block by block): the dense matrix needs items² x 4 bytes (20,000: 1.6 GB, 10^5: 40 GB)
DENSE_MAX_ITEMS = 20_000
#: similarity entries computed at once on the sparse path (x 4 bytes: 256 MB)
BLOCK_ENTRIES = 64_000_000


def nearest_columns(unit: torch.Tensor, k: int, block_entries: int = BLOCK_ENTRIES) -> sp.csr_matrix:
    """``sim`` with each column's ``k`` largest cosine similarities kept (item j's ``k`` nearest
    items, itself included), as sparse float32, computed a block of columns at a time so memory
    stays ``items x block`` instead of ``items²``. ``unit``: L2-normalised rows."""
    n = unit.shape[0]
    step = max(1, block_entries // max(n, 1))
    rows, cols, vals = [], [], []
    for start in range(0, n, step):
        top = torch.topk(unit @ unit[start:start + step].T, k, dim=0)
        rows.append(top.indices.T.reshape(-1).cpu().numpy())
        cols.append(np.repeat(np.arange(start, start + top.values.shape[1]), k))
        vals.append(top.values.T.reshape(-1).cpu().numpy())
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                         shape=(n, n), dtype=np.float32)


class _MatrixScorer:
    def __init__(self, user_matrix, item_scores: torch.Tensor | None = None, sim: torch.Tensor | None = None,
                 item_known=None):
        self.user_matrix = user_matrix  # scipy csr, target users x target items (row-normalised)
        self.item_scores = item_scores
        self.sim = sim
        self.item_known = item_known

    def score(self, users: torch.Tensor) -> torch.Tensor:
        idx = users.cpu().numpy()
        if sp.issparse(self.sim):  # the neighbours of a large catalogue
            return torch.as_tensor((self.user_matrix[idx] @ self.sim).toarray(), dtype=torch.float32)
        if self.sim is not None:
            rows = torch.as_tensor(self.user_matrix[idx].toarray(), dtype=torch.float32, device=self.sim.device)
            return rows @ self.sim
        return self.item_scores.unsqueeze(0).expand(len(idx), -1).clone()

    def score_history(self, items: list[int]) -> torch.Tensor:
        """A new user's scores from their target items: mean text similarity, or the popularity."""
        if sp.issparse(self.sim):
            x = np.zeros((1, self.sim.shape[0]), dtype=np.float32)
            x[0, items] = 1.0 / len(items)
            return torch.as_tensor(np.asarray(x @ self.sim), dtype=torch.float32)
        if self.sim is not None:
            x = torch.zeros(1, self.sim.shape[0], device=self.sim.device)
            x[0, items] = 1.0 / len(items)
            return x @ self.sim
        return self.item_scores[None].clone()


class TextKNN(TextBaseline):
    name = "text-knn"
    description = "Mean cosine similarity of an item's text vector to the user's training items"
    defaults = {"neighbors": Int(0, 0, 1_000_000, help="0: every item"), "encoder": {}}
    search_space = {"params.neighbors": {"type": "categorical", "choices": [0, 20, 50, 100, 200]}}
    #: training-free and deterministic: an artifact fits it again on the stored data
    export = "refit"

    def fit(self, ctx, pooled: bool = False):
        vectors = encode_texts(ctx, ctx.data.target_item_texts(), self.params["encoder"], self.encoder_option)
        emb = torch.as_tensor(vectors, dtype=torch.float32, device=ctx.device)
        emb = torch.nn.functional.normalize(emb, dim=1)
        k, n = self.params["neighbors"], emb.shape[0]
        if n <= DENSE_MAX_ITEMS:
            sim = emb @ emb.T
            if k and k < n:
                top = torch.topk(sim, k, dim=0)
                sim = torch.zeros_like(sim).scatter_(0, top.indices, top.values)
        elif k and k < n:
            sim = nearest_columns(emb, k)
        else:
            raise ConfigError(f"baselines.{self.name}.params.neighbors",
                              f"{k} keeps every item's similarity to every other: {n:,} target items need "
                              f"{n * n * 4 / 2**30:.0f} GiB; above {DENSE_MAX_ITEMS:,} items set a number "
                              f"of neighbours (e.g. 100), kept sparse")
        matrix = ctx.data.matrix("target", "train")
        counts = np.asarray(matrix.sum(1)).ravel()
        counts[counts == 0] = 1
        normed = matrix.multiply(1.0 / counts[:, None]).tocsr()
        return _MatrixScorer(normed, sim=sim, item_known=np.ones(ctx.data.n_target_items, dtype=bool))


class SourcePop(Baseline):
    name = "source-pop"
    description = "Rank target items by their popularity in the source domain (needs shared items)"
    needs_shared_ids = True
    #: one ranking for everyone, whatever the order of a history
    tasks = (GENERAL, NEXT_ITEM)
    export = "refit"

    def fit(self, ctx, pooled: bool = False):
        data = ctx.data
        if len(data.shared_items) == 0:
            raise NotApplicableError("source-pop needs items shared by both domains; these share none")
        scores = np.zeros(data.n_target_items, dtype=np.float32)
        scores[data.shared_items[:, 0]] = data.source_item_popularity[data.shared_items[:, 1]]
        known = np.zeros(data.n_target_items, dtype=bool)
        known[data.shared_items[:, 0]] = True
        return _MatrixScorer(None, item_scores=torch.as_tensor(scores, device=ctx.device), item_known=known)
