"""The benchmark runner: baselines x strategies x seeds on one fixed split per seed.

``run_benchmark`` expands the grid, skips runs the store already finished
(``force`` reruns them), runs the rest, records each in the run store (a run
that raises is recorded as failed and the others continue) and writes the
report. Every method is evaluated by the same evaluators on the same split.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from ..config import config_hash, validate
from ..errors import RunError
from ..paths import ensure_dir
from ..plugins import Plugins, make_plugin_manager
from ..progress import progress_bar
from ..recbole.compat import quiet_recbole_logging, resolve_device
from ..report.collect import build_report
from ..store import RunStore, discard_store, store_lock
from ..tempdirs import sweep as sweep_scratch
from .executors import make_executor
from .plan import OUTPUT_FIX, expand, library_versions, output_dir, store_path
from .task import prepare_data
from .tuning import tune_methods

logger = logging.getLogger(__name__)


def check_dataset_unchanged(config: dict, registry, store: RunStore, seeds) -> None:
    """Refuse to report finished runs made on other data than the config's files hold now.

    A recipe whose params record its files' sizes and times (like ``files``)
    changes them when a file is edited; finished runs made before the edit, and
    their split, are then stale. Checked on every run without ``--force``, a
    finished grid included, from the recipe's params alone (nothing is prepared).
    """
    import json

    recipe_cls = registry.get("dataset", config["dataset"]["recipe"], "dataset.recipe")
    now = json.loads(json.dumps(recipe_cls(config["dataset"]["params"], "dataset.params").params, default=str))
    done_seeds = {r["seed"] for r in store.runs() if r["status"] == "done"}
    for seed in sorted(set(seeds) & done_seeds):
        stored = store.get_meta(f"dataset_summary_{seed}")
        if not isinstance(stored, dict) or "recipe_params" not in stored or stored["recipe_params"] == now:
            continue
        changed = sorted(k for k in set(now) | set(stored["recipe_params"])
                         if now.get(k) != stored["recipe_params"].get(k))
        raise RunError(f"the dataset changed since the finished runs in {store.path} were made "
                       f"(dataset.params {', '.join(changed)}: an edited file?); their metrics are stale: "
                       "rerun every run with --force, or write to another output.dir")


def preflight_data(config: dict, registry, seed: int, executor=None):
    """Build the recipe and prepare one seed's data (or read it from the cache) before any run.

    Data that cannot be used (a missing file or column, a wrong type, a domain
    empty after filtering, no overlap where the recipe aligns entities) is then
    one named error, not a failed run per grid cell. The prepared data is handed
    to an executor that keeps a ``data_cache``, so it is not loaded twice.
    """
    data = prepare_data(config, registry, seed)
    cache = getattr(executor, "data_cache", None)
    if isinstance(cache, dict):
        cache.setdefault(seed, data)
    return data


def run_benchmark(config: dict, plugins: Plugins | None = None, force: bool = False,
                  progress: bool = True, only: list[str] | None = None, wait: bool = False) -> dict:
    """Run every missing run of the grid and write the report; returns the report paths.

    ``plugins`` is the manager whose components run and whose hooks hear of each run; without
    one, a fresh manager of the installed plugins (never a process-wide one). Holds the run
    store's lock throughout: a second run on the same store raises :class:`RunError` naming
    the holder, or with ``wait`` waits for it. Scratch folders of killed runs are removed first.
    Failed runs do not raise: see :func:`failed_runs`.
    """
    quiet_recbole_logging()
    plugins = plugins if plugins is not None else make_plugin_manager()
    registry = plugins.registry
    # the whole config, not only its component names: a config edited after
    # load_config (an unknown metric, say) must fail here, before any training
    validate(config, registry)
    resolve_device(config["device"])
    out = output_dir(config)
    specs = expand(config, registry)
    if only:
        known = {s.method for s in specs}
        unknown = [name for name in only if name not in known]
        if unknown:
            raise RunError(f"--only {', '.join(unknown)}: no such method in the config; "
                           f"its methods are {', '.join(sorted(known))}")
        specs = [s for s in specs if s.method in only]
    with contextlib.ExitStack() as stack:
        # the executor first: one that cannot start (ray missing) leaves nothing behind
        executor = make_executor(config, registry)
        stack.callback(executor.close)
        new_folders = _missing_folders(out)
        fresh = not store_path(config).exists()
        ensure_dir(out, "the output folder", OUTPUT_FIX)
        stack.enter_context(store_lock(store_path(config), wait=wait, on_wait=lambda holder, lock: logger.warning(
            "waiting for the run store %s: %s holds its lock %s", store_path(config), holder, lock)))
        started = False
        if fresh:  # runs after the store is closed, with the lock still held
            stack.push(lambda kind, exc, tb: None if started or kind is None
                       else _discard_new_store(store_path(config), new_folders))
        sweep_scratch()
        store = RunStore(store_path(config))
        stack.callback(store.close)
        chash = config_hash(config)
        store.set_meta("config", config)
        store.set_meta("config_hash", chash)
        versions = library_versions()
        if not force:  # a finished grid too: its metrics must come from the data the files hold now
            check_dataset_unchanged(config, registry, store, config["seeds"])
        todo = [s for s in specs if force or store.status(s.run_id) not in ("done", "not_applicable")]
        if todo:
            preflight_data(config, registry, todo[0].seed, executor)
        started = True  # from here on the store records trials and runs: a failure keeps it (resume)
        # trials (validation only) before the grid; the grid's runs carry the chosen parameters
        todo = tune_methods(config, store, executor, specs, todo, registry, progress=progress)
        bar = progress_bar(len(specs), "runs", unit="run", initial=len(specs) - len(todo), disable=not progress)
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
            plugins.notify_run_finished(store.runs([spec.run_id])[0], config)
            bar.update(1)
            bar.set_postfix_str(f"done {bar.n}/{len(specs)} failed={counts['failed']} running={counts['running']}")

        try:
            executor.run(todo, on_start, on_done,
                         progress=(lambda m: bar.set_postfix_str(m)) if progress else None)
        finally:
            bar.close()
        paths = build_report(config, store, registry)
        plugins.notify_report_written(paths, config)
        return paths


def _missing_folders(folder: Path) -> list[Path]:
    """``folder`` and those of its parents that do not exist yet, deepest first."""
    missing = []
    for path in (folder, *folder.parents):
        if path.exists():
            break
        missing.append(path)
    return missing


def _discard_new_store(path: Path, new_folders: list[Path]) -> None:
    """A run that created its store and failed before recording anything (a data error in the preflight)
    leaves nothing behind: not the empty store, not its lock, not the folders it made."""
    discard_store(path)
    for folder in new_folders:
        try:
            folder.rmdir()
        except OSError:  # not empty (something else was written there) or already gone
            break


def failed_runs(config: dict, registry, only: list[str] | None = None) -> list[dict]:
    """The grid's runs (of ``only``'s methods) whose last attempt failed, in grid order.

    After :func:`run_benchmark` these are the runs that failed in that call:
    every failed run is tried again by the next one.
    """
    path = store_path(config)
    if not path.is_file():
        return []
    specs = [s for s in expand(config, registry) if not only or s.method in only]
    store = RunStore(path)
    try:
        status = {r["run_id"]: r for r in store.runs([s.run_id for s in specs])}
    finally:
        store.close()
    return [status[s.run_id] for s in specs if s.run_id in status and status[s.run_id]["status"] == "failed"]
