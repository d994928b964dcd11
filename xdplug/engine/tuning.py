"""Hyper-parameter search with Optuna: an equal trial budget per method, selection on validation only.

How it works (``run_benchmark`` calls :func:`tune_methods` before the grid):

* Every baseline and strategy with a search space gets ``tuning.trials``
  trials (the same budget for every method unless its own ``tuning.trials``
  says otherwise; the report lists each method's budget).
* A trial trains the method with the trial's parameters applied to its config
  entry (dotted paths such as ``params.reg_weight`` or ``params.model.dim``) on
  the split of the **first seed**, and evaluates the **validation split
  only**: the runs carry ``evaluate_test=False``, so the test split is never
  ranked while searching.
* One Optuna study per (method, tuning identity), TPE sampler seeded with
  ``tuning.sampler_seed``, stored in ``sqlite:///<output.dir>/tuning.sqlite``
  (or any SQLAlchemy URL in ``tuning.storage``) with ``load_if_exists``: a
  second ``xdplug run`` resumes the search. The identity leaves the trial
  count out, so raising ``trials`` adds trials to the same study.
* The chosen parameters (best validation value among the first ``trials``
  counted trials) are applied to the method's grid runs, which compute test
  metrics once per seed as usual. The study's trials, the space, the choice
  and the budget go to the run store's ``tuning`` meta for the report.

A trial whose run fails counts against the budget (it was spent); a trial cut
short by Ctrl-C does not: it is marked FAIL (user attribute ``interrupted``),
never left RUNNING, and the KeyboardInterrupt goes on up (``xdplug run``
exits 130). Nothing on a trial's path catches KeyboardInterrupt.

Importing this module does not import Optuna.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import math
import re
from dataclasses import dataclass, replace
from pathlib import Path

from ..config import canonical_json, default_baseline_name, default_strategy_name, output_dir
from ..errors import ConfigError
from ..metrics import parse_tuning_metric
from ..progress import progress_bar
from ..spaces import component_space, configured, param_problem

logger = logging.getLogger(__name__)

STORE_FILE = "tuning.sqlite"


# -- config ---------------------------------------------------------------------------------


# -- per-method settings ----------------------------------------------------------------------


@dataclass
class MethodTuning:
    method: str
    kind: str
    entry: dict
    path: str
    trials: int
    metric: str
    sampler_seed: int
    space: dict
    #: ``config``: the first trial evaluates the values the method's entry writes (a search that starts
    #: from a known point, e.g. a study's optimum); ``sampler``: TPE's own start
    start: str = "sampler"
    #: the config key that set ``metric`` (named when no run records it)
    metric_path: str = "evaluation.valid_metric"

    @property
    def active(self) -> bool:
        return self.trials > 0 and bool(self.space)

    def identity(self) -> dict:
        """What changes the tuned runs' results (part of their run IDs)."""
        out = {"trials": self.trials, "metric": self.metric, "sampler_seed": self.sampler_seed,
               "space": self.space}
        if self.start != "sampler":  # the default keeps the run IDs of before
            out["start"] = self.start
        return out

    def start_params(self) -> dict:
        """The first trial's values under ``start: config``: what the entry writes for the searched params."""
        if self.start != "config":
            return {}
        out = {}
        for param, dist in self.space.items():
            value = _get(self.entry, param)
            if value is _MISSING:
                continue
            if not _inside(value, dist):
                raise ConfigError(f"{self.path or self.method}.tuning.start", f"starts the search from the written "
                                  f"{param} = {value!r}, which lies outside its search space {dist}")
            out[param] = value
        return out


