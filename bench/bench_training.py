"""Training cost per epoch of a transfer strategy against RecBole's BPR, and how it grows with the data.

    python bench/bench_training.py                          # ml100k ml1m synth10 x id bert bpr, 50 steps per epoch
    python bench/bench_training.py --sizes ml100k --methods id bert bpr --steps 0 --epochs 3   # ratio, whole epochs
    python bench/bench_training.py --sizes ml100k ml1m synth10 --methods id                    # growth of one strategy
    python bench/bench_training.py --sizes synth0.5 synth1 synth2 --methods id bpr --steps 20  # quick synthetic growth
    python bench/bench_training.py --device cuda --json out.json                               # GPU, figures to a file

Methods (``--methods``), trained exactly as ``xdplug run`` trains them (``fit_strategy`` or the
RecBole baseline wrapper, RecBole's trainer driven by ``xdplug.training.fit_recbole``):

* ``id``: encoder ``id``, fusion ``id``, adaptation ``target-only``;
* ``bert``: encoder ``bert`` (frozen all-MiniLM-L6-v2 vectors), fusion ``gate``, ``target-only``;
  both with ``params.model`` of ``configs/ml1m-ml100k.yaml``:
  ``{batch_users: 64, user_tower: identity, holdout: 0.5}`` (``--model KEY=VALUE`` overrides);
* ``bpr``: RecBole's BPR through xdplug's baseline wrapper (``learning_rate: 0.001`` as in
  ``configs/ml1m-ml100k.yaml``, ``train.batch_size`` 2048, one uniform negative per positive);
* ``ease`` (not in the default set): the closed-form item-item strategy family
  (``params.model.family: ease``, ``target-only``); it has no epochs, so its whole fit is reported
  as ``setup`` and its dense items x items matrices show in the RSS.

Datasets (``--sizes``), each used as a single target domain (its training interactions only;
the catalog is that domain's items, no source domain; ``ml100k-grid`` excepted):

* ``ml100k``: the target of recipe ``ml1m-ml100k`` (ML-100K, protocol-filtered, 80% train split);
* ``ml100k-grid``: the same, but the recipe's prepared data unchanged, i.e. with ML-1M's items in
  the catalog, as a ``target-only`` run of the ``ml1m-ml100k`` grid trains it;
* ``ml100k-genres``: the target of the default recipe (embedded, offline);
* ``ml1m``: the source domain of ``ml1m-ml100k`` (ML-1M positives, all of them);
* ``synthX`` (e.g. ``synth10``, ``synth0.5``): synthetic, X times ML-1M's ratings file in users
  (6,040 X), items (3,706 X) and interactions (1,000,209 X): heavy-tailed user activity
  (log-normal) and item popularity (power law), generated in the worker. Its texts are not real:
  ``bert`` gets fixed random 384-d vectors (same shape as MiniLM's), so no time goes to encoding.

``ml1m-ml100k`` data comes from ``$XDPLUG_HOME`` (prepared on first use; see
``datasets/movielens.py`` for where the files come from).

What is timed: every (dataset, method) runs in a fresh worker process (so each has its own peak
RSS) with validation off (``train.eval_step`` > epochs), for ``--epochs`` epochs. Each training
step is timed (fetching the batch + forward + backward + optimizer step; on CUDA with a
``synchronize`` at each boundary). ``s/epoch`` = mean step time x batches per epoch, leaving out
the very first step of the run (warm-up). With ``--steps N`` only the first N batches of each
epoch run (default 50) and the epoch is extrapolated this way, which keeps big datasets cheap;
with ``--steps 0`` whole epochs run and ``s/epoch`` is within a step of the measured epoch wall time. ``setup`` is
the rest of the fit: RecBole dataset and loader construction, model and text table.

Memory: ``peak RSS`` is the worker's lifetime peak (``ru_maxrss``: data, setup and training);
``train RSS`` is the highest RSS sampled every 20 ms during the training epochs; ``data RSS``
the RSS after the data is in memory; on CUDA also ``torch.cuda.max_memory_allocated`` from the
start of the first epoch on (model, optimizer state and step tensors; RSS is host memory).

Figures are printed, never asserted. The target of issue "Performance" is a strategy epoch at
most 2x a BPR epoch on the same target training data.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULT_TAG = "BENCH-TRAINING-RESULT "
MODEL_PARAMS = {"batch_users": 64, "user_tower": "identity", "holdout": 0.5}
STRATEGIES = {
    "id": {"name": "id-target-only", "encoder": "id", "fusion": "id", "adaptation": "target-only"},
    "bert": {"name": "bert-gate-target-only", "encoder": "bert", "fusion": "gate", "adaptation": "target-only"},
    # the closed-form item-item family (xdplug/model/linear.py): no epochs, one fit
    "ease": {"name": "ease-target-only", "encoder": "id", "fusion": "id", "adaptation": "target-only"},
}
BPR_PARAMS = {"learning_rate": 0.001}
#: ML-1M's ratings file, the unit of the synthetic sizes
ML1M_USERS, ML1M_ITEMS, ML1M_RATINGS = 6040, 3706, 1_000_209
TEXT_DIM = 384  # all-MiniLM-L6-v2


# ----------------------------------------------------------------------------------- memory
def rss_mb() -> float | None:
    """Current resident set size of this process (Linux /proc), in MiB."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


