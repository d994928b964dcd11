"""Hyper-parameter search with Optuna: an equal trial budget per method, selection on validation only.

How it works (``run_benchmark`` calls :func:`tune_methods` before the grid):

* Every baseline and strategy with a search space gets ``tuning.trials``
  trials (the same budget for every method unless its own ``tuning.trials``
  says otherwise; the report lists each method's budget). An ensemble with
  ``tuning.staged`` spends them component by component, then weighs the
  components on stored validation scores (``staged.py``).
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

import logging
import math
from dataclasses import replace
from pathlib import Path

from ..progress import progress_bar
from ..spaces import configured
from .plan import expand
from .settings import MethodTuning, method_tuning, missing_metric  # noqa: F401 - method_tuning: the API
from .staged import StagedSearch
from .studies import STORE_FILE, apply_params, redact, storage_url, study_name, suggest, summarize  # noqa: F401
from .studies import counted as _counted
from .studies import open_study as _open_study

logger = logging.getLogger(__name__)



# -- the search ---------------------------------------------------------------------------------


def tune_methods(config: dict, store, executor, specs: list, todo: list, registry,
                 progress: bool = True) -> list:
    """Run the missing trials of every tuned method, record the ``tuning`` meta, return ``todo`` tuned.

    ``specs`` is the grid (possibly narrowed by ``--only``); ``todo`` the runs
    still to do. The returned runs carry each method's chosen parameters. A
    method whose grid runs are all finished gets no new trials (its finished
    runs used the choice of the study as it was). A staged method
    (``engine/staged.py``) searches its components one stage per round, then its blend.
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
    recorded = store.get_meta("tuning") or {}
    meta = {k: v for k, v in recorded.items() if k in methods}
    units: dict[str, tuple[MethodTuning, object]] = {}  # what the trial loop searches: name -> (tuning, spec)
    studies, remaining, staged = {}, {}, {}
    for name, mt in methods.items():
        if mt is None or not mt.active:
            note = ("not tuned: no tuning block applies" if mt is None else
                    "tuning disabled for this method (trials: 0)" if mt.trials == 0 else
                    "no search space: nothing to tune")
            meta[name] = {"space": {} if mt is None else mt.space, "trials": [], "chosen": {}, "budget": 0,
                          "note": note}
            continue
        if mt.staged is not None:
            if name in pending_methods or name not in meta:
                staged[name] = StagedSearch(config, mt, url)
            continue
        spec = next(s for s in specs if s.method == name)
        units[name] = (mt, spec)
        studies[name] = _open_study(config, mt, url)
        left = max(0, mt.trials - len(_counted(studies[name])))
        if name in pending_methods:
            remaining[name] = left
        elif left and name in meta:
            studies.pop(name)  # finished runs used an earlier state of the search: keep its record
            units.pop(name)
    while True:  # round by round: the plain searches and each staged search's first stage, then its next ones
        advanced = False
        for name, search in staged.items():
            unit = search.next_stage(studies)
            if unit is not None:
                mt, study = unit
                units[mt.method] = (mt, next(s for s in specs if s.method == name))
                studies[mt.method] = study
                remaining[mt.method] = max(0, mt.trials - len(_counted(study)))
                advanced = True
        if not advanced and not any(remaining.values()):
            break
        _run_trials(units, studies, remaining, executor, seed, progress)
    chosen = {}
    for name, study in studies.items():
        if name in methods:
            summary = summarize(study, methods[name], url)
            summary["seed"] = seed
            meta[name] = summary
            chosen[name] = summary["chosen"]
    for name, search in staged.items():
        meta[name] = search.finish(next(s for s in specs if s.method == name), registry, progress)
        meta[name]["seed"] = seed
        chosen[name] = meta[name]["chosen"]
    # a call narrowed by --only keeps the record of the grid's other methods: the report shows them all
    meta = {**{k: v for k, v in recorded.items() if k not in methods}, **meta}
    grid = dict.fromkeys(s.method for s in expand(config, registry))
    store.set_meta("tuning", {name: meta[name] for name in grid if name in meta})
    out = []
    for spec in todo:
        mt = methods.get(spec.method)
        if mt is not None and mt.active:
            spec = replace(spec, entry=apply_params(spec.entry, chosen.get(spec.method, {})))
        out.append(spec)
    return out


def _run_trials(units: dict, studies: dict, remaining: dict, executor, seed: int, progress: bool) -> None:
    """Ask, run and tell the ``remaining`` trials of each unit (a method, or one stage of a staged one)."""
    total = sum(remaining.values())
    slots = max(1, int(getattr(executor, "slots", 1) or 1))
    bar = progress_bar(total, "tuning", unit="trial", disable=not progress or total == 0)
    asked: dict[str, tuple] = {}  # run_id -> (unit, trial, params)
    failures = 0
    try:
        while any(remaining.values()):
            active = [m for m in units if remaining.get(m)]
            per_method = max(1, math.ceil(slots / len(active)))
            batch = []
            for name in active:
                mt, spec = units[name]
                for _ in range(min(per_method, remaining[name])):
                    trial = studies[name].ask()
                    run_id = f"{studies[name].study_name}#{trial.number}"
                    asked[run_id] = (name, trial, None)  # from here on an interrupt marks it FAIL
                    params = suggest(trial, mt.space)
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
                study, mt = studies[name], units[name][0]
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
