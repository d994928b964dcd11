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

from .config import canonical_json, default_baseline_name, default_strategy_name, parse_metric
from .errors import ConfigError

logger = logging.getLogger(__name__)

DIST_TYPES = ("loguniform", "uniform", "int", "categorical")
DIST_KEYS = ("type", "low", "high", "log", "choices")
STORE_FILE = "tuning.sqlite"

_LR = {"type": "loguniform", "low": 1.0e-4, "high": 1.0e-2}
_EMB = {"type": "categorical", "choices": [32, 64, 128]}

#: Default search spaces, by component kind and name (mirrored in ``configs/search_spaces.yaml``).
#: A component class may declare its own ``search_space`` attribute instead; it takes precedence.
DEFAULT_SPACES: dict[str, dict[str, dict]] = {
    "baseline": {
        "ItemKNN": {"params.k": {"type": "int", "low": 10, "high": 500, "log": True},
                    "params.shrink": {"type": "categorical", "choices": [0.0, 1.0, 10.0, 100.0]}},
        "BPR": {"params.learning_rate": _LR, "params.embedding_size": _EMB},
        "LightGCN": {"params.learning_rate": _LR, "params.embedding_size": _EMB,
                     "params.n_layers": {"type": "int", "low": 1, "high": 4},
                     "params.reg_weight": {"type": "loguniform", "low": 1.0e-6, "high": 1.0e-2}},
        "NGCF": {"params.learning_rate": _LR, "params.embedding_size": _EMB,
                 "params.reg_weight": {"type": "loguniform", "low": 1.0e-6, "high": 1.0e-2}},
        "EASE": {"params.reg_weight": {"type": "loguniform", "low": 1.0, "high": 1.0e4}},
        "MultiVAE": {"params.learning_rate": _LR,
                     "params.dropout_prob": {"type": "uniform", "low": 0.1, "high": 0.7},
                     "params.anneal_cap": {"type": "uniform", "low": 0.1, "high": 0.5}},
        "MultiDAE": {"params.learning_rate": _LR,
                     "params.dropout_prob": {"type": "uniform", "low": 0.1, "high": 0.7}},
        "NeuMF": {"params.learning_rate": _LR,
                  "params.dropout_prob": {"type": "uniform", "low": 0.0, "high": 0.5}},
        "SimpleX": {"params.learning_rate": _LR, "params.embedding_size": _EMB,
                    "params.margin": {"type": "uniform", "low": 0.0, "high": 0.9}},
        "ENMF": {"params.learning_rate": _LR,
                 "params.dropout_prob": {"type": "uniform", "low": 0.3, "high": 0.9},
                 "params.negative_weight": {"type": "uniform", "low": 0.05, "high": 0.9}},
        "DMF": {"params.learning_rate": _LR},
        "NNCF": {"params.learning_rate": _LR},
        "LINE": {"params.learning_rate": _LR, "params.embedding_size": _EMB},
        "SpectralCF": {"params.learning_rate": _LR,
                       "params.reg_weight": {"type": "loguniform", "low": 1.0e-5, "high": 1.0e-1}},
        "GCMC": {"params.learning_rate": _LR,
                 "params.dropout_prob": {"type": "uniform", "low": 0.0, "high": 0.6}},
        "text-knn": {"params.neighbors": {"type": "categorical", "choices": [0, 20, 50, 100, 200]}},
        # Pop and source-pop have no hyper-parameters: no trials.
    },
    # every strategy: the transfer model's own options
    "model": {
        "params.model.learning_rate": _LR,
        "params.model.dim": {"type": "categorical", "choices": [32, 64, 128]},
        "params.model.weight_decay": {"type": "categorical", "choices": [0.0, 1.0e-6, 1.0e-5, 1.0e-4]},
    },
    "adaptation": {
        "finetune": {"params.adaptation.target_learning_rate": _LR},
        "l2sp": {"params.adaptation.weight": {"type": "loguniform", "low": 1.0e-4, "high": 1.0}},
        "joint": {"params.adaptation.source_weight": {"type": "uniform", "low": 0.1, "high": 1.0}},
        "dann": {"params.adaptation.weight": {"type": "loguniform", "low": 1.0e-3, "high": 1.0}},
        "mmd": {"params.adaptation.weight": {"type": "loguniform", "low": 1.0e-3, "high": 10.0}},
        "coral": {"params.adaptation.weight": {"type": "loguniform", "low": 1.0e-2, "high": 10.0}},
        "consistency": {"params.adaptation.weight": {"type": "loguniform", "low": 1.0e-2, "high": 10.0}},
    },
    "fusion": {
        "weighted": {"params.fusion.alpha": {"type": "uniform", "low": 0.0, "high": 1.0}},
    },
    "encoder": {},
}


