"""Resuming a search where an uninterrupted one would be: the sampler's random streams are replayed.

A seeded ``TPESampler`` keeps its random streams in the process. A search
interrupted after k trials (Ctrl-C, a killed job) or extended later (a larger
``trials``) used to start them afresh and drew other points than one
uninterrupted search, so a resumed study could end with other chosen values
than a clean run (issue 31). :func:`replay_draws` advances a new sampler past
the draws of the study's earlier trials: each one is drawn again, in order, on
an in-memory copy of the history it was drawn from, and the copy then gets the
stored trial. Trials cut short by Ctrl-C (``interrupted``, ``tuning.py``) are
skipped, as if they never ran; written start points (enqueued) drew nothing.
A sequential search then continues exactly as the uninterrupted one does, and
an uninterrupted search is untouched (nothing to replay). Trials asked side by
side (several slots) saw each other running, which the store does not record:
their replay may draw other values, and then the log says so.

Importing this module imports Optuna (``studies.py`` imports it lazily).
"""

from __future__ import annotations

import copy
import logging

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

logger = logging.getLogger(__name__)

_DONE = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def _draw(trial, name: str, dist):
    if isinstance(dist, FloatDistribution):
        return trial.suggest_float(name, dist.low, dist.high, log=dist.log, step=dist.step)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, log=dist.log, step=dist.step)
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, list(dist.choices))
    raise TypeError(f"cannot replay a draw from {type(dist).__name__}")  # pragma: no cover - we only suggest these


def _share_streams(ghost, sampler) -> None:
    """``ghost`` draws from ``sampler``'s two random streams, TPE's and its start-up sampler's (Optuna
    internals: ``tests/test_tuning_resume.py`` pins them)."""
    ghost._rng, ghost._random_sampler._rng = sampler._rng, sampler._random_sampler._rng


def replay_draws(study) -> int:
    """Advance ``study.sampler``'s random streams past the draws of the study's finished trials; return
    how many were replayed. A replayed draw that differs from the stored one is logged (the search goes
    on). The replay runs on a copy of the sampler (a TPE sampler serves one study) that shares the
    study's sampler's streams."""
    earlier = sorted((t for t in study.get_trials(deepcopy=False, states=_DONE)
                      if not t.user_attrs.get("interrupted")), key=lambda t: t.number)
    if not earlier:
        return 0
    try:
        ghost = copy.deepcopy(study.sampler)
        _share_streams(ghost, study.sampler)
    except AttributeError:  # another sampler or Optuna version: resuming draws afresh, as before
        logger.warning("study %s: this Optuna's TPE sampler cannot be replayed; a resumed search draws "
                       "other points than an uninterrupted one", study.study_name)
        return 0
    shadow = optuna.create_study(storage=optuna.storages.InMemoryStorage(), sampler=ghost,
                                 direction=study.direction)
    replayed, differs = 0, []
    for stored in earlier:
        if "fixed_params" not in stored.system_attrs:  # an enqueued start point drew nothing
            probe = shadow.ask()
            drawn = {name: _draw(probe, name, dist) for name, dist in stored.distributions.items()}
            shadow.tell(probe, state=TrialState.FAIL)  # TPE ignores failed trials: only the draw counted
            replayed += 1
            if drawn != stored.params:
                differs.append(stored.number)
        shadow.add_trial(stored)
    if differs:
        logger.warning("study %s: resumed, but trials %s did not replay (drawn in parallel, or by another "
                       "budget or version); the rest of the search differs from an uninterrupted one",
                       study.study_name, differs[:10])
    return replayed
