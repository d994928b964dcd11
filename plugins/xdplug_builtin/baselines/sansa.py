"""SANSA: sparse approximate EASE for catalogues beyond the dense item-item limit.

**This is xdplug's own sparse approximation of EASE, not the ``sansa`` package.** The
``sansa`` package (Spišák et al., "Scalable Approximate NonSymmetric Autoencoder for
Collaborative Filtering", RecSys 2023) needs ``scikit-sparse``, which has no wheels on PyPI
and builds only against the system's SuiteSparse/CHOLMOD, so it cannot be a plain
dependency. The name ``SANSA`` is kept for the role it plays (the strongest linear control,
sparse, beyond 20,000 items); the algorithm differs from the paper's (approximate LDL^T
plus an iteratively refined sparse inverse of L):

1. ``G = X^T X`` (sparse); with ``gram_neighbors`` > 0 each item keeps only its
   ``gram_neighbors`` largest off-diagonal co-occurrences (the union over both items of
   a pair, so ``G`` stays symmetric), and its diagonal grows by what it dropped (diagonal
   compensation, which keeps ``G`` positive semi-definite);
2. ``A = G + reg_weight I`` is factorised once by SuperLU (``scipy.sparse.linalg.splu``,
   fill-reducing ``MMD_AT_PLUS_A`` ordering);
3. ``P = A^-1`` is solved block of columns by block of columns; each column gives EASE's
   ``B_ij = -P_ij / P_jj`` (``B_jj = 0``), of which column ``j`` keeps its
   ``inverse_neighbors`` largest-magnitude entries (a sparse approximate inverse);
4. a user's scores are their training row times the sparse ``B``.

With ``gram_neighbors: 0`` and ``inverse_neighbors: 0`` nothing is pruned and the result is
EASE's (tested). Memory is that of the sparse factors, ``B`` (``n_items x
inverse_neighbors``) and one block of ``P``; the time is ``n_items`` triangular solves
against the factors, so it suits catalogues of tens of thousands of items with a sparse
Gram matrix, not millions. Pooled: EASE's Gram over the pooled matrix of the generic
pooled mechanism, each source co-occurrence counted ``source_weight`` times (as pooled
``EASE``).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from xdplug.api import Baseline, Float, Int

from ._matrices import POOLED_SEARCH_SPACE, SOURCE_WEIGHT, SparseRowScorer, gram_rows

#: entries of one dense block of P (columns per block = this // n_items)
BLOCK_ENTRIES = 20_000_000


def _top_k_columns(m: sp.csc_matrix, k: int) -> sp.csc_matrix:
    """Keep the ``k`` largest-magnitude entries of each column of ``m``."""
    m = sp.csc_matrix(m)
    keep = np.zeros(m.nnz, dtype=bool)
    for j in range(m.shape[1]):
        lo, hi = m.indptr[j], m.indptr[j + 1]
        if hi - lo <= k:
            keep[lo:hi] = True
        else:
            keep[lo + np.argpartition(-np.abs(m.data[lo:hi]), k - 1)[:k]] = True
    out = sp.csc_matrix((np.where(keep, m.data, 0.0), m.indices.copy(), m.indptr.copy()), shape=m.shape)
    out.eliminate_zeros()
    return out


def pruned_gram(x: sp.csr_matrix, neighbors: int) -> sp.csc_matrix:
    """``X^T X``, each item keeping its ``neighbors`` largest co-occurrences (0: all).

    A kept pair is kept on both sides (the result is symmetric), and each item's diagonal
    grows by the co-occurrences it lost (diagonal compensation): the dropped part plus that
    diagonal is diagonally dominant, so the pruned matrix stays positive semi-definite and
    at least as large as ``X^T X`` — pruning only adds regularisation.
    """
    gram = sp.csc_matrix(x.T @ x)
    if not neighbors:
        return gram
    diag = gram.diagonal()
    off = sp.csc_matrix(gram - sp.diags(diag))
    off.eliminate_zeros()
    pattern = _top_k_columns(off, neighbors)
    pattern.data[:] = 1.0
    pattern = sp.csc_matrix(((pattern + pattern.T) > 0).astype(np.float64))
    kept = sp.csc_matrix(off.multiply(pattern))
    lost = np.asarray(abs(off - kept).sum(0)).ravel()
    return sp.csc_matrix(kept + sp.diags(diag + lost))


def sparse_ease(x: sp.csr_matrix, reg_weight: float, gram_neighbors: int = 0,
                inverse_neighbors: int = 0) -> sp.csc_matrix:
    """EASE's ``B`` for the users x items matrix ``x``, sparse and approximate (see the module doc)."""
    from scipy.sparse.linalg import splu

    n = x.shape[1]
    a = (pruned_gram(x, gram_neighbors) + reg_weight * sp.identity(n, format="csc")).tocsc()
    lu = splu(a, permc_spec="MMD_AT_PLUS_A")
    width = max(1, min(n, BLOCK_ENTRIES // max(n, 1)))
    blocks = []
    for start in range(0, n, width):
        stop = min(start + width, n)
        rhs = np.zeros((n, stop - start))
        rhs[np.arange(start, stop), np.arange(stop - start)] = 1.0
        p = lu.solve(rhs)
        diag = p[np.arange(start, stop), np.arange(stop - start)]
        b = -p / diag[None, :]
        b[np.arange(start, stop), np.arange(stop - start)] = 0.0
        block = sp.csc_matrix(b)
        if inverse_neighbors:
            block = _top_k_columns(block, inverse_neighbors)
        blocks.append(block)
    return sp.hstack(blocks, format="csc") if blocks else sp.csc_matrix((n, n))


class SANSA(Baseline):
    name = "SANSA"
    description = ("Sparse approximate EASE for large catalogues (xdplug's own: pruned Gram, sparse LU, "
                   "top-k inverse; not the sansa package)")
    supports_pooling = True
    pooled_search_space = POOLED_SEARCH_SPACE
    #: training-free and deterministic: an exported artifact refits it from the stored data
    export = "refit"
    defaults = {
        "reg_weight": Float(250.0, 0, 1e9, low_open=True, help="EASE's L2 weight"),
        "gram_neighbors": Int(500, 0, 10_000_000, help="co-occurrences kept per item (0: all)"),
        "inverse_neighbors": Int(500, 0, 10_000_000, help="entries of B kept per item (0: all)"),
        "source_weight": SOURCE_WEIGHT,
    }
    # EASE's space: the sparsity is a budget, not a hyper-parameter to tune
    search_space = {"params.reg_weight": {"type": "loguniform", "low": 1.0, "high": 1.0e5}}

    def fit(self, ctx, pooled: bool = False):
        p = self.params
        inter = gram_rows(ctx, pooled, p["source_weight"])
        x = inter.matrix
        ctx.log(f"SANSA{' (pooled)' if pooled else ''} over {x.shape[1]} items")
        b = sparse_ease(x, p["reg_weight"], p["gram_neighbors"], p["inverse_neighbors"])
        b_target = b[:, inter.cols].tocsr()
        return SparseRowScorer(inter, lambda rows: (rows @ b_target).toarray(), ctx.device)
