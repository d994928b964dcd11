"""Optuna studies of a search: where they live, how a trial's values are drawn and applied, what a
finished study chose (the plumbing ``tuning.py``'s flat searches and ``staged.py``'s stages share).

Importing this module does not import Optuna.
"""

from __future__ import annotations

import copy
import hashlib
import math
import re

from ..config import canonical_json, output_dir

STORE_FILE = "tuning.sqlite"


def study_name(config: dict, mt) -> str:
    """One study per (method, tuning identity); the trial budget is not part of it (raising it resumes)."""
    identity = canonical_json({
        "shared": {k: config[k] for k in ("dataset", "train", "evaluation")},
        "seed": config["seeds"][0], "kind": mt.kind,
        "entry": {k: v for k, v in mt.entry.items() if k not in ("name", "tuning", "control")},
        **{k: v for k, v in mt.identity().items() if k != "trials"},
    })
    return f"{mt.method}-{hashlib.sha256(identity.encode()).hexdigest()[:12]}"


def storage_url(config: dict) -> str:
    url = (config.get("tuning") or {}).get("storage")
    if url:
        return url
    return f"sqlite:///{(output_dir(config) / STORE_FILE).resolve()}"


def redact(url: str) -> str:
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def apply_params(entry: dict, params: dict) -> dict:
    """A copy of ``entry`` without its ``tuning`` block and with ``params`` set at their dotted paths."""
    out = copy.deepcopy({k: v for k, v in entry.items() if k != "tuning"})
    for path, value in params.items():
        node = out
        parts = path.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[parts[-1]] = value
    return out


def suggest(trial, space: dict) -> dict:
    params = {}
    for param, dist in space.items():
        kind = dist["type"]
        if kind == "categorical":
            params[param] = trial.suggest_categorical(param, dist["choices"])
        elif kind == "int":
            params[param] = trial.suggest_int(param, dist["low"], dist["high"], log=dist.get("log", False))
        else:
            params[param] = trial.suggest_float(param, float(dist["low"]), float(dist["high"]),
                                                log=kind == "loguniform")
    return params


def open_study(config: dict, mt, url: str):
    """The method's study, new or resumed where an uninterrupted search would be (``sampler.py``)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=mt.sampler_seed, n_startup_trials=max(1, min(10, mt.trials // 2)),
                                         constant_liar=True)
    start = mt.start_params()  # a new study's first trial is the written point
    return resumed_study(study_name(config, mt), url, sampler, [start] if start else [])


def resumed_study(name: str, url: str, sampler, starts: list[dict]):
    """The study ``name``, new or resumed where an uninterrupted search would be (``sampler.py``):
    ``starts`` are enqueued while it has no trial but ones Ctrl-C cut short (an interrupted start point
    is asked again)."""
    import optuna

    from .sampler import replay_draws

    study = optuna.create_study(study_name=name, storage=url, sampler=sampler, direction="maximize",
                                load_if_exists=True)
    if not any(not t.user_attrs.get("interrupted") for t in study.get_trials(deepcopy=False)):
        for params in starts:
            study.enqueue_trial(params)
    replay_draws(study)
    return study


def counted(study) -> list:
    """Trials that spent budget: completed ones and ones whose run failed (not interrupted ones)."""
    from optuna.trial import TrialState

    out = []
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.COMPLETE or (t.state == TrialState.FAIL and "error" in t.user_attrs):
            out.append(t)
    return sorted(out, key=lambda t: t.number)


def summarize(study, mt, url: str) -> dict:
    """The report's view of one method's search: space, trials, chosen params, budget."""
    from optuna.trial import TrialState

    trials = counted(study)[: mt.trials]
    rows, best = [], None
    for t in trials:
        value = t.value if t.state == TrialState.COMPLETE else None
        row = {"number": t.number, "value": value, "params": dict(t.params), "state": t.state.name.lower()}
        if "error" in t.user_attrs:
            row["error"] = str(t.user_attrs["error"])[:300]
        if "time_s" in t.user_attrs:
            row["time_s"] = t.user_attrs["time_s"]
        rows.append(row)
        if value is not None and not math.isnan(value) and (best is None or value > best[0]):
            best = (value, t)
    out = {"space": mt.space, "trials": rows, "chosen": dict(best[1].params) if best else {},
           "budget": mt.trials, "metric": mt.metric, "direction": "maximize", "split": "valid",
           "seed": None, "study": study.study_name, "storage": redact(url),
           "sampler": f"TPE(seed={mt.sampler_seed})"}
    if best:
        out["chosen_trial"] = best[1].number
        out["best_value"] = best[0]
    elif rows:
        out["note"] = "every trial failed; the method's configured parameters are used"
    if any(t.get("state") == "fail" and "not applicable" in str(t.get("error", "")) for t in rows):
        out["note"] = "not applicable to this dataset"
    return out