class RssSampler:
    """Highest RSS seen by a background thread while ``active`` (every ``interval`` seconds)."""

    def __init__(self, interval: float = 0.02):
        self.interval = interval
        self.active = False
        self.peak = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.wait(self.interval):
            if self.active:
                self.observe()

    def observe(self):
        value = rss_mb()
        if value is not None and (self.peak is None or value > self.peak):
            self.peak = value

    def stop(self):
        self._stop.set()
        self._thread.join()


# ----------------------------------------------------------------------------------- data
def single_domain(data, role: str, label: str):
    """``data``'s ``role`` domain alone, as the target of a new CrossDomainData (training pairs only)."""
    import numpy as np

    from xdplug.data.catalog import ItemCatalog
    from xdplug.data.crossdomain import CrossDomainData

    cat = data.catalog
    pairs = data.target_train if role == "target" else data.source_train
    rows = cat.target_rows if role == "target" else cat.source_rows
    catalog = ItemCatalog(keys=[cat.keys[r] for r in rows], texts=[cat.texts[r] for r in rows],
                          source_rows=np.zeros(0, dtype=np.int64), target_rows=np.arange(len(rows), dtype=np.int64))
    keys = {"target_users": list(data.keys[f"{role}_users"]), "target_items": list(data.keys[f"{role}_items"]),
            "source_users": [], "source_items": [], "catalog": catalog.keys, "texts": catalog.texts}
    empty = np.zeros((0, 2), dtype=np.int64)
    return CrossDomainData(folder=data.folder, target_train=np.ascontiguousarray(pairs), target_valid=empty,
                           target_test=empty, source_train=empty, catalog=catalog, keys=keys,
                           summary={"recipe": label})


