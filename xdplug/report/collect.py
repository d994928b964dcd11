"""Assemble a report from the run store: aggregate runs, pick the reference, test significance."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..config import config_hash, output_dir
from ..engine.plan import expand, library_versions
from ..errors import RunError, storage_error
from . import write_report
from .aggregate import is_learning_flag, note_parts
from .files import write_per_user

logger = logging.getLogger(__name__)


def regime_name(dataset_cfg: dict) -> str:
    parts = []
    sparse = dataset_cfg.get("sparse")
    if sparse and sparse.get("keep", 1.0) < 1.0:
        parts.append(f"{sparse['keep']:.0%} of target train kept")
    cold = dataset_cfg.get("cold_items")
    if cold:
        parts.append(f"{cold.get('fraction', 0.2):.0%} cold items"
                     + (" (new in source too)" if cold.get("new_in_source") else " (warm in source)"))
    if dataset_cfg.get("align") == "none":
        parts.append("no shared IDs (align: none)")
    return "; ".join(parts) or "full target"


def learning_flagged(run: dict) -> bool:
    """Was the run flagged "did not learn" by the runner (its notes)?"""
    return any(is_learning_flag(note) for note in note_parts(run))


def pick_reference(runs: list[dict], metric: str) -> str | None:
    """The best baseline: highest mean test ``metric`` over its finished runs.

    Chosen on test, which favours the baselines: a strategy must beat the
    strongest one it could have been compared with. A baseline with a run that
    did not learn is no bar (the verdict leaves it out too).
    """
    scores: dict[str, list[float]] = {}
    untrained = {run["method"] for run in runs if run["status"] == "done" and learning_flagged(run)}
    for run in runs:
        if run["kind"] == "baseline" and run["status"] == "done" and run["method"] not in untrained:
            value = run["metrics"].get("test", {}).get(metric)
            if value is not None:
                scores.setdefault(run["method"], []).append(value)
    if not scores:
        return None
    return max(scores, key=lambda m: float(np.mean(scores[m])))


def declarations(config: dict, registry) -> dict:
    """What the config's evaluators declare that the report reads: the metric families where lower is
    better, every slice label with its meaning, and the cold-item slice's label (or None)."""
    evaluators = [registry.get("evaluator", name, "evaluation.evaluators")
                  for name in config["evaluation"]["evaluators"]]
    return {"lower_is_better": sorted({family for cls in evaluators for family, direction in cls.directions.items()
                                       if direction == "lower"}),
            "slices": {label: meaning for cls in evaluators for label, meaning in cls.slices.items()},
            "cold_slice": next((cls.cold_slice for cls in evaluators if cls.cold_slice), None)}


def report_data(config: dict, store, registry) -> dict:
    run_ids = [s.run_id for s in expand(config, registry)]
    declared = declarations(config, registry)
    cold_slice = declared["cold_slice"]
    runs = store.runs(run_ids, with_per_user=True)
    primary = config["evaluation"]["valid_metric"].lower()
    reference = config["evaluation"].get("reference") or pick_reference(runs, primary)
    tested = sorted({primary, primary.replace("ndcg", "recall")})
    inputs = [{"method": r["method"], "seed": r["seed"], "users": r["per_user"].get("users"),
               "per_user": r["per_user"]} for r in runs if r["status"] == "done" and r["per_user"]]
    # the cold-item slice is tested against its own reference: the methods that can score cold items
    # are not the ones that win on all items (an ID model's cold ranking is a tie)
    cold_tested = [f"{m}|{cold_slice}" for m in tested
                   if cold_slice and any(f"{m}|{cold_slice}" in r["per_user"] for r in inputs)]
    cold_reference = None
    if cold_tested:
        cold_reference = config["evaluation"].get("cold_reference") or pick_reference(runs, cold_tested[0])
    comparisons, tables = [], []
    for name in config["evaluation"]["evaluators"]:
        cls = registry.get("evaluator", name, "evaluation.evaluators")
        if cls.scope != "report" or reference is None:
            continue
        passes = [(name, tested, reference)]
        if "metrics" in cls.defaults and cold_reference is not None:
            passes.append((f"{name}, {cold_slice} vs {cold_reference}", cold_tested, cold_reference))
        for title, metrics, against in passes:
            evaluator = cls({"metrics": metrics}) if "metrics" in cls.defaults else cls({})
            rows = evaluator.compare(inputs, against)
            comparisons += rows
            # what the evaluator declares about its rows: the report needs no evaluator's name
            tables.append({"evaluator": title, "row_keys": list(cls.row_keys),
                           "p_value_keys": list(cls.p_value_keys), "rows": rows})
    seed = config["seeds"][0]
    summary = store.get_meta(f"dataset_summary_{seed}") or {}
    ks = config["evaluation"]["ks"]
    metrics = [f"{m}@{k}" for k in ks for m in ("ndcg", "recall", "mrr", "hit", "precision")]
    clean_runs = []
    for r in runs:
        clean_runs.append({k: v for k, v in r.items() if k != "per_user"})
    return {
        "name": config["name"],
        "config_hash": store.get_meta("config_hash"),
        "config": config,
        "primary_metric": primary,
        "metrics": metrics,
        "dataset": {
            "recipe": config["dataset"]["recipe"],
            "regime": regime_name(config["dataset"]),
            "domains": summary.get("domains", {}),
            "overlap": summary.get("overlap", {}),
            "split": summary.get("split", {}),
            "protocol": config["dataset"]["protocol"],
            "cold_items": summary.get("cold_items"),
            "leakage_removed": summary.get("leakage_removed"),
            "description": summary.get("recipe_description", ""),
            "warnings": list(summary.get("warnings") or []),
        },
        "seeds": config["seeds"],
        "versions": next((r["versions"] for r in runs if r.get("versions")), library_versions()),
        "device": next((r["device"] for r in runs if r.get("device")), config["device"]),
        "reference": reference,
        "cold_reference": cold_reference,
        **declared,
        "runs": clean_runs,
        "comparisons": comparisons,
        "comparison_tables": tables,
    }


def build_report(config: dict, store, registry, out_dir: str | Path | None = None) -> dict:
    data = report_data(config, store, registry)
    if not data["runs"]:  # never replace a report with an empty one
        found = sorted({r["config_hash"] for r in store.runs()})
        raise RunError(f"the run store {store.path} holds no run of this config (hash {config_hash(config)})"
                       + (f"; its runs come from config hash {', '.join(found)}: was the config changed "
                          "since those runs?" if found else "")
                       + " Run `xdplug run` with this config first.")
    tuning = store.get_meta("tuning")
    if tuning:
        data["tuning"] = tuning
    out = Path(out_dir) if out_dir else output_dir(config)
    try:  # atomic: each file is written aside, then renamed into place
        paths = write_report(data, out)
        # per (method, seed, user, metric), beside results.csv
        paths["per_user"] = write_per_user(store.runs([r["run_id"] for r in data["runs"]], with_per_user=True), out)
        return paths
    except OSError as exc:  # a full disk, a read-only folder: the previous report (if any) is left whole
        raise storage_error(exc, out, "the report", "make the folder writable or set output.dir; the runs are "
                            "kept in the run store, and `xdplug report CONFIG` writes the report again") from None
