"""The benchmark runner: baselines x strategies x seeds on one fixed split per seed.

``run_benchmark`` expands the grid, skips runs the store already finished
(``force`` reruns them), runs the rest, records each in the run store (a run
that raises is recorded as failed and the others continue) and writes the
report. Every method is evaluated by the same evaluators on the same split.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import platform
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import __version__, paths, tempdirs
from .config import (canonical_json, check_pooling, config_hash, default_baseline_name,
                     default_strategy_name, parse_metric)
from .data.prepare import prepare
from .errors import ConfigError, NotApplicableError, RunError, XdplugError
from .plugins import Plugins, get_plugins
from .recbole_compat import quiet_recbole_logging, resolve_device
from .store import RunStore, store_lock
from .training import FitContext, rank_split

logger = logging.getLogger(__name__)


@dataclass
class RunSpec:
    """One cell of the grid: a method on a seed."""

    run_id: str
    method: str
    kind: str  # "baseline" or "strategy"
    seed: int
    entry: dict
    path: str  # config key path of the entry, for error messages
    #: False for tuning trials: rank the validation split only, never the test split
    evaluate_test: bool = True


def output_dir(config: dict) -> Path:
    try:
        return Path(config["output"]["dir"].format(name=config["name"]))
    except (KeyError, IndexError, ValueError, AttributeError) as exc:
        raise ConfigError("output.dir", f"{config['output']['dir']!r}: the only placeholder allowed is "
                          f"{{name}} (write {{{{ and }}}} for literal braces); got {type(exc).__name__}: {exc}") from None


#: what to do when the output folder cannot be written
OUTPUT_FIX = "make it writable or set output.dir (--set output.dir=DIR) to a writable folder"


def store_path(config: dict) -> Path:
    return output_dir(config) / config["output"]["store"]


def expand(config: dict) -> list[RunSpec]:
    """The grid, in a stable order: seeds outermost, baselines before strategies."""
    shared = {k: config[k] for k in ("dataset", "train", "evaluation")}
    # the report's reference is a reading of finished runs, not part of what a run computes
    shared["evaluation"] = {k: v for k, v in shared["evaluation"].items() if k != "reference"}
    specs = []
    for seed in config["seeds"]:
        for kind, key in (("baseline", "baselines"), ("strategy", "strategies")):
            for i, entry in enumerate(config[key]):
                name = entry.get("name") or (default_baseline_name(entry) if kind == "baseline"
                                             else default_strategy_name(entry))
                body = {"shared": shared, "seed": seed, "kind": kind, "entry":
                        {k: v for k, v in entry.items() if k not in ("name", "tuning")}}
                tuned = tuning_identity(config, kind, entry)
                if tuned is not None:  # a tuned method's runs depend on its search
                    body["tuning"] = tuned
                identity = canonical_json(body)
                run_id = hashlib.sha256(identity.encode()).hexdigest()[:16]
                specs.append(RunSpec(run_id, name, kind, seed, entry, f"{key}[{i}]"))
    return specs


def tuning_identity(config: dict, kind: str, entry: dict) -> dict | None:
    if not config.get("tuning") and not entry.get("tuning"):
        return None
    from .tuning import method_tuning

    mt = method_tuning(config, kind, entry)
    return mt.identity() if mt is not None and mt.active else None


def library_versions() -> dict:
    import importlib.metadata as md

    out = {"xdplug": __version__, "python": platform.python_version()}
    for lib in ("recbole", "torch", "numpy", "pandas", "scipy", "transformers", "pluggy"):
        try:
            out[lib] = md.version(lib)
        except md.PackageNotFoundError:
            out[lib] = None
    return out


class PeakRSS:
    """Samples this process's resident memory in a thread; ``peak_mb`` after ``stop``."""

    def __init__(self, interval: float = 0.2):
        self.interval, self.peak_mb = interval, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def current_mb() -> float:
        try:
            with open("/proc/self/status") as handle:
                for line in handle:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def _run(self):
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, self.current_mb())
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self.current_mb())


