"""Serving benchmark: recommend latency and throughput from an artifact, and update vs full retrain.

    python bench/bench_serving.py                          # ml1m-ml100k (needs its data; see datasets/movielens.py)
    python bench/bench_serving.py --recipe ml100k-genres   # quick, embedded data

Steps, with the strategy of ``configs/ml1m-ml100k.yaml`` (BERT text gated with IDs,
source pretraining then target fine-tuning):

1. prepare the split and move a seeded 1% of the target's training interactions aside
   ("new" interactions that arrive after the export);
2. train on the rest (timed: the cost of a full retrain), export as an artifact, load it;
3. p50/p99 latency of ``recommend(user=...)`` for single random known users, and of
   ``recommend(history=...)`` for ad-hoc histories (the model is loaded once);
4. throughput of ``recommend_users`` over every target user in batches;
5. ``update`` with the 1% new interactions (timed) against the full retrain.

Figures are printed, never asserted. Prepared data and text vectors are cached in
``$XDPLUG_HOME``, so only the first run pays for preparing and encoding.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
STRATEGY = {"name": "finetune", "encoder": "bert", "fusion": "gate", "adaptation": "finetune",
            "params": {"model": {"batch_users": 64, "user_tower": "identity", "holdout": 0.5}}}


def percentile_ms(seconds: list[float], q: float) -> float:
    return float(np.percentile(np.array(seconds) * 1000, q))


def latency_ms(calls) -> tuple[float, float]:
    """p50 and p99 in ms of timing each call once (the arguments are made before timing)."""
    times = []
    for call in calls:
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return percentile_ms(times, 50), percentile_ms(times, 99)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="ml1m-ml100k")
    parser.add_argument("--seed", type=int, default=2022)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=200, help="train.epochs (early stopping ends sooner)")
    parser.add_argument("--update-fraction", type=float, default=0.01)
    parser.add_argument("--update-epochs", type=int, default=3)
    parser.add_argument("--calls", type=int, default=300, help="single-user recommend calls timed")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--threads", type=int, default=0, help="torch threads for training, update and "
                        "batch throughput (0: torch's default)")
    parser.add_argument("--latency-threads", type=int, default=1, help="torch threads while timing single "
                        "recommend calls (default 1: one request per thread, as a server runs them)")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument("--keep", metavar="DIR", help="write the artifact into DIR and reuse it (and its training "
                        "time) when DIR already holds one, instead of training again")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)


    from xdplug.artifact import copy_data, load_artifact, update_artifact, write_artifact
    from xdplug.config import load_config
    from xdplug.data.prepare import prepare
    from xdplug.model.strategy import fit_strategy
    from xdplug.plugins import make_plugin_manager
    from xdplug.recbole.compat import quiet_recbole_logging
    from xdplug.context import FitContext

    quiet_recbole_logging()
    registry = make_plugin_manager().registry
    config = load_config(data={
        "name": "bench-serving", "dataset": {"recipe": args.recipe}, "seeds": [args.seed], "device": args.device,
        "train": {"epochs": args.epochs, "learning_rate": 0.005, "stopping_step": 8},
        "strategies": [STRATEGY]}, registry=registry)
    figures: dict = {"recipe": args.recipe, "device": args.device, "torch_threads": torch.get_num_threads(),
                     "cpu": platform.processor() or platform.machine(), "torch": torch.__version__}
    t0 = time.perf_counter()
    recipe = registry.get("dataset", args.recipe)(config["dataset"]["params"], "dataset.params")
    data = prepare(recipe, config["dataset"], args.seed)
    figures["prepare_s"] = time.perf_counter() - t0

    # 1% of the training interactions arrive later
    rng = np.random.default_rng(args.seed)
    train = data.target_train
    late = rng.random(len(train)) < args.update_fraction
    base = copy_data(data, target_train=train[~late])
    print(f"{args.recipe}: {data.n_target_users:,} target users, {data.n_target_items:,} target items, "
          f"{len(train):,} target training interactions ({int(late.sum()):,} held back as new), "
          f"{len(data.source_train):,} source interactions, catalog {len(data.catalog):,}; "
          f"device {args.device}, {torch.get_num_threads()} torch threads")

    with tempfile.TemporaryDirectory(prefix="xdplug-bench-serving-") as work:
        work = Path(work)
        keep = Path(args.keep) if args.keep else work
        keep.mkdir(parents=True, exist_ok=True)
        folder, sidecar = keep / "artifact", keep / "training.json"
        if folder.is_dir() and sidecar.is_file():
            figures.update(json.loads(sidecar.read_text()))
            print(f"reusing {folder} (trained by an earlier run of this benchmark)")
        else:
            ctx = FitContext(data=base, seed=args.seed, device=torch.device(args.device), train=config["train"],
                             evaluation=config["evaluation"], workdir=work / "fit")
            t0 = time.perf_counter()
            scorer = fit_strategy(STRATEGY, registry, ctx)
            figures["full_train_s"] = time.perf_counter() - t0
            figures["phases"] = scorer.session.phases
            t0 = time.perf_counter()
            write_artifact(folder, kind="strategy", method="finetune", entry=STRATEGY, seed=args.seed,
                           config=config, data=base, registry=registry, scorer=scorer)
            figures["export_s"] = time.perf_counter() - t0
            sidecar.write_text(json.dumps({k: figures[k] for k in ("full_train_s", "phases", "export_s")},
                                          default=str))
        phases = ", ".join(f"{p['phase']} best epoch {p['best_epoch']}" for p in figures["phases"])
        print(f"full training (source pretraining + target fine-tuning): {figures['full_train_s']:.1f}s ({phases})")

        t0 = time.perf_counter()
        rec = load_artifact(folder, device=args.device)
        figures["load_s"] = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        figures["artifact_mb"] = size / 2**20
        print(f"export: {figures['export_s']:.2f}s ({figures['artifact_mb']:.1f} MiB), "
              f"load: {figures['load_s']:.2f}s")

        default_threads = torch.get_num_threads()
        torch.set_num_threads(args.latency_threads)
        figures["latency_threads"] = args.latency_threads
        users = rng.choice(rec.users, size=args.calls)
        for user in users[:10]:  # warm-up
            rec.recommend(user=user, k=args.k)
        figures["user_p50_ms"], figures["user_p99_ms"] = latency_ms(
            [lambda u=user: rec.recommend(user=u, k=args.k) for user in users])
        print(f"recommend(user=..., k={args.k}), {args.calls} calls, {args.latency_threads} thread(s): "
              f"p50 {figures['user_p50_ms']:.2f} ms, p99 {figures['user_p99_ms']:.2f} ms")

        histories = [list(rng.choice(rec.items, size=int(rng.integers(3, 30)), replace=False))
                     for _ in range(args.calls)]
        figures["history_p50_ms"], figures["history_p99_ms"] = latency_ms(
            [lambda h=history: rec.recommend(history=h, k=args.k) for history in histories])
        print(f"recommend(history=3..30 items, k={args.k}), {args.calls} calls, {args.latency_threads} thread(s): "
              f"p50 {figures['history_p50_ms']:.2f} ms, p99 {figures['history_p99_ms']:.2f} ms")
        torch.set_num_threads(default_threads)

        t0 = time.perf_counter()
        everyone = rec.recommend_users(k=args.k, batch_size=args.batch_size)
        seconds = time.perf_counter() - t0
        figures["all_users_s"] = seconds
        figures["users_per_s"] = len(everyone) / seconds
        print(f"recommend_users: all {len(everyone):,} target users in batches of {args.batch_size}, "
              f"{default_threads} thread(s): {seconds:.2f}s ({figures['users_per_s']:,.0f} users/s)")

        import pandas as pd

        new = work / "new.csv"
        pairs = train[late]
        # quoted CSV: item IDs may hold commas (ML titles: "American President, The (1995)")
        pd.DataFrame({"user": [rec.users[u] for u in pairs[:, 0]],
                      "item": [rec.items[i] for i in pairs[:, 1]]}).to_csv(new, index=False)
        t0 = time.perf_counter()
        report = update_artifact(folder, new, epochs=args.update_epochs, device=args.device)
        figures["update_s"] = time.perf_counter() - t0
        figures["update"] = {k: report[k] for k in ("new_interactions", "validation_users", "before", "after",
                                                    "result", "trained_users", "best_epoch")}
        before, after = report["before"].get("ndcg@10"), report["after"].get("ndcg@10")
        print(f"update with {report['new_interactions']:,} new interactions ({args.update_fraction:.0%}; "
              f"{report['trained_users']:,} users trained, up to {args.update_epochs} epochs): "
              f"{figures['update_s']:.1f}s, held-out ndcg@10 "
              f"{'n/a' if before is None else f'{before:.4f}'} -> {'n/a' if after is None else f'{after:.4f}'} "
              f"({report['result']})")
        print(f"update vs full retrain: {figures['update_s']:.1f}s vs {figures['full_train_s']:.1f}s "
              f"({figures['full_train_s'] / figures['update_s']:.1f}x faster)")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
