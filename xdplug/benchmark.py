"""The documented Python entry point of a benchmark: ``xdplug.run(config) -> BenchmarkResult``.

What ``xdplug run CONFIG`` does, for notebooks and scripts: load and validate the
config (a path or a mapping, with ``--set``-style overrides), run the missing
runs, write the report, and return what the report says. Library warnings that
RecBole, pandas and torch emit (FutureWarning, DeprecationWarning) are kept
out of the caller's output, as the CLI does.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class BenchmarkResult:
    """What a finished benchmark says: the verdict, the summary rows and where the files are."""

    #: the report's verdict: best method, best baseline, improvement, significance (``report.json``)
    verdict: dict
    #: one row per method: mean/std of every test metric, improvement over the reference
    summary: list[dict]
    #: report files by kind: ``markdown``, ``html``, ``results``, ``summary``, ``json``, ``per_user``, ...
    paths: dict[str, Path]
    #: runs that failed: ``{"method", "seed", "error"}`` (empty when every run finished)
    failed: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


@contextlib.contextmanager
def quiet_library_warnings():
    """Hide the FutureWarnings/DeprecationWarnings RecBole, pandas and torch emit (the CLI does the same)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*GradScaler.*")
        yield


def run(config: str | Path | dict, overrides: list[str] | tuple | dict = (), *, progress: bool = False,
        force: bool = False, only: list[str] | None = None, wait: bool = False, plugins=None) -> BenchmarkResult:
    """Run a benchmark config and return its verdict, summary and report paths.

    :param config: a YAML file's path, or the config as a mapping (the same keys as the file).
    :param overrides: ``KEY.PATH=VALUE`` strings (as ``--set``) or a mapping ``{KEY.PATH: value}``,
        applied before validation.
    :param progress: show progress bars.
    :param force: rerun runs that already finished (otherwise they are skipped, so a rerun resumes).
    :param only: run only these methods.
    :param wait: wait for another run on the same output to finish instead of refusing.
    :param plugins: the :class:`xdplug.plugins.Plugins` whose components run; default: a fresh manager
        of the installed plugins (``XDPLUG_LOAD_PLUGINS``/``XDPLUG_BLOCK_PLUGINS`` apply).

    Errors a user can fix raise :class:`xdplug.errors.XdplugError` with one readable message;
    runs that fail are not raised but listed in ``BenchmarkResult.failed``.
    """
    from .config import load_config
    from .engine.runner import failed_runs, run_benchmark
    from .plugins import make_plugin_manager

    plugins = plugins if plugins is not None else make_plugin_manager()
    registry = plugins.registry
    with quiet_library_warnings():
        if isinstance(config, (str, Path)):
            loaded = load_config(config, overrides=overrides, registry=registry)
        else:
            loaded = load_config(data=dict(config), overrides=overrides, registry=registry)
        paths = run_benchmark(loaded, plugins, force=force, progress=progress, only=only, wait=wait)
        failed = [{"method": r["method"], "seed": r["seed"], "error": r["error"]}
                  for r in failed_runs(loaded, only=only, registry=registry)]
    report: dict[str, Any] = json.loads(Path(paths["json"]).read_text())
    return BenchmarkResult(verdict=report["verdict"], summary=report["summary"],
                           paths={k: Path(v) for k, v in paths.items()}, failed=failed)