def synthetic(scale: float, seed: int):
    """X times ML-1M in users, items and interactions; log-normal activity, power-law popularity."""
    import numpy as np

    from xdplug.data.catalog import ItemCatalog
    from xdplug.data.crossdomain import CrossDomainData

    rng = np.random.default_rng(seed)
    n_users = max(10, round(ML1M_USERS * scale))
    n_items = max(10, round(ML1M_ITEMS * scale))
    wanted = max(100, round(ML1M_RATINGS * scale))
    # activity: log-normal around the mean history length, at least 5 and at most half the catalog
    mean = wanted / n_users
    sigma = 1.0
    activity = rng.lognormal(np.log(mean) - sigma ** 2 / 2, sigma, n_users)
    counts = np.clip(np.round(activity * 1.3), 5, max(5, n_items // 2)).astype(np.int64)  # 30% extra: duplicates
    # popularity: power law over a random permutation of the items
    popularity = 1.0 / (np.arange(n_items) + 10.0) ** 0.9
    popularity = popularity[rng.permutation(n_items)]
    popularity /= popularity.sum()
    users = np.repeat(np.arange(n_users, dtype=np.int64), counts)
    items = rng.choice(n_items, size=len(users), p=popularity).astype(np.int64)
    codes = np.unique(users * n_items + items)
    del users, items
    if len(codes) > wanted:
        codes = np.sort(rng.choice(codes, size=wanted, replace=False))
    pairs = np.stack([codes // n_items, codes % n_items], axis=1)
    # users or items that ended up without interactions are kept: both models handle them
    item_keys = [f"i{i}" for i in range(n_items)]
    texts = [f"synthetic item {i}" for i in range(n_items)]
    catalog = ItemCatalog(keys=item_keys, texts=texts, source_rows=np.zeros(0, dtype=np.int64),
                          target_rows=np.arange(n_items, dtype=np.int64))
    keys = {"target_users": [f"u{u}" for u in range(n_users)], "target_items": item_keys,
            "source_users": [], "source_items": [], "catalog": item_keys, "texts": texts}
    empty = np.zeros((0, 2), dtype=np.int64)
    return CrossDomainData(folder=Path("."), target_train=pairs, target_valid=empty, target_test=empty,
                           source_train=empty, catalog=catalog, keys=keys, summary={"recipe": f"synth{scale:g}"})


def load_dataset(name: str, seed: int, registry):
    """(CrossDomainData whose target is the benchmarked domain, a note on where it comes from)."""
    from xdplug.config import load_config
    from xdplug.data.prepare import prepare

    if name.startswith("synth"):
        try:
            scale = float(name[len("synth"):])
        except ValueError:
            raise SystemExit(f"--sizes: {name!r}: expected synthX with X a number, e.g. synth10") from None
        return synthetic(scale, seed), f"synthetic, {scale:g}x ML-1M"
    recipe_name = "ml100k-genres" if name == "ml100k-genres" else "ml1m-ml100k"
    config = load_config(data={"name": "bench-training", "dataset": {"recipe": recipe_name}, "seeds": [seed],
                               "strategies": [dict(STRATEGIES["id"], params={"model": MODEL_PARAMS})]},
                         registry=registry)
    recipe = registry.get("dataset", recipe_name)(config["dataset"]["params"], "dataset.params")
    data = prepare(recipe, config["dataset"], seed)
    if name == "ml100k-grid":
        return data, "recipe ml1m-ml100k as prepared, both domains in the catalog"
    if name in ("ml100k", "ml100k-genres"):
        return single_domain(data, "target", name), f"target of recipe {recipe_name}, training split"
    if name == "ml1m":
        return single_domain(data, "source", name), "source domain of recipe ml1m-ml100k"
    raise SystemExit(f"--sizes: unknown dataset {name!r} (ml100k, ml100k-grid, ml100k-genres, ml1m, synthX)")


def random_text_vectors(texts: list[str]):
    """Fixed random 'text vectors' for synthetic items (no language model involved)."""
    import numpy as np

    rng = np.random.default_rng(12345)
    return rng.standard_normal((len(texts), TEXT_DIM)).astype(np.float32) / np.sqrt(TEXT_DIM)


# ----------------------------------------------------------------------------------- timing
class TimedLoader:
    """A train loader proxy: yields at most ``limit`` batches (0: all) and times every step.

    A step is fetching one batch from the loader plus everything the trainer does with it
    (forward, backward, optimizer step) until it asks for the next one.
    """

    def __init__(self, loader, limit: int, sync, record: list):
        self._loader = loader
        self._limit = limit
        self._sync = sync
        self._record = record

    def __len__(self) -> int:
        full = len(self._loader)
        return min(full, self._limit) if self._limit else full

    def __getattr__(self, name):
        return getattr(self._loader, name)

    def __iter__(self):
        n = len(self)
        steps = []
        self._record.append({"batches_per_epoch": len(self._loader), "batches_run": 0, "steps": steps})
        it = iter(self._loader)
        self._sync()
        last = time.perf_counter()
        for _ in range(n):
            try:
                batch = next(it)
            except StopIteration:
                break
            yield batch
            self._sync()
            now = time.perf_counter()
            steps.append(now - last)
            last = now
            self._record[-1]["batches_run"] += 1


def patch_trainer(limit: int, sync, record: list, sampler: RssSampler, on_first_epoch=None) -> None:
    """Wrap the train data of every epoch of xdplug's trainer in a :class:`TimedLoader`."""
    from xdplug.recbole.trainer import _make_trainer_class

    cls = _make_trainer_class()
    original = cls._train_epoch

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        if not record and on_first_epoch is not None:
            on_first_epoch()
        sampler.active = True
        try:
            return original(self, TimedLoader(train_data, limit, sync, record), epoch_idx, loss_func, show_progress)
        finally:
            sampler.active = False
            sampler.observe()

    cls._train_epoch = _train_epoch


def per_epoch_seconds(record: list) -> tuple[float | None, float | None]:
    """(s/epoch from the mean step time without the run's first step, mean batches per epoch)."""
    steps = [s for epoch in record for s in epoch["steps"]]
    steps = steps[1:] if len(steps) > 1 else steps
    if not steps:
        return None, None
    batches = statistics.mean(epoch["batches_per_epoch"] for epoch in record)
    return statistics.mean(steps) * batches, batches


# ----------------------------------------------------------------------------------- worker
def worker(spec: dict) -> dict:
    import numpy as np
    import torch

    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    from xdplug.plugins import make_plugin_manager
    from xdplug.recbole.compat import quiet_recbole_logging, resolve_device
    from xdplug.context import FitContext

    quiet_recbole_logging()
    device = resolve_device(spec["device"])
    if device.type == "cuda":
        torch.cuda.init()

        def sync():
            torch.cuda.synchronize(device)
    else:
        def sync():
            pass

    registry = make_plugin_manager().registry
    out = {"dataset": spec["dataset"], "method": spec["method"], "device": str(device),
           "torch_threads": torch.get_num_threads(), "rss_start_mb": rss_mb()}
    t0 = time.perf_counter()
    data, origin = load_dataset(spec["dataset"], spec["seed"], registry)
    pairs = data.target_train
    n_users, n_items = data.n_target_users, data.n_target_items
    out.update(origin=origin, data_s=time.perf_counter() - t0, users=int(n_users), items=int(n_items),
               active_users=int(len(np.unique(pairs[:, 0]))), interactions=int(len(pairs)),
               catalog=int(len(data.catalog)), rss_data_mb=rss_mb())
    if spec["dataset"].startswith("synth") and spec["method"] == "bert":
        from xdplug_builtin.encoders.bert import BertEncoder

        BertEncoder.embed = lambda self, texts, device=None: random_text_vectors(list(texts))
        out["origin"] += "; random text vectors"

    sampler = RssSampler()
    record: list = []

    def on_first_epoch():
        if device.type == "cuda":
            sync()
            torch.cuda.reset_peak_memory_stats(device)

    patch_trainer(spec["steps"], sync, record, sampler, on_first_epoch)
    train = {"epochs": spec["epochs"], "eval_step": spec["epochs"] + 1, "learning_rate": 0.005,
             "stopping_step": 5, "batch_size": 2048, "eval_batch_size": 4096, "weight_decay": 0.0,
             "neg_sampling": "uniform"}
    evaluation = {"valid_metric": "ndcg@10", "user_groups": []}
    with tempfile.TemporaryDirectory(prefix="xdplug-bench-training-") as work:
        ctx = FitContext(data=data, seed=spec["seed"], device=device, train=train, evaluation=evaluation,
                         workdir=Path(work))
        t0 = time.perf_counter()
        if spec["method"] == "bpr":
            baseline = registry.get("baseline", "BPR")(dict(BPR_PARAMS), "baselines.BPR")
            baseline.fit(ctx)
            out["params"] = {**BPR_PARAMS, "train_batch_size": train["batch_size"]}
        else:
            from xdplug.model.strategy import fit_strategy

            model = {**MODEL_PARAMS, **spec["model"]}
            if spec["method"] == "ease":
                model = {"family": "ease"}
                sampler.active = True  # the whole fit is the "training"
            entry = dict(STRATEGIES[spec["method"]], params={"model": model})
            fit_strategy(entry, registry, ctx, path="strategy")
            out["params"] = model
        out["fit_s"] = time.perf_counter() - t0
    sampler.observe()
    sampler.stop()
    train_s = sum(sum(epoch["steps"]) for epoch in record)
    s_epoch, batches = per_epoch_seconds(record)
    out.update(epochs=len(record), batches_per_epoch=batches,
               batches_run=[epoch["batches_run"] for epoch in record], train_s=train_s,
               setup_s=out["fit_s"] - train_s, s_per_epoch=s_epoch,
               epoch_wall_s=[sum(epoch["steps"]) for epoch in record],
               extrapolated=any(epoch["batches_run"] < epoch["batches_per_epoch"] for epoch in record),
               rss_train_mb=sampler.peak, rss_peak_mb=peak_rss_mb())
    if s_epoch is not None:
        out["us_per_interaction"] = s_epoch / max(1, len(pairs)) * 1e6
        out["ns_per_user_item"] = s_epoch / max(1, n_users * n_items) * 1e9
    if device.type == "cuda":
        out["cuda_peak_allocated_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
        out["cuda_peak_reserved_mb"] = torch.cuda.max_memory_reserved(device) / 2**20
        out["cuda_device"] = torch.cuda.get_device_name(device)
    return out


# ----------------------------------------------------------------------------------- driver
def run_case(dataset: str, method: str, args) -> dict:
    spec = {"dataset": dataset, "method": method, "epochs": args.epochs, "steps": args.steps,
            "device": args.device, "threads": args.threads, "seed": args.seed, "model": args.model_params}
    env = dict(os.environ)
    if args.threads:
        env.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    load = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)],
                          env=env, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_TAG)]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-5000:])
        return {"dataset": dataset, "method": method, "error": f"worker exited with status {proc.returncode}"}
    result = json.loads(lines[-1][len(RESULT_TAG):])
    result.update(worker_wall_s=time.perf_counter() - start, load_before=load, load_after=os.getloadavg()[0])
    return result


