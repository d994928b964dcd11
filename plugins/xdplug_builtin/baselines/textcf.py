"""Text paths for items that no domain has seen: ``text-cf`` and ``text-gcn``.

``text-cf`` (text distilled from a closed-form item-item teacher). With ``X`` the frozen,
L2-normalised text vectors of every catalog item (MiniLM, the same encoder and cache as
``text-knn``) plus a constant column, and ``B`` the EASE item-item matrix of the *pooled*
training interactions (target rows, and the source's rows valued ``source_value``,
over catalog columns, so shared items are one column), a bilinear projection ``W`` is
fitted in closed form on the warm items::

    min_W ||B_ww - X_w W X_w^T||_F^2 + mu ||W||_F^2
    W = Q [ (Q^T X_w^T B_ww X_w Q) / (l_i l_j + mu) ] Q^T      (X_w^T X_w = Q diag(l) Q^T)

so ``x_i^T W x_j`` is a text similarity that predicts EASE's item-item weight (the constant
column lets it learn a popularity term from text). The source's thousands of warm items are
what teaches it: no ID is needed at scoring time. An item without any training interaction
(target or source) is scored by the user's history through that learned similarity, kept to
each item's ``neighbors`` most similar items (as ``text-knn`` keeps raw-text neighbours), and
blended with ``raw_weight`` times ``text-knn``'s score (``raw_neighbors``): both are
standardised over the user's cold items. Warm items keep their EASE scores; cold items are
placed on the user's EASE score scale (mean + std x (cold z-score - ``cold_shift``)), so
one ranking covers both. Everything is closed form: an EASE inverse and two ``d x d``
eigendecompositions (seconds on a CPU at ML-1M scale).

``projection: contrastive`` trains the cold items' similarity on co-interaction instead
(SEMCo-style, Meehan & Pauwels, SIGIR 2026: purely content-based item-item similarity, a
sampled-softmax objective; here a full softmax over the domain's warm items, which is cheap at
these catalog sizes): ``f(x) = normalise(x W)``, ``W`` starting at the identity, and a text bias
``x . v`` per domain. A random half of a user's items stands for the user (mean ``f``) and must
rank the other half first; target users and the source's users (weighted ``source_value``) both
teach it. A cold item's score is the mean of ``f(x_j) . f(x_i) / tau`` over the user's items plus
its target text bias, blended with text-knn as above (``mu`` and ``neighbors`` are unused there).
``epochs`` passes of Adam, seeded by the run's seed. On the cold slice of
``configs/cold-items-new-in-source.yaml`` it beats the closed form (``bench/cold_items_study.py``).

``text-gcn`` (training-free text CF, TextGCN-style): item layer 0 is the items' text vectors,
user layer 0 the mean of their training items' text vectors; ``layers`` LightGCN steps over
the symmetric-normalised target interaction graph ``D_u^-1/2 R D_i^-1/2`` give
``U_{k+1} = R~ I_k`` and ``I_{k+1} = R~^T U_k``; a user's score for an item is the dot product of
the layer means. An item without interactions keeps only its text layer, so it is reached
through text alone.
"""

from __future__ import annotations

import os

import numpy as np
import scipy.sparse as sp
import torch

from xdplug.api import Choice, Float, Int, NotApplicableError

from ._matrices import FactorScorer
from ._text import TextBaseline

#: fit the projection on at most this many warm items (the busiest ones): the EASE inverse and
#: the ``X_w^T B X_w`` product grow with it
MAX_TEACHER_ITEMS = 20_000
#: the most memory text-cf's dense matrices may take, as a share of the machine's RAM
DENSE_MEMORY_SHARE = 0.6


def dense_bytes(n_users: int, n_items: int, n_cols: int) -> int:
    """What text-cf holds at once, in bytes (float64): the users x items scores twice (scores and the
    cold part's standardised copy), the warm teacher spread over catalog rows x target items, the
    raw text similarity of the target items, and the teacher's EASE inverse."""
    teacher = min(n_cols, MAX_TEACHER_ITEMS)
    return 8 * (2 * n_users * n_items + n_cols * n_items + n_items * n_items + 2 * teacher * teacher)


def machine_bytes() -> int | None:
    """Physical memory of this machine, where the OS says (Linux, macOS); None elsewhere."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


# --------------------------------------------------------------------------- pure numpy parts
def ease_matrix(x: sp.spmatrix, reg: float) -> np.ndarray:
    """EASE's item-item matrix (Steck 2019): ``B = I - P diag(1/diag(P))``, ``P = (X^T X + reg I)^-1``."""
    gram = np.asarray((x.T @ x).todense(), dtype=np.float64)
    gram[np.diag_indices_from(gram)] += reg
    p = np.linalg.inv(gram)
    b = p / -np.diag(p)
    np.fill_diagonal(b, 0.0)
    return b