#: Extra dimensions of a pooled baseline (``pooled: true``): how much the source's rows count.
POOLED_SPACES: dict[str, dict] = {
    "EASE": {"params.source_weight": {"type": "loguniform", "low": 0.005, "high": 1.0}},
}

#: Strategies with ``params.model.family: ease`` (closed form, model/linear.py): EASE's own
#: regularisation and the adaptation's weight on the Gram-matrix scale.
EASE_FAMILY_SPACES: dict[str, dict] = {
    "model": {"params.model.reg_weight": {"type": "loguniform", "low": 10.0, "high": 5000.0},
              "params.model.source_reg_weight": {"type": "loguniform", "low": 10.0, "high": 10000.0}},
    "adaptation": {
        "l2sp": {"params.adaptation.weight": {"type": "loguniform", "low": 1.0, "high": 10000.0}},
        "joint": {"params.adaptation.source_weight": {"type": "loguniform", "low": 0.005, "high": 1.0}},
    },
}


# -- config ---------------------------------------------------------------------------------


def configured(config: dict) -> bool:
    """Does the config ask for any tuning (globally or for one method)?"""
    if (config.get("tuning") or {}).get("trials", 0) > 0:
        return True
    return any((e.get("tuning") or {}).get("trials", 0) > 0
               for key in ("baselines", "strategies") for e in config.get(key, []))


def check_space(space, path: str, source: str | None = None) -> None:
    """Structural checks of a search space (no registry needed); named errors."""
    if not isinstance(space, dict):
        raise ConfigError(path, f"expected a mapping of parameter paths to distributions, got {space!r}", source)
    for param, dist in space.items():
        where = f"{path}.{param}"
        if not isinstance(param, str) or not param.startswith("params."):
            raise ConfigError(where, "a parameter path starts with 'params.' (e.g. params.reg_weight, "
                              "params.model.dim, params.adaptation.weight)", source)
        if not isinstance(dist, dict):
            raise ConfigError(where, f"expected a mapping like {{type: loguniform, low: 1, high: 1000}}, got {dist!r}",
                              source)
        for key in dist:
            if key not in DIST_KEYS:
                raise ConfigError(f"{where}.{key}", "unknown key; allowed here: " + ", ".join(DIST_KEYS), source)
        kind = dist.get("type")
        if kind not in DIST_TYPES:
            raise ConfigError(f"{where}.type", f"expected one of {', '.join(map(repr, DIST_TYPES))}, got {kind!r}",
                              source)
        if kind == "categorical":
            choices = dist.get("choices")
            if not isinstance(choices, list) or not choices:
                raise ConfigError(f"{where}.choices", f"expected a non-empty list, got {choices!r}", source)
            for c in choices:
                if c is not None and not isinstance(c, (bool, int, float, str)):
                    raise ConfigError(f"{where}.choices", f"choices must be numbers, strings, booleans or null; "
                                      f"got {c!r}", source)
            for key in ("low", "high", "log"):
                if key in dist:
                    raise ConfigError(f"{where}.{key}", "not used by type: categorical (give choices)", source)
            continue
        if "choices" in dist:
            raise ConfigError(f"{where}.choices", f"only type: categorical takes choices (this is {kind})", source)
        for key in ("low", "high"):
            value = dist.get(key)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{where}.{key}", f"expected a number, got {value!r}", source)
            if kind == "int" and not isinstance(value, int):
                raise ConfigError(f"{where}.{key}", f"type: int needs integer bounds, got {value!r}", source)
        if not dist["low"] < dist["high"]:
            raise ConfigError(where, f"expected low < high, got low={dist['low']!r}, high={dist['high']!r}", source)
        log = dist.get("log", False)
        if not isinstance(log, bool):
            raise ConfigError(f"{where}.log", f"expected true or false, got {log!r}", source)
        if log and kind != "int":
            raise ConfigError(f"{where}.log", "only type: int takes log (use type: loguniform for floats)", source)
        if (kind == "loguniform" or log) and dist["low"] <= 0:
            raise ConfigError(f"{where}.low", f"a log scale needs low > 0, got {dist['low']!r}", source)


