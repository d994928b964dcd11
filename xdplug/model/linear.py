"""Closed forms over item-item matrices: what the item-item family's adaptations solve.

EASE is the strongest single-domain peer on the MovieLens data, and a low-rank
two-tower model trails it wherever the target has data of its own. The item-item
family (a plugin) moves source knowledge into EASE's full-rank item-item matrix
``B`` instead; each adaptation that runs in it carries a closed form
(``Adaptation.closed_form(problem)``) over the :class:`ItemItemProblem` below,
whose methods are the forms over the target's items:

* ``target()``: EASE on the target's training rows (the EASE baseline);
* ``source()``: ``B_s``, EASE fitted on the source's rows over the items both
  domains share, scores target users;
* ``with_prior(lambda)``: target EASE pulled towards the source's solution,
  ``min ||X - XB||^2 + reg ||B||^2 + lambda ||B - B_s||^2`` with ``diag(B) = 0``;
  with ``P = (G + (reg + lambda) I)^-1`` and ``C = P (G + lambda B_s)`` the
  answer is ``B = C - P diag(diag(C) / diag(P))``. ``lambda`` lives on the
  Gram-matrix scale (tens to thousands);
* ``pooled(w)``: one Gram matrix in which each source co-occurrence counts
  ``w`` times (tuned pooling). Where the domains share items, the
  source's rows over the shared items; where they share only users, the pooled
  matrix of the pooled baselines (``recbole.dataset.pooled_matrix``: each
  target user's row gets their source items as extra columns), so with
  weight w it is pooled EASE with that weight: L2 ``reg_weight`` on
  the target block and ``reg_weight / w`` on the source block.

A closed form of its own reads ``problem.target_matrix()`` / ``problem.source_matrix()``,
solves with :func:`ease_matrix` and returns ``problem.scorer(b)``.

Two terms on top (``bench/user_overlap_study.py`` measured them where users
overlap): ``filter_rank`` k > 0 adds GF-CF's ideal low-pass filter of the
(pooled) training matrix ``R``: ``R~ = D_u^-1/2 R D_i^-1/2``, ``V_k`` its top-k
right singular vectors (randomised SVD, seeded), ``S_L = R D_i^-1/2 V_k
V_k[t]^T D_i[t]^1/2``, and the scores become ``S_E / std(S_E) + filter_weight *
S_L / std(S_L)`` (std over the training users' target scores); ``joint`` with
``source_norm`` a > 0 divides each user's source row by (its length / the
median length)^a before both. ``item_norm`` / ``user_norm`` (target-only and
joint) are DAN's normalisation (Park et al., SIGIR 2025, "Why is
normalization necessary for linear recommenders?", alpha = 1 - item_norm, beta = user_norm):
the Gram matrix weights each user's row by (its length / the median length)^-user_norm, and the
fitted ``B`` becomes ``D_I^item_norm B D_I[t]^-item_norm`` (item degrees of the unscaled rows;
``diag(B)`` stays 0), which divides each target item's scores by its degree^item_norm. Every
term so far is linear in the user's row, so it is one matrix: scores = row x ``B``.
``factor_rank`` r > 0 adds one that is not: iALS (Hu et al. 2008, the ``implicit`` package's CPU
solver, ``ALS_ITERATIONS`` sweeps, seeded) over the target users' binary rows (with their source
columns where only users are shared; the source's own rows stay out where items are shared), ``factor_reg`` its
L2 and ``factor_alpha`` the confidence of an observed pair; each user's factor solves a least
squares weighted by their own items, and ``S_F = U V[t]^T`` joins the sum as
``factor_weight * S_F / std(S_F)`` (the EASE part standardised as with the filter).

Above ``MAX_ITEMS`` items (or with ``solver: sparse``) every form is solved by
``model/sparse_item_item.py``: each item regressed on its ``neighbors`` strongest
co-occurring items (EASE itself when ``neighbors`` >= items - 1), a sparse ``B`` with at most
``neighbors`` entries per column; l2sp pulls each such regression towards the source's
sparse solution, the low-pass filter stays a rank-k factor pair (``O(items x rank)``), DAN's
terms weight the rows it reads and rescale the sparse ``B``, and the iALS term is the same
factor model: a staged search samples them at any catalogue size.

Adaptations that shape embeddings while they train (fine-tuning, adversarial, MMD,
CORAL, consistency) have no closed form: they do not list the family. The forms need
shared items or shared users to use the source, and item IDs only: an item without
interactions in either domain gets no score.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from ..errors import ConfigError, NotApplicableError
from .als import fit_als
from .sparse_item_item import SparseItemItemScorer, scores_std, sparse_ease

#: dense item-item matrices above this many items need more memory than a laptop has
MAX_ITEMS = 20_000
#: the low-pass filter's SVD is exact (dense) up to this many matrix entries, randomised above
DENSE_SVD_ENTRIES = 2_000_000
#: sweeps of the iALS factor term (``factor_rank``)
ALS_ITERATIONS = 15


def ease_matrix(gram: np.ndarray, reg: float) -> np.ndarray:
    """EASE's ``B`` from a Gram matrix and its L2 weight (``diag(B) = 0``)."""
    p = np.linalg.inv(gram + reg * np.eye(len(gram)))
    b = p / -np.diag(p)
    np.fill_diagonal(b, 0.0)
    return b