def method_tuning(config: dict, kind: str, entry: dict, path: str, registry) -> MethodTuning | None:
    """The effective tuning of one method, or None when the config tunes nothing for it."""
    glob = config.get("tuning") or {}
    own = entry.get("tuning") or {}
    if not glob and not own:
        return None
    trials = own.get("trials", glob.get("trials", 0))
    name = entry.get("name") or (default_baseline_name(entry) if kind == "baseline" else default_strategy_name(entry))
    metric_path = (f"{path or name}.tuning.metric" if "metric" in own
                   else "tuning.metric" if "metric" in glob else "evaluation.valid_metric")
    metric = _tuning_metric(own.get("metric", glob.get("metric", config["evaluation"]["valid_metric"])), metric_path)
    seed = own.get("sampler_seed", glob.get("sampler_seed", 0))
    start = own.get("start", glob.get("start", "sampler"))
    if "space" in own:
        space = copy.deepcopy(own["space"])
    else:
        space = component_space(kind, entry, registry)
        for param, dist in (glob.get("space") or {}).items():
            if param_problem(kind, entry, param, dist, registry) is None:
                space[param] = copy.deepcopy(dist)
        # what the entry sets explicitly is fixed, not searched (its own tuning.space can still search it)
        space = {p: d for p, d in space.items() if not _is_set(entry, p)}
    tuning = MethodTuning(name, kind, entry, path, trials, metric, seed, space, start, metric_path)
    tuning.start_params()  # a written start outside the space is refused before any work
    return tuning


def _tuning_metric(name: str, path: str) -> str:
    """The validation metric key a search maximises, spelled as the runs record it."""
    metric, k, slice_ = parse_tuning_metric(name, path)
    return f"{metric}@{k}" + (f"|{slice_}" if slice_ else "")


def missing_metric(mt: MethodTuning, valid: dict) -> ConfigError:
    """A search's metric that its first finished trial did not record: stop with what it did record
    (slices exist only where an evaluator and the data make them, e.g. cold items)."""
    head = mt.metric.partition("|")[0]
    near = sorted(k for k in valid if k == head or k.startswith(head + "|"))
    return ConfigError(mt.metric_path, f"{mt.method}: {mt.metric!r} is not among the validation metrics this run records; "
                       f"{head}'s are: {', '.join(near) or 'none'}")


#: what ``_get`` answers for a path the entry does not set
_MISSING = object()


def _get(entry: dict, path: str, default=_MISSING):
    """The value at the dotted ``path`` of ``entry``, or ``default`` where it is not set."""
    node = entry
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def _inside(value, dist: dict) -> bool:
    """Whether ``value`` is a point of the distribution ``dist`` (its choices, or within its bounds)."""
    if dist["type"] == "categorical":
        return value in dist["choices"]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if dist["type"] == "int" and not float(value).is_integer():
        return False
    return float(dist["low"]) <= float(value) <= float(dist["high"])


def _is_set(entry: dict, path: str) -> bool:
    return _get(entry, path) is not _MISSING


def study_name(config: dict, mt: MethodTuning) -> str:
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


# -- the search ---------------------------------------------------------------------------------


