"""Sparse approximate EASE: each item regressed on its ``k`` strongest co-occurring items.

Why: a dense items x items EASE matrix needs 80 GB at 10^5 items, and a sparse LU of a
dense-ish Gram matrix fills in (``SANSA``'s cost). EASE's column ``j`` is the ridge
regression of item ``j``'s column on all other items (block inversion of
``P = (G + reg I)^-1``)::

    B[-j, j] = (G[-j,-j] + reg I)^-1 G[-j, j]

Restricting item ``j``'s regressors to ``N_j``, its ``k`` largest off-diagonal
co-occurrences, gives ``B[N_j, j] = (G[N_j,N_j] + reg I)^-1 G[N_j, j]`` and zero
elsewhere: ``n_items`` independent ``k x k`` solves (batched), at most ``k`` non-zeros per
column, and with ``k = n_items - 1`` exactly EASE (tested). Two approximations, both
measured in ``bench/bench_sparse_ease.py``: the neighbourhood, and ``G[N_j, N_j]``, exact
among the ``sqrt(HUB_ENTRIES)`` most frequent items (4,000: all of them in ML-1M) and read
from the pruned lists otherwise (``G[a, b]`` is known when ``a`` is among ``b``'s top ``k`` or
``b`` among ``a``'s, 0 otherwise). Why the hubs: frequent items sit in most neighbourhoods
and co-occur strongly; with their pairs missing, ``G[N_j, N_j]`` is indefinite and the
solution blows up (ML-100K, k = 50, no hubs: NDCG@10 0.048 against EASE's 0.445; with the
500 most frequent items exact: 0.407), and compensating the missing pairs on the diagonal
(SANSA's way) keeps it definite but shrinks the frequent items (0.030).

The pruned Gram matrix is computed in blocks of items (``X[:, block]^T X``, sparse, then
dense per block for the top-``k`` selection), so memory is bounded by
``BLOCK_ENTRIES`` and ``n_items x k`` even where the full Gram matrix has 10^9 entries.
``reg`` may differ per item (joint over pooled users) and a prior ``B_s`` may pull the
solution (l2sp): ``B[N_j, j] = (G[N_j,N_j] + (reg + w) I)^-1 (G[N_j, j] + w B_s[N_j, j])``,
the neighbourhood analogue of ``C - P diag(diag(C) / diag(P))``.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

#: entries of one dense block of the Gram matrix while pruning it (float64: 128 MB)
BLOCK_ENTRIES = 16_000_000
#: entries of the exact Gram matrix among the most frequent items (float64: 128 MB, 4,000 items)
HUB_ENTRIES = 16_000_000
#: entries of one batch of neighbourhood systems (``batch x k x k``)
BATCH_ENTRIES = 4_000_000
#: entries of the per-batch position map (``batch x n_items``)
POSITION_ENTRIES = 16_000_000


def _libc_trim():
    """glibc's ``malloc_trim`` (None elsewhere). Why: the solves allocate tens of MB per batch on
    worker threads; glibc keeps such freed blocks in its heaps once its mmap threshold has adapted
    upwards, and at 10^5 items the fragments grew the process to 20 GB (3x10^4 items: 6.3 GB peak,
    1.4 GB with a trim after each batch)."""
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


_TRIM = _libc_trim()


@dataclass
class PrunedGram:
    """Each item's ``k`` largest off-diagonal co-occurrences, and the diagonal."""

    #: ``[n_items, k]``: item ``j``'s neighbours (by ``|G[i, j]|``; where ``j`` co-occurs with
    #: fewer than ``k`` items, items it never co-occurs with fill the rest, value 0)
    neighbors: np.ndarray
    #: ``[n_items, k]``: ``G[neighbors[j], j]``
    values: np.ndarray
    #: ``[n_items]``: ``G[j, j]``
    diagonal: np.ndarray
    #: the most frequent items (largest ``G[j, j]``), among which ``hub_gram`` is exact
    hubs: np.ndarray
    #: ``[len(hubs), len(hubs)]``: ``G[hubs, hubs]``
    hub_gram: np.ndarray

    def matrix(self) -> sp.csc_matrix:
        """The pruned off-diagonal Gram matrix: column ``j`` holds at most ``k`` entries."""
        n, k = self.neighbors.shape
        m = sp.csc_matrix((self.values.ravel(), self.neighbors.ravel(), np.arange(0, n * k + 1, k)), shape=(n, n))
        m.eliminate_zeros()
        m.sort_indices()
        return m