def fmt(value, spec: str, none: str = "-") -> str:
    if value is None:
        width = "".join(ch for ch in spec.split(".")[0] if ch.isdigit())
        return none.rjust(int(width)) if width else none
    return format(value, spec)


def print_table(results: list[dict]) -> None:
    head = (f"{'dataset':14s} {'method':5s} {'users':>8s} {'items':>8s} {'interactions':>12s} {'batches':>7s} "
            f"{'s/epoch':>9s} {'us/inter':>8s} {'ns/(u*i)':>8s} {'setup s':>8s} {'peak RSS':>9s} "
            f"{'train RSS':>9s} {'data RSS':>8s}")
    cuda = any("cuda_peak_allocated_mb" in r for r in results)
    if cuda:
        head += f" {'CUDA MB':>8s}"
    print(head)
    for r in results:
        if "error" in r:
            print(f"{r['dataset']:14s} {r['method']:5s} {r['error']}")
            continue
        mark = "*" if r["extrapolated"] else " "
        line = (f"{r['dataset']:14s} {r['method']:5s} {r['users']:8,d} {r['items']:8,d} {r['interactions']:12,d} "
                f"{fmt(r['batches_per_epoch'], '7,.0f')} {fmt(r['s_per_epoch'], '8.2f')}{mark} "
                f"{fmt(r.get('us_per_interaction'), '8.2f')} {fmt(r.get('ns_per_user_item'), '8.3f')} "
                f"{r['setup_s']:8.1f} {fmt(r['rss_peak_mb'], '9,.0f')} {fmt(r['rss_train_mb'], '9,.0f')} "
                f"{fmt(r['rss_data_mb'], '8,.0f')}")
        if cuda:
            line += f" {fmt(r.get('cuda_peak_allocated_mb'), '8,.0f')}"
        print(line)
    print("s/epoch: mean step time x batches per epoch (* = extrapolated from the first --steps batches); "
          "us/inter: s/epoch per training interaction; ns/(u*i): per user x item cell; "
          "RSS in MiB (peak: whole worker; train: sampled during the epochs; data: after loading the data)")