def _open_study(config: dict, mt: MethodTuning, url: str):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=mt.sampler_seed, n_startup_trials=max(1, min(10, mt.trials // 2)),
                                         constant_liar=True)
    study = optuna.create_study(study_name=study_name(config, mt), storage=url, sampler=sampler,
                                direction="maximize", load_if_exists=True)
    start = mt.start_params()
    if start and not study.get_trials(deepcopy=False):  # a new study: its first trial is the written point
        study.enqueue_trial(start)
    return study


def _counted(study) -> list:
    """Trials that spent budget: completed ones and ones whose run failed (not interrupted ones)."""
    from optuna.trial import TrialState

    out = []
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.COMPLETE or (t.state == TrialState.FAIL and "error" in t.user_attrs):
            out.append(t)
    return sorted(out, key=lambda t: t.number)


def summarize(study, mt: MethodTuning, url: str) -> dict:
    """The report's view of one method's search: space, trials, chosen params, budget."""
    from optuna.trial import TrialState

    trials = _counted(study)[: mt.trials]
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


def tune_methods(config: dict, store, executor, specs: list, todo: list, registry,
                 progress: bool = True) -> list:
    """Run the missing trials of every tuned method, record the ``tuning`` meta, return ``todo`` tuned.

    ``specs`` is the grid (possibly narrowed by ``--only``); ``todo`` the runs
    still to do. The returned runs carry each method's chosen parameters. A
    method whose grid runs are all finished gets no new trials (its finished
    runs used the choice of the study as it was).
    """
    if not configured(config):
        if store.get_meta("tuning"):
            store.set_meta("tuning", {})
        return todo
    seed = config["seeds"][0]
    url = storage_url(config)
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    methods: dict[str, MethodTuning] = {}
    for spec in specs:
        if spec.method not in methods:
            methods[spec.method] = method_tuning(config, spec.kind, spec.entry, spec.path, registry)
    pending_methods = {s.method for s in todo}
    meta = {k: v for k, v in (store.get_meta("tuning") or {}).items() if k in methods}
    studies, remaining = {}, {}
    for name, mt in methods.items():
        if mt is None or not mt.active:
            note = ("not tuned: no tuning block applies" if mt is None else
                    "tuning disabled for this method (trials: 0)" if mt.trials == 0 else
                    "no search space: nothing to tune")
            meta[name] = {"space": {} if mt is None else mt.space, "trials": [], "chosen": {}, "budget": 0,
                          "note": note}
            continue
        studies[name] = _open_study(config, mt, url)
        left = max(0, mt.trials - len(_counted(studies[name])))
        if name in pending_methods:
            remaining[name] = left
        elif left and name in meta:
            studies.pop(name)  # finished runs used an earlier state of the search: keep its record
    total = sum(remaining.values())
    slots = max(1, int(getattr(executor, "slots", 1) or 1))
    bar = progress_bar(total, "tuning", unit="trial", disable=not progress or total == 0)
    asked: dict[str, tuple] = {}  # run_id -> (method, trial, params)
    failures = 0
    try:
        while any(remaining.values()):
            active = [m for m in methods if remaining.get(m)]
            per_method = max(1, math.ceil(slots / len(active)))
            batch = []
            for name in active:
                mt = methods[name]
                for _ in range(min(per_method, remaining[name])):
                    trial = studies[name].ask()
                    run_id = f"{studies[name].study_name}#{trial.number}"
                    asked[run_id] = (name, trial, None)  # from here on an interrupt marks it FAIL
                    params = suggest(trial, mt.space)
                    spec = next(s for s in specs if s.method == name)
                    batch.append(replace(spec, run_id=run_id, seed=seed, entry=apply_params(mt.entry, params),
                                         evaluate_test=False))
                    asked[run_id] = (name, trial, params)
                    remaining[name] -= 1

            def on_start(spec):
                pass

            def on_done(spec, record):
                nonlocal failures
                from optuna.trial import TrialState

                name, trial, params = asked[spec.run_id]  # popped once told: an interrupt before marks it FAIL
                study, mt = studies[name], methods[name]
                trial.set_user_attr("time_s", record.get("time_s"))
                status = record.get("status")
                valid = (record.get("metrics") or {}).get("valid", {})
                value = valid.get(mt.metric)
                if status == "done" and value is None:
                    raise missing_metric(mt, valid)
                if status == "done" and math.isfinite(value):
                    study.tell(trial, float(value))
                else:
                    failures += 1
                    reason = record.get("error") or record.get("notes") or f"status {status}"
                    if status == "not_applicable":
                        reason = f"not applicable: {reason}"
                        remaining[name] = 0
                    elif status == "done":
                        reason = f"validation metric {mt.metric!r} is {value} (no user to average over)"
                    trial.set_user_attr("error", str(reason).splitlines()[0][:500])
                    study.tell(trial, state=TrialState.FAIL)
                asked.pop(spec.run_id)
                bar.update(1)
                bar.set_postfix_str(f"{name} #{trial.number} failed={failures}")

            executor.run(batch, on_start, on_done,
                         progress=(lambda m: bar.set_postfix_str(m)) if progress else None)
    except BaseException:  # Ctrl-C (KeyboardInterrupt) or a failing callback: re-raised below
        from optuna.trial import TrialState

        for name, trial, _ in asked.values():  # interrupted: leave no running trial; not counted
            try:  # a trial told already (interrupted right after its tell) refuses both: skipped
                trial.set_user_attr("interrupted", True)
                studies[name].tell(trial, state=TrialState.FAIL)
            except Exception:  # pragma: no cover - best effort on the way out
                pass
        raise
    finally:
        bar.close()
    chosen = {}
    for name, study in studies.items():
        summary = summarize(study, methods[name], url)
        summary["seed"] = seed
        meta[name] = summary
        chosen[name] = summary["chosen"]
    store.set_meta("tuning", {name: meta[name] for name in methods if name in meta})
    out = []
    for spec in todo:
        mt = methods.get(spec.method)
        if mt is not None and mt.active:
            spec = replace(spec, entry=apply_params(spec.entry, chosen.get(spec.method, {})))
        out.append(spec)
    return out
