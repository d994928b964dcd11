"""The strong control set a config asks for in one line (``controls: strong``).

A transfer strategy earns its place only by beating the strongest classic models, tuned as
carefully as it is (Dacrema et al. 2019; Rendle et al. 2022). Listed by hand in every config,
one gets forgotten or under-tuned; here one key expands to the same methods everywhere, each
with the same trial budget, and that budget is never below the strategies'.

:func:`normalise` turns the shorthand (``controls: strong``) into the mapping form before the
schema check; :func:`expand` appends the control entries to ``baselines`` (each marked
``control: <set>``), so ``xdplug config show``, the run plan and the report see ordinary
baseline entries. Expanding a config that already holds its control entries (a resolved
config loaded again) checks them instead of adding them twice.
"""

from __future__ import annotations

from typing import Any

from .errors import ConfigError
from .names import default_baseline_name, default_strategy_name
from .tasks import GENERAL, NEXT_ITEM, task_of

#: the strong set, in report order: training-free and closed forms, the factor model, neighbourhoods, popularity
STRONG = ("EASE", "iALS", "RP3beta", "GF-CF", "SANSA", "ItemKNN", "Pop")
#: every control of the strong set also runs pooled (source rows stacked under the target's) where
#: the domains may share users or items; on data that share none those runs are "not applicable"
POOLED = STRONG
#: the strong set under ``dataset.protocol.task: next-item`` (the general set ranks no sequence): RecBole's
#: sequential models, the closed-form item-to-item model, popularity; each also pooled where data are shared
NEXT_ITEM_STRONG = ("SASRec", "GRU4Rec", "seq-ease", "Pop")
#: the sets a config can name; ``auto`` is ``strong`` where the config has a strategy, ``none`` otherwise
SETS = ("auto", "strong", "none")


def normalise(config: Any) -> Any:
    """``controls: strong`` (a set name) becomes ``controls: {set: strong}``; anything else is left to the schema."""
    if isinstance(config, dict) and isinstance(config.get("controls"), str):
        config = {**config, "controls": {"set": config["controls"]}}
    return config


def strategy_budget(config: dict) -> tuple[int, str | None]:
    """The largest trial budget any strategy gets (its own ``tuning.trials``, else the global one) and its name."""
    glob = (config.get("tuning") or {}).get("trials", 0)
    best, who = 0, None
    for entry in config.get("strategies") or []:
        trials = (entry.get("tuning") or {}).get("trials", glob)
        if trials > best:
            best, who = trials, entry.get("name") or default_strategy_name(entry)
    return best, who


def resolved_set(config: dict) -> str:
    """The set a config gets: ``auto`` resolves to ``strong`` where there is a strategy to control."""
    name = (config.get("controls") or {}).get("set", "auto")
    if name == "auto":
        return "strong" if config.get("strategies") else "none"
    return name


def control_entries(name: str, trials: int, pooled: bool = True, task: str = GENERAL) -> list[dict]:
    """The baseline entries of control set ``name`` for ``task``, each tuned with ``trials`` trials."""
    if name == "none":
        return []
    out = []
    for baseline in NEXT_ITEM_STRONG if task == NEXT_ITEM else STRONG:
        out.append({"baseline": baseline, "control": name, "tuning": {"trials": trials}})
        if pooled and (task == NEXT_ITEM or baseline in POOLED):
            out.append({"baseline": baseline, "pooled": True, "control": name, "tuning": {"trials": trials}})
    return out


def _label(entry: dict) -> str:
    return entry.get("name") or default_baseline_name(entry)


def expand(config: dict, source: str | None = None) -> dict:
    """``config`` with its control set resolved and its control entries in ``baselines`` (a new dict).

    Refuses a control budget below the strategies', an explicit baseline that would run a
    control again, and control entries that differ from what the set expands to.
    """
    controls = dict(config.get("controls") or {})
    name = resolved_set(config)
    if name == "none" and "trials" in controls:
        raise ConfigError("controls.trials", "sets the budget of the controls, but this config runs none "
                          f"(controls.set {controls.get('set', 'auto')!r}"
                          + (", and no strategy)" if controls.get("set", "auto") == "auto" else ")")
                          + "; set controls.set: strong or drop trials", source)
    floor, strategy = strategy_budget(config)
    if "trials" in controls and name != "none" and controls["trials"] < floor:
        raise ConfigError("controls.trials", f"{controls['trials']} would tune the controls less than strategy "
                          f"{strategy!r} ({floor} trials); give them at least {floor}, or leave trials out "
                          "(the largest strategy budget)", source)
    trials = controls.get("trials", max(floor, (config.get("tuning") or {}).get("trials", 0)))
    pooled = config["dataset"].get("align") != "none"  # nothing shared: the pooled model is the target-only one
    wanted = control_entries(name, trials, pooled, task_of(config["dataset"].get("protocol")))
    baselines = list(config.get("baselines") or [])
    written = [(i, e) for i, e in enumerate(baselines) if isinstance(e, dict) and "control" in e]
    if written:  # a resolved config loaded again: its control entries must be exactly the set's
        if [e for _, e in written] != wanted:
            last = written[min(len(written), len(wanted)) - 1][0]  # one entry too many or too few: the end
            i = next((i for (i, e), w in zip(written, wanted) if e != w), last)
            raise ConfigError(f"baselines[{i}].control", "control entries are written by the `controls` key, not "
                              f"by hand (expected {len(wanted)} entries of controls: {name}, {trials} trials each); "
                              "remove them and set controls.set / controls.trials instead", source)
    else:
        _refuse_duplicates(baselines, wanted, name, trials, source)
        baselines += wanted
    resolved = {"set": name, **({"trials": trials} if name != "none" else {})}
    return {**config, "controls": resolved, "baselines": baselines}


def _refuse_duplicates(baselines: list, wanted: list[dict], name: str, trials: int, source: str | None) -> None:
    """An explicit baseline that is a control (same baseline, same pooling, no params of its own) is an error."""
    keys = {(c["baseline"], bool(c.get("pooled"))): _label(c) for c in wanted}
    for i, entry in enumerate(baselines):
        if not isinstance(entry, dict):
            continue
        key = (entry.get("baseline"), bool(entry.get("pooled")))
        if key not in keys:
            continue
        control = keys[key]
        if not entry.get("params"):
            raise ConfigError(f"baselines[{i}]", f"{_label(entry)!r} runs the same method as the control {control!r} "
                              f"that controls: {name} adds ({trials} trials); remove baselines[{i}], give it params "
                              "of its own and a name to keep it as a variant, or set controls: none", source)
        if _label(entry) == control:
            raise ConfigError(f"baselines[{i}].name", f"{control!r} is the name of a control that controls: {name} "
                              "adds; give this variant a name of its own", source)


def control_methods(config: dict) -> list[str]:
    """The method names of the config's control entries, in config order."""
    return [_label(e) for e in config.get("baselines") or [] if isinstance(e, dict) and e.get("control")]


def describe(config: dict) -> str:
    """One line for ``xdplug config show``: the set, its budget and its methods."""
    methods = control_methods(config)
    controls = config.get("controls") or {}
    if not methods:
        return f"controls: {controls.get('set', 'none')} (no control methods)"
    return (f"controls: {controls.get('set')}, {len(methods)} methods x {controls.get('trials', 0)} trials: "
            + ", ".join(methods))
