"""Cold items new in both domains (issue 16): which text path ranks them best?

    nice -n 10 .venv/bin/python bench/cold_items_study.py [--seed 2022] [--methods ...] [--encoders ...]
    nice -n 10 .venv/bin/python bench/cold_items_study.py --ceiling   # what popularity from text can reach

Data through xdplug's ``prepare()`` on ``configs/cold-items-new-in-source.yaml`` (ML-1M -> ML-100K,
20 % of target items lose every training interaction in both domains); the cold slice is scored
exactly as the ``cold-start`` evaluator does (``rank_split`` then ``ColdStartEvaluator``: the
ranking among cold items only, over users with a cold positive). Every method picks its settings
on the validation cold slice (small grids, listed per method) and reports the test cold slice;
``text-knn`` with the configuration's tuned 100 neighbours is the reference. Results of a run are
below (2026-12-01, seed 2022, one run each on a shared 2-core machine at load 5-12, so wall
times are not comparable; test cold-slice NDCG@10, x = ratio to text-knn's 0.2096):

| method (grid values) | valid | test | x |
|---|---|---|---|
| text-knn, 100 neighbours (reference) | 0.1737 | 0.2096 | 1.00 |
| text-cf closed form (config's tuned values; = the stored run) | 0.1915 | 0.2270 | 1.08 |
| contrastive tau 0.05, 5 / 20 epochs | 0.1923 / 0.2056 | 0.2265 / 0.2492 | 1.08 / 1.19 |
| contrastive tau 0.05, 20 epochs, no text bias | 0.1923 | 0.2286 | 1.09 |
| **contrastive tau 0.1, 20 epochs** | **0.2183** | **0.2596** | **1.24** |
| contrastive tau 0.1, 10 / 40 epochs | 0.2134 / 0.2123 | 0.2465 / 0.2533 | 1.18 / 1.21 |
| contrastive tau 0.2, 20 epochs | 0.2082 | 0.2475 | 1.18 |
| contrastive tau 0.1, source weight 0 / 1.0 (default 0.3) | 0.2169 / 0.2179 | 0.2549 / 0.2601 | 1.22 / 1.24 |
| text-cf projection=contrastive, raw_weight 0.25 (the baseline itself) | 0.2117 | 0.2547 | 1.22 |
| aldi (rank-64 pooled SVD teacher, 40 epochs; alone / + text-knn x2) | 0.1374 / 0.1774 | 0.1524 / 0.2110 | 0.73 / 1.01 |
| wordllama: text-knn / contrastive | 0.1221 / 0.1272 | 0.1444 / 0.1513 | 0.69 / 0.72 |
| minilm+wordllama: text-knn / contrastive | 0.1653 / 0.2103 | 0.1997 / 0.2558 | 0.95 / 1.22 |

Blending any of these with text-knn (weight picked on valid) moved test by -0.008..+0.010.

How far popularity read from text can go (``--ceiling``, seed 2022, MiniLM; test cold slice):

| popularity guess for the cold items | Spearman with true | alone | text-knn + it (x text-knn) |
|---|---|---|---|
| true valid+test counts (oracle) | 1.00 | 0.3423 | 0.4245 (2.03x) |
| ridge, text -> log training count (l2 0.3 / 3) | 0.29 / 0.31 | 0.1724 / 0.1718 | 0.2411 (1.15x) / 0.2364 (1.13x) |
| text-kNN regression (k 30 / 100) | 0.29 / 0.27 | 0.1589 / 0.1669 | 0.2299 (1.10x) / 0.2478 (1.18x) |
| true counts + noise (std 1.0 / 1.5 / 2.0 of log count) | 0.72 / 0.56 / 0.41 | | 1.44x / 1.35x / 1.28x |

1.5x text-knn needs a popularity guess with a rank correlation of about 0.75 on top of text-knn's
personal part; every text predictor tried stays near 0.3 (so did an MLP, 0.28-0.29, and adding
the year as a feature, 0.32). The contrastive projection's text bias learns the same thing: adding
the ridge guess to it moves test by +0.001.

Methods (X: a catalog item's L2-normalised frozen text vector; H: a user's training items):
* text-knn: score = sum_{j in H} x_j . x_i, each item's ``k`` nearest kept (as the baseline).
* text-cf: the shipped closed-form projection (``textcf.TextCF``, the config's tuned values).
* contrastive (SEMCo-style, Meehan & Pauwels, SIGIR 2026): a projection f(x) = norm(x W) trained
  so that the mean f over half of a user's history scores the other half highest in a full
  softmax over the domain's warm items (temperature tau), plus a text bias x . v per domain; the
  target and source users' histories both teach it. Cold item score: mean_{j in H} f(x_j) . f(x_i)
  / tau + x_i . v_target.
* aldi (ALDI-style, Huang et al., SIGIR 2023): teacher = pooled low-rank CF factors (SVD of the
  normalised pooled matrix); a text -> item-factor MLP trained on warm items with the teacher's
  rating-distribution (|s_t - s_s|) and ranking (BCE on score differences) alignment losses plus
  BPR; cold item score = teacher user factor . mapped text.
* blends: z-scores over the user's cold items of a method and text-knn (weight picked on valid).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "plugins"))

from xdplug.config import load_config  # noqa: E402
from xdplug.data.prepare import prepare  # noqa: E402
from xdplug.evaluation import rank_split  # noqa: E402
from xdplug.plugins import make_plugin_manager  # noqa: E402
from xdplug_builtin.baselines.textcf import half_split, keep_neighbors  # noqa: E402

CONFIG = ROOT / "configs" / "cold-items-new-in-source.yaml"


def load(seed: int):
    cfg = load_config(str(CONFIG))["dataset"]
    recipe = make_plugin_manager().registry.get("dataset", cfg["recipe"])(cfg.get("params") or {})
    return prepare(recipe, cfg, seed)


def cold_ndcg(data, scores: np.ndarray, split: str) -> float:
    """NDCG@10 on the cold slice, as the ``cold-start`` evaluator computes it."""
    from xdplug_builtin.evaluators.cold_start import ColdStartEvaluator

    s = torch.as_tensor(scores, dtype=torch.float32)
    result = rank_split(lambda users: s[users], data, split, [10], "cpu", [])
    return ColdStartEvaluator({"metrics": ["ndcg"]}, "study").evaluate(result)["ndcg@10|cold items"]


def text_vectors(data, encoder: str) -> np.ndarray:
    """Catalog text vectors (L2-normalised); ``minilm+wordllama``: the two concatenated (each normalised)."""
    parts = []
    for name in encoder.split("+"):
        if name == "minilm":
            from xdplug_builtin.baselines._text import encode_texts

            v = encode_texts(data.catalog.texts, {}, "study.encoder").astype(np.float64)
        else:
            from xdplug_builtin.encoders.wordllama import WordLlamaEncoder

            v = WordLlamaEncoder({}, "study.encoder").embed(list(data.catalog.texts)).astype(np.float64)
        parts.append(v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12))
    x = np.hstack(parts)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def zcold(data, s: np.ndarray) -> np.ndarray:
    """Scores standardised over each user's cold items (the rest left as they are)."""
    out = s.copy()
    c = data.cold_items
    part = s[:, c]
    out[:, c] = (part - part.mean(1, keepdims=True)) / (part.std(1, keepdims=True) + 1e-12)
    return out


