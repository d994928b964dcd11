"""The benchmark runner end to end: grid, run store, resume, faults, hooks, report.

Every test runs tiny grids on the built-in ``synthetic`` recipe with cheap
methods (Pop, EASE, ItemKNN, pooled EASE, a small ID-only strategy) and writes
into ``tmp_path`` with its own ``XDPLUG_HOME``.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

import xdplug.engine.runner
from xdplug.frozen import thaw

import xdplug.engine.task
from xdplug import hookimpl
from xdplug.cli import main
from xdplug.config import load_config
from xdplug.errors import ConfigError, RunError
from xdplug.plugins import make_plugin_manager
from xdplug.report import REPORT_FILES
from xdplug.engine.runner import run_benchmark
from xdplug.config import store_path
from xdplug.store import RunStore

STRATEGY = {"name": "id-only", "encoder": "id", "fusion": "id", "adaptation": "target-only",
            "params": {"model": {"batch_users": 16, "dim": 16}}}
BASELINES = [{"baseline": "Pop"}, {"baseline": "EASE"}, {"baseline": "ItemKNN"},
             {"baseline": "EASE", "pooled": True}]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def home(tmp_path, monkeypatch):
    path = tmp_path / "home"
    path.mkdir()
    monkeypatch.setenv("XDPLUG_HOME", str(path))
    return path


@pytest.fixture
def plugins(home):
    """A fresh plugin manager (installed plugins; ``synthetic`` is built in), passed to what runs."""
    return make_plugin_manager()


@pytest.fixture
def temp_plugin(plugins):
    """``temp_plugin(obj, name)``: register an in-process plugin for this test only."""
    names = []

    def register(obj, name):
        plugins.register(obj, name=name)
        names.append(name)
        return obj

    yield register
    for name in names:
        plugins.unregister(name)


def raw_config(tmp_path, out="out", **sections) -> dict:
    data = {
        "name": "grid",
        "dataset": {"recipe": "synthetic"},
        "seeds": [0],
        "device": "cpu",
        "evaluation": {"ks": [5, 10], "valid_metric": "ndcg@10", "user_groups": [5, 10]},
        "train": {"epochs": 3, "batch_size": 256, "eval_batch_size": 512, "stopping_step": 3},
        "baselines": [{"baseline": "Pop"}, {"baseline": "EASE"}],
        "strategies": [],
        "controls": "none",  # the strong control set: tests/test_control_set.py
        "output": {"dir": str(tmp_path / out / "{name}")},
    }
    data.update(sections)
    return data


def make_config(tmp_path, out="out", registry=None, **sections) -> dict:
    """A validated config; against ``registry`` (a test's own plugins) or the installed plugins'."""
    registry = registry if registry is not None else make_plugin_manager().registry
    return load_config(data=raw_config(tmp_path, out, **sections), registry=registry)


def write_config(tmp_path, filename="grid.yaml", **sections) -> str:
    path = tmp_path / filename
    path.write_text(yaml.safe_dump(raw_config(tmp_path, **sections)))
    return str(path)


def stored_runs(config, with_per_user=False) -> list[dict]:
    store = RunStore(store_path(config))
    try:
        return store.runs(with_per_user=with_per_user)
    finally:
        store.close()


def by_cell(runs) -> dict:
    cells = {(r["method"], r["seed"]): r for r in runs}
    assert len(cells) == len(runs), "a (method, seed) cell is stored twice"
    return cells


@pytest.fixture
def count_tasks(monkeypatch):
    """Spy on ``xdplug.engine.task.run_task``: the list of (method, seed) it was called for."""
    calls = []
    real = xdplug.engine.task.run_task

    def spy(spec, *args, **kwargs):
        calls.append((spec.method, spec.seed))
        return real(spec, *args, **kwargs)

    monkeypatch.setattr(xdplug.engine.task, "run_task", spy)
    return calls


def _pop_class():
    from xdplug_builtin.baselines.recbole_models import recbole_baselines

    return next(cls for cls in recbole_baselines() if cls.name == "Pop")


class BoomPlugin:
    """A plugin whose baseline ``boom`` always raises in ``fit``."""

    __name__ = "boom-plugin"

    @hookimpl
    def register_baselines(self, register):
        from xdplug.components import Baseline

        class Boom(Baseline):
            name = "boom"
            description = "always fails"

            def fit(self, ctx, pooled=False):
                raise RuntimeError("boom")

        register(Boom)


class InterruptPlugin:
    """A plugin whose baseline ``flaky`` raises KeyboardInterrupt while ``armed``, else acts as Pop."""

    __name__ = "interrupt-plugin"

    def __init__(self):
        self.armed = True

    @hookimpl
    def register_baselines(self, register):
        plugin = self

        class Flaky(_pop_class()):
            name = "flaky"
            description = "Ctrl-C in the middle of fit, once"

            def fit(self, ctx, pooled=False):
                if plugin.armed:
                    raise KeyboardInterrupt
                return super().fit(ctx, pooled=pooled)

        register(Flaky)


# -- the grid --------------------------------------------------------------------------------

def test_grid_writes_one_done_row_per_method_and_seed_and_the_report(plugins, tmp_path):
    config = make_config(tmp_path, seeds=[0, 1], baselines=BASELINES, strategies=[STRATEGY])
    paths = run_benchmark(config, progress=False)

    runs = stored_runs(config, with_per_user=True)
    methods = ["Pop", "EASE", "ItemKNN", "EASE (pooled)", "id-only"]
    assert set(by_cell(runs)) == {(m, s) for m in methods for s in (0, 1)}
    for run in runs:
        label = f"{run['method']} seed {run['seed']}"
        assert run["status"] == "done", (label, run["error"])
        assert run["error"] is None
        assert run["kind"] == ("strategy" if run["method"] == "id-only" else "baseline")
        for split in ("test", "valid"):
            for metric in ("ndcg@10", "recall@10", "mrr@10", "hit@10", "precision@10", "ndcg@5"):
                value = run["metrics"][split][metric]
                assert 0.0 <= value <= 1.0, (label, split, metric, value)
        # per-user metrics are the users behind the stored mean
        per_user = run["per_user"]
        assert len(per_user["users"]) == len(per_user["ndcg@10"]) > 0
        for metric in ("ndcg@10", "recall@10", "hit@5"):
            assert np.isclose(per_user[metric].mean(), run["metrics"]["test"][metric]), (label, metric)
        assert run["curves"] and all("epoch" in point and "valid" in point for point in run["curves"])
        assert run["time_s"] > 0
        assert run["peak_rss_mb"] > 0
        assert run["versions"]["xdplug"] and run["versions"]["torch"] and run["versions"]["recbole"]
        assert run["device"] == "cpu"
        assert run["attempts"] == 1
        assert run["started_at"] <= run["finished_at"]
    strategy = next(r for r in runs if r["method"] == "id-only")
    assert len(strategy["curves"]) == 3  # one point per epoch

    store = RunStore(store_path(config))
    assert store.get_meta("config")["name"] == "grid"
    assert store.get_meta("dataset_summary_0") and store.get_meta("dataset_summary_1")
    store.close()

    assert set(paths) == set(REPORT_FILES) | {"per_user"}  # per_user.parquet or .csv
    for key, name in REPORT_FILES.items():
        assert paths[key] == store_path(config).parent / name
        assert paths[key].is_file() and paths[key].stat().st_size > 0
    report = json.loads(paths["json"].read_text())
    baseline_means = {}
    for run in runs:
        if run["kind"] == "baseline":
            baseline_means.setdefault(run["method"], []).append(run["metrics"]["test"]["ndcg@10"])
    best = max(baseline_means, key=lambda m: np.mean(baseline_means[m]))
    assert report["reference"] == best
    comparisons = report["data"]["comparisons"]
    assert comparisons
    assert all(c["reference"] == best for c in comparisons)
    assert {c["method"] for c in comparisons if c["metric"] == "ndcg@10"} == set(methods) - {best}
    for row in comparisons:
        assert row["n_seeds"] == 2 and 0 <= row["p_ttest"] <= 1
    assert len(report["data"]["runs"]) == len(runs)
    assert best in paths["markdown"].read_text()


@pytest.mark.parametrize("entry", [STRATEGY, {"baseline": "EASE"}], ids=["id-strategy", "EASE"])
def test_same_config_and_seed_give_identical_metrics(plugins, tmp_path, monkeypatch, entry):
    kind = "strategies" if "encoder" in entry else "baselines"
    sections = {"baselines": [], "strategies": [], kind: [entry]}
    first = make_config(tmp_path, out="first", **sections)
    run_benchmark(first, progress=False)
    # a fresh output directory and a fresh cache root: nothing is reused
    other_home = tmp_path / "home2"
    other_home.mkdir()
    monkeypatch.setenv("XDPLUG_HOME", str(other_home))
    second = make_config(tmp_path, out="second", **sections)
    run_benchmark(second, progress=False)

    [a] = stored_runs(first, with_per_user=True)
    [b] = stored_runs(second, with_per_user=True)
    assert a["status"] == b["status"] == "done"
    assert a["run_id"] == b["run_id"]
    assert a["metrics"] == b["metrics"]
    assert set(a["per_user"]) == set(b["per_user"])
    for key in a["per_user"]:
        np.testing.assert_array_equal(a["per_user"][key], b["per_user"][key])
    assert [p["valid"] for p in a["curves"]] == [p["valid"] for p in b["curves"]]

    # the same numbers when other methods ran before it in the same process
    mixed = make_config(tmp_path, out="mixed", **dict(sections, baselines=[{"baseline": "ItemKNN"}, {"baseline": "Pop"}]
                                                      + sections["baselines"]))
    run_benchmark(mixed, progress=False)
    [c] = [r for r in stored_runs(mixed) if r["run_id"] == a["run_id"]]
    assert c["metrics"] == a["metrics"]


# -- resume and skip -------------------------------------------------------------------------

def test_resume_skips_finished_runs_force_reruns_new_seed_runs_only_new_cells(plugins, tmp_path, count_tasks):
    config = make_config(tmp_path)
    run_benchmark(config, progress=False)
    assert sorted(count_tasks) == [("EASE", 0), ("Pop", 0)]
    before = {r["run_id"]: r for r in stored_runs(config)}

    count_tasks.clear()
    run_benchmark(config, progress=False)
    assert count_tasks == []
    after = {r["run_id"]: r for r in stored_runs(config)}
    assert {k: (r["finished_at"], r["attempts"]) for k, r in after.items()} == \
        {k: (r["finished_at"], r["attempts"]) for k, r in before.items()}

    run_benchmark(config, progress=False, force=True)
    assert sorted(count_tasks) == [("EASE", 0), ("Pop", 0)]
    forced = by_cell(stored_runs(config))
    assert len(forced) == 2
    assert all(r["attempts"] == 2 and r["status"] == "done" for r in forced.values())
    assert all(r["finished_at"] > before[r["run_id"]]["finished_at"] for r in forced.values())
    # a rerun gives the same numbers
    assert all(r["metrics"] == before[r["run_id"]]["metrics"] for r in forced.values())

    count_tasks.clear()
    more_seeds = make_config(tmp_path, seeds=[0, 1])
    run_benchmark(more_seeds, progress=False)
    assert sorted(count_tasks) == [("EASE", 1), ("Pop", 1)]
    cells = by_cell(stored_runs(more_seeds))
    assert set(cells) == {(m, s) for m in ("Pop", "EASE") for s in (0, 1)}
    assert all(cells[(m, 0)]["attempts"] == 2 for m in ("Pop", "EASE"))


def test_only_limits_the_run_to_one_method(plugins, tmp_path, count_tasks, capsys):
    path = write_config(tmp_path, seeds=[0, 1])
    assert main(["run", path, "--only", "EASE", "--quiet"]) == 0
    assert sorted(count_tasks) == [("EASE", 0), ("EASE", 1)]
    out = capsys.readouterr().out  # the answer first, then the paths
    assert out.startswith("verdict: Best method: EASE") and out.index("verdict:") < out.index("report written:")
    config = make_config(tmp_path, seeds=[0, 1])
    assert set(by_cell(stored_runs(config))) == {("EASE", 0), ("EASE", 1)}

    count_tasks.clear()
    assert main(["run", path, "--quiet"]) == 0  # the rest of the grid, not EASE again
    assert sorted(count_tasks) == [("Pop", 0), ("Pop", 1)]


@pytest.mark.parametrize("only", [["nope"], ["EASE", "Ease"]])
def test_only_naming_an_unknown_method_fails_before_anything_is_written(plugins, tmp_path, count_tasks, only):
    config = make_config(tmp_path)
    with pytest.raises(RunError, match=only[-1]):
        run_benchmark(config, progress=False, only=only)
    assert count_tasks == []
    assert not store_path(config).parent.exists()


def test_run_benchmark_uses_the_plugins_it_is_given(plugins, tmp_path):
    own = make_plugin_manager()
    flaky = InterruptPlugin()
    flaky.armed = False
    own.register(flaky, name="interrupt-plugin")  # only in `own`, not in the `plugins` fixture's manager
    seen = []

    class Recorder:
        @hookimpl
        def run_finished(self, record):
            seen.append(record["status"])

    own.register(Recorder(), name="recorder")
    config = load_config(data=raw_config(tmp_path, baselines=[{"baseline": "flaky"}]), registry=own.registry)
    run_benchmark(config, plugins=own, progress=False)
    [run] = stored_runs(config)
    assert run["status"] == "done", run["error"]
    assert seen == ["done"]


# -- faults ----------------------------------------------------------------------------------

def test_a_failing_baseline_is_recorded_and_the_others_finish(plugins, temp_plugin, tmp_path, caplog):
    temp_plugin(BoomPlugin(), "boom-plugin")
    config = make_config(tmp_path, registry=plugins.registry, seeds=[0, 1],
                         baselines=[{"baseline": "Pop"}, {"baseline": "boom"}, {"baseline": "EASE"}])
    paths = run_benchmark(config, plugins, progress=False)

    cells = by_cell(stored_runs(config))
    assert len(cells) == 6
    for seed in (0, 1):
        failed = cells[("boom", seed)]
        assert failed["status"] == "failed"
        assert failed["error"].startswith("RuntimeError: boom")
        assert "Traceback" in failed["error"] and "raise RuntimeError" in failed["error"]
        assert failed["metrics"] == {} and failed["finished_at"] is not None
        assert cells[("Pop", seed)]["status"] == cells[("EASE", seed)]["status"] == "done"
    assert "boom" in caplog.text

    report = json.loads(paths["json"].read_text())
    assert report["reference"] in ("Pop", "EASE")
    listed = [r for r in report["data"]["runs"] if r["method"] == "boom"]
    assert len(listed) == 2 and all(r["status"] == "failed" and "boom" in r["error"] for r in listed)
    markdown = paths["markdown"].read_text()
    assert "RuntimeError: boom" in markdown


def test_a_failed_run_is_retried_by_the_next_run(plugins, temp_plugin, tmp_path, count_tasks):
    temp_plugin(BoomPlugin(), "boom-plugin")
    config = make_config(tmp_path, registry=plugins.registry, baselines=[{"baseline": "Pop"}, {"baseline": "boom"}])
    run_benchmark(config, plugins, progress=False)
    count_tasks.clear()
    run_benchmark(config, plugins, progress=False)
    assert count_tasks == [("boom", 0)]
    cells = by_cell(stored_runs(config))
    assert cells[("boom", 0)]["attempts"] == 2 and cells[("boom", 0)]["status"] == "failed"
    assert cells[("Pop", 0)]["attempts"] == 1


BAD_CONFIGS = {
    "unknown baseline": ("baselines", [{"baseline": "Pop"}, {"baseline": "NoSuchModel"}], "baselines[1].baseline"),
    "unknown metric": ("evaluation", {"ks": [5, 10], "valid_metric": "accuracy@10"}, "evaluation.valid_metric"),
    "metric at a K not evaluated": ("evaluation", {"ks": [5, 10], "valid_metric": "ndcg@20"},
                                    "evaluation.valid_metric"),
    "unknown dataset": ("dataset", {"recipe": "no-such-recipe"}, "dataset.recipe"),
    "unknown evaluator": ("evaluation", {"evaluators": ["ranking", "no-such-evaluator"]}, "evaluation.evaluators"),
    "unknown baseline option": ("baselines", [{"baseline": "EASE", "params": {"reg_weigth": 1.0}}],
                                "baselines[0].params.reg_weigth"),
    "unknown strategy component": ("strategies", [dict(STRATEGY, fusion="nope")], "strategies[0].fusion"),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_bad_config_fails_before_any_training(plugins, tmp_path, monkeypatch, case):
    key, value, where = BAD_CONFIGS[case]

    def forbidden(*args, **kwargs):
        raise AssertionError("training started for a bad config")

    monkeypatch.setattr(xdplug.engine.task, "run_task", forbidden)
    monkeypatch.setattr(xdplug.engine.task, "execute_run", forbidden)
    with pytest.raises(ConfigError, match=where.replace("[", r"\[").replace("]", r"\]")):
        make_config(tmp_path, **{key: value})

    # the runner checks again: a config edited after loading (a thawed copy) is rejected too
    config = thaw(make_config(tmp_path))
    if isinstance(value, dict):
        config[key].update(value)
    else:
        config[key] = value
    with pytest.raises(ConfigError, match=where.replace("[", r"\[").replace("]", r"\]")):
        run_benchmark(config, progress=False)
    assert not store_path(config).exists()
    assert not store_path(config).parent.exists()


@pytest.mark.parametrize("template", ["out/{nmae}", "out/{0}", "out/{name"])
def test_a_bad_output_dir_template_is_a_config_error(plugins, tmp_path, count_tasks, capsys, template):
    with pytest.raises(ConfigError, match="output.dir"):  # refused when the config is validated
        run_benchmark(make_config(tmp_path, output={"dir": str(tmp_path / template)}), progress=False)
    assert count_tasks == []
    assert not (tmp_path / "out").exists()
    path = write_config(tmp_path, output={"dir": str(tmp_path / template)})
    assert main(["run", path, "--quiet"]) == 2
    assert "output.dir" in capsys.readouterr().err


@pytest.mark.parametrize("content", ["garbage", "foreign"])
def test_a_damaged_or_foreign_store_is_one_clear_error_and_left_alone(plugins, tmp_path, count_tasks, capsys,
                                                                      content):
    config = make_config(tmp_path)
    db = store_path(config)
    db.parent.mkdir(parents=True)
    if content == "garbage":
        db.write_bytes(b"not a database " * 100)
    else:
        con = sqlite3.connect(str(db))
        con.execute("CREATE TABLE runs (run_id TEXT PRIMARY KEY, score REAL)")
        con.commit()
        con.close()
    original = db.read_bytes()
    with pytest.raises(RunError, match="run store"):
        run_benchmark(config, progress=False)
    assert count_tasks == []
    assert db.read_bytes() == original
    path = write_config(tmp_path)
    for command in ("run", "report"):
        assert main([command, path, "--quiet"] if command == "run" else [command, path]) == 2
        err = capsys.readouterr().err
        assert str(db) in err and "Traceback" not in err
    assert count_tasks == []


def test_no_shared_ids_makes_transfer_controls_not_applicable(plugins, tmp_path, count_tasks):
    config = make_config(tmp_path, dataset={"recipe": "synthetic", "align": "none"},
                         baselines=[{"baseline": "Pop"}, {"baseline": "source-pop"},
                                    {"baseline": "EASE", "pooled": True}])
    paths = run_benchmark(config, progress=False)
    cells = by_cell(stored_runs(config))
    assert cells[("Pop", 0)]["status"] == "done"
    for method in ("source-pop", "EASE (pooled)"):
        run = cells[(method, 0)]
        assert run["status"] == "not_applicable", (method, run["error"])
        assert run["error"] is None
        assert "shared" in run["notes"]
    report = json.loads(paths["json"].read_text())
    assert report["reference"] == "Pop"
    summary = {row["method"]: row for row in report["summary"]}
    assert summary["source-pop"]["n_not_applicable"] == 1 and summary["source-pop"]["n_failed"] == 0

    count_tasks.clear()
    run_benchmark(config, progress=False)
    assert count_tasks == []  # not applicable is final, like done


def test_ctrl_c_propagates_leaves_the_run_running_and_the_next_run_completes_it(
        plugins, temp_plugin, tmp_path, count_tasks, capsys):
    plugin = temp_plugin(InterruptPlugin(), "interrupt-plugin")
    sections = {"baselines": [{"baseline": "Pop"}, {"baseline": "flaky"}, {"baseline": "EASE"}]}
    config = make_config(tmp_path, registry=plugins.registry, **sections)
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(config, plugins, progress=False)
    cells = by_cell(stored_runs(config))
    assert set(cells) == {("Pop", 0), ("flaky", 0)}  # EASE never started
    assert cells[("Pop", 0)]["status"] == "done"
    assert cells[("flaky", 0)]["status"] == "running"
    assert cells[("flaky", 0)]["finished_at"] is None

    # the command line turns it into exit status 130 and a hint
    path = write_config(tmp_path, **sections)
    assert main(["run", path, "--quiet"], plugins=plugins) == 130
    assert "interrupted" in capsys.readouterr().err

    plugin.armed = False
    count_tasks.clear()
    run_benchmark(config, plugins, progress=False)
    assert count_tasks == [("flaky", 0), ("EASE", 0)]
    cells = by_cell(stored_runs(config))
    assert all(r["status"] == "done" for r in cells.values())
    assert cells[("flaky", 0)]["attempts"] == 3
    assert cells[("Pop", 0)]["attempts"] == 1


def test_hook_run_finished_is_called_once_per_finished_run(plugins, temp_plugin, tmp_path):
    seen = []

    class Recorder:
        __name__ = "recorder"

        @hookimpl
        def run_finished(self, record):
            seen.append(record)

    class Broken:
        __name__ = "broken-hook"

        @hookimpl
        def run_finished(self, record):
            raise ValueError("tracker down")

    temp_plugin(BoomPlugin(), "boom-plugin")
    temp_plugin(Recorder(), "recorder")
    temp_plugin(Broken(), "broken-hook")
    config = make_config(tmp_path, registry=plugins.registry, seeds=[0, 1],
                         baselines=[{"baseline": "Pop"}, {"baseline": "boom"}, {"baseline": "EASE"}])
    run_benchmark(config, plugins, progress=False)

    assert sorted((r["method"], r["seed"]) for r in seen) == sorted(
        (m, s) for m in ("Pop", "boom", "EASE") for s in (0, 1))
    stored = {r["run_id"]: r for r in stored_runs(config)}
    for record in seen:
        assert record["status"] == stored[record["run_id"]]["status"]  # called after the store holds it
        if record["method"] == "boom":
            assert record["status"] == "failed" and "boom" in record["error"]
        else:
            assert record["status"] == "done" and record["metrics"]["test"]["ndcg@10"] >= 0
    # a raising hook is only a warning: every run still finished
    assert all(r["status"] in ("done", "failed") for r in stored.values())

    seen.clear()
    run_benchmark(config, plugins, progress=False, only=["Pop", "EASE"])
    assert seen == []  # skipped runs are not finished again


# -- report ----------------------------------------------------------------------------------

def test_report_command_regenerates_the_report_from_the_store_alone(plugins, tmp_path, monkeypatch, capsys):
    path = write_config(tmp_path, seeds=[0, 1], strategies=[STRATEGY])
    assert main(["run", path, "--quiet"]) == 0
    config = make_config(tmp_path, seeds=[0, 1], strategies=[STRATEGY])
    out = store_path(config).parent
    original = json.loads((out / "report.json").read_text())
    for name in REPORT_FILES.values():
        (out / name).unlink()

    def forbidden(*args, **kwargs):
        raise AssertionError("the report command must not train or prepare data")

    monkeypatch.setattr(xdplug.engine.task, "run_task", forbidden)
    monkeypatch.setattr(xdplug.engine.task, "execute_run", forbidden)
    monkeypatch.setattr("xdplug.data.prepare.prepare", forbidden)
    empty_home = tmp_path / "empty-home"
    empty_home.mkdir()
    monkeypatch.setenv("XDPLUG_HOME", str(empty_home))  # no prepared data to fall back on
    capsys.readouterr()
    assert main(["report", path]) == 0
    printed = capsys.readouterr().out
    for name in REPORT_FILES.values():
        assert (out / name).is_file() and name in printed
    regenerated = json.loads((out / "report.json").read_text())
    original.pop("generated_at")
    regenerated.pop("generated_at")
    assert regenerated == original
    assert not any(empty_home.iterdir())

    # a config the store holds no run of is an error, and the good report stays
    before = {name: (out / name).read_bytes() for name in REPORT_FILES.values()}
    capsys.readouterr()
    assert main(["report", path, "--set", "train.epochs=7"]) == 2
    assert "holds no run of this config" in capsys.readouterr().err
    assert {name: (out / name).read_bytes() for name in REPORT_FILES.values()} == before


# -- kill and resume -------------------------------------------------------------------------

def _cli(args, home, log: Path):
    """``xdplug ARGS`` in a new process, its output in ``log`` (a pipe nobody reads could fill up)."""
    env = dict(os.environ, XDPLUG_HOME=str(home), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONWARNINGS="ignore")
    with open(log, "w") as handle:
        return subprocess.Popen([sys.executable, "-m", "xdplug.cli", *args], env=env,
                                stdout=handle, stderr=subprocess.STDOUT)


def _done_rows(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute("SELECT COUNT(*) FROM runs WHERE status = 'done'").fetchone()[0]
        finally:
            con.close()
    except sqlite3.OperationalError:  # the table is not there yet
        return 0


def test_sigkill_mid_grid_then_resume_finishes_the_grid_once(plugins, home, tmp_path):
    slow = dict(STRATEGY, params={"model": {"batch_users": 8, "dim": 16}})
    sections = {"seeds": [0, 1, 2], "strategies": [slow],
                "train": {"epochs": 25, "batch_size": 256, "eval_batch_size": 512, "stopping_step": 25}}
    path = write_config(tmp_path, **sections)
    config = make_config(tmp_path, **sections)
    db = store_path(config)

    log = tmp_path / "killed.log"
    proc = _cli(["run", path, "--quiet"], home, log)
    try:
        deadline = time.monotonic() + 240
        while _done_rows(db) < 1:
            assert proc.poll() is None, f"xdplug run ended early:\n{log.read_text()}"
            assert time.monotonic() < deadline, "no run finished in time"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL

    con = sqlite3.connect(str(db))
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    before = {r["run_id"]: r for r in stored_runs(config)}
    done_before = {k: r for k, r in before.items() if r["status"] == "done"}
    assert done_before
    assert len(before) < 9, "the grid finished before the kill; make it slower"

    log = tmp_path / "resumed.log"
    resumed = _cli(["run", path, "--quiet"], home, log)
    try:
        assert resumed.wait(timeout=300) == 0, log.read_text()
    finally:
        if resumed.poll() is None:
            resumed.kill()
            resumed.wait()

    runs = stored_runs(config)
    cells = by_cell(runs)
    assert set(cells) == {(m, s) for m in ("Pop", "EASE", "id-only") for s in (0, 1, 2)}
    assert all(r["status"] == "done" for r in runs)
    for run_id, old in done_before.items():
        new = next(r for r in runs if r["run_id"] == run_id)
        assert (new["finished_at"], new["attempts"]) == (old["finished_at"], 1)
    for run_id, old in before.items():
        if old["status"] == "running":  # killed midway: run again, once
            new = next(r for r in runs if r["run_id"] == run_id)
            assert new["attempts"] == 2
    assert (db.parent / "report.json").is_file()


def test_choosing_a_report_reference_reads_the_same_runs(plugins, tmp_path):
    """evaluation.reference is a reading of finished runs: it does not change run identities."""
    from xdplug.engine.plan import expand

    plain = make_config(tmp_path, baselines=[{"baseline": "Pop"}, {"baseline": "EASE"}])
    pinned = make_config(tmp_path, baselines=[{"baseline": "Pop"}, {"baseline": "EASE"}],
                         evaluation={"ks": [5, 10], "valid_metric": "ndcg@10", "user_groups": [5, 10],
                                     "reference": "Pop"})
    assert [s.run_id for s in expand(plain, plugins.registry)] == [s.run_id for s in expand(pinned, plugins.registry)]
