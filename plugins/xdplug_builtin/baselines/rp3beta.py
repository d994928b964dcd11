"""RP3beta: a three-step random walk item-to-item graph with a popularity penalty.

Paudel et al. (2017), in the form of Dacrema et al. (2019, "Are we really making much
progress?"), where the tuned model beats most neural recommenders on sparse data:

* ``P_ui`` = the training matrix, each user's row normalised to sum 1, then raised
  element-wise to ``alpha``; ``P_iu`` = the transposed (item -> user) matrix, each
  item's row normalised to sum 1, raised to ``alpha``;
* ``W = P_iu P_ui`` (item -> user -> item transition), column ``j`` divided by
  ``pop(j) ** beta`` (``pop`` = training interactions of item ``j``; items without any
  get 0), the diagonal set to 0;
* each row of ``W`` keeps its ``neighbors`` largest entries (optionally then
  normalised to sum 1: ``normalize_similarity``);
* a user's scores are their training row times ``W``.

``W`` is built in row blocks and kept sparse, so memory is ``n_items x neighbors``.
Pooled (``pooled: true``): the walk runs on the pooled matrix of the generic pooled
mechanism; ``source_weight`` sets the source rows' edge weight.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from xdplug.api import Baseline, Bool, Float, Int

from ._matrices import POOLED_SEARCH_SPACE, SOURCE_WEIGHT, SparseRowScorer, training_matrix

#: rows of W computed at once (a dense block of BLOCK x n_items)
BLOCK = 1024


def _row_normalise(m: sp.csr_matrix) -> sp.csr_matrix:
    sums = np.asarray(m.sum(1)).ravel()
    inv = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0)
    out = (sp.diags(inv) @ m).tocsr()
    out.eliminate_zeros()  # 0 ** alpha must stay 0 (no edge), also for alpha = 0
    return out


def _top_k_rows(block: np.ndarray, k: int, offset: int):
    """(rows, cols, values) of the ``k`` largest positive entries of each row of ``block``."""
    n_rows, n_cols = block.shape
    k = min(k, n_cols)
    if k < n_cols:
        idx = np.argpartition(-block, k - 1, axis=1)[:, :k]
    else:
        idx = np.broadcast_to(np.arange(n_cols), (n_rows, n_cols))
    values = np.take_along_axis(block, idx, axis=1)
    rows = np.broadcast_to(np.arange(n_rows)[:, None] + offset, idx.shape)
    keep = values > 0
    return rows[keep], idx[keep], values[keep]


def rp3beta_matrix(x: sp.csr_matrix, alpha: float, beta: float, neighbors: int,
                   normalize_similarity: bool = False) -> sp.csr_matrix:
    """The item-item matrix ``W`` of RP3beta for the users x items matrix ``x``."""
    x = sp.csr_matrix(x, dtype=np.float64)
    n_items = x.shape[1]
    p_ui = _row_normalise(x).tocsr()
    p_iu = _row_normalise(x.T.tocsr()).tocsr()
    p_ui.data **= alpha
    p_iu.data **= alpha
    pop = np.asarray((x != 0).sum(0)).ravel().astype(np.float64)
    penalty = np.zeros(n_items)
    penalty[pop > 0] = pop[pop > 0] ** -beta
    parts = []
    for start in range(0, n_items, BLOCK):
        stop = min(start + BLOCK, n_items)
        block = (p_iu[start:stop] @ p_ui).toarray() * penalty[None, :]
        block[np.arange(stop - start), np.arange(start, stop)] = 0.0
        parts.append(_top_k_rows(block, neighbors, start))
    rows, cols, values = (np.concatenate(p) for p in zip(*parts)) if parts else ([], [], [])
    w = sp.csr_matrix((values, (rows, cols)), shape=(n_items, n_items))
    if normalize_similarity:
        w = _row_normalise(w).tocsr()
    return w


class RP3beta(Baseline):
    name = "RP3beta"
    description = "Random walk item-item graph with a popularity penalty (Dacrema et al. 2019's RP3beta)"
    supports_pooling = True
    pooled_search_space = POOLED_SEARCH_SPACE
    #: training-free and deterministic: an exported artifact refits it from the stored data
    export = "refit"
    defaults = {
        "alpha": Float(1.0, 0, 5, help="exponent of the transition probabilities"),
        "beta": Float(0.5, 0, 5, help="popularity penalty: column j divided by pop(j)**beta"),
        "neighbors": Int(100, 1, 1_000_000, help="entries kept per item (top-k)"),
        "normalize_similarity": Bool(False, help="each item's kept row normalised to sum 1"),
        "source_weight": SOURCE_WEIGHT,
    }
    # Dacrema et al.'s space (topK 5..1000, alpha and beta in [0, 2], normalisation on/off)
    search_space = {
        "params.neighbors": {"type": "int", "low": 5, "high": 1000, "log": True},
        "params.alpha": {"type": "uniform", "low": 0.0, "high": 2.0},
        "params.beta": {"type": "uniform", "low": 0.0, "high": 2.0},
        "params.normalize_similarity": {"type": "categorical", "choices": [False, True]},
    }

    def fit(self, ctx, pooled: bool = False):
        p = self.params
        inter = training_matrix(ctx, pooled, p["source_weight"])
        ctx.log(f"RP3beta{' (pooled)' if pooled else ''} over {inter.matrix.shape[1]} items")
        w = rp3beta_matrix(inter.matrix, p["alpha"], p["beta"], p["neighbors"], p["normalize_similarity"])
        w_target = w[:, inter.cols].tocsr()
        return SparseRowScorer(inter, lambda rows: (rows @ w_target).toarray(), ctx.device)