def _ease_with_prior(gram: np.ndarray, reg: float, weight: float, prior: np.ndarray) -> np.ndarray:
    p = np.linalg.inv(gram + (reg + weight) * np.eye(len(gram)))
    c = p @ (gram + weight * prior)
    b = c - p * (np.diag(c) / np.diag(p))[None, :]
    np.fill_diagonal(b, 0.0)
    return b


class ItemItemScorer:
    """Scores = the user's target training row times ``B`` (EASE's scoring), plus the optional iALS term."""

    def __init__(self, rows: sp.csr_matrix, b: np.ndarray, item_known: np.ndarray, device, factors=None):
        self.rows = rows
        self.b = torch.as_tensor(b, dtype=torch.float32, device=device)
        self.item_known = item_known
        self.device = device
        self.factors = factors  # FactorTerm or None

    def score(self, users: torch.Tensor) -> torch.Tensor:
        dense = torch.as_tensor(self.rows[users.cpu().numpy()].toarray(), dtype=torch.float32, device=self.device)
        if self.factors is None:
            return dense @ self.b
        return dense @ self.b + self.factors.users[users.to(self.device)] @ self.factors.items

    def score_history(self, items: list[int]) -> torch.Tensor:
        """A new user's scores from their target items: ``x B`` (+ their iALS factor, solved from them)."""
        x = torch.zeros(1, self.b.shape[0], device=self.b.device)
        x[0, items] = 1.0
        if self.factors is None:
            return x @ self.b
        return x @ self.b + self.factors.history(items) @ self.factors.items


class FactorTerm:
    """iALS over the training rows: users' factors and ``weight * V[t]^T / std(S_F)`` as torch tensors."""

    def __init__(self, raw: sp.csr_matrix, nt: int, options: dict, seed: int, device):
        self.model = fit_als(raw, options["factor_rank"], options["factor_reg"], options["factor_alpha"],
                             ALS_ITERATIONS, seed)
        u, v = np.asarray(self.model.user_factors), np.asarray(self.model.item_factors)[:nt]
        scale = options["factor_weight"] / (float((u @ v.T).std()) + 1e-12)
        self.n_cols = raw.shape[1]
        self.users = torch.as_tensor(u, dtype=torch.float32, device=device)
        self.items = torch.as_tensor(v.T * scale, dtype=torch.float32, device=device)

    def history(self, items: list[int]) -> torch.Tensor:
        row = sp.csr_matrix((np.ones(len(items), dtype=np.float32), (np.zeros(len(items), dtype=int), items)),
                            shape=(1, self.n_cols))
        return torch.as_tensor(self.model.recalculate_user(0, row)[None, :], dtype=torch.float32,
                               device=self.items.device)


def _ease_columns(gram: np.ndarray, reg: np.ndarray, nt: int) -> np.ndarray:
    """EASE's ``B[:, :nt]`` with a per-column L2 ``reg`` (the first ``nt`` columns are the target's)."""
    from scipy.linalg import cho_factor, cho_solve

    g = gram.copy()
    g[np.diag_indices_from(g)] += reg
    rhs = np.zeros((len(g), nt))
    rhs[np.arange(nt), np.arange(nt)] = 1.0
    p = cho_solve(cho_factor(g), rhs)
    b = p / -np.diag(p[:nt])[None, :]
    b[np.arange(nt), np.arange(nt)] = 0.0
    return b