def hist(data) -> sp.csr_matrix:
    return data.matrix("target", "train").astype(np.float64).tocsr()


# -- methods --------------------------------------------------------------------------------
def text_knn(data, x, k: int = 100) -> np.ndarray:
    xt = x[data.catalog.target_rows]
    return np.asarray(hist(data) @ keep_neighbors(xt @ xt.T, k))


def text_cf(data, x_unused, params: dict | None = None) -> np.ndarray:
    from xdplug.testing.contracts import make_fit_context
    from xdplug_builtin.baselines.textcf import TextCF

    p = {"reg": 102.33, "source_value": 0.158, "neighbors": 20, "raw_weight": 1.232, "cold_shift": 1.02}
    p.update(params or {})
    scorer = TextCF(p, "study").fit(make_fit_context(data, Path("/tmp/cold_items_study_fit")))
    return scorer.scores.numpy().astype(np.float64)


def pooled_matrix(data, source_weight: float):
    """Binary pooled rows over catalog columns (target users, then source users when
    ``source_weight`` > 0), their domain (0 target / 1 source) and loss weight; rows with < 2 items dropped."""
    cat = data.catalog
    blocks, doms = [], []
    for d, pairs, n, colmap in ((0, data.target_train, data.n_target_users, cat.target_rows),
                                (1, data.source_train, data.n_source_users, cat.source_rows)):
        if d == 1 and source_weight <= 0:
            continue
        m = sp.csr_matrix((np.ones(len(pairs)), (pairs[:, 0], colmap[pairs[:, 1]])), shape=(n, len(cat)))
        m.data[:] = 1.0
        blocks.append(m)
        doms.append(np.full(n, d))
    m, dom = sp.vstack(blocks).tocsr(), np.concatenate(doms)
    keep = np.diff(m.indptr) >= 2
    m, dom = m[keep], dom[keep]
    m.sort_indices()
    return m, dom, np.where(dom == 0, 1.0, source_weight)


