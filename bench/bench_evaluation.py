"""Evaluation at scale: time and peak memory of ranking many users against a large catalogue.

    .venv/bin/python bench/bench_evaluation.py                        # 10^5 users x 10^5 items
    .venv/bin/python bench/bench_evaluation.py --users 20000 --memory-mb 256 --item-chunks

A cheap synthetic scorer (random low-rank factors: ``U[users] @ V.T``, or with
``--item-chunks`` also ``score_items(users, start, stop) = U[users] @ V[start:stop].T``)
is ranked by :func:`xdplug.evaluation.rank_users` exactly as a split is: each user's
training items masked, top-K kept, optionally a cold-item top-K. Time grows with
users x items (every score is computed and compared once); memory is bounded by the budget
(``--memory-mb``, else ``$XDPLUG_EVAL_MEMORY_MB``, else 1024 MiB) plus what grows with the
users alone (the top-K output, users x K, and the training items' CSR arrays) and the
factors. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xdplug.evaluation import UserItems, memory_budget, plan_batches, rank_users  # noqa: E402


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def current_rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")  # pragma: no cover - not Linux


class LowRankScorer:
    """Scores ``U[users] @ V.T`` from random factors; ``score_items`` only when asked for."""

    def __init__(self, n_users: int, n_items: int, rank: int, seed: int, item_chunks: bool):
        gen = torch.Generator().manual_seed(seed)
        self.users = torch.randn(n_users, rank, generator=gen) / rank ** 0.5
        self.items = torch.randn(n_items, rank, generator=gen)
        if item_chunks:
            self.score_items = self._score_items

    def __call__(self, users: torch.Tensor) -> torch.Tensor:
        return self.users[users] @ self.items.T

    def _score_items(self, users: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        return self.users[users] @ self.items[start:stop].T


def training_items(n_users: int, n_items: int, per_user: int, seed: int) -> UserItems:
    """``per_user`` distinct random items per user, as CSR (what a split's masking reads)."""
    rng = np.random.default_rng(seed)
    items = rng.integers(0, n_items, size=(n_users, per_user))
    items.sort(axis=1)
    keep = np.ones(items.shape, dtype=bool)
    keep[:, 1:] = items[:, 1:] != items[:, :-1]
    lengths = keep.sum(axis=1)
    return UserItems(np.concatenate([[0], np.cumsum(lengths)]), items[keep])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--rank", type=int, default=32, help="factor dimension of the synthetic scorer")
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--train-per-user", type=int, default=20, help="masked training items per user")
    parser.add_argument("--cold-fraction", type=float, default=0.0, help="share of items ranked as cold items too")
    parser.add_argument("--memory-mb", type=float, default=None, help="ranking budget (default: $XDPLUG_EVAL_MEMORY_MB or 1024)")
    parser.add_argument("--item-chunks", action="store_true", help="the scorer offers score_items")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    scorer = LowRankScorer(args.users, args.items, args.rank, args.seed, args.item_chunks)
    train = training_items(args.users, args.items, args.train_per_user, args.seed)
    rng = np.random.default_rng(args.seed)
    cold = (np.sort(rng.choice(args.items, size=int(args.items * args.cold_fraction), replace=False))
            if args.cold_fraction > 0 else None)
    users = np.arange(args.users, dtype=np.int64)
    budget = memory_budget(args.memory_mb)
    plan = plan_batches(args.users, args.items, 1024, budget, args.item_chunks)
    before = current_rss_mb()

    started = time.perf_counter()
    topk, topk_cold = rank_users(scorer, users, None, train, args.items, args.k, cold_items=cold,
                                 memory_mb=args.memory_mb)
    seconds = time.perf_counter() - started
    peak = peak_rss_mb()

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, load (1 min) {load:.1f}")
    print(f"ranked {args.users:,} users x {args.items:,} items (rank {args.rank}, top {args.k}, "
          f"{len(train.indices):,} masked training items"
          + (f", {len(cold):,} cold items" if cold is not None else "") + ")")
    mode = (f"item chunks of {plan.width:,}" if plan.chunked else "whole rows")
    print(f"budget {budget / 2**20:,.0f} MiB: batches of {plan.users:,} users, {mode}")
    print(f"time {seconds:.1f} s ({args.users * args.items / seconds / 1e9:.2f} G scores/s, "
          f"{args.users / seconds:,.0f} users/s)")
    print(f"RSS before ranking {before:,.0f} MiB, peak {peak:,.0f} MiB "
          f"(+{peak - before:,.0f} MiB; top-K output {topk.nbytes / 2**20:,.0f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
