"""Weighted ALS over several domains that share one side's factors, with prior means on the factors.

iALS (Hu, Koren and Volinsky 2008) fits ``x_u . y_i`` to 1 on observed pairs (weight ``alpha * r``)
and to 0 on every other pair (weight ``unobserved``), with an L2 penalty. Collective factorisation
(Singh and Gordon 2008) lets several such matrices, *blocks*, share the factors of one side (the items
both domains list, or the users both know), each block's whole loss weighted by its own ``weight``:
a block of weight 0 changes nothing, so one block alone is iALS. What the ``implicit`` package cannot
take, and this solver can:

* a *prior mean* per factor: the penalty ``lambda ||x - m||^2`` beside the L2 ``reg ||x||^2``; ``m``
  may be fixed (the source's factors: L2-SP) or refitted every sweep (``TextPrior``: ``m_i = W t_i``,
  ``W`` a ridge regression of the warm factors on frozen text vectors, as in CTR, Wang and Blei 2011);
  an entity with no observed pair in any block is not fitted to zeros: it gets its prior mean;
* a *domain offset*: the first block sees the shared factors plus its own offset ``v + d`` (penalty
  ``offset_reg ||d||^2``), the others ``v``; ``v`` and ``d`` are solved together, exactly;
* frequency-scaled L2 (Rendle et al. 2022): ``reg`` times (the row's weighted count /
  its mean)^``nu``; ``nu = 0`` is the constant L2 of implicit.

Each row's normal equations use the Gramian trick (the unobserved term is ``unobserved * Y^T Y`` for all
rows at once plus a correction per observed pair). ``solver="exact"`` solves them (batches of rows sorted
by length, torch ``bmm`` and a batched Cholesky); ``"cg"`` takes ``cg_steps`` conjugate-gradient steps
from the current factors without forming them (a sampled dot product and a sparse product per step:
~15x faster at ML-1M scale, 128 factors). With the same initial factors, one block, no prior and
``nu = 0`` a sweep is implicit's exact sweep, or its CG sweep, step for step.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch

#: numbers per batch of rows (gathered factors, normal matrices): bounds the solver's memory (~128 MB)
BATCH_ENTRIES = 1 << 24


@dataclass
class Block:
    """One domain's matrix: rows are its own entities (private factors), columns the shared side's."""

    #: rows x len(columns) CSR, the observed values ``r`` (1, or a weighted interaction)
    matrix: sp.csr_matrix
    #: the shared entity of each column (its index in the shared factor table)
    columns: np.ndarray
    #: the weight of the block's whole loss (observed and unobserved pairs and its rows' L2)
    weight: float = 1.0
    #: priors on this block's row factors
    priors: list = field(default_factory=list)


class FixedPrior:
    """A prior mean that does not move: ``weight * ||x - mean||^2`` on the listed rows (L2-SP); ``mean``
    has a row per entity (the others are not read)."""

    def __init__(self, mean: np.ndarray, weight: float, rows: np.ndarray | None = None):
        self.mean = np.asarray(mean, dtype=np.float64)
        self.weight = float(weight)
        self.rows = np.arange(len(mean)) if rows is None else np.asarray(rows)

    def terms(self, n: int, factors: np.ndarray, warm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean, weight = np.zeros((n, self.mean.shape[1])), np.zeros(n)
        mean[self.rows], weight[self.rows] = self.mean[self.rows], self.weight
        return mean, weight


class TextPrior:
    """``weight * ||x_i - W t_i||^2``: ``W`` (with a bias row) refitted by ridge regression of the warm
    factors on the text vectors ``t_i`` every time the prior is read (every sweep). The regression is its
    :class:`TextMap`'s: its own, or one ``shared`` with other priors (one ``W`` over all their warm rows)."""

    def __init__(self, text: np.ndarray, weight: float, ridge: float, shared: "TextMap | None" = None):
        if shared is not None and shared.ridge != float(ridge):
            raise ValueError(f"a shared TextMap has ridge {shared.ridge}; this prior asks for {ridge}")
        self.text = np.hstack([np.asarray(text, dtype=np.float64), np.ones((len(text), 1))])
        self.weight = float(weight)
        self.map = shared if shared is not None else TextMap(ridge)
        self.w: np.ndarray | None = None

    def fit_map(self, factors: np.ndarray, warm: np.ndarray) -> np.ndarray:
        self.w = self.map.fit(self, factors, warm)
        return self.w

    def terms(self, n: int, factors: np.ndarray, warm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.fit_map(factors, warm)
        return self.text @ self.w, np.full(n, self.weight)


class TextMap:
    """The ridge regression of factors on text vectors behind one or more :class:`TextPrior` (users shared:
    each domain's items are a block's rows, and all of them meet the same user factors). Each prior's
    latest warm factors are kept; a fit regresses all of them, so a domain with few interactions borrows
    the map learned on the other's many items."""

    def __init__(self, ridge: float):
        self.ridge = float(ridge)
        self._rows: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def fit(self, prior: TextPrior, factors: np.ndarray, warm: np.ndarray) -> np.ndarray:
        self._rows[id(prior)] = (prior.text[warm], factors[warm])
        t = np.vstack([text for text, _ in self._rows.values()])
        y = np.vstack([f for _, f in self._rows.values()])
        return np.linalg.solve(t.T @ t + self.ridge * np.eye(t.shape[1]), t.T @ y)


def _combine_priors(priors, n: int, k: int, factors: np.ndarray, warm: np.ndarray):
    """The sum of the priors' penalties as one: ``weight * ||x - mean||^2`` (weight 0: none)."""
    total, mean = np.zeros(n), np.zeros((n, k))
    for prior in priors:
        m, w = prior.terms(n, factors, warm)
        total += w
        mean += w[:, None] * m
    return mean / np.maximum(total, 1e-300)[:, None], total


@dataclass
class Side:
    """The observed pairs of one side's rows in CSR layout with two values each: ``conf`` (the pair's
    weight times its target, ``weight * alpha * r``) and ``corr`` (its correction to the Gramian term,
    ``weight * (alpha * r - unobserved)``)."""

    indptr: np.ndarray
    indices: np.ndarray
    conf: np.ndarray
    corr: np.ndarray

    @classmethod
    def from_pairs(cls, n_rows: int, rows, cols, conf, corr) -> "Side":
        order = np.lexsort((cols, rows))
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n_rows))]).astype(np.int64)
        return cls(indptr, np.asarray(cols)[order], np.asarray(conf, np.float64)[order],
                   np.asarray(corr, np.float64)[order])

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.indptr)

    def warm(self) -> np.ndarray:
        """Rows with an observed pair of positive weight."""
        positive = np.concatenate([[0], np.cumsum(self.conf > 0)])
        return positive[self.indptr[1:]] > positive[self.indptr[:-1]]

    def restricted(self, keep: np.ndarray) -> "Side":
        """The same pattern, the values of the pairs outside ``keep`` (a mask over pairs) set to 0."""
        return Side(self.indptr, self.indices, np.where(keep, self.conf, 0.0), np.where(keep, self.corr, 0.0))