def contrastive(data, x, dim: int = 0, tau: float = 0.05, epochs: int = 30, lr: float = 3e-3,
                source_weight: float = 0.3, anchor: float = 1e-2, batch: int = 512, seed: int = 0,
                bias: int = 1) -> np.ndarray:
    """SEMCo-style training of a text projection on co-interaction (see the module docstring)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    cat = data.catalog
    n_cols, d = x.shape
    k = dim or d
    xt = torch.as_tensor(x, dtype=torch.float32)
    w0 = torch.eye(d, k) if k == d else torch.linalg.qr(torch.randn(d, k))[0]
    w = torch.nn.Parameter(w0.clone())
    v = torch.nn.Parameter(torch.zeros(2, d))
    m, dom, wt = pooled_matrix(data, source_weight)
    warm = np.zeros((2, n_cols), dtype=bool)
    for dd in (0, 1):
        warm[dd, np.unique(m[dom == dd].indices)] = True
    allowed = torch.as_tensor(warm)
    opt = torch.optim.Adam([w, v] if bias else [w], lr=lr)
    n = m.shape[0]
    for _ in range(int(epochs)):
        order = rng.permutation(n)
        for start in range(0, n, batch):
            idx = order[start:start + batch]
            inp, tgt = half_split(m[idx], rng)
            inp_t, tgt_t = torch.as_tensor(inp), torch.as_tensor(tgt)
            f = torch.nn.functional.normalize(xt @ w, dim=1)
            dd = torch.as_tensor(dom[idx])
            logits = (inp_t @ f) @ f.T / tau + (xt @ v.T).T[dd] * bias
            logits = logits.masked_fill(~allowed[dd] | (inp_t > 0), -1e9)
            loss_u = -(tgt_t * torch.log_softmax(logits, 1)).sum(1)
            weights = torch.as_tensor(wt[idx], dtype=torch.float32)
            loss = (loss_u * weights).sum() / weights.sum() + anchor * ((w - w0) ** 2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        f = torch.nn.functional.normalize(xt @ w, dim=1).numpy().astype(np.float64)
        b = (xt @ v[0]).numpy().astype(np.float64) * bias
    ft = f[cat.target_rows]
    h = hist(data)
    cnt = np.maximum(np.asarray(h.sum(1)), 1)
    return np.asarray(h @ ft) / cnt @ ft.T / tau + b[cat.target_rows][None, :]


def aldi(data, x, rank: int = 64, source_weight: float = 0.3, epochs: int = 40, lr: float = 3e-3,
         gamma: float = 0.1, alpha: float = 1.0, seed: int = 0) -> np.ndarray:
    """ALDI-style text -> CF-factor mapper (see the module docstring)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    cat = data.catalog
    n_cols = len(cat)
    t = data.target_train
    s = data.source_train
    r = sp.vstack([sp.csr_matrix((np.ones(len(t)), (t[:, 0], cat.target_rows[t[:, 1]])), shape=(data.n_target_users, n_cols)),
                   source_weight * sp.csr_matrix((np.ones(len(s)), (s[:, 0], cat.source_rows[s[:, 1]])),
                                                 shape=(data.n_source_users, n_cols))]).tocsr()
    du = np.asarray(r.sum(1)).ravel()
    di = np.asarray(r.sum(0)).ravel()
    inv = lambda dv: np.divide(1.0, np.sqrt(dv), out=np.zeros_like(dv), where=dv > 0)  # noqa: E731
    rn = sp.diags(inv(du)) @ r @ sp.diags(inv(di))
    from scipy.sparse.linalg import svds

    u, sv, vt = svds(rn, k=rank, random_state=seed)
    users = torch.as_tensor(u * np.sqrt(sv), dtype=torch.float32)
    items = torch.as_tensor(vt.T * np.sqrt(sv), dtype=torch.float32)
    xt = torch.as_tensor(x, dtype=torch.float32)
    mapper = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 2 * rank), torch.nn.Tanh(),
                                 torch.nn.Linear(2 * rank, rank))
    opt = torch.optim.Adam(mapper.parameters(), lr=lr)
    coo = r.tocoo()
    pu, pi = coo.row, coo.col
    warm_cols = np.flatnonzero(di > 0)
    scale = float((users[pu[:5000]] * items[pi[:5000]]).sum(1).std())
    for _ in range(epochs):
        order = rng.permutation(len(pu))[:200_000]
        for start in range(0, len(order), 4096):
            b = order[start:start + 4096]
            uu = users[pu[b]]
            pos, neg = pi[b], rng.choice(warm_cols, len(b))
            g_pos, g_neg = mapper(xt[pos]), mapper(xt[neg])
            t_pos, t_neg = (uu * items[pos]).sum(1) / scale, (uu * items[neg]).sum(1) / scale
            s_pos, s_neg = (uu * g_pos).sum(1) / scale, (uu * g_neg).sum(1) / scale
            loss = (-torch.nn.functional.logsigmoid(s_pos - s_neg).mean()
                    + gamma * ((t_pos - s_pos).abs() + (t_neg - s_neg).abs()).mean()
                    + alpha * torch.nn.functional.binary_cross_entropy_with_logits(s_pos - s_neg,
                                                                                    torch.sigmoid(t_pos - t_neg)))
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        g = mapper(xt[cat.target_rows]).numpy()
    return users[: data.n_target_users].numpy() @ g.T


