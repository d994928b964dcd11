"""Runs that did not learn are flagged in the store and the report; Ctrl-C stops a tuning study cleanly."""

from __future__ import annotations

import json
import math

import pytest
import yaml

import xdplug.engine.runner

import xdplug.engine.task
import xdplug.engine.tuning
from xdplug.cli import main
from xdplug.engine.runner import run_benchmark
from xdplug.config import store_path
from xdplug.store import RunStore
from xdplug.recbole.trainer import learning_problem, learning_problems
from xdplug.engine.tuning import storage_url

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def point(epoch, loss, valid, phase="train"):
    return {"phase": phase, "epoch": epoch, "loss": loss, "valid": valid, "seconds": 0.1}


def stored_runs(config) -> dict[str, dict]:
    store = RunStore(store_path(config))
    try:
        return {r["method"]: r for r in store.runs()}
    finally:
        store.close()


# -- the rule ------------------------------------------------------------------------------------


def test_learning_problem_rules():
    learned = [point(0, 0.69, 0.010), point(1, 0.50, 0.030), point(2, 0.40, 0.028)]
    assert learning_problem(learned, "train") is None
    stuck = [point(0, 0.69, 0.0094), point(1, 0.60, 0.0090), point(2, 0.55, 0.0094)]  # a tie is not a gain
    assert learning_problem(stuck, "train") == ("did not learn: best validation score at epoch 0 of 3 "
                                                "(train phase), 0.0094, never beaten")
    flat = [point(0, 0.6931472, 0.01), point(1, 0.6931472, 0.02)]
    assert learning_problem(flat) == "did not learn: training loss constant at 0.693147 over 2 epochs"
    assert "training loss nan at epoch 1" in learning_problem([point(0, 0.7, 0.01), point(1, math.nan, 0.02)])
    # one epoch (closed-form models: EASE, ItemKNN, Pop train one RecBole epoch) is never judged
    assert learning_problem([point(0, 0.0, 0.05)]) is None
    assert learning_problem([]) is None
    # eval_step 2: the first evaluated epoch is 1; unevaluated epochs carry valid None
    sparse = [point(0, 0.7, None), point(1, 0.6, 0.02), point(2, 0.5, None), point(3, 0.4, 0.01)]
    assert "at epoch 1 of 4" in learning_problem(sparse)
    # phases are judged apart; a repeated phase name restarts at epoch 0
    curves = learned + [point(0, 1.0, 0.05, "target"), point(1, 0.9, 0.04, "target")] + stuck
    assert learning_problems(curves) == ["did not learn: best validation score at epoch 0 of 2 (target phase), "
                                         "0.0500, never beaten",
                                         "did not learn: best validation score at epoch 0 of 3 (train phase), "
                                         "0.0094, never beaten"]


# -- store and report ----------------------------------------------------------------------------


def test_a_run_that_did_not_learn_is_flagged_in_the_store_and_the_report(tiny_config):
    config = tiny_config(
        baselines=[{"baseline": "BPR", "params": {"learning_rate": 1.0e-12}}, {"baseline": "EASE"},
                   {"baseline": "ItemKNN"}, {"baseline": "Pop"}],
        strategies=[{"name": "id-frozen", "encoder": "id", "fusion": "id", "adaptation": "target-only",
                     "params": {"model": {"batch_users": 16, "dim": 16, "learning_rate": 1.0e-12}}}],
        train={"epochs": 3, "stopping_step": 5})
    paths = run_benchmark(config, progress=False)
    runs = stored_runs(config)
    assert all(r["status"] == "done" for r in runs.values()), {m: r["error"] for m, r in runs.items()}

    bpr = runs["BPR"]
    assert bpr["notes"].startswith("did not learn: best validation score at epoch 0 of 3 (train phase)")
    best = [p for p in bpr["curves"] if p.get("best")]  # the epoch whose state was kept
    # RecBole keeps the last of equal scores: no better than epoch 0's, the weights never moved
    assert len(best) == 1 and best[0]["valid"] == bpr["curves"][0]["valid"]
    assert "did not learn" in runs["id-frozen"]["notes"]
    for closed_form in ("EASE", "ItemKNN", "Pop"):  # one epoch, no learning curve: never flagged
        assert not runs[closed_form]["notes"], (closed_form, runs[closed_form]["notes"])

    md = paths["markdown"].read_text()
    assert "## Runs that did not learn" in md
    assert "- BPR, seed 0: best validation score at epoch 0 of 3 (train phase)" in md
    assert "| BPR † |" in md and "| EASE |" in md  # the marker in the results table, and only there
    assert "did not learn" in md.split("## Verdict")[1].split("##")[0]
    assert "done (did not learn)" in md.split("## Timings and memory")[1]
    html = paths["html"].read_text()
    assert "Runs that did not learn" in html and "BPR †" in html
    summary = {s["method"]: s for s in json.loads(paths["json"].read_text())["summary"]}
    assert summary["BPR"]["did_not_learn"][0]["seed"] == 0
    assert summary["BPR"]["did_not_learn"][0]["reason"].startswith("did not learn: best validation score")
    assert summary["EASE"]["did_not_learn"] == [] and summary["EASE"]["notes"] == []
    assert "did not learn" in paths["results"].read_text()