def run_evaluators(config: dict, registry, result) -> tuple[dict, dict]:
    metrics, per_user = {}, {}
    for name in config["evaluation"]["evaluators"]:
        cls = registry.get("evaluator", name, "evaluation.evaluators")
        if cls.scope != "run":
            continue
        evaluator = cls({})
        metrics.update(evaluator.evaluate(result))
        per_user.update(evaluator.per_user(result))
    return metrics, per_user


def execute_run(spec: RunSpec, config: dict, registry, data, device: torch.device, workdir: Path,
                progress=None) -> dict:
    """Train and evaluate one run; returns the record fields (never writes the store)."""
    from .model.strategy import fit_strategy
    from .training import learning_problems

    ctx = FitContext(data=data, seed=spec.seed, device=device, train=config["train"],
                     evaluation=config["evaluation"], workdir=workdir, progress=progress,
                     tensorboard_dir=output_dir(config) / "tensorboard" / f"{spec.method}-{spec.seed}")
    start = time.perf_counter()
    notes = None
    with PeakRSS() as rss:
        if spec.kind == "baseline":
            cls = registry.get("baseline", spec.entry["baseline"], f"{spec.path}.baseline")
            baseline = cls(spec.entry.get("params"), f"{spec.path}.params")
            check_pooling(spec.entry, cls, spec.path)
            pooled = bool(spec.entry.get("pooled"))
            if (pooled or cls.needs_shared_ids) and not data.has_shared_ids:
                return {"status": "not_applicable", "notes": "needs users or items shared by both domains; "
                        "this dataset shares none", "time_s": 0.0, "peak_rss_mb": rss.current_mb()}
            scorer = baseline.fit(ctx, pooled=pooled)
        else:
            scorer = fit_strategy(spec.entry, registry, ctx, spec.path)
        item_known = getattr(scorer, "item_known", None)
        ks = config["evaluation"]["ks"]
        groups = config["evaluation"]["user_groups"]
        test = rank_split(scorer.score, data, "test", ks, device, groups, item_known=item_known) \
            if spec.evaluate_test else None
        valid = rank_split(scorer.score, data, "valid", ks, device, groups, item_known=item_known)
        test_metrics, per_user = run_evaluators(config, registry, test) if test is not None else ({}, {})
        valid_metrics, _ = run_evaluators(config, registry, valid)
        if item_known is not None and len(data.cold_items) and not np.asarray(item_known)[data.cold_items].any():
            notes = "cannot score cold items: it has no representation for items without training interactions"
    # a phase whose validation never beat its first epoch's, or whose loss never moved: "did not learn: ..."
    notes = "; ".join([n for n in (notes,) if n] + learning_problems(ctx.curves)) or None
    if test is None:  # a tuning trial: validation only
        return {"status": "done", "metrics": {"valid": valid_metrics}, "per_user": {}, "curves": ctx.curves,
                "time_s": time.perf_counter() - start, "peak_rss_mb": rss.peak_mb, "notes": notes}
    per_user["users"] = test.users
    return {"status": "done", "metrics": {"test": test_metrics, "valid": valid_metrics},
            "per_user": per_user, "curves": ctx.curves, "time_s": time.perf_counter() - start,
            "peak_rss_mb": rss.peak_mb, "notes": notes}