def blend(data, a: np.ndarray, b: np.ndarray, weight: float) -> np.ndarray:
    return zcold(data, a) + weight * zcold(data, b)


# -- the ceiling: how much of the cold slice popularity read from text can reach ---------------
def popularity_ceiling(data, x, draws: int = 3) -> None:
    """Print (1) how well text predicts a cold item's popularity (Spearman with its valid+test
    count) and what that ranks, alone and added to text-knn; (2) how good a popularity guess must
    be for text-knn + popularity to reach 1.5x text-knn: the true counts plus Gaussian noise
    (in stds of log count), the rank correlation each noise level leaves, the blend's test value."""
    from scipy.stats import spearmanr

    n_users, rows, cold = data.n_target_users, data.catalog.target_rows, data.cold_items
    true = sum(np.asarray(data.matrix("target", s).sum(0)).ravel() for s in ("valid", "test"))
    train = np.bincount(data.target_train[:, 1], minlength=len(rows)).astype(float)
    warm = train > 0  # all three over target items
    y = np.log1p(train[warm])
    ref = text_knn(data, x)
    base = cold_ndcg(data, ref, "test")

    def rank(name: str, pop: np.ndarray) -> None:  # pop over target items
        const = np.tile(pop[None, :], (n_users, 1))
        blends = [(cold_ndcg(data, blend(data, ref, const, w), "valid"), w) for w in (0.25, 0.5, 1, 2, 4)]
        w = max(blends)[1]
        mixed = cold_ndcg(data, blend(data, ref, const, w), "test")
        print(f"{name:34s} spearman {spearmanr(pop[cold], true[cold])[0]:5.2f}  alone {cold_ndcg(data, const, 'test'):.4f}"
              f"  text-knn + x{w}: {mixed:.4f} ({mixed / base:.2f}x)", flush=True)

    print(f"text-knn (100) test {base:.4f}; 1.5x = {1.5 * base:.4f}")
    rank("true popularity (oracle)", true)
    xw = x[rows][warm]
    for lam in (0.3, 3.0):
        w = np.linalg.solve(xw.T @ xw + lam * np.eye(x.shape[1]), xw.T @ (y - y.mean()))
        rank(f"ridge text -> log count, l2 {lam}", x[rows] @ w)
    sim = x[rows] @ xw.T
    for k in (30, 100):
        idx = np.argpartition(-sim, k, axis=1)[:, :k]
        wt = np.maximum(np.take_along_axis(sim, idx, 1), 0)
        rank(f"text-kNN regression, k {k}", (wt * y[idx]).sum(1) / np.maximum(wt.sum(1), 1e-12))
    rng = np.random.default_rng(0)
    log_true = np.log1p(true)
    z = (log_true - log_true[cold].mean()) / log_true[cold].std()
    for noise in (0.5, 1.0, 1.5, 2.0, 3.0):
        rhos, vals = [], []
        for _ in range(draws):
            guess = z + noise * rng.standard_normal(len(z))
            const = np.tile(guess[None, :], (n_users, 1))
            w = max((cold_ndcg(data, blend(data, ref, const, w), "valid"), w) for w in (0.5, 1, 2, 4))[1]
            rhos.append(spearmanr(guess[cold], true[cold])[0])
            vals.append(cold_ndcg(data, blend(data, ref, const, w), "test"))
        print(f"true popularity + noise {noise}: spearman {np.mean(rhos):.2f}  text-knn + it "
              f"{np.mean(vals):.4f} ({np.mean(vals) / base:.2f}x)", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=2022)
    ap.add_argument("--encoders", nargs="+", default=["minilm"])
    ap.add_argument("--methods", nargs="+", default=["text-knn", "text-cf", "contrastive", "aldi"])
    ap.add_argument("--ceiling", action="store_true",
                    help="only the popularity ceiling analysis (popularity_ceiling) for each encoder")
    ap.add_argument("--grid", default="", help="method-specific override, e.g. tau=0.05,epochs=30 "
                    "(text-cf: its options, e.g. projection=contrastive)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    data = load(args.seed)
    overrides = dict(kv.split("=") for kv in args.grid.split(",") if kv)
    overrides = {k: v if v.isalpha() or "-" in v else float(v) if "." in v or "e" in v else int(v)
                 for k, v in overrides.items()}
    for enc in args.encoders:
        x = text_vectors(data, enc)
        if args.ceiling:
            popularity_ceiling(data, x)
            continue
        ref = text_knn(data, x)
        print(f"[{enc}] text-knn(100): valid {cold_ndcg(data, ref, 'valid'):.4f} test {cold_ndcg(data, ref, 'test'):.4f}",
              flush=True)
        for m in args.methods:
            if m == "text-knn":
                continue
            t0 = time.time()
            fn = {"text-cf": text_cf, "contrastive": contrastive, "aldi": aldi}[m]
            s = fn(data, x, **overrides) if m != "text-cf" else fn(data, x, overrides)
            line = f"[{enc}] {m} {overrides}: valid {cold_ndcg(data, s, 'valid'):.4f} test {cold_ndcg(data, s, 'test'):.4f}"
            best = max((cold_ndcg(data, blend(data, s, ref, wgt), "valid"), wgt) for wgt in (0.25, 0.5, 1.0, 2.0))
            line += (f" | +text-knn x{best[1]}: valid {best[0]:.4f} "
                     f"test {cold_ndcg(data, blend(data, s, ref, best[1]), 'test'):.4f} ({time.time() - t0:.0f} s)")
            print(line, flush=True)


if __name__ == "__main__":
    main()