def _row_side(m: sp.csr_matrix, alpha: float, unobserved: float, weight: float = 1.0) -> Side:
    coo = m.tocoo()
    conf = weight * alpha * coo.data
    return Side.from_pairs(m.shape[0], coo.row, coo.col, conf, conf - weight * unobserved)


def _batches(lengths: np.ndarray, k: int):
    """Rows in order of length, cut so that a batch's gathered factors (rows x longest x k) and its normal
    matrices (rows x k x k) stay under ``BATCH_ENTRIES`` numbers each."""
    order = np.argsort(lengths, kind="stable")
    sizes = np.maximum(lengths[order], 1)
    most_rows = max(1, BATCH_ENTRIES // (k * k))
    start = 0
    while start < len(order):
        # sizes ascend: the batch's longest row is its last
        fits = np.arange(1, len(order) - start + 1) * sizes[start:] * k <= BATCH_ENTRIES
        stop = start + max(1, min(most_rows, int(np.argmin(fits)) if not fits.all() else len(fits)))
        yield order[start:stop]
        start = stop


def _gather(side: Side, rows: np.ndarray):
    """The rows' column indices and both values, padded to the longest: ``[B, L]`` tensors (padding: 0)."""
    lengths = side.lengths[rows]
    width = max(int(lengths.max()) if len(rows) else 0, 1)
    idx = np.zeros((len(rows), width), dtype=np.int64)
    conf, corr = np.zeros((len(rows), width)), np.zeros((len(rows), width))
    mask = np.arange(width)[None, :] < lengths[:, None]
    flat = (side.indptr[rows][:, None] + np.arange(width)[None, :])[mask]
    idx[mask], conf[mask], corr[mask] = side.indices[flat], side.conf[flat], side.corr[flat]
    return torch.from_numpy(idx), torch.from_numpy(conf), torch.from_numpy(corr)


def _normal_parts(side: Side, y: torch.Tensor, rows: np.ndarray):
    """For ``rows``: ``sum_i corr_ui y_i y_i^T`` ``[B, k, k]`` and ``sum_i conf_ui y_i`` ``[B, k]``."""
    idx, conf, corr = _gather(side, rows)
    yg = y[idx]  # [B, L, k]
    a = torch.bmm((yg * corr[..., None].to(y.dtype)).transpose(1, 2), yg)
    b = (yg * conf[..., None].to(y.dtype)).sum(1)
    return a, b


def _solve(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    chol, info = torch.linalg.cholesky_ex(a)
    if bool((info != 0).any()):  # not positive definite in floating point (e.g. reg 0): a general solve
        return torch.linalg.solve(a, b[..., None])[..., 0]
    return torch.cholesky_solve(b[..., None], chol)[..., 0]


class FactorModel:
    """Collective weighted ALS: ``blocks`` share the factors of ``n_shared`` entities.

    ``fit`` alternates: each block's row factors given the shared ones, then the shared factors given
    every block's rows. ``shared_priors``: priors on the shared factors; ``offset_reg`` > 0 gives the
    first block its own offset on the shared factors.
    """

    def __init__(self, blocks: list[Block], n_shared: int, factors: int, reg: float, alpha: float,
                 unobserved: float = 1.0, nu: float = 0.0, shared_priors: list | None = None,
                 offset_reg: float = 0.0, solver: str = "exact", cg_steps: int = 3, dtype=torch.float64):
        self.blocks, self.n_shared, self.k = blocks, n_shared, factors
        self.reg, self.alpha, self.unobserved, self.nu = float(reg), float(alpha), float(unobserved), float(nu)
        self.shared_priors = list(shared_priors or [])
        self.offset_reg = float(offset_reg)
        if solver not in ("exact", "cg"):
            raise ValueError(f"solver: expected 'exact' or 'cg', got {solver!r}")
        self.solver, self.cg_steps, self.dtype = solver, int(cg_steps), dtype
        self.shared = np.zeros((n_shared, factors))
        self.offset = np.zeros((n_shared, factors)) if offset_reg else None
        self.rows = [np.zeros((b.matrix.shape[0], factors)) for b in blocks]
        self._build()

    # -- the fixed parts of the normal equations --------------------------------------------------
    def _build(self):
        a, w0 = self.alpha, self.unobserved
        self.row_sides, self.row_reg, self.row_warm = [], [], []
        rows, cols, conf, corr = [], [], [], []
        self.row_offsets = np.cumsum([0] + [b.matrix.shape[0] for b in self.blocks])
        weighted_counts = np.zeros(self.n_shared)
        self.member = np.zeros((self.n_shared, len(self.blocks)))  # whose Gramian reaches each shared entity
        for j, block in enumerate(self.blocks):
            m = block.matrix.tocsr().astype(np.float64)
            side = _row_side(m, a, w0)
            self.row_sides.append(side)
            self.row_reg.append(self._scaled_reg(side.lengths + w0 * m.shape[1]))
            self.row_warm.append(side.warm())
            # the shared side: the block's pairs transposed, its rows after the earlier blocks' rows
            coo = m.tocoo()
            rows.append(block.columns[coo.col])
            cols.append(self.row_offsets[j] + coo.row)
            conf.append(block.weight * a * coo.data)
            corr.append(block.weight * (a * coo.data - w0))
            counts = np.bincount(block.columns[coo.col], minlength=self.n_shared)
            self.member[block.columns, j] = block.weight * w0
            weighted_counts += block.weight * counts
            weighted_counts[block.columns] += block.weight * w0 * m.shape[0]
        self.shared_side = Side.from_pairs(self.n_shared, np.concatenate(rows), np.concatenate(cols),
                                           np.concatenate(conf), np.concatenate(corr))
        self.shared_reg = self._scaled_reg(weighted_counts)
        self.shared_warm = self.shared_side.warm()

    def _scaled_reg(self, counts: np.ndarray) -> np.ndarray:
        if not self.nu:
            return np.full(len(counts), self.reg)
        mean = float(counts[counts > 0].mean()) if (counts > 0).any() else 1.0
        return self.reg * (np.maximum(counts, 1e-12) / mean) ** self.nu

    # -- fitting ---------------------------------------------------------------------------------
    def init(self, seed: int, shared: np.ndarray | None = None, rows: list | None = None) -> None:
        """Small random factors as implicit draws them (the first block's rows, then the shared side, then
        the other blocks' rows: a block added after the first leaves their draws unchanged), or the given ones."""
        rng = np.random.default_rng(seed)

        def draw(n):
            return rng.random((n, self.k), dtype=np.float32).astype(np.float64) * 0.01

        first = draw(self.blocks[0].matrix.shape[0])
        self.shared = draw(self.n_shared) if shared is None else np.asarray(shared, np.float64)
        self.rows = [first] + [draw(b.matrix.shape[0]) for b in self.blocks[1:]]
        if rows is not None:
            self.rows = [np.asarray(r, dtype=np.float64) for r in rows]

    def fit(self, iterations: int, seed: int = 0, init: bool = True) -> FactorModel:
        if init:
            self.init(seed)
        for _ in range(iterations):
            self.solve_rows()
            self.solve_shared()
        return self

    def block_columns(self, j: int) -> np.ndarray:
        """The factors block ``j``'s rows see: the shared ones of its columns (plus its offset)."""
        cols = self.blocks[j].columns
        if j == 0 and self.offset is not None:
            return self.shared[cols] + self.offset[cols]
        return self.shared[cols]

    def solve_rows(self) -> None:
        for j, block in enumerate(self.blocks):
            if block.weight == 0:  # its loss is gone: its rows reach nothing
                continue
            y = self.block_columns(j)
            mean, pw = _combine_priors(block.priors, len(self.rows[j]), self.k, self.rows[j], self.row_warm[j])
            self.rows[j] = self._solve_side(self.row_sides[j], y, [self.unobserved * y.T @ y], None,
                                            self.row_reg[j], mean, pw, self.row_warm[j], self.rows[j])

    def solve_shared(self) -> None:
        y = np.vstack(self.rows)
        grams = [self.rows[j].T @ self.rows[j] for j in range(len(self.blocks))]
        mean, pw = _combine_priors(self.shared_priors, self.n_shared, self.k, self.shared, self.shared_warm)
        if self.offset is None:
            self.shared = self._solve_side(self.shared_side, y, grams, self.member, self.shared_reg, mean, pw,
                                           self.shared_warm, self.shared)
        else:
            self._solve_with_offset(y, grams, mean, pw)

    def _solve_side(self, side: Side, y: np.ndarray, grams: list, member, reg: np.ndarray, mean: np.ndarray,
                    pw: np.ndarray, warm: np.ndarray, current: np.ndarray) -> np.ndarray:
        """Every row's solution (exact, or ``cg_steps`` of conjugate gradient from the current factors);
        a row without observed pairs gets its prior mean (0 without one)."""
        if self.solver == "cg":
            op = _Operator(side, y, grams, member, reg + pw, self.dtype)
            rhs = op.targets(side) + torch.as_tensor(pw[:, None] * mean, dtype=self.dtype)
            x = _conjugate_gradient(op, rhs, torch.as_tensor(current, dtype=self.dtype), self.cg_steps).numpy()
            return np.where(warm[:, None], x, mean)
        yt = torch.as_tensor(y, dtype=self.dtype)
        gram_t = torch.as_tensor(np.stack(grams), dtype=self.dtype)  # [blocks, k, k]
        eye = torch.eye(self.k, dtype=self.dtype)
        out = mean.copy()
        rows_warm = np.flatnonzero(warm)
        for part in _batches(side.lengths[rows_warm], self.k):
            rows = rows_warm[part]
            a, b = _normal_parts(side, yt, rows)
            if member is None:
                a += gram_t[0]
            else:
                a += torch.einsum("rb,bkl->rkl", torch.as_tensor(member[rows], dtype=self.dtype), gram_t)
            a += torch.as_tensor(reg[rows] + pw[rows], dtype=self.dtype)[:, None, None] * eye
            b += torch.as_tensor(pw[rows, None] * mean[rows], dtype=self.dtype)
            out[rows] = _solve(a, b).numpy()
        return out

    def _solve_with_offset(self, y: np.ndarray, grams: list, mean: np.ndarray, pw: np.ndarray) -> None:
        """``v`` and the first block's offset ``d`` of every shared entity at once: the ``2k`` system
        ``[[A_0 + A_rest + R, A_0], [A_0, A_0 + offset_reg I]] [v; d] = [b_0 + b_rest + prior; b_0]``."""
        k, dt = self.k, self.dtype
        n0 = int(self.row_offsets[1])
        if self.solver == "cg":
            return self._offset_cg(y, grams, mean, pw, n0)
        yt = torch.as_tensor(y, dtype=dt)
        eye = torch.eye(k, dtype=dt)
        shared, offset = mean.copy(), np.zeros_like(self.offset)
        first = self.shared_side.restricted(self.shared_side.indices < n0)
        rest = self.shared_side.restricted(self.shared_side.indices >= n0)
        gram0 = torch.as_tensor(grams[0], dtype=dt)
        gram_rest = torch.as_tensor(np.stack(grams[1:]) if len(grams) > 1 else np.zeros((1, k, k)), dtype=dt)
        warm = np.flatnonzero(self.shared_warm)
        for part in _batches(self.shared_side.lengths[warm], k):
            rows = warm[part]
            a0, b0 = _normal_parts(first, yt, rows)
            ar, br = _normal_parts(rest, yt, rows)
            m = torch.as_tensor(self.member[rows], dtype=dt)
            a0 += m[:, :1, None] * gram0
            if len(grams) > 1:
                ar += torch.einsum("rb,bkl->rkl", m[:, 1:], gram_rest)
            r = torch.as_tensor(self.shared_reg[rows] + pw[rows], dtype=dt)[:, None, None] * eye
            top = torch.cat([a0 + ar + r, a0], 2)
            bottom = torch.cat([a0, a0 + self.offset_reg * eye], 2)
            rhs = torch.cat([b0 + br + torch.as_tensor(pw[rows, None] * mean[rows], dtype=dt), b0], 1)
            x = _solve(torch.cat([top, bottom], 1), rhs).numpy()
            shared[rows], offset[rows] = x[:, :k], x[:, k:]
        self.shared, self.offset = shared, offset

    def _offset_cg(self, y, grams, mean, pw, n0: int) -> None:
        """``_solve_with_offset``'s ``2k`` system by conjugate gradient over ``[v, d]``."""
        side, dt, k = self.shared_side, self.dtype, self.k
        first, rest = side.restricted(side.indices < n0), side.restricted(side.indices >= n0)
        zero = np.zeros(self.n_shared)
        op0 = _Operator(first, y, grams[:1], self.member[:, :1], zero, dt)
        op_rest = _Operator(rest, y, grams[1:] or [np.zeros((k, k))], self.member[:, 1:] if len(grams) > 1
                            else np.zeros((self.n_shared, 1)), self.shared_reg + pw, dt)
        off = self.offset_reg

        def op(z):
            v, d = z[:, :k], z[:, k:]
            a0 = op0(v + d)
            return torch.cat([a0 + op_rest(v), a0 + off * d], 1)

        b0 = op0.targets(first)
        rhs = torch.cat([b0 + op_rest.targets(rest) + torch.as_tensor(pw[:, None] * mean, dtype=dt), b0], 1)
        z0 = torch.as_tensor(np.hstack([self.shared, self.offset]), dtype=dt)
        z = _conjugate_gradient(op, rhs, z0, 2 * self.cg_steps).numpy()
        warm = self.shared_warm[:, None]
        self.shared, self.offset = np.where(warm, z[:, :k], mean), np.where(warm, z[:, k:], 0.0)

    # -- using a fitted model ---------------------------------------------------------------------
    def fold_in(self, matrix: sp.csr_matrix, block: int = 0) -> np.ndarray:
        """Row factors of new rows of ``block`` (same columns) given the fitted shared factors: one
        exact row half-step (an empty row gets 0)."""
        y = self.block_columns(block)
        side = _row_side(matrix.tocsr().astype(np.float64), self.alpha, self.unobserved)
        reg = self._scaled_reg_like(block, side.lengths + self.unobserved * matrix.shape[1])
        n = matrix.shape[0]
        zeros = np.zeros((n, self.k))
        return self._solve_side(side, y, [self.unobserved * y.T @ y], None, reg, zeros, np.zeros(n), side.warm(),
                                zeros)

    def _scaled_reg_like(self, block: int, counts: np.ndarray) -> np.ndarray:
        """The L2 of new rows, scaled as the block's fitted rows were (same mean count)."""
        if not self.nu:
            return np.full(len(counts), self.reg)
        fitted = self.row_sides[block].lengths + self.unobserved * self.blocks[block].matrix.shape[1]
        return self.reg * (np.maximum(counts, 1e-12) / float(fitted[fitted > 0].mean())) ** self.nu


class _Operator:
    """``x -> A_u x`` for every row ``u`` at once, without forming ``A_u``: the blocks' Gramians (by
    membership), the diagonal (L2 + prior weight), and each observed pair's correction (a sampled dot
    product ``y_i . x_u``, then a sparse product)."""

    def __init__(self, side: Side, y: np.ndarray, grams: list, member, diag: np.ndarray, dtype):
        n = len(side.indptr) - 1
        self.n, self.dtype = n, dtype
        self.y = torch.as_tensor(y, dtype=dtype)
        self.indptr = torch.as_tensor(side.indptr, dtype=torch.int64)
        self.indices = torch.as_tensor(side.indices, dtype=torch.int64)
        self.corr = torch.as_tensor(side.corr, dtype=dtype)
        self.grams = torch.as_tensor(np.stack(grams), dtype=dtype)
        self.member = torch.ones(n, 1, dtype=dtype) if member is None else torch.as_tensor(member, dtype=dtype)
        self.diag = torch.as_tensor(diag, dtype=dtype)[:, None]

    def _csr(self, values: torch.Tensor) -> torch.Tensor:
        return torch.sparse_csr_tensor(self.indptr, self.indices, values, size=(self.n, len(self.y)),
                                       check_invariants=False)

    def targets(self, side: Side) -> torch.Tensor:
        """``sum_i conf_ui y_i`` per row."""
        with _quiet_sparse():
            return self._csr(torch.as_tensor(side.conf, dtype=self.dtype)) @ self.y

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = self.diag * x
        for b in range(self.grams.shape[0]):
            out = out + self.member[:, b:b + 1] * (x @ self.grams[b])
        if len(self.indices):
            with _quiet_sparse():
                dots = torch.sparse.sampled_addmm(self._csr(torch.zeros_like(self.corr)), x, self.y.T, beta=0.0)
                out = out + self._csr(dots.values() * self.corr) @ self.y
        return out


@contextlib.contextmanager
def _quiet_sparse():
    """torch warns that sparse CSR support is in beta on every use; the operations used here are tested."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]parse.*")
        yield


def _conjugate_gradient(op, rhs: torch.Tensor, x: torch.Tensor, steps: int) -> torch.Tensor:
    """``steps`` of conjugate gradient for every row's system at once, from ``x`` (implicit's CG solver:
    a row stops once its squared residual is below 1e-20)."""
    x = x.clone()
    r = rhs - op(x)
    p = r.clone()
    rs_old = (r * r).sum(1)
    active = rs_old >= 1e-20
    for _ in range(steps):
        if not bool(active.any()):
            break
        ap = op(p)
        curvature = (p * ap).sum(1)
        step = torch.where(active, rs_old / torch.where(active, curvature, torch.ones_like(curvature)),
                           torch.zeros_like(rs_old))
        x += step[:, None] * p
        r -= step[:, None] * ap
        rs_new = (r * r).sum(1)
        still = active & (rs_new >= 1e-20)
        p = torch.where(still[:, None], r + (rs_new / torch.where(active, rs_old, torch.ones_like(rs_old)))[:, None] * p, p)
        rs_old = torch.where(still, rs_new, rs_old)
        active = still
    return x