def run_task(spec: RunSpec, config: dict, data_cache: dict | None = None, progress=None,
             registry=None) -> dict:
    """Run one grid cell anywhere (this process or a worker); never raises for a failing run.

    Returns the record for the store: ``status`` plus metrics or the error.
    ``registry`` defaults to the process-wide plugin manager's (a worker's own).
    """
    quiet_recbole_logging()
    started = time.perf_counter()
    try:
        registry = registry if registry is not None else get_plugins().registry
        device = resolve_device(config["device"])
        data_cache = {} if data_cache is None else data_cache
        if spec.seed not in data_cache:
            recipe_cls = registry.get("dataset", config["dataset"]["recipe"], "dataset.recipe")
            recipe = recipe_cls(config["dataset"]["params"], "dataset.params")
            data_cache[spec.seed] = prepare(recipe, config["dataset"], spec.seed)
        data = data_cache[spec.seed]
        with tempdirs.make("run") as work:
            record = execute_run(spec, config, registry, data, device, Path(work), progress=progress)
        record["device"] = str(device)
        record["dataset_summary"] = data.summary
        return record
    except KeyboardInterrupt:
        raise
    except NotApplicableError as exc:
        return {"status": "not_applicable", "notes": str(exc), "time_s": time.perf_counter() - started}
    except Exception as exc:  # a failing run is recorded; the grid goes on
        detail = traceback.format_exc()
        summary = str(exc) if isinstance(exc, XdplugError) else f"{type(exc).__name__}: {exc}"
        logger.warning("run %s (seed %s) failed: %s", spec.method, spec.seed, summary)
        return {"status": "failed", "error": summary + "\n\n" + detail,
                "time_s": time.perf_counter() - started}


def preflight_data(config: dict, registry, seed: int, executor=None, store: RunStore | None = None):
    """Build the recipe and prepare one seed's data (or read it from the cache) before any run.

    Data that cannot be used (a missing file or column, a wrong type, a domain
    empty after filtering, no overlap where the recipe aligns entities) is then
    one named error, not a failed run per grid cell. With ``store``, finished runs
    made on other data (a recipe whose params record its files' sizes and times,
    like ``files``, after an edit) are an error too: resuming would mix datasets in
    one report. The prepared data is handed to an executor that keeps a
    ``data_cache``, so it is not loaded twice.
    """
    import json

    recipe_cls = registry.get("dataset", config["dataset"]["recipe"], "dataset.recipe")
    recipe = recipe_cls(config["dataset"]["params"], "dataset.params")
    data = prepare(recipe, config["dataset"], seed)
    stored = store.get_meta(f"dataset_summary_{seed}") if store is not None else None
    if stored and "recipe_params" in stored and "recipe_params" in data.summary:
        now = json.loads(json.dumps(data.summary["recipe_params"], default=str))
        if stored["recipe_params"] != now and any(r["status"] == "done" for r in store.runs()):
            changed = sorted(k for k in set(now) | set(stored["recipe_params"])
                             if now.get(k) != stored["recipe_params"].get(k))
            raise RunError(f"the dataset changed since the finished runs in {store.path} were made "
                           f"(dataset.params {', '.join(changed)}: an edited file?); rerun every run "
                           "with --force, or write to another output.dir")
    cache = getattr(executor, "data_cache", None)
    if isinstance(cache, dict):
        cache.setdefault(seed, data)
    return data


class LocalExecutor:
    """Runs tasks one after the other in this process (the default)."""

    def __init__(self, config: dict, registry=None):
        self.config = config
        self.registry = registry  # the driver's: the components the config was validated against
        self.data_cache: dict = {}

    def run(self, specs: list[RunSpec], on_start, on_done, progress=None):
        for spec in specs:
            on_start(spec)
            on_done(spec, run_task(spec, self.config, self.data_cache,
                                   progress=(lambda m, s=spec: progress(f"{s.method}: {m}")) if progress else None,
                                   registry=self.registry))

    def close(self):
        pass


def make_executor(config: dict, registry=None):
    kind = config["executor"]["kind"]
    if kind == "local":
        return LocalExecutor(config, registry)
    from .executors import RayExecutor

    return RayExecutor(config)