def check_block(block: dict | None, path: str, config: dict, source: str | None = None) -> None:
    """Semantic checks of a ``tuning`` block (global or per method)."""
    if not block:
        return
    if block.get("trials", 0) < 0:
        raise ConfigError(f"{path}.trials", f"expected 0 (no tuning) or more trials, got {block['trials']!r}", source)
    if "metric" in block:
        _, k = parse_metric(block["metric"], f"{path}.metric", source)
        if k not in config["evaluation"]["ks"]:
            raise ConfigError(f"{path}.metric", f"K={k} must be one of evaluation.ks {config['evaluation']['ks']}",
                              source)
    if "space" in block:
        check_space(block["space"], f"{path}.space", source)
    storage = block.get("storage")
    if storage is not None and "://" not in storage:
        raise ConfigError(f"{path}.storage", f"expected an SQLAlchemy URL such as sqlite:///tuning.sqlite or "
                          f"postgresql://user@host/db, got {storage!r}", source)


def validate(config: dict, source: str | None = None) -> None:
    """Structural checks of every tuning block (called by :func:`xdplug.config.validate`)."""
    check_block(config.get("tuning"), "tuning", config, source)
    for key in ("baselines", "strategies"):
        for i, entry in enumerate(config[key]):
            check_block(entry.get("tuning"), f"{key}[{i}].tuning", config, source)


def _component_params(kind: str, entry: dict, registry) -> dict[str, dict | None]:
    """``params`` sub-path prefix -> the option defaults it may set (None: any key)."""
    from .model.transfer import ModelOptions

    from .components import declared_options

    if kind == "baseline":
        cls = registry.get("baseline", entry["baseline"])
        return {"params": None if cls.open_params else declared_options(cls)}
    out = {"params.model": declared_options(ModelOptions)}
    for part in ("encoder", "fusion", "adaptation"):
        cls = registry.get(part, entry[part])
        out[f"params.{part}"] = None if cls.open_params else declared_options(cls)
    return out


def param_problem(kind: str, entry: dict, param: str, dist: dict, registry) -> str | None:
    """Why ``param`` cannot be tuned for this method (None when it can)."""
    prefix, _, key = param.rpartition(".")
    allowed = _component_params(kind, entry, registry)
    if prefix not in allowed:
        where = "params.KEY" if kind == "baseline" else "params.model.KEY, params.encoder.KEY, " \
                                                       "params.fusion.KEY or params.adaptation.KEY"
        return f"not a parameter path of a {kind}; expected {where}"
    defaults = allowed[prefix]
    if defaults is None:
        return None
    if key not in defaults:
        return f"no such option; allowed under {prefix}: {', '.join(sorted(defaults)) or '(none)'}"
    option = defaults[key]
    default = option.default
    integer = option.types() == (int,) or isinstance(default, int) and not isinstance(default, bool)
    if integer and dist.get("type") in ("uniform", "loguniform"):
        return f"is an integer option (default {default!r}); use type: int or categorical"
    # every value the search can draw must be a value the option accepts
    for value in (dist.get("choices") or []) + [dist[b] for b in ("low", "high") if b in dist]:
        try:
            option.check(value, param)
        except ConfigError as exc:
            return f"the search space reaches {value!r}, outside the option: {str(exc).split(': ', 1)[-1]}"
    return None


def component_space(kind: str, entry: dict, registry) -> dict:
    """The default search space of a method: component ``search_space`` attributes or DEFAULT_SPACES."""

    def of(part: str, name: str) -> dict:
        cls = registry.get(part, name)
        own = getattr(cls, "search_space", None)
        if own is not None:
            return copy.deepcopy(own)
        return copy.deepcopy(DEFAULT_SPACES.get(part, {}).get(name, {}))

    if kind == "baseline":
        space = of("baseline", entry["baseline"])
        if entry.get("pooled"):
            space.update(copy.deepcopy(POOLED_SPACES.get(entry["baseline"], {})))
        return space
    if ((entry.get("params") or {}).get("model") or {}).get("family") == "ease":
        space = copy.deepcopy(EASE_FAMILY_SPACES["model"])
        space.update(copy.deepcopy(EASE_FAMILY_SPACES["adaptation"].get(entry["adaptation"], {})))
        return space
    space = copy.deepcopy(DEFAULT_SPACES["model"])
    for part in ("encoder", "fusion", "adaptation"):
        space.update(of(part, entry[part]))
    return space


