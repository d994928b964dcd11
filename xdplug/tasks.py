"""The recommendation tasks a benchmark can run, and which methods apply to each.

``dataset.protocol.task`` picks one: ``general`` (the default: a set of held-out items per
user, docs/protocol.md section 1) or ``next-item`` (each user's interactions in time order, the
next one held out, section 3). A method declares the tasks it ranks for (``Baseline.tasks``; a
strategy's model family, ``ModelFamily.tasks``);
a config that asks a method for another task is refused here, before any data is prepared,
instead of producing a number that measures something else (a set-based model never reads the
order of a sequence; a sequence model has no meaning on a shuffled split).
"""

from __future__ import annotations

from .errors import ConfigError

GENERAL = "general"
NEXT_ITEM = "next-item"
#: every task, in the order the docs list them
TASKS = (GENERAL, NEXT_ITEM)
#: how ``next-item`` holds out the targets (``dataset.protocol.sequence_split``)
LEAVE_ONE_OUT = "leave-one-out"
GLOBAL_TIME = "global-time"
SEQUENCE_SPLITS = (LEAVE_ONE_OUT, GLOBAL_TIME)

def task_of(protocol: dict | None) -> str:
    """The task of a ``dataset.protocol`` mapping (``general`` when the key is absent, so every
    config written before the key existed keeps its hash and its run identities)."""
    return (protocol or {}).get("task", GENERAL)


def sequence_split_of(protocol: dict | None) -> str:
    return (protocol or {}).get("sequence_split", LEAVE_ONE_OUT)


def check_tasks_declaration(tasks) -> str | None:
    """Why a component's ``tasks`` declaration is malformed, or None."""
    if not isinstance(tasks, tuple) or not tasks or any(t not in TASKS for t in tasks):
        return f"must be a non-empty tuple of {', '.join(repr(t) for t in TASKS)}, got {tasks!r}"
    return None


def refusal(kind: str, name: str, tasks: tuple, task: str) -> str:
    """The message for a method that does not rank for ``task``."""
    ranks = " and ".join(tasks)
    return (f"{kind} {name!r} ranks for the {ranks} protocol, not for dataset.protocol.task {task!r}; "
            + ("under next-item use a sequential baseline (SASRec, GRU4Rec, seq-ease) or Pop"
               if task == NEXT_ITEM else "use it with dataset.protocol.task: next-item"))


def check_task(config: dict, registry, source: str | None = None) -> None:
    """Every baseline of ``config`` ranks for its task, and the dataset options make sense for it (a
    strategy's family: :func:`check_family_task`, by the config's validation, which resolves families)."""
    dataset = config["dataset"]
    protocol = dataset["protocol"]
    task = task_of(protocol)
    if task != NEXT_ITEM and "sequence_split" in protocol:
        raise ConfigError("dataset.protocol.sequence_split", "only read under dataset.protocol.task: next-item "
                          f"(this config's task is {task!r}); drop it or set the task", source)
    if task == NEXT_ITEM and dataset.get("cold_items") is not None:
        raise ConfigError("dataset.cold_items", "is not defined for dataset.protocol.task next-item (its held-out "
                          "targets are each user's latest interactions, not whole items); drop the section", source)
    for i, entry in enumerate(config["baselines"]):
        cls = registry.get("baseline", entry["baseline"], f"baselines[{i}].baseline")
        if task not in cls.tasks:
            raise ConfigError(f"baselines[{i}].baseline", refusal("baseline", cls.name, cls.tasks, task), source)


def check_family_task(family: type, registry, task: str, path: str, source: str | None = None) -> None:
    """A strategy's model family ranks for ``task`` (``ModelFamily.tasks``)."""
    if task not in family.tasks:
        able = [n for n in registry.names("family") if task in registry.get("family", n).tasks]
        raise ConfigError(f"{path}.params.model.family", refusal("model family", family.name, family.tasks, task)
                          + f"; families that rank for it: {', '.join(able) or 'none'}", source)
