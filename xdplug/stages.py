"""Staged tuning plans: which components an ensemble's search tunes alone, with how many fits each.

An ensemble (EASE + a low-pass filter + an iALS term, say) searched as one 5-to-10-parameter
space overfits a 30-trial budget, or needs a start chosen on the same split. A staged search
(``tuning.staged: true``) spends the same fits component by component instead: each component
alone over its own parameters (the family declares the components: ``ModelFamily.tuning_stages``),
the earlier stages' choices fixed, then only the blend weights over the components' stored
validation scores (no fit per blend trial). A family whose stages refine one model (the factor
family: its iALS core, then the transfer levers on top) has no blend: the best stage's model wins. This module resolves the plan from a config entry
(no registry state, no torch); ``engine/staged.py`` runs it.

Config (per method, or ``tuning.staged`` / ``tuning.blend_trials`` for every strategy that has
stages): ``staged: true``; ``stages: {ease: 15, lowpass: 5, ials: 10}`` picks components and
splits ``trials`` among them (default: every stage, shares by parameter count + 1, or the share a
stage declares: the factor family's core gets 40 % whatever its levers);
``blend_trials`` (default :data:`DEFAULT_BLEND_TRIALS`) evaluations of the weights on stored scores.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace

from .components import TuningStage
from .errors import ConfigError
from .spec import family_class

#: evaluations of the blend weights on stored validation scores (each a ranking, no fit)
DEFAULT_BLEND_TRIALS = 64
#: the blend weights' range: the ranking depends on their ratios only, and [0, 1]^n holds every ratio
BLEND_WEIGHT = {"type": "uniform", "low": 0.0, "high": 1.0}


@dataclass(frozen=True)
class PlannedStage:
    """One stage of a plan: the family's component with the space the entry leaves open, and its fits."""

    stage: TuningStage
    space: dict
    trials: int


@dataclass(frozen=True)
class StagedPlan:
    stages: tuple[PlannedStage, ...]
    blend_trials: int
    #: False: the stages refine one model (``ModelFamily.blends_stages``): the best stage's model is
    #: the result, no blend search
    blend: bool = True
    #: ``tuning.core_levers``: the later stages' levers' values while the first stage is tuned (default off)
    core_levers: tuple = ()

    @property
    def space(self) -> dict:
        """Every stage's parameters (what the report shows and checks for edges)."""
        out = {}
        for s in self.stages:
            out.update(copy.deepcopy(s.space))
        return out

    def blend_space(self) -> dict:
        return {s.stage.weight: dict(BLEND_WEIGHT) for s in self.stages}

    def identity(self) -> dict:
        stages = {s.stage.name: s.trials for s in self.stages}
        out = {"stages": stages, "blend_trials": self.blend_trials} if self.blend else {"stages": stages, "refine": True}
        return {**out, "core_levers": dict(self.core_levers)} if self.core_levers else out


def wants_staged(own: dict, glob: dict) -> bool:
    return bool(own.get("staged", glob.get("staged", False)))


def family_stages(entry: dict, registry, path: str) -> list[TuningStage]:
    """The stages the family of a strategy entry declares for its components (empty: not an ensemble)."""
    parts = [registry.get(part, entry[part], f"{path}.{part}") for part in ("encoder", "fusion", "adaptation")]
    return list(family_class(entry, registry, path).tuning_stages(*parts))


#: what :func:`entry_value` answers for a path the entry does not set
MISSING = object()


def entry_value(entry: dict, path: str, default=MISSING):
    """The value at the dotted ``path`` of a config entry, or ``default`` where it is not set."""
    node = entry
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def _is_set(entry: dict, path: str) -> bool:
    return entry_value(entry, path) is not MISSING


def check_staged(config: dict, registry, source: str | None = None) -> None:
    """Every method's staged plan resolves (called by ``xdplug.config.validate_components``)."""
    glob = config.get("tuning") or {}
    for key, kind in (("baselines", "baseline"), ("strategies", "strategy")):
        for i, entry in enumerate(config[key]):
            own = entry.get("tuning") or {}
            staged_plan(kind, entry, registry, own.get("trials", glob.get("trials", 0)), own, glob,
                        f"{key}[{i}]", source)