def validate_components(config: dict, registry, source: str | None = None) -> None:
    """Every space path names an option of its method (called by ``xdplug.config.validate_components``)."""
    if not configured(config) and not (config.get("tuning") or {}).get("space"):
        return
    glob = (config.get("tuning") or {}).get("space") or {}
    used = set()
    for key, kind in (("baselines", "baseline"), ("strategies", "strategy")):
        for i, entry in enumerate(config[key]):
            own = (entry.get("tuning") or {}).get("space")
            for param, dist in (own or {}).items():
                problem = param_problem(kind, entry, param, dist, registry)
                if problem:
                    raise ConfigError(f"{key}[{i}].tuning.space.{param}", problem, source)
            if own is None:
                used |= {p for p, d in glob.items() if param_problem(kind, entry, p, d, registry) is None}
    for param in glob:
        if param not in used:
            raise ConfigError(f"tuning.space.{param}", "applies to no method of this config (no baseline or "
                              "strategy without its own tuning.space has this option)", source)


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

    @property
    def active(self) -> bool:
        return self.trials > 0 and bool(self.space)

    def identity(self) -> dict:
        """What changes the tuned runs' results (part of their run IDs)."""
        return {"trials": self.trials, "metric": self.metric, "sampler_seed": self.sampler_seed,
                "space": self.space}


def method_tuning(config: dict, kind: str, entry: dict, path: str = "", registry=None) -> MethodTuning | None:
    """The effective tuning of one method, or None when the config tunes nothing for it."""
    glob = config.get("tuning") or {}
    own = entry.get("tuning") or {}
    if not glob and not own:
        return None
    trials = own.get("trials", glob.get("trials", 0))
    name = entry.get("name") or (default_baseline_name(entry) if kind == "baseline" else default_strategy_name(entry))
    metric = own.get("metric", glob.get("metric", config["evaluation"]["valid_metric"])).lower()
    seed = own.get("sampler_seed", glob.get("sampler_seed", 0))
    if "space" in own:
        space = copy.deepcopy(own["space"])
    else:
        if registry is None:
            from .plugins import get_plugins

            registry = get_plugins().registry
        space = component_space(kind, entry, registry)
        for param, dist in (glob.get("space") or {}).items():
            if param_problem(kind, entry, param, dist, registry) is None:
                space[param] = copy.deepcopy(dist)
        # what the entry sets explicitly is fixed, not searched (its own tuning.space can still search it)
        space = {p: d for p, d in space.items() if not _is_set(entry, p)}
    return MethodTuning(name, kind, entry, path, trials, metric, seed, space)


def _is_set(entry: dict, path: str) -> bool:
    node = entry
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def study_name(config: dict, mt: MethodTuning) -> str:
    """One study per (method, tuning identity); the trial budget is not part of it (raising it resumes)."""
    identity = canonical_json({
        "shared": {k: config[k] for k in ("dataset", "train", "evaluation")},
        "seed": config["seeds"][0], "kind": mt.kind,
        "entry": {k: v for k, v in mt.entry.items() if k not in ("name", "tuning")},
        "space": mt.space, "metric": mt.metric, "sampler_seed": mt.sampler_seed,
    })
    return f"{mt.method}-{hashlib.sha256(identity.encode()).hexdigest()[:12]}"


def storage_url(config: dict) -> str:
    url = (config.get("tuning") or {}).get("storage")
    if url:
        return url
    from .runner import output_dir

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
    return optuna.create_study(study_name=study_name(config, mt), storage=url, sampler=sampler,
                               direction="maximize", load_if_exists=True)


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


def tune_methods(config: dict, store, executor, specs: list, todo: list, registry=None,
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
    from tqdm import tqdm

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
    bar = tqdm(total=total, desc="tuning", unit="trial", disable=not progress or total == 0, dynamic_ncols=True)
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
                value = (record.get("metrics") or {}).get("valid", {}).get(mt.metric)
                if status == "done" and value is not None:
                    study.tell(trial, float(value))
                else:
                    failures += 1
                    reason = record.get("error") or record.get("notes") or f"status {status}"
                    if status == "not_applicable":
                        reason = f"not applicable: {reason}"
                        remaining[name] = 0
                    elif status == "done":
                        reason = f"validation metric {mt.metric!r} missing from the run's metrics"
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