def run_benchmark(config: dict, plugins: Plugins | None = None, force: bool = False,
                  progress: bool = True, only: list[str] | None = None, wait: bool = False) -> dict:
    """Run every missing run of the grid and write the report; returns the report paths.

    Holds the run store's lock throughout: a second run on the same store raises
    :class:`RunError` naming the holder, or with ``wait`` waits for it. Scratch
    folders of killed runs are removed first. Failed runs do not raise: see
    :func:`failed_runs`.
    """
    from tqdm import tqdm

    from .config import validate

    quiet_recbole_logging()
    plugins = plugins or get_plugins()
    registry = plugins.registry
    # the whole config, not only its component names: a config edited after
    # load_config (an unknown metric, say) must fail here, before any training
    validate(config, registry)
    resolve_device(config["device"])
    out = output_dir(config)
    specs = expand(config)
    if only:
        known = {s.method for s in specs}
        unknown = [name for name in only if name not in known]
        if unknown:
            raise RunError(f"--only {', '.join(unknown)}: no such method in the config; "
                           f"its methods are {', '.join(sorted(known))}")
        specs = [s for s in specs if s.method in only]
    from .reporting import build_report

    with contextlib.ExitStack() as stack:
        # the executor first: one that cannot start (ray missing) leaves nothing behind
        executor = make_executor(config, registry)
        stack.callback(executor.close)
        paths.ensure_dir(out, "the output folder", OUTPUT_FIX)
        stack.enter_context(store_lock(store_path(config), wait=wait, on_wait=lambda holder, lock: logger.warning(
            "waiting for the run store %s: %s holds its lock %s", store_path(config), holder, lock)))
        tempdirs.sweep()
        store = RunStore(store_path(config))
        stack.callback(store.close)
        chash = config_hash(config)
        store.set_meta("config", config)
        store.set_meta("config_hash", chash)
        versions = library_versions()
        todo = [s for s in specs if force or store.status(s.run_id) not in ("done", "not_applicable")]
        if todo:
            preflight_data(config, registry, todo[0].seed, executor, store=None if force else store)
        from .tuning import tune_methods

        # trials (validation only) before the grid; the grid's runs carry the chosen parameters
        todo = tune_methods(config, store, executor, specs, todo, registry, progress=progress)
        bar = tqdm(total=len(specs), initial=len(specs) - len(todo), desc="runs", unit="run",
                   disable=not progress, dynamic_ncols=True)
        counts = {"failed": 0, "running": 0}

        def on_start(spec):
            store.start(spec.run_id, chash, spec.method, spec.kind, spec.seed, spec.entry)
            counts["running"] += 1
            bar.set_postfix_str(f"{spec.method} seed={spec.seed} failed={counts['failed']}")

        def on_done(spec, record):
            record = dict(record)
            summary = record.pop("dataset_summary", None)
            if summary is not None:
                store.set_meta(f"dataset_summary_{spec.seed}", summary)
            status = record.pop("status")
            counts["running"] -= 1
            counts["failed"] += status == "failed"
            record.setdefault("device", None)
            store.finish(spec.run_id, status, versions=versions, **record)
            plugins.notify_run_finished(store.runs([spec.run_id])[0])
            bar.update(1)
            bar.set_postfix_str(f"done {bar.n}/{len(specs)} failed={counts['failed']} running={counts['running']}")

        try:
            executor.run(todo, on_start, on_done,
                         progress=(lambda m: bar.set_postfix_str(m)) if progress else None)
        finally:
            bar.close()
        return build_report(config, store, registry)


def failed_runs(config: dict, only: list[str] | None = None) -> list[dict]:
    """The grid's runs (of ``only``'s methods) whose last attempt failed, in grid order.

    After :func:`run_benchmark` these are the runs that failed in that call:
    every failed run is tried again by the next one.
    """
    path = store_path(config)
    if not path.is_file():
        return []
    specs = [s for s in expand(config) if not only or s.method in only]
    store = RunStore(path)
    try:
        status = {r["run_id"]: r for r in store.runs([s.run_id for s in specs])}
    finally:
        store.close()
    return [status[s.run_id] for s in specs if s.run_id in status and status[s.run_id]["status"] == "failed"]
