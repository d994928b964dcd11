"""The plan of a benchmark: its grid cells, their run identities and where the output goes.

A run's identity (its ``run_id``) is the sha256 of the canonical JSON of what
changes its result: the shared dataset/train/evaluation sections, the seed, the
method's kind and entry, and for a tuned method its search. Existing run stores
stay valid as long as this hashing does not change.
"""

from __future__ import annotations

import hashlib
import platform
from dataclasses import dataclass

from ..version import __version__
from ..config import OUTPUT_FIX, canonical_json, default_baseline_name, default_strategy_name, output_dir, store_path
from .settings import method_tuning

__all__ = ["OUTPUT_FIX", "RunSpec", "expand", "library_versions", "output_dir", "store_path", "tuning_identity"]


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


def expand(config: dict, registry) -> list[RunSpec]:
    """The grid, in a stable order: seeds outermost, baselines before strategies.

    ``registry`` gives the components' default search spaces of tuned methods (their runs
    depend on their search).
    """
    shared = {k: config[k] for k in ("dataset", "train", "evaluation")}
    # the report's references are a reading of finished runs, not part of what a run computes
    shared["evaluation"] = {k: v for k, v in shared["evaluation"].items() if k not in ("reference", "cold_reference")}
    if not shared["evaluation"].get("max_users"):  # the default (all users) keeps the runs' identities of before
        shared["evaluation"].pop("max_users", None)
    specs = []
    for seed in config["seeds"]:
        for kind, key in (("baseline", "baselines"), ("strategy", "strategies")):
            for i, entry in enumerate(config[key]):
                name = entry.get("name") or (default_baseline_name(entry) if kind == "baseline"
                                             else default_strategy_name(entry))
                body = {"shared": shared, "seed": seed, "kind": kind, "entry": run_entry(entry)}
                tuned = tuning_identity(config, kind, entry, registry, f"{key}[{i}]")
                if tuned is not None:  # a tuned method's runs depend on its search
                    body["tuning"] = tuned
                identity = canonical_json(body)
                run_id = hashlib.sha256(identity.encode()).hexdigest()[:16]
                specs.append(RunSpec(run_id, name, kind, seed, entry, f"{key}[{i}]"))
    return specs


def run_entry(entry: dict) -> dict:
    """What of a method's entry changes its result: not its name, its tuning block (hashed apart) or
    its ``control`` mark (a control runs exactly what the same hand-written entry runs)."""
    return {k: v for k, v in entry.items() if k not in ("name", "tuning", "control")}


def tuning_identity(config: dict, kind: str, entry: dict, registry, path: str = "") -> dict | None:
    if not config.get("tuning") and not entry.get("tuning"):
        return None
    mt = method_tuning(config, kind, entry, path, registry=registry)
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