# -- Ctrl-C during tuning ------------------------------------------------------------------------


def trials_of(config):
    import optuna

    url = storage_url(config)
    (summary,) = optuna.get_all_study_summaries(url)
    return optuna.load_study(study_name=summary.study_name, storage=url).get_trials(deepcopy=False)


def interrupt_trial(monkeypatch, number: int) -> list:
    """Ctrl-C inside the ``number``-th run (1-based) from now on."""
    calls = []
    real = xdplug.engine.task.execute_run

    def execute_run(spec, *args, **kwargs):
        calls.append(spec.run_id)
        if len(calls) == number:
            raise KeyboardInterrupt
        return real(spec, *args, **kwargs)

    monkeypatch.setattr(xdplug.engine.task, "execute_run", execute_run)
    return calls


def test_ctrl_c_in_a_trial_stops_the_study_and_marks_the_trial_failed(tiny_config, tmp_path, monkeypatch, capsys):
    from optuna.trial import TrialState

    sections = {"baselines": [{"baseline": "EASE"}], "tuning": {"trials": 3}}
    config = tiny_config(**sections)
    calls = interrupt_trial(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(config, progress=False)
    assert len(calls) == 2  # stopped at once: no third trial, no grid run
    trials = trials_of(config)
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL]
    assert trials[1].user_attrs.get("interrupted") is True and "error" not in trials[1].user_attrs
    assert stored_runs(config) == {}

    # the command line: the same interrupt is exit status 130 with its message, nothing left RUNNING
    path = tmp_path / "tuned.yaml"
    path.write_text(yaml.safe_dump({**{k: config[k] for k in ("name", "dataset", "seeds", "device", "train",
                                                              "output")},
                                    "evaluation": {k: config["evaluation"][k]
                                                   for k in ("ks", "valid_metric", "user_groups")},
                                    **sections}))
    interrupt_trial(monkeypatch, 1)
    assert main(["run", str(path), "--quiet"]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert [t.state for t in trials_of(config)] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.FAIL]

    # an interrupted trial spent no budget: the next run does the three trials and the grid
    monkeypatch.undo()
    run_benchmark(config, progress=False)
    states = [t.state for t in trials_of(config)]
    assert states.count(TrialState.COMPLETE) == 3 and TrialState.RUNNING not in states
    assert stored_runs(config)["EASE"]["status"] == "done"


def test_ctrl_c_while_a_trial_is_being_drawn_leaves_no_running_trial(tiny_config, monkeypatch):
    from optuna.trial import TrialState

    config = tiny_config(baselines=[{"baseline": "EASE"}], tuning={"trials": 3})
    real = xdplug.engine.tuning.suggest
    calls = []

    def suggest(trial, space):
        calls.append(trial.number)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(trial, space)

    monkeypatch.setattr(xdplug.engine.tuning, "suggest", suggest)
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(config, progress=False)
    trials = trials_of(config)
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL]
    assert trials[1].user_attrs.get("interrupted") is True