def fit_projection(x: np.ndarray, teacher: np.ndarray, mu: float) -> np.ndarray:
    """``W`` minimising ``||teacher - x W x^T||^2 + mu ||W||^2`` (closed form, ``x``: items x d)."""
    x = np.asarray(x, dtype=np.float64)
    values, q = np.linalg.eigh(x.T @ x)
    inner = q.T @ (x.T @ teacher @ x) @ q
    return q @ (inner / (np.outer(values, values) + mu)) @ q.T


def keep_neighbors(sim: np.ndarray, k: int) -> np.ndarray:
    """Keep each column's ``k`` largest entries (the item's ``k`` nearest items), zero the rest."""
    if not k or k >= sim.shape[0]:
        return sim
    idx = np.argpartition(-sim, k - 1, axis=0)[:k]
    out = np.zeros_like(sim)
    cols = np.arange(sim.shape[1])[None, :]
    out[idx, cols] = sim[idx, cols]
    return out


def with_bias(x: np.ndarray) -> np.ndarray:
    return np.hstack([np.asarray(x, dtype=np.float64), np.ones((len(x), 1))])


def half_split(m: sp.csr_matrix, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Each row's items split at random into an input and a target half (both non-empty), each
    row-normalised, dense ``float32``: the input half stands for the user, the other half is what
    it must rank first."""
    coin = rng.random(m.nnz) < 0.5
    row = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    n = np.diff(m.indptr)
    n_in = np.bincount(row, weights=coin, minlength=m.shape[0])
    coin[m.indptr[:-1][(n_in == 0) | (n_in == n)]] ^= True  # a one-sided row gives up its first item
    n_in = np.bincount(row, weights=coin, minlength=m.shape[0])
    inp = sp.csr_matrix((coin / n_in[row], m.indices, m.indptr), shape=m.shape).toarray()
    tgt = sp.csr_matrix((~coin / (n - n_in)[row], m.indices, m.indptr), shape=m.shape).toarray()
    return inp.astype(np.float32), tgt.astype(np.float32)


def fit_contrastive(text: np.ndarray, domains: list[tuple[sp.csr_matrix, float]], tau: float, epochs: int,
                    lr: float, anchor: float, batch: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A text projection trained on co-interaction (SEMCo-style sampled softmax, here a full one).

    ``f(x) = normalise(x W)``, ``W`` starting at the identity (raw text similarity) and pulled back
    to it with ``anchor``; each domain ``d`` has a text bias ``x . v_d`` (its popularity as text
    predicts it). A user is the mean ``f`` of a random half of their items; the loss is the
    softmax cross-entropy of the other half over the domain's warm items, logits
    ``user . f(x_i) / tau + x_i . v_d`` (the input half masked). ``domains``: (binary users x
    catalog rows, loss weight) per domain. Returns ``f`` of every catalog row and ``v`` [domains, d].
    """
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    x = torch.as_tensor(text, dtype=torch.float32)
    d = x.shape[1]
    w = torch.nn.Parameter(torch.eye(d))
    v = torch.nn.Parameter(torch.zeros(len(domains), d))
    rows, dom, weight = [], [], []
    for k, (m, wt) in enumerate(domains):
        m = sp.csr_matrix(m)
        m = m[np.diff(m.indptr) >= 2]  # a user with one item has nothing to predict it from
        rows.append(m)
        dom.append(np.full(m.shape[0], k))
        weight.append(np.full(m.shape[0], wt))
    allowed = torch.as_tensor(np.stack([np.asarray((m != 0).sum(0)).ravel() > 0 for m in rows]))
    m, dom, weight = sp.vstack(rows).tocsr(), np.concatenate(dom), np.concatenate(weight)
    m.sort_indices()
    opt = torch.optim.Adam([w, v], lr=lr)
    eye = torch.eye(d)
    for _ in range(epochs):
        order = torch.randperm(m.shape[0], generator=gen).numpy()
        for start in range(0, len(order), batch):
            idx = order[start:start + batch]
            inp, tgt = (torch.as_tensor(a) for a in half_split(m[idx], rng))
            f = torch.nn.functional.normalize(x @ w, dim=1)
            dd = torch.as_tensor(dom[idx])
            logits = (inp @ f) @ f.T / tau + (x @ v.T).T[dd]
            logits = logits.masked_fill(~allowed[dd] | (inp > 0), -1e9)
            wt = torch.as_tensor(weight[idx], dtype=torch.float32)
            loss = (-(tgt * torch.log_softmax(logits, 1)).sum(1) * wt).sum() / wt.sum()
            loss = loss + anchor * ((w - eye) ** 2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        return (torch.nn.functional.normalize(x @ w, dim=1).double().numpy(), v.detach().double().numpy())


def contrastive_scores(hist: sp.csr_matrix, f: np.ndarray, bias: np.ndarray, tau: float) -> np.ndarray:
    """Users x items: the mean learned similarity to the user's items over ``tau``, plus the item's text bias."""
    counts = np.maximum(np.asarray(hist.sum(1)), 1.0)
    return np.asarray(hist @ f) / counts @ f.T / tau + bias[None, :]


def text_gcn_factors(text: np.ndarray, matrix: sp.spmatrix, layers: int) -> tuple[np.ndarray, np.ndarray]:
    """User and item layer means of the TextGCN-style propagation (see the module docstring)."""
    r = sp.csr_matrix(matrix, dtype=np.float64)
    d_u = np.asarray(r.sum(1)).ravel()
    d_i = np.asarray(r.sum(0)).ravel()
    inv = lambda d, p: np.divide(1.0, d ** p, out=np.zeros_like(d), where=d > 0)  # noqa: E731
    items = np.asarray(text, dtype=np.float64)
    users = sp.diags(inv(d_u, 1.0)) @ r @ items
    norm = (sp.diags(inv(d_u, 0.5)) @ r @ sp.diags(inv(d_i, 0.5))).tocsr()
    sum_u, sum_i = users.copy(), items.copy()
    for _ in range(layers):
        users, items = norm @ items, norm.T @ users
        sum_u += users
        sum_i += items
    return sum_u / (layers + 1), sum_i / (layers + 1)


def _standardise(s: np.ndarray, cols: np.ndarray) -> np.ndarray:
    part = s[:, cols]
    return (part - part.mean(1, keepdims=True)) / (part.std(1, keepdims=True) + 1e-12)


class _DenseScorer:
    def __init__(self, scores: np.ndarray, device, item_known: np.ndarray):
        self.scores = torch.as_tensor(scores, dtype=torch.float32)
        self.device = device
        self.item_known = item_known

    def score(self, users: torch.Tensor) -> torch.Tensor:
        return self.scores[users.cpu()].to(self.device)


# --------------------------------------------------------------------------- baselines
class TextCF(TextBaseline):
    name = "text-cf"
    description = ("Text similarity distilled from pooled EASE (closed-form projection of frozen text "
                   "vectors) for items without interactions, EASE for the rest")
    defaults = {
        "reg": Float(200.0, 0, 1e7, low_open=True, help="EASE teacher's L2 weight"),
        "mu": Float(1.0, 0, 1e9, help="ridge weight of the projection"),
        "source_value": Float(0.1, 0, 1e6, help="value of the source's rows in the pooled teacher (0: target only)"),
        "neighbors": Int(50, 0, 1_000_000, help="learned-similarity neighbours kept per item (0: all)"),
        "raw_neighbors": Int(100, 0, 1_000_000, help="raw text-knn neighbours kept per item (0: all)"),
        "raw_weight": Float(0.5, 0, 100, help="weight of raw text-knn in the cold-item score"),
        "cold_shift": Float(2.0, -100, 100, help="cold items' place on the user's EASE scale (in stds)"),
        "projection": Choice("closed-form", ["closed-form", "contrastive"],
                             help="cold items' learned similarity: closed-form from EASE, or trained on "
                                  "co-interaction (then reg/mu/neighbors leave the cold path)"),
        "tau": Float(0.1, 0, 10, low_open=True, help="contrastive: softmax temperature"),
        "epochs": Int(20, 1, 10_000, help="contrastive: passes over the pooled users"),
        "lr": Float(3e-3, 0, 1, low_open=True, help="contrastive: Adam step size"),
        "anchor": Float(1e-2, 0, 1e6, help="contrastive: pull of the projection back to raw text"),
        "batch": Int(512, 1, 1_000_000, help="contrastive: users per step"),
        "encoder": {},
    }
    search_space = {
        "params.reg": {"type": "loguniform", "low": 10.0, "high": 5000.0},
        "params.source_value": {"type": "loguniform", "low": 0.01, "high": 1.0},
        "params.neighbors": {"type": "categorical", "choices": [20, 50, 100, 200]},
        "params.raw_weight": {"type": "uniform", "low": 0.0, "high": 2.0},
        "params.cold_shift": {"type": "uniform", "low": 0.0, "high": 6.0},
    }

    def fit(self, ctx, pooled: bool = False):
        p, data = self.params, ctx.data
        cat = data.catalog
        n_cols, n_t = len(cat), data.n_target_users
        tr, src = data.target_train, data.source_train
        need, have = dense_bytes(n_t, data.n_target_items, n_cols), machine_bytes()
        if have and need > DENSE_MEMORY_SHARE * have:
            raise NotApplicableError(
                f"text-cf keeps dense users x items and items x items matrices: {n_t:,} users, "
                f"{data.n_target_items:,} target items and {n_cols:,} catalog items need about "
                f"{need / 2**30:.0f} GiB, more than {DENSE_MEMORY_SHARE:.0%} of this machine's "
                f"{have / 2**30:.0f} GiB; text-knn with neighbors and text-gcn scale further")

        def binary(pairs, n_rows, rows_of_items):
            m = sp.csr_matrix((np.ones(len(pairs)), (pairs[:, 0], rows_of_items[pairs[:, 1]])), shape=(n_rows, n_cols))
            m.data[:] = 1.0  # a repeated interaction counts once
            return m

        user_rows = binary(tr, n_t, cat.target_rows)
        matrix = user_rows
        if p["source_value"] > 0 and len(src):
            matrix = sp.vstack([user_rows, p["source_value"] * binary(src, data.n_source_users, cat.source_rows)]).tocsr()
        degree = np.asarray((matrix != 0).sum(0)).ravel()
        warm = np.flatnonzero(degree > 0)
        if len(warm) > MAX_TEACHER_ITEMS:
            warm = warm[np.argsort(-degree[warm], kind="stable")[:MAX_TEACHER_ITEMS]]
        text = self.unit_text_vectors(ctx, cat.texts)
        x = with_bias(text)
        teacher = ease_matrix(matrix[:, warm], p["reg"])
        contrastive = p["projection"] == "contrastive"
        if not contrastive:
            w = fit_projection(x[warm], teacher, p["mu"])
        ctx.log(f"text-cf: EASE teacher over {len(warm)} warm items of {n_cols}, {p['projection']} projection")

        t_rows = cat.target_rows
        # warm target items: EASE scores (pooled teacher, target users' rows)
        full_b = np.zeros((n_cols, len(t_rows)))
        col_of = np.full(n_cols, -1)
        col_of[warm] = np.arange(len(warm))
        t_warm = col_of[t_rows] >= 0
        full_b[np.ix_(warm, np.flatnonzero(t_warm))] = teacher[:, col_of[t_rows[t_warm]]]
        scores = np.asarray(user_rows @ full_b)
        cold = np.flatnonzero(~t_warm)
        if len(cold):
            hist = data.matrix("target", "train").astype(np.float64).tocsr()
            if contrastive:
                domains = [(user_rows, 1.0)]
                if p["source_value"] > 0 and len(src):
                    domains.append((binary(src, data.n_source_users, cat.source_rows), p["source_value"]))
                f, v = fit_contrastive(text, domains, p["tau"], p["epochs"], p["lr"], p["anchor"], p["batch"],
                                       ctx.seed)
                z = _standardise(contrastive_scores(hist, f[t_rows], text[t_rows] @ v[0], p["tau"]), cold)
            else:
                xt = x[t_rows]
                learned = keep_neighbors(xt @ w @ xt.T, p["neighbors"])
                z = _standardise(np.asarray(hist @ learned), cold)
            if p["raw_weight"] > 0:
                raw = keep_neighbors(text[t_rows] @ text[t_rows].T, p["raw_neighbors"])
                z = z + p["raw_weight"] * _standardise(np.asarray(hist @ raw), cold)
                z = (z - z.mean(1, keepdims=True)) / (z.std(1, keepdims=True) + 1e-12)
            warm_t = np.flatnonzero(t_warm)
            if len(warm_t):
                mean = scores[:, warm_t].mean(1, keepdims=True)
                std = scores[:, warm_t].std(1, keepdims=True) + 1e-12
            else:
                mean, std = 0.0, 1.0
            scores[:, cold] = mean + std * (z - p["cold_shift"])
        return _DenseScorer(scores, ctx.device, np.ones(data.n_target_items, dtype=bool))


class TextGCN(TextBaseline):
    name = "text-gcn"
    description = "Training-free text CF: users = mean text of their items, LightGCN propagation (TextGCN-style)"
    defaults = {"layers": Int(2, 0, 8, help="propagation steps over the normalised interaction graph"),
                "encoder": {}}
    search_space = {"params.layers": {"type": "categorical", "choices": [0, 1, 2, 3]}}
    export = "refit"

    def fit(self, ctx, pooled: bool = False):
        data = ctx.data
        text = self.unit_text_vectors(ctx, data.target_item_texts())
        users, items = text_gcn_factors(text, data.matrix("target", "train"),
                                        self.params["layers"])
        return FactorScorer(users, items, np.ones(data.n_target_items, dtype=bool), ctx.device)
