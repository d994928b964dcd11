"""One grid cell, start to end: data -> fit -> rank -> evaluate.

:func:`run_task` is what every executor runs (in this process or a Ray
worker); :func:`execute_run` trains and evaluates one cell; :func:`fit_method`
is the one place a run's method is built and trained, which export calls too.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from pathlib import Path

import numpy as np
import torch

from ..config import check_pooling
from ..context import FitContext
from ..data.prepare import prepare
from ..errors import ConfigError, NotApplicableError, XdplugError
from ..evaluation import rank_split
from ..model.strategy import fit_strategy
from ..recbole.compat import quiet_recbole_logging, resolve_device
from ..recbole.trainer import learning_problems
from ..spec import family_class
from ..tasks import check_family_task, refusal
from ..tempdirs import make as scratch_dir
from .plan import RunSpec, output_dir

logger = logging.getLogger(__name__)

#: why a baseline that needs shared IDs does not apply
NEEDS_SHARED = "needs users or items shared by both domains; this dataset shares none"


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


def fit_method(spec: RunSpec, config: dict, registry, ctx: FitContext):
    """Build and train one grid cell's method on ``ctx``: the one place a run's model is fitted.

    A baseline's ``pooled``/``params.source_weight`` are checked first; a baseline
    that needs shared IDs on data without any raises :class:`NotApplicableError`.
    """
    task = ctx.data.task
    if spec.kind == "baseline":
        cls = registry.get("baseline", spec.entry["baseline"], f"{spec.path}.baseline")
        if task not in cls.tasks:  # validation refuses it first; this guards the API
            raise ConfigError(f"{spec.path}.baseline", refusal("baseline", cls.name, cls.tasks, task))
        baseline = cls(spec.entry.get("params"), f"{spec.path}.params")
        check_pooling(spec.entry, cls, spec.path)
        pooled = bool(spec.entry.get("pooled"))
        if (pooled or cls.needs_shared_ids) and not ctx.data.has_shared_ids:
            raise NotApplicableError(NEEDS_SHARED)
        return baseline.fit(ctx, pooled=pooled)
    # validation refuses it first; this guards the API
    check_family_task(family_class(spec.entry, registry, spec.path), registry, task, spec.path)
    return fit_strategy(spec.entry, registry, ctx, spec.path)


def fit_context(spec: RunSpec, config: dict, data, device, workdir: Path, progress=None,
                tensorboard: bool = True, *, registry) -> FitContext:
    """The :class:`FitContext` of one grid cell."""
    return FitContext(data=data, seed=spec.seed, device=torch.device(device), train=config["train"],
                      evaluation=config["evaluation"], workdir=Path(workdir), progress=progress, registry=registry,
                      tensorboard_dir=output_dir(config) / "tensorboard" / f"{spec.method}-{spec.seed}"
                      if tensorboard else None, reuse_dir=output_dir(config) / "phases")


def prepare_data(config: dict, registry, seed: int):
    """The prepared split of ``seed`` (built once, then read from the cache)."""
    recipe_cls = registry.get("dataset", config["dataset"]["recipe"], "dataset.recipe")
    recipe = recipe_cls(config["dataset"]["params"], "dataset.params")
    data = prepare(recipe, config["dataset"], seed)
    data.max_eval_users = config["evaluation"].get("max_users", 0)
    return data


def execute_run(spec: RunSpec, config: dict, registry, data, device: torch.device, workdir: Path,
                progress=None) -> dict:
    """Train and evaluate one run; returns the record fields (never writes the store)."""
    ctx = fit_context(spec, config, data, device, workdir, progress, registry=registry)
    start = time.perf_counter()
    notes = None
    with PeakRSS() as rss:
        try:
            scorer = fit_method(spec, config, registry, ctx)
        except NotApplicableError as exc:
            if str(exc) != NEEDS_SHARED:
                raise
            return {"status": "not_applicable", "notes": NEEDS_SHARED, "time_s": 0.0,
                    "peak_rss_mb": rss.current_mb()}
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


def run_task(spec: RunSpec, config: dict, data_cache: dict | None = None, progress=None, *, registry) -> dict:
    """Run one grid cell anywhere (this process or a worker); never raises for a failing run.

    Returns the record for the store: ``status`` plus metrics or the error.
    ``registry`` is the caller's (a worker's own, loaded in the worker).
    """
    quiet_recbole_logging()
    started = time.perf_counter()
    try:
        device = resolve_device(config["device"])
        data_cache = {} if data_cache is None else data_cache
        if spec.seed not in data_cache:
            data_cache[spec.seed] = prepare_data(config, registry, spec.seed)
        data = data_cache[spec.seed]
        with scratch_dir("run") as work:
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