def staged_plan(kind: str, entry: dict, registry, trials: int, own: dict, glob: dict, path: str,
                source: str | None = None) -> StagedPlan | None:
    """The staged plan of one method, or None when its search is flat; a ConfigError for a bad one.
    What the entry writes is fixed, not searched (as in a flat search)."""
    where = f"{path}.tuning" if "staged" in own else "tuning"
    for key in ("stages", "core_levers", "levers"):
        if key in glob:
            raise ConfigError(f"tuning.{key}", "names a family's components: set it in a strategy's own tuning block",
                              source)
    if not wants_staged(own, glob):
        for key in ("stages", "blend_trials", "core_levers", "levers"):
            if key in own:
                raise ConfigError(f"{path}.tuning.{key}", "applies to a staged search only; add staged: true", source)
        return None
    if kind != "strategy":
        if "staged" in own:
            raise ConfigError(f"{path}.tuning.staged", "a baseline is tuned in one search; staged tuning applies to "
                              "strategies whose model family declares components", source)
        return None
    if not trials:
        return None  # not tuned at all
    declared = family_stages(entry, registry, path)
    if not declared:
        if "staged" not in own:  # the global switch: strategies without stages search flat
            return None
        family = family_class(entry, registry, path).name
        raise ConfigError(f"{path}.tuning.staged", f"family {family!r} declares no components for adaptation "
                          f"{entry['adaptation']!r}, so there is nothing to tune in stages; drop staged", source)
    if own.get("start", glob.get("start", "sampler")) != "sampler":
        raise ConfigError(f"{where}.staged", "a staged search starts each component from its default space; "
                          "tuning.start: config does not apply (drop one of them)", source)
    by_name = {s.name: s for s in declared}
    split = own.get("stages")
    if split is None:
        chosen = declared
    else:
        if not isinstance(split, dict) or not split:
            raise ConfigError(f"{path}.tuning.stages", f"expected a mapping of component names to fits, e.g. "
                              f"{{{', '.join(f'{n}: 10' for n in by_name)}}}; got {split!r}", source)
        for name, n in split.items():
            if name not in by_name:
                raise ConfigError(f"{path}.tuning.stages.{name}", f"not a component of this strategy; its family "
                                  f"declares: {', '.join(by_name)}", source)
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise ConfigError(f"{path}.tuning.stages.{name}", f"expected a number of fits >= 1, got {n!r}", source)
        chosen = [s for s in declared if s.name in split]  # the family's order
    levers = _core_levers(own.get("core_levers"), chosen[0], f"{path}.tuning.core_levers", source)
    if levers:
        chosen[0] = replace(chosen[0], alone={**chosen[0].alone, **levers})
    overrides = own.get("space") or {}
    spaces = []
    for s in chosen:
        space = {p: copy.deepcopy(overrides.get(p, d)) for p, d in s.space.items() if not _is_set(entry, p)}
        spaces.append(space)
    owned = {p for s in chosen for p in s.space}
    if "levers" in own and family_class(entry, registry, path).blends_stages:
        raise ConfigError(f"{path}.tuning.levers", "applies to stages that refine one model (the factor family); "
                          "this family blends its components, each fitted alone (drop levers)", source)
    # the levers' stage: the first after the core that searches what the core switches off (the factor
    # family's transfer; refine follows it); a strategy with no lever (the family's twin) has none
    extra = _extra_levers(own.get("levers"), kind, entry, registry, owned, f"{path}.tuning.levers", source)
    at = next((i for i, s in enumerate(chosen[1:], 1) if set(s.space) & set(chosen[0].alone)), None)
    if extra and at is None:
        raise ConfigError(f"{path}.tuning.levers", f"joins the transfer levers' stage, and this search has none "
                          f"(stages: {', '.join(s.name for s in chosen)}); drop levers", source)
    if extra:
        spaces[at].update(extra)
    for param in overrides:
        if param not in owned:
            raise ConfigError(f"{path}.tuning.space.{param}", "is a parameter of no stage of this staged search "
                              f"(stages: {', '.join(s.name for s in chosen)}); a staged search tunes each "
                              "component's own parameters", source)
    if trials < len(chosen):
        raise ConfigError(f"{where}.staged" if "trials" not in own else f"{path}.tuning.trials",
                          f"{trials} fits cannot tune {len(chosen)} components one by one; give at least "
                          f"{len(chosen)}", source)
    if split is None:
        counts = default_split(trials, [len(space) for space in spaces], [s.share for s in chosen])
    else:
        counts = [split[s.name] for s in chosen]
        if sum(counts) != trials:
            raise ConfigError(f"{path}.tuning.stages", f"splits {sum(counts)} fits, but the method's budget is "
                              f"{trials} trials (the controls' budget); make them add up to {trials}", source)
    if not family_class(entry, registry, path).blends_stages:
        if "blend_trials" in own:
            raise ConfigError(f"{path}.tuning.blend_trials", "this family's stages refine one model, one after the "
                              "other; there is no blend to search (drop blend_trials)", source)
        return StagedPlan(tuple(PlannedStage(s, space, n) for s, space, n in zip(chosen, spaces, counts)), 0, False,
                          tuple(sorted(levers.items())))
    if levers:
        raise ConfigError(f"{path}.tuning.core_levers", "applies to stages that refine one model (the factor family); "
                          "this family blends its components, each fitted alone (drop core_levers)", source)
    blend = own.get("blend_trials", glob.get("blend_trials", DEFAULT_BLEND_TRIALS))
    if isinstance(blend, bool) or not isinstance(blend, int) or blend < len(chosen) + 1:
        raise ConfigError(f"{where}.blend_trials", f"expected at least {len(chosen) + 1} (each component alone, "
                          f"then all of them), got {blend!r}", source)
    return StagedPlan(tuple(PlannedStage(s, space, n) for s, space, n in zip(chosen, spaces, counts)), blend)


