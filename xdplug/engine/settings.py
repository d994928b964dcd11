"""One method's tuning settings, resolved from the config: budget, metric, sampler seed, search space,
start, and a staged plan (``xdplug/stages.py``) where the search runs in stages.

``plan.py`` reads them for run IDs (a tuned run's result depends on its search), ``tuning.py`` and
``staged.py`` run the searches.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from ..config import default_baseline_name, default_strategy_name
from ..errors import ConfigError
from ..metrics import parse_tuning_metric
from ..spaces import component_space, param_problem
from ..stages import MISSING, StagedPlan, entry_value, staged_plan


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
    #: a staged search (``tuning.staged``): its components' stages and blend; None: one flat search
    staged: StagedPlan | None = None

    @property
    def active(self) -> bool:
        return self.trials > 0 and bool(self.space)

    def identity(self) -> dict:
        """What changes the tuned runs' results (part of their run IDs)."""
        out = {"trials": self.trials, "metric": self.metric, "sampler_seed": self.sampler_seed,
               "space": self.space}
        if self.start != "sampler":  # the default keeps the run IDs of before
            out["start"] = self.start
        if self.staged is not None:
            out["staged"] = self.staged.identity()
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
    plan = staged_plan(kind, entry, registry, trials, own, glob, path or name)
    if plan is not None:
        space = plan.space
    tuning = MethodTuning(name, kind, entry, path, trials, metric, seed, space, start, metric_path, plan)
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


_MISSING = MISSING
_get = entry_value


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
