"""A search interrupted and resumed draws what an uninterrupted one draws (``engine/sampler.py``)."""

from __future__ import annotations

import pytest

import xdplug.engine.task
from xdplug.config import store_path
from xdplug.engine.runner import run_benchmark
from xdplug.engine.sampler import replay_draws
from xdplug.store import RunStore

optuna = pytest.importorskip("optuna")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def objective(params: dict) -> float:
    return -(params["x"] - 0.3) ** 2 - 0.1 * (params["k"] - 4) ** 2 + (0.05 if params["c"] == "b" else 0.0)


def draw(trial) -> dict:
    return {"x": trial.suggest_float("x", 0.0, 1.0), "k": trial.suggest_int("k", 1, 9),
            "c": trial.suggest_categorical("c", ["a", "b", "c"])}


def new_study(storage, name="s"):
    """A fresh sampler on each call, as a new ``xdplug run`` process would build it."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize", load_if_exists=True,
                                sampler=optuna.samplers.TPESampler(seed=7, n_startup_trials=4, constant_liar=True))
    replay_draws(study)
    return study


def run(study, n: int) -> None:
    for _ in range(n):
        trial = study.ask()
        study.tell(trial, objective(draw(trial)))


def counted_params(study) -> list:
    return [t.params for t in study.get_trials(deepcopy=False) if not t.user_attrs.get("interrupted")]


def test_a_resumed_study_draws_what_an_uninterrupted_one_draws(tmp_path):
    clean = new_study(optuna.storages.InMemoryStorage())
    run(clean, 12)

    storage = f"sqlite:///{tmp_path / 'tuning.sqlite'}"  # the store reads parameters back in its own order
    first = new_study(storage)
    run(first, 3)  # random start-up phase ...
    cut = first.ask()  # ... a trial cut short by Ctrl-C, as tuning.py marks it
    draw(cut)
    cut.set_user_attr("interrupted", True)
    first.tell(cut, state=optuna.trial.TrialState.FAIL)
    run(new_study(storage), 4)  # a new process: past the start-up, into TPE
    resumed = new_study(storage)
    cut = resumed.ask()
    cut.set_user_attr("interrupted", True)
    resumed.tell(cut, state=optuna.trial.TrialState.FAIL)
    run(new_study(storage), 5)

    assert counted_params(new_study(storage)) == counted_params(clean)
    assert len({p["x"] for p in counted_params(clean)}) == 12  # it does search


def test_a_history_drawn_otherwise_is_logged(caplog):
    storage = optuna.storages.InMemoryStorage()
    other = optuna.create_study(study_name="s", storage=storage, direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=1, n_startup_trials=4))
    run(other, 2)
    with caplog.at_level("WARNING", logger="xdplug.engine.sampler"):
        new_study(storage)
    assert "trials [0, 1] did not replay" in caplog.text


def test_an_interrupted_first_trial_keeps_the_written_start_point(tiny_config, monkeypatch, tmp_path):
    """``tuning.start: config``: Ctrl-C in the start point's trial; the resumed search evaluates it
    first and then draws what a clean search draws."""
    ease = {"baseline": "EASE", "params": {"reg_weight": 123.0},
            "tuning": {"trials": 3, "start": "config",
                       "space": {"params.reg_weight": {"type": "loguniform", "low": 1.0, "high": 1000.0}}}}

    def chosen_trials(config) -> list:
        store = RunStore(store_path(config))
        try:
            return [t["params"] for t in store.get_meta("tuning")["EASE"]["trials"]]
        finally:
            store.close()

    clean = tiny_config(baselines=[ease], output={"dir": str(tmp_path / "clean")})
    run_benchmark(clean, progress=False)

    fit = xdplug.engine.task.fit_method
    calls = []

    def interrupted_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return fit(*args, **kwargs)

    cut = tiny_config(baselines=[ease], output={"dir": str(tmp_path / "cut")})
    monkeypatch.setattr(xdplug.engine.task, "fit_method", interrupted_once)
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(cut, progress=False)
    run_benchmark(cut, progress=False)

    assert chosen_trials(cut) == chosen_trials(clean)
    assert chosen_trials(cut)[0] == {"params.reg_weight": 123.0}