def _extra_levers(levers, kind: str, entry: dict, registry, owned: set, path: str, source: str | None) -> dict:
    """``tuning.levers``: further options the levers' stage searches beside the family's levers (e.g. the
    factor family's ``params.model.offset_reg``: the target's own offset on the shared factors),
    each from its default (off) in the earlier stages. Off by default: the family's levers only."""
    from .spaces import check_space, param_problem

    if levers is None:
        return {}
    if not isinstance(levers, dict) or not levers:
        raise ConfigError(path, f"expected a mapping of parameter paths to distributions, got {levers!r}", source)
    check_space(levers, path, source)
    for param, dist in levers.items():
        if param in owned:
            raise ConfigError(f"{path}.{param}", "is already searched by a stage; tuning.space sets its range", source)
        if _is_set(entry, param):
            raise ConfigError(f"{path}.{param}", "is written by the entry, so it is fixed; drop one of them", source)
        problem = param_problem(kind, entry, param, dist, registry)
        if problem:
            raise ConfigError(f"{path}.{param}", problem, source)
    return copy.deepcopy(levers)


def _core_levers(levers, first: TuningStage, path: str, source: str | None) -> dict:
    """``tuning.core_levers``: values the first stage's fits give the levers it switches off (its
    ``alone``), e.g. the factor family's joint at ``source_weight: 1`` (pooled) instead of 0 (target
    only), where the later levers' optimum core differs from the target-only one. Only the
    first stage's switches may be named; absent: the family's off values."""
    if levers is None:
        return {}
    if not isinstance(levers, dict) or not levers:
        raise ConfigError(path, f"expected a mapping of the first stage's levers to values, e.g. "
                          f"{{{', '.join(f'{p}: 1.0' for p in first.alone) or '...'}}}; got {levers!r}", source)
    for param, value in levers.items():
        if param not in first.alone:
            raise ConfigError(f"{path}.{param}", f"is not a lever stage {first.name!r} switches off; it switches: "
                              f"{', '.join(first.alone) or 'none'}", source)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{path}.{param}", f"expected a number, got {value!r}", source)
    return {p: float(v) for p, v in levers.items()}


def default_split(trials: int, sizes: list[int], shares: list[float | None] | None = None) -> list[int]:
    """``trials`` shared in proportion to each stage's parameter count + 1 (largest remainders), at
    least 1 each; a stage with nothing left to search gets exactly 1 (a fit of its written values). A
    stage with a declared ``share`` (a fraction of ``trials``) gets that many fits first, rounded."""
    shares = shares or [None] * len(sizes)
    fixed = [1 if size == 0 else 0 for size in sizes]
    for i, (size, share) in enumerate(zip(sizes, shares)):
        if size and share is not None:
            fixed[i] = max(1, round(trials * share))
    open_ = [i for i, size in enumerate(sizes) if size and shares[i] is None]
    while trials - sum(fixed) < len(open_) and max(fixed) > 1:  # a share leaves every other stage one fit
        fixed[fixed.index(max(fixed))] -= 1
    left = trials - sum(fixed)
    if not open_:
        return fixed
    weights = [sizes[i] + 1 for i in open_]
    exact = [left * w / sum(weights) for w in weights]
    counts = [max(1, math.floor(x)) for x in exact]
    order = sorted(range(len(open_)), key=lambda j: exact[j] - math.floor(exact[j]), reverse=True)
    j = 0
    while sum(counts) < left:
        counts[order[j % len(order)]] += 1
        j += 1
    while sum(counts) > left:  # the floor of 1 took more than the share gave: take back from the largest
        counts[counts.index(max(counts))] -= 1
    out = list(fixed)
    for i, n in zip(open_, counts):
        out[i] = n
    return out


def stage_problems(stages: list[TuningStage], blend: bool = True) -> list[str]:
    """What is wrong with a family's declared stages (``xdplug.testing.check_family``): repeated
    names, an invalid space, a value path that is not ``params....``, a blend weight a stage searches,
    a blending family's stage without a weight or a refining family's (``blend`` False) with one."""
    from .spaces import check_space

    out = [] if len({s.name for s in stages}) == len(stages) else ["tuning_stages names repeat"]
    searched = {p for s in stages for p in s.space}
    for s in stages:
        try:
            check_space(s.space, f"tuning_stages.{s.name}.space")
        except ConfigError as exc:
            out.append(str(exc))
        named = [*([s.weight] if s.weight is not None else []), *s.alone, *s.off]
        out += [f"stage {s.name!r} names {p!r}, not a parameter path (params....)" for p in named
                if not (isinstance(p, str) and p.startswith("params."))]
        if (s.weight is None) == blend:
            out.append(f"stage {s.name!r} " + ("has no blend weight, but the family blends its stages" if blend
                                               else "has a blend weight, but the family's stages refine one model"))
        if s.weight is not None and s.weight in searched:
            out.append(f"stage {s.name!r}'s weight {s.weight!r} is also searched by a stage")
        if s.share is not None and not (isinstance(s.share, (int, float)) and 0 < s.share < 1):
            out.append(f"stage {s.name!r}'s share must be a fraction in (0, 1), got {s.share!r}")
    if sum(s.share for s in stages if isinstance(s.share, (int, float))) >= 1:
        out.append("the stages' shares add up to 1 or more, leaving no fit for the others")
    return out