def print_ratios(results: list[dict]) -> None:
    ok = [r for r in results if "error" not in r and r.get("s_per_epoch")]
    datasets = list(dict.fromkeys(r["dataset"] for r in ok))
    lines = []
    for dataset in datasets:
        bpr = next((r for r in ok if r["dataset"] == dataset and r["method"] == "bpr"), None)
        if bpr is None:
            continue
        for r in ok:
            if r["dataset"] == dataset and r["method"] != "bpr":
                ratio = r["s_per_epoch"] / bpr["s_per_epoch"]
                verdict = "within" if ratio <= 2 else "above"
                lines.append(f"  {dataset:14s} {r['method']:5s} {r['s_per_epoch']:8.2f} s/epoch vs BPR "
                             f"{bpr['s_per_epoch']:8.2f} s/epoch: {ratio:5.2f}x ({verdict} the 2x target)")
    if lines:
        print("\nstrategy epoch / BPR epoch, same target training data:")
        print("\n".join(lines))


def print_growth(results: list[dict]) -> None:
    ok = [r for r in results if "error" not in r and r.get("s_per_epoch")]
    lines = []
    for method in dict.fromkeys(r["method"] for r in ok):
        rows = sorted((r for r in ok if r["method"] == method), key=lambda r: r["interactions"])
        if len(rows) < 2:
            continue
        base = rows[0]
        for r in rows[1:]:
            lines.append(f"  {method:5s} {base['dataset']} -> {r['dataset']}: interactions x"
                         f"{r['interactions'] / base['interactions']:.1f}, users*items x"
                         f"{r['users'] * r['items'] / (base['users'] * base['items']):.1f}, s/epoch x"
                         f"{r['s_per_epoch'] / base['s_per_epoch']:.1f}, peak RSS x"
                         f"{r['rss_peak_mb'] / base['rss_peak_mb']:.1f}")
    if lines:
        print("\ngrowth against the smallest dataset:")
        print("\n".join(lines))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["ml100k", "ml1m", "synth10"],
                        help="datasets: ml100k, ml100k-grid, ml100k-genres, ml1m, synthX (X times ML-1M)")
    parser.add_argument("--methods", nargs="+", default=["id", "bert", "bpr"], choices=["id", "bert", "bpr", "ease"],
                        help="id, bert: transfer strategies; bpr: RecBole BPR; ease: the closed-form item-item "
                        "family (params.model.family: ease, target-only), timed as one fit")
    parser.add_argument("--epochs", type=int, default=1, help="epochs measured per case (default 1)")
    parser.add_argument("--steps", type=int, default=50, help="run only the first N batches of each epoch and "
                        "extrapolate the epoch from the mean step time (0: whole epochs)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument("--threads", type=int, default=0, help="torch threads in each worker (0: torch's default)")
    parser.add_argument("--seed", type=int, default=2022)
    parser.add_argument("--model", action="append", default=[], metavar="KEY=VALUE",
                        help="override a strategy params.model key, e.g. --model batch_users=256 (repeatable)")
    parser.add_argument("--json", metavar="OUT", help="also write every figure to this JSON file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        result = worker(json.loads(args.worker))
        print(RESULT_TAG + json.dumps(result, default=str), flush=True)
        return 0
    if args.epochs < 1 or args.steps < 0:
        parser.error("--epochs must be >= 1 and --steps >= 0")
    for name in args.sizes:
        if name not in ("ml100k", "ml100k-grid", "ml100k-genres", "ml1m"):
            try:
                assert name.startswith("synth") and float(name[len("synth"):]) > 0
            except (AssertionError, ValueError):
                parser.error(f"--sizes: unknown dataset {name!r} (ml100k, ml100k-grid, ml100k-genres, ml1m, "
                             "synthX with X > 0 times ML-1M, e.g. synth10)")
    args.model_params = {}
    for item in args.model:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--model {item!r}: expected KEY=VALUE")
        import yaml

        args.model_params[key] = yaml.safe_load(value)
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            parser.error("--device cuda: CUDA is not available here (use cpu or auto)")

    print(f"machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}; device {args.device}; epochs {args.epochs}; "
          f"{'steps per epoch ' + str(args.steps) + ' (extrapolated)' if args.steps else 'whole epochs'}; "
          f"threads {args.threads or 'default'}" + (f"; params.model overrides {args.model_params}"
                                                    if args.model_params else ""), flush=True)
    results = []
    for dataset in args.sizes:
        for method in args.methods:
            r = run_case(dataset, method, args)
            results.append(r)
            if "error" in r:
                print(f"{dataset} {method}: {r['error']}", flush=True)
                continue
            catalog = f"; catalog {r['catalog']:,} rows" if r["catalog"] != r["items"] else ""
            if r["method"] == "ease":
                timing = f"closed form, fit {r['fit_s']:.1f}s"
            else:
                part = f"extrapolated from {r['batches_run']} batches of " if r["extrapolated"] else ""
                timing = (f"{fmt(r['s_per_epoch'], '.2f')} s/epoch ({part}{fmt(r['batches_per_epoch'], '.0f')} "
                          f"per epoch), setup {r['setup_s']:.1f}s")
            print(f"{dataset} {method}: {r['users']:,} users, {r['items']:,} items, {r['interactions']:,} "
                  f"interactions ({r['origin']}{catalog}); {r['device']}: {timing}, data {r['data_s']:.1f}s, "
                  f"peak RSS {r['rss_peak_mb']:,.0f} MiB, {r['torch_threads']} torch threads, "
                  f"load average {r['load_before']:.1f} -> {r['load_after']:.1f}", flush=True)
    print()
    print_table(results)
    print_ratios(results)
    print_growth(results)
    if args.json:
        Path(args.json).write_text(json.dumps({"args": {k: v for k, v in vars(args).items() if k != "worker"},
                                               "cores": os.cpu_count(), "results": results}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