def low_pass(r: sp.csr_matrix, nt: int, k: int, seed: int, exact: bool = False) -> np.ndarray:
    """GF-CF's ideal low-pass filter of ``r`` as a ``[r.shape[1], nt]`` operator (scores = r x it).

    ``R~ = D_u^-1/2 R D_i^-1/2``, ``V_k`` its top-k right singular vectors (randomised SVD,
    seeded), operator ``D_i^-1/2 V_k V_k[:nt]^T D_i[:nt]^1/2`` (the first ``nt`` columns are
    the target's items).
    """
    left, right = low_pass_factors(r, nt, k, seed, exact)
    return left @ right


def low_pass_factors(r: sp.csr_matrix, nt: int, k: int, seed: int,
                     exact: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``low_pass``'s operator as its two factors ``[r.shape[1], k]`` and ``[k, nt]``.

    Exact (a dense SVD) up to ``DENSE_SVD_ENTRIES`` matrix entries, randomised above; ``exact``
    takes the top-k eigenvectors of the item Gram ``R~^T R~`` instead (no sampling noise; an
    ``items x items`` eigendecomposition, seconds at ML-1M's 3,300 columns).
    """
    du = np.asarray(r.sum(1)).ravel()
    di = np.asarray(r.sum(0)).ravel()
    inv = lambda d: np.where(d > 0, 1 / np.sqrt(np.maximum(d, 1e-12)), 0.0)  # noqa: E731
    rn = (sp.diags(inv(du)) @ r @ sp.diags(inv(di))).tocoo()
    k = min(k, min(r.shape))
    if r.shape[0] * r.shape[1] <= DENSE_SVD_ENTRIES:  # exact
        v = np.linalg.svd(rn.toarray(), full_matrices=False)[2][:k].T
    elif exact:
        rn = rn.tocsr()
        v = np.linalg.eigh((rn.T @ rn).toarray())[1][:, ::-1][:, :k]
    else:
        a = torch.sparse_coo_tensor(np.vstack([rn.row, rn.col]), rn.data, rn.shape, dtype=torch.float64,
                                    check_invariants=True)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            v = torch.svd_lowrank(a, q=min(k + 16, min(r.shape)), niter=6)[2][:, :k].numpy()
    return inv(di)[:, None] * v, v[:nt].T * np.sqrt(di[:nt])[None, :]


def _dan_gram(x: sp.csr_matrix, raw: sp.csr_matrix, user_norm: float) -> np.ndarray:
    """``x^T x``, each row weighted by (its length in ``raw`` / median)^-user_norm when user_norm > 0."""
    if not user_norm:
        return (x.T @ x).toarray()
    return (x.T @ sp.diags(_dan_row_weights(raw, user_norm)) @ x).toarray()


def _dan_row_weights(raw: sp.csr_matrix, user_norm: float) -> np.ndarray:
    """DAN's weight of each row: (its length in ``raw`` / the median length)^-user_norm (lengths at least 1)."""
    lengths = np.maximum(np.asarray(raw.sum(1)).ravel(), 1.0)
    return (lengths / np.median(lengths)) ** -user_norm


def _dan_rows(x: sp.csr_matrix, raw: sp.csr_matrix, user_norm: float) -> sp.csr_matrix:
    """``x`` with each row scaled by the square root of ``_dan_gram``'s weight (the sparse solver reads rows,
    not a Gram matrix: ``rows^T rows`` is that weighted Gram)."""
    if not user_norm:
        return x
    return (sp.diags(np.sqrt(_dan_row_weights(raw, user_norm))) @ x).tocsr()


def _dan_items(b, raw: sp.csr_matrix, item_norm: float):
    """``D_I^item_norm B D_I[:nt]^-item_norm`` (D_I: the column sums of ``raw``, at least 1), dense or sparse."""
    if not item_norm:
        return b
    d = np.maximum(np.asarray(raw.sum(0)).ravel(), 1.0) ** item_norm
    if sp.issparse(b):
        return (sp.diags(d) @ b @ sp.diags(1.0 / d[:b.shape[1]])).tocsc()
    return b * d[:, None] / d[None, :b.shape[1]]


def _combine(rows: sp.csr_matrix, b: np.ndarray, r: sp.csr_matrix, nt: int, options: dict, seed: int) -> np.ndarray:
    """``ease_weight * B / std(rows B) + filter_weight * F / std(rows F)``, F the low-pass filter of ``r``
    (or ``B`` itself without the filter)."""
    if not options["filter_rank"]:
        return b
    f = low_pass(r, nt, options["filter_rank"], seed, options.get("filter_solver") == "exact")
    return _ease_part(rows, b, options) + options["filter_weight"] * f / _scores_std(rows, f)


def _ease_part(rows: sp.csr_matrix, b: np.ndarray, options: dict) -> np.ndarray:
    """EASE's standardised term of a sum, ``ease_weight * B / std(rows B)`` (0 when its weight is)."""
    weight = options.get("ease_weight", 1.0)
    return b * (weight / _scores_std(rows, b)) if weight else np.zeros_like(b)


def _ease_off(options: dict) -> bool:
    """``ease_weight: 0``: EASE is left out of the sum, and not solved."""
    return options.get("ease_weight", 1.0) == 0


def _scores_std(rows: sp.csr_matrix, m: np.ndarray) -> float:
    """The spread of the training users' scores ``rows m`` (each term is divided by it before summing)."""
    return float(np.asarray(rows @ m).std()) + 1e-12


def _with_factors(x: sp.csr_matrix, b: np.ndarray, raw: sp.csr_matrix, nt: int, options: dict, ctx, known):
    """The dense scorer; with ``factor_rank`` > 0 the EASE part standardised and the iALS term added."""
    if not options.get("factor_rank", 0):
        return ItemItemScorer(x, b, known, ctx.device)
    if not options["filter_rank"]:  # _combine standardised B only with the filter on
        b = _ease_part(x, b, options)
    ctx.log(f"closed-form: iALS term, {options['factor_rank']} factors, {ALS_ITERATIONS} sweeps")
    return ItemItemScorer(x, b, known, ctx.device, factors=FactorTerm(raw, nt, options, ctx.seed, ctx.device))


def _row_scale(lengths: np.ndarray, a: float) -> np.ndarray:
    """Each user's source row factor ``(length / median length)^-a`` (0 for an empty row)."""
    med = float(np.median(lengths[lengths > 0])) if (lengths > 0).any() else 1.0
    return np.where(lengths > 0, (np.maximum(lengths, 1) / med) ** -a, 0.0)


def use_sparse(options: dict, n_items: int) -> bool:
    """``solver``: ``auto`` is dense up to ``MAX_ITEMS`` items, sparse above; ``dense`` refuses more."""
    solver = options.get("solver", "auto")
    if solver == "dense" and n_items > MAX_ITEMS:
        raise ConfigError("params.model.solver", f"dense keeps a {n_items} x {n_items} item-item matrix; above "
                          f"{MAX_ITEMS} items use solver: sparse (or auto)")
    return solver == "sparse" or (solver == "auto" and n_items > MAX_ITEMS)


def _sparse_ease(x: sp.csr_matrix, raw: sp.csr_matrix, reg, options: dict, nt: int, columns=None, prior=None,
                 prior_weight: float = 0.0):
    """The sparse solver's EASE part with DAN's terms (an empty ``B`` when ``ease_weight`` is 0); ``prior``:
    a callable giving the sparse ``B_s`` to pull towards (l2sp), solved only when EASE is on."""
    if _ease_off(options):
        return sp.csc_matrix((x.shape[1], nt))
    b = sparse_ease(_dan_rows(x, raw, options.get("user_norm", 0.0)), reg, options.get("neighbors", 200), columns,
                    prior=None if prior is None else prior(), prior_weight=prior_weight)
    return _dan_items(b, raw, options.get("item_norm", 0.0))


def _sparse_scorer(ctx, rows, b, r, nt: int, options: dict, known, factor_rows=None) -> SparseItemItemScorer:
    """``_combine`` and ``_with_factors`` with a sparse ``B``: the filter stays its factor pair, the stds are
    computed in row batches; the iALS term (``factor_rows``: the rows it is fitted on) as in the dense scorer."""
    filtered, factored = options["filter_rank"], options.get("factor_rank", 0)
    if not (filtered or factored):
        return SparseItemItemScorer(rows, b, known, ctx.device)
    if filtered and options.get("filter_solver") == "exact":
        raise ConfigError("params.model.filter_solver", "exact eigendecomposes an items x items Gram matrix, "
                          "a term of the dense solver; with the sparse one use auto")
    scale = options.get("ease_weight", 1.0) / (scores_std(rows, b=b) + 1e-12)
    low_rank = factors = None
    if filtered:
        left, right = low_pass_factors(r, nt, options["filter_rank"], ctx.seed)
        low_rank = (left, right, options["filter_weight"] / (scores_std(rows, low_rank=(left, right)) + 1e-12))
    if factored:
        ctx.log(f"closed-form: iALS term, {options['factor_rank']} factors, {ALS_ITERATIONS} sweeps")
        factors = FactorTerm(rows if factor_rows is None else factor_rows, nt, options, ctx.seed, ctx.device)
    return SparseItemItemScorer(rows, b, known, ctx.device, scale=scale, low_rank=low_rank, factors=factors)


class ItemItemProblem:
    """What an adaptation's closed form gets in the item-item family (``Adaptation.closed_form(problem)``).

    ``ctx`` (the :class:`~xdplug.context.FitContext`), ``options`` (the family's ``params.model``) and
    ``label`` (the adaptation's name, for messages). The forms the built-in adaptations use are methods;
    each returns a scorer. A form of its own: the matrices, :func:`ease`, then :meth:`scorer`.
    """

    def __init__(self, ctx, options: dict, label: str):
        self.ctx, self.options, self.label = ctx, options, label

    def target(self):
        """EASE on the target's training rows (with the family's filter, DAN and iALS terms)."""
        return _fit(self.ctx, "target", self.options, self.label)

    def source(self):
        """The source's EASE over the items both domains share, scoring target users."""
        return _fit(self.ctx, "source", self.options, self.label)

    def with_prior(self, weight: float):
        """Target EASE pulled towards the source's with ``weight`` (lambda, on the Gram-matrix scale)."""
        return _fit(self.ctx, "prior", self.options, self.label, weight)

    def pooled(self, weight: float):
        """One Gram matrix in which a source co-occurrence counts ``weight`` times (shared items or users)."""
        return _fit(self.ctx, "pooled", self.options, self.label, weight)

    def target_matrix(self) -> sp.csr_matrix:
        """The target's training rows, ``[target users, target items]``."""
        return self.ctx.data.matrix("target", "train").astype(np.float64).tocsr()

    def source_matrix(self) -> sp.csr_matrix:
        """The source's training rows over the shared items, ``[source users, target items]`` (columns in
        target order; items the source lacks stay empty)."""
        return _source_on_shared_items(self.ctx.data)[0]

    def scorer(self, b: np.ndarray, rows: sp.csr_matrix | None = None, known: np.ndarray | None = None):
        """The scorer of a dense ``B`` (scores = ``rows`` x ``B``; ``rows`` default the target matrix)."""
        rows = self.target_matrix() if rows is None else rows
        known = np.asarray(rows.sum(0)).ravel() > 0 if known is None else known
        return ItemItemScorer(rows, b, known, self.ctx.device)


def _source_on_shared_items(data) -> tuple[sp.csr_matrix, int]:
    """The source's training rows over the shared items in target columns, and their interaction count."""
    to_target = np.full(data.n_source_items, -1)
    to_target[data.shared_items[:, 1]] = data.shared_items[:, 0]
    s = data.source_train[to_target[data.source_train[:, 1]] >= 0]
    source = sp.csr_matrix((np.ones(len(s)), (s[:, 0], to_target[s[:, 1]])),
                           shape=(data.n_source_users, data.n_target_items))
    return source, len(s)


def _fit(ctx, form: str, options: dict, label: str, weight: float | None = None):
    """One of the four forms: an ``ItemItemScorer`` (dense ``B``) or a ``SparseItemItemScorer``."""
    data = ctx.data
    n_items = data.n_target_items
    sparse = use_sparse(options, n_items)
    k = options.get("neighbors", 200)
    if options["filter_rank"] and form == "source":
        raise ConfigError("params.model.filter_rank", f"the low-pass filter is a term of the forms that train on the "
                          f"target (target-only, l2sp, joint); {label!r} has none (set filter_rank: 0)")
    if options["source_norm"] and form != "pooled":
        raise ConfigError("params.model.source_norm", "weights the source rows of joint's pooled matrix; "
                          f"{label!r} has none (set source_norm: 0)")
    if _ease_off(options) and (form == "source" or not (options["filter_rank"] or options.get("factor_rank", 0))):
        raise ConfigError("params.model.ease_weight", "0 leaves EASE out of the sum, but no other term is on "
                          "(filter_rank, factor_rank): nothing would score")
    terms = [key for key in ("item_norm", "user_norm", "factor_rank") if options.get(key, 0)]
    if terms and form == "source":
        raise ConfigError(f"params.model.{terms[0]}", "DAN's normalisation and the iALS term are terms of the forms "
                          f"that train on the target (target-only, l2sp, joint); {label!r} has none (set {terms[0]}: 0)")
    target = data.matrix("target", "train").astype(np.float64).tocsr()
    known = np.asarray(target.sum(0)).ravel() > 0
    if sparse:
        ctx.log(f"closed-form {label}: sparse solver, {k} neighbours per item, {n_items} items")
    if form == "target" and sparse:
        return _sparse_scorer(ctx, target, _sparse_ease(target, target, options["reg_weight"], options, n_items),
                              target, n_items, options, known)
    if form == "target" and _ease_off(options):
        b = np.zeros((n_items, n_items))
        b = _combine(target, b, target, n_items, options, ctx.seed)
        return _with_factors(target, b, target, n_items, options, ctx, known)
    if form == "target":
        gram_t = _dan_gram(target, target, options.get("user_norm", 0.0))
        b = _dan_items(ease_matrix(gram_t, options["reg_weight"]), target, options.get("item_norm", 0.0))
        b = _combine(target, b, target, n_items, options, ctx.seed)
        return _with_factors(target, b, target, n_items, options, ctx, known)
    if len(data.shared_items) == 0 and form == "pooled" and len(data.shared_users):
        return _fit_pooled_users(ctx, options, weight)
    if len(data.shared_items) == 0:
        raise NotApplicableError("params.model.family ease moves the source's item-item structure through items "
                                 "both domains share; these domains share none (joint also works through shared users)")
    source, n_source = _source_on_shared_items(data)
    raw_source = source
    if options["source_norm"]:
        lengths = np.bincount(data.source_train[:, 0], minlength=data.n_source_users).astype(np.float64)
        source = (sp.diags(_row_scale(lengths, options["source_norm"])) @ source).tocsr()
    known = known | (np.asarray(source.sum(0)).ravel() > 0)
    ctx.log(f"closed-form {label} over {n_items} items ({n_source} source interactions on shared items)")
    if sparse:
        return _fit_sparse_shared_items(ctx, weight, options, form, target, source, raw_source, known)
    if form == "pooled":
        return _fit_pooled_items(ctx, options, weight, target, source, raw_source, known)
    gram_s = (source.T @ source).toarray()
    if form == "source":
        return ItemItemScorer(target, ease_matrix(gram_s, options["source_reg_weight"]), known, ctx.device)
    # prior: DAN over the target's rows, the filter and the iALS term over them too (the source enters
    # through B_s alone)
    if _ease_off(options):
        b = np.zeros((n_items, n_items))
    else:
        gram_t = _dan_gram(target, target, options.get("user_norm", 0.0))
        b = _dan_items(_ease_with_prior(gram_t, options["reg_weight"], weight,
                                        ease_matrix(gram_s, options["source_reg_weight"])),
                       target, options.get("item_norm", 0.0))
    b = _combine(target, b, target, n_items, options, ctx.seed)
    return _with_factors(target, b, target, n_items, options, ctx, known)


def _fit_pooled_items(ctx, options: dict, w: float, target, source, raw_source, known) -> ItemItemScorer:
    """``joint`` over shared items (dense): EASE on ``G_t + w G_s``, the source's rows stacked under the
    target's. DAN weighs every stacked row by its own length and divides by the pooled item degrees;
    the low-pass filter reads the stacked rows; the iALS term is fitted on the target's rows only
    (the source's would outnumber them: weighing them is the factor family's collective model)."""
    nt = target.shape[1]
    if _ease_off(options):
        b = np.zeros((nt, nt))
    else:
        raw = sp.vstack([target, raw_source]).tocsr()
        if options.get("user_norm", 0.0):  # each row weighted by (its length / the median of all rows')^-a
            gram = _dan_gram(sp.vstack([target, np.sqrt(w) * source]).tocsr(), raw, options["user_norm"])
        else:
            gram = (target.T @ target).toarray() + w * (source.T @ source).toarray()
        b = _dan_items(ease_matrix(gram, options["reg_weight"]), raw, options.get("item_norm", 0.0))
    b = _combine(target, b, sp.vstack([target, source]).tocsr(), nt, options, ctx.seed)
    return _with_factors(target, b, target, nt, options, ctx, known)


def _fit_sparse_shared_items(ctx, weight, options, form, target, source, raw_source, known) -> SparseItemItemScorer:
    """zero-shot, l2sp and joint over shared items with the sparse solver (the dense forms' analogues)."""
    k, nt = options.get("neighbors", 200), target.shape[1]
    if form == "source":
        return SparseItemItemScorer(target, sparse_ease(source, options["source_reg_weight"], k), known, ctx.device)
    if form == "prior":
        b = _sparse_ease(target, target, options["reg_weight"], options, nt,
                         prior=lambda: sparse_ease(source, options["source_reg_weight"], k), prior_weight=weight)
        return _sparse_scorer(ctx, target, b, target, nt, options, known)
    # pooled: a source row scaled by sqrt(w) counts w times in G_t + w G_s; DAN as in the dense form
    x = sp.vstack([target, np.sqrt(weight) * source]).tocsr()
    b = _sparse_ease(x, sp.vstack([target, raw_source]).tocsr(), options["reg_weight"], options, nt)
    return _sparse_scorer(ctx, target, b, sp.vstack([target, source]).tocsr(), nt, options, known, target)


def _fit_pooled_users(ctx, options: dict, w: float) -> ItemItemScorer:
    """``joint`` where only users are shared: EASE over the pooled matrix ``[X_t, X_s]`` of the pooled
    baselines (target users' rows; a user's source items as extra columns), L2 ``reg_weight`` on the
    target columns and ``reg_weight / w`` on the source ones, scored over the target's items."""
    from ..recbole.dataset import pooled_matrix

    data = ctx.data
    nt = data.n_target_items
    matrix, user_rows, item_cols = pooled_matrix(ctx)
    is_target = np.zeros(matrix.shape[1], dtype=bool)
    is_target[item_cols] = True
    source_cols = np.flatnonzero(~is_target & (np.asarray(matrix[user_rows].sum(0)).ravel() > 0))
    sparse = use_sparse(options, nt + len(source_cols))
    x = matrix[user_rows][:, np.concatenate([item_cols, source_cols])].tocsr()  # [X_t, X_s], canonical order
    raw = x
    if options["source_norm"]:
        xs = x[:, nt:]
        scale = _row_scale(np.asarray(xs.sum(1)).ravel(), options["source_norm"])
        x = sp.hstack([x[:, :nt], sp.diags(scale) @ xs]).tocsr()
    ctx.log(f"closed-form joint over {nt} target + {len(source_cols)} source items of shared users "
            f"({x[:, nt:].nnz} source interactions of target users)")
    reg = np.concatenate([np.full(nt, options["reg_weight"]), np.full(len(source_cols), options["reg_weight"] / w)])
    known = np.asarray(x[:, :nt].sum(0)).ravel() > 0
    if sparse:
        k = options.get("neighbors", 200)
        ctx.log(f"closed-form joint: sparse solver, {k} neighbours per item, {x.shape[1]} columns")
        return _sparse_scorer(ctx, x, _sparse_ease(x, raw, reg, options, nt, columns=np.arange(nt)), x, nt,
                              options, known, raw)
    if _ease_off(options):  # the other terms alone (a staged search scores each component by itself)
        b = np.zeros((x.shape[1], nt))
    else:
        b = _dan_items(_ease_columns(_dan_gram(x, raw, options.get("user_norm", 0.0)), reg, nt), raw,
                       options.get("item_norm", 0.0))
    b = _combine(x, b, x, nt, options, ctx.seed)
    return _with_factors(x, b, raw, nt, options, ctx, known)
