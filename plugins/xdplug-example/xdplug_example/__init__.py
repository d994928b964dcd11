"""xdplug-example: one component of every kind, registered through the hooks.

xdplug imports this module through the entry point ``example`` (group
``xdplug``, see ``pyproject.toml``) and calls the hook implementations below.
Importing the component modules inside the hooks keeps ``xdplug plugins``
fast and means a broken component module shows up as this plugin's failing
hook, not as a crash of the engine.
"""

from __future__ import annotations

import json
import os

from xdplug.api import hookimpl

#: set to a file path to have ``run_finished`` append one JSON line per finished run
RUN_LOG_ENV = "XDPLUG_EXAMPLE_RUN_LOG"


@hookimpl
def register_encoders(register):
    from .encoder import HashedBagOfWords

    register(HashedBagOfWords)


@hookimpl
def register_fusions(register):
    from .fusion import SumFusion

    register(SumFusion)


@hookimpl
def register_adaptations(register):
    from .adaptation import Warmup

    register(Warmup)


@hookimpl
def register_evaluators(register):
    from .evaluator import Novelty, WinRate

    register(Novelty)
    register(WinRate)


@hookimpl
def register_baselines(register):
    from .baseline import CooccurrenceBaseline, RandomBaseline

    register(RandomBaseline)
    register(CooccurrenceBaseline)


@hookimpl
def register_datasets(register):
    from .dataset import ExampleSynthetic

    register(ExampleSynthetic)


@hookimpl
def run_finished(record):
    """Append the finished run to ``$XDPLUG_EXAMPLE_RUN_LOG`` (a stand-in for an experiment tracker)."""
    path = os.environ.get(RUN_LOG_ENV)
    if not path:
        return
    line = {key: record.get(key) for key in ("run_id", "method", "seed", "status")}
    line["test"] = (record.get("metrics") or {}).get("test", {})
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(line, default=float) + "\n")