def pruned_gram(x: sp.spmatrix, k: int, block_entries: int = BLOCK_ENTRIES,
                hub_entries: int = HUB_ENTRIES) -> PrunedGram:
    """``X^T X`` pruned to each column's ``k`` largest off-diagonal entries, block of items by block,
    and exact among the ``sqrt(hub_entries)`` most frequent items (the pairs a neighbourhood meets most)."""
    x = sp.csr_matrix(x, dtype=np.float64)
    n = x.shape[1]
    k = max(0, min(int(k), n - 1))
    xc = x.tocsc()
    diagonal = np.asarray(xc.multiply(xc).sum(0)).ravel()
    neighbors = np.zeros((n, k), dtype=np.int64)
    values = np.zeros((n, k))
    hubs = np.sort(np.argsort(-diagonal, kind="stable")[:min(n, int(np.sqrt(hub_entries)))])
    hub_at = np.full(n, -1)
    hub_at[hubs] = np.arange(len(hubs))
    hub_gram = np.zeros((len(hubs), len(hubs)))
    width = max(1, block_entries // max(n, 1))
    for start in range(0, n if k else 0, width):
        stop = min(n, start + width)
        block = (xc[:, start:stop].T.tocsr() @ x).toarray()  # [items in block, n]: flops = co-occurrences
        rows = np.arange(stop - start)
        strength = torch.from_numpy(np.abs(block))
        strength[rows, start + rows] = -1.0  # never the item itself
        top = torch.topk(strength, k, dim=1).indices.numpy()
        neighbors[start:stop] = top
        values[start:stop] = np.take_along_axis(block, top, 1)
        in_block = hubs[(hubs >= start) & (hubs < stop)]
        hub_gram[hub_at[in_block]] = block[in_block - start][:, hubs]
    np.fill_diagonal(hub_gram, 0.0)
    return PrunedGram(neighbors, values, diagonal, hubs, hub_gram)


def _batches(n_columns: int, n: int, k: int) -> list[tuple[int, int]]:
    size = max(1, min(BATCH_ENTRIES // max(k * k, 1), POSITION_ENTRIES // max(n, 1)))
    return [(start, min(n_columns, start + size)) for start in range(0, n_columns, size)]


def solve_neighborhoods(gram: PrunedGram, reg, columns=None, prior: sp.spmatrix | None = None,
                        prior_weight: float = 0.0) -> sp.csc_matrix:
    """``B[:, columns]`` (``[n_items, len(columns)]`` CSC, ``k`` entries per column) from the pruned Gram.

    ``reg``: EASE's L2 weight, a number or one per item; ``prior`` (``[n_items,
    len(columns)]``) with ``prior_weight`` w: the l2sp pull towards it. Batches of columns run
    on ``torch.get_num_threads()`` threads, torch single-threaded in each: torch 2.13's
    multi-threaded batched LU fails ("Pivots given to lu_solve must all be greater or equal
    to 1") once ``torch.set_num_threads`` has been called, as the Ray executor does.
    """
    n, k = gram.neighbors.shape
    columns = np.arange(n) if columns is None else np.asarray(columns, dtype=np.int64)
    if k == 0 or len(columns) == 0:
        return sp.csc_matrix((n, len(columns)))
    reg = np.broadcast_to(np.asarray(reg, dtype=np.float64), (n,))
    hub_at = np.full(n + 1, len(gram.hubs))  # n: a padding item; len(hubs): "not a hub"
    hub_at[gram.hubs] = np.arange(len(gram.hubs))
    hub_gram = np.zeros((len(gram.hubs) + 1, len(gram.hubs) + 1))
    hub_gram[:-1, :-1] = gram.hub_gram
    system = _Systems(torch.from_numpy(gram.neighbors), torch.from_numpy(gram.values),
                      torch.from_numpy(gram.diagonal + reg + prior_weight), columns,
                      sp.csc_matrix(prior) if prior is not None and prior_weight else None, prior_weight,
                      torch.from_numpy(hub_at), torch.from_numpy(hub_gram))
    batches = _batches(len(columns), n, k)
    threads = torch.get_num_threads()
    try:
        with ThreadPoolExecutor(min(threads, 8)) as pool:  # each holds ~0.3 GB of batch arrays
            betas = list(pool.map(system.solve, batches))
    finally:
        torch.set_num_threads(threads)
    out = sp.csc_matrix((np.concatenate(betas).ravel(), gram.neighbors[columns].ravel(),
                         np.arange(0, len(columns) * k + 1, k)), shape=(n, len(columns)))
    out.eliminate_zeros()
    out.sort_indices()
    return out


class _Systems:
    """The neighbourhood systems of a batch of columns: ``G[N_j, N_j]`` gathered from the kept lists."""

    def __init__(self, nbr, val, diag, columns, prior, prior_weight, hub_at, hub_gram):
        self.nbr, self.val, self.diag, self.columns = nbr, val, diag, columns
        self.hub_at, self.hub_gram = hub_at, hub_gram
        self.prior, self.prior_weight = prior, prior_weight
        self.local = threading.local()

    def solve(self, bounds: tuple[int, int]) -> np.ndarray:
        torch.set_num_threads(1)
        start, stop = bounds
        n, k = self.nbr.shape
        m = stop - start
        pos = getattr(self.local, "pos", None)
        if pos is None or len(pos) < m:  # each thread's map: item -> its place in N_j (-1: not in it)
            pos = self.local.pos = torch.full((m, n), -1, dtype=torch.int64)
        cols = torch.from_numpy(self.columns[start:stop])
        hood = self.nbr[cols]  # [m, k]
        batch_rows = torch.arange(m)[:, None]
        pos[batch_rows, hood] = torch.arange(k)
        lists = self.nbr[hood]  # [m, k, k]: each neighbour's own kept neighbours
        q = pos[:m].gather(1, lists.view(m, k * k)).view(m, k, k)
        found = q >= 0
        slot = torch.where(found, q, k)
        a = torch.zeros(m, k, k + 1, dtype=torch.float64).scatter_(2, slot, torch.where(found, self.val[hood], 0.0))
        known = torch.zeros(m, k, k + 1, dtype=torch.bool).scatter_(2, slot, found)
        a, known = a[:, :, :k], known[:, :, :k]
        a = torch.where(known, a, a.transpose(1, 2))  # G[a, b] known from either side
        h = self.hub_at[hood]  # [m, k]: place among the hubs (len(hubs): none)
        both = (h < len(self.hub_gram) - 1)[:, :, None] & (h < len(self.hub_gram) - 1)[:, None, :]
        a = torch.where(both, self.hub_gram[h[:, :, None], h[:, None, :]], a)  # exact among hubs
        a.diagonal(dim1=1, dim2=2).copy_(self.diag[hood])
        rhs = self.val[cols].clone()  # G[N_j, j]: column j's own kept values, in N_j's order
        if self.prior is not None:
            block = self.prior[:, start:stop].tocoo()
            r, c = torch.from_numpy(block.row.astype(np.int64)), torch.from_numpy(block.col.astype(np.int64))
            at = pos[c, r]
            keep = at >= 0
            rhs.index_put_((c[keep], at[keep]), self.prior_weight * torch.from_numpy(block.data)[keep],
                           accumulate=True)
        pos[batch_rows, hood] = -1
        beta = torch.linalg.solve(a, rhs.unsqueeze(-1)).squeeze(-1).numpy()
        del a, known, lists, q, found, slot, both, h, rhs
        if _TRIM is not None:
            _TRIM(0)  # hand the batch's freed blocks back to the OS (see _libc_trim)
        return beta


def sparse_ease(x: sp.spmatrix, reg, neighbors: int, columns=None, prior: sp.spmatrix | None = None,
                prior_weight: float = 0.0) -> sp.csc_matrix:
    """EASE's ``B[:, columns]`` for users x items ``x``, each item regressed on its ``neighbors`` strongest
    co-occurring items (see the module doc); ``neighbors >= n_items - 1`` is EASE."""
    return solve_neighborhoods(pruned_gram(x, neighbors), reg, columns, prior, prior_weight)


def _row_batches(rows: sp.csr_matrix, size: int = 2048):
    for start in range(0, rows.shape[0], size):
        yield rows[start:start + size]


def scores_std(rows: sp.csr_matrix, b: sp.spmatrix | None = None, low_rank=None) -> float:
    """The standard deviation of every entry of ``rows @ b`` (or ``rows @ L @ R``), without forming it."""
    total = squares = 0.0
    if b is not None:
        b = sp.csr_matrix(b)
        count = rows.shape[0] * b.shape[1]
        for block in _row_batches(rows):
            s = block @ b
            total += float(s.data.sum())
            squares += float(np.square(s.data).sum())
    else:
        left, right = low_rank
        count = rows.shape[0] * right.shape[1]
        yty = np.zeros((left.shape[1], left.shape[1]))
        ysum = np.zeros(left.shape[1])
        for block in _row_batches(rows):
            y = np.asarray(block @ left)
            yty += y.T @ y
            ysum += y.sum(0)
        total = float(ysum @ right.sum(1))
        squares = float((yty * (right @ right.T)).sum())
    mean = total / max(count, 1)
    return float(np.sqrt(max(squares / max(count, 1) - mean * mean, 0.0)))


class SparseItemItemScorer:
    """Scores = ``scale x (row B) + weight x (row L) R`` (+ the iALS term): EASE's scoring with a sparse
    ``B``, an optional low-rank term and an optional ``FactorTerm``, dense ``[batch, n_target_items]``
    float32 like ``ItemItemScorer``."""

    def __init__(self, rows: sp.csr_matrix, b: sp.spmatrix, item_known: np.ndarray, device,
                 scale: float = 1.0, low_rank=None, factors=None):
        self.rows = rows
        self.b = sp.csr_matrix(b)
        self.scale = scale
        self.low_rank = low_rank  # (L [n_rows_items, r], R [r, n_target_items], weight) or None
        self.factors = factors  # model.linear.FactorTerm or None
        self.item_known = item_known
        self.device = device

    def operator(self, x: sp.csr_matrix) -> np.ndarray:
        scores = (x @ self.b).toarray()
        if self.scale != 1.0:
            scores *= self.scale
        if self.low_rank is not None:
            left, right, weight = self.low_rank
            scores += weight * (np.asarray(x @ left) @ right)
        return scores

    def score(self, users: torch.Tensor) -> torch.Tensor:
        scores = self.operator(sp.csr_matrix(self.rows[users.cpu().numpy()]))
        scores = torch.as_tensor(scores, dtype=torch.float32, device=self.device)
        if self.factors is None:
            return scores
        return scores + self.factors.users[users.to(self.device)] @ self.factors.items

    def score_history(self, items: list[int]) -> torch.Tensor:
        """A new user's scores from their target items: ``x B`` (+ their iALS factor, solved from them)."""
        items = np.unique(np.asarray(items, dtype=np.int64))
        x = sp.csr_matrix((np.ones(len(items)), (np.zeros(len(items), dtype=np.int64), items)),
                          shape=(1, self.b.shape[0]))
        scores = torch.as_tensor(self.operator(x), dtype=torch.float32, device=self.device)
        if self.factors is None:
            return scores
        return scores + self.factors.history(items.tolist()) @ self.factors.items
