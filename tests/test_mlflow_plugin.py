"""The MLflow plugin (plugins/xdplug-mlflow): a quickstart benchmark logged to a local file store and read
back with MlflowClient; nothing logged when not configured; an unreachable server is a warning only."""

from __future__ import annotations

import importlib.metadata
import logging
from pathlib import Path

import pytest

xdplug_mlflow = pytest.importorskip("xdplug_mlflow", reason="pip install -e plugins/xdplug-mlflow")
pytest.importorskip("mlflow", reason="pip install -e plugins/xdplug-mlflow (it depends on mlflow-skinny)")

from xdplug.cli import main  # noqa: E402
from xdplug.config import load_config  # noqa: E402
from xdplug.engine.runner import run_benchmark  # noqa: E402
from xdplug.store import RunStore  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = ROOT / "configs" / "quickstart.yaml"


@pytest.fixture(autouse=True)
def _mlflow_env(monkeypatch):
    """No tracking unless a test sets it; MLflow's telemetry off; MLflow 3's file store allowed."""
    for name in ("XDPLUG_MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_URI", "XDPLUG_MLFLOW_EXPERIMENT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")


def test_the_plugin_is_installed_through_its_entry_point(plugin_manager):
    found = [ep for ep in importlib.metadata.entry_points(group="xdplug") if ep.name == "mlflow"]
    assert found and found[0].value == "xdplug_mlflow", "pip install -e plugins/xdplug-mlflow"
    row = next(row for row in plugin_manager.plugin_rows() if row["name"] == "mlflow")
    assert row["error"] is None and row["hooks"] == ["report_written", "run_finished"]


def test_a_quickstart_run_is_logged_to_a_local_file_store(plugin_manager, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    uri = (tmp_path / "mlruns").as_uri()  # file:///.../mlruns
    monkeypatch.setenv("XDPLUG_MLFLOW_TRACKING_URI", uri)
    config = load_config(QUICKSTART, overrides=[f"output.dir={tmp_path / 'out'}"],
                         registry=plugin_manager.registry)  # Pop and EASE: controls (EASE tuned, 10 trials)
    paths = run_benchmark(config, plugins=plugin_manager, progress=False, only=["Pop", "EASE"])
    store = RunStore(Path(paths["json"]).parent / "runs.sqlite")
    stored = {r["method"]: r for r in store.runs() if r["method"] in ("Pop", "EASE")}
    store.close()

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("quickstart")  # the config's name
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("xdplug.role") == "benchmark"]
    children = {r.data.tags["xdplug.method"]: r for r in runs if "mlflow.parentRunId" in r.data.tags}
    assert len(parents) == 1 and set(children) == {"Pop", "EASE"}
    parent = parents[0]
    assert parent.data.tags["xdplug.config_hash"] == stored["EASE"]["config_hash"]
    assert parent.info.status == "FINISHED"

    for method, run in children.items():
        record = stored[method]
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.info.run_name == f"{method} seed=2022" and run.info.status == "FINISHED"
        # tags
        assert run.data.tags["xdplug.status"] == "done"
        assert run.data.tags["xdplug.run_id"] == record["run_id"]
        assert run.data.tags["xdplug.kind"] == "baseline"
        # params: the spec flattened, the seed, the dataset recipe, the config hash
        params = run.data.params
        assert params["spec.baseline"] == method and params["seed"] == "2022"
        assert params["dataset.recipe"] == "ml100k-genres"
        assert params["config_hash"] == record["config_hash"]
        assert params["train.epochs"] == "100"
        # metrics: test and validation, with xdplug's values
        metrics = run.data.metrics
        assert metrics["test/ndcg_at_10"] == pytest.approx(record["metrics"]["test"]["ndcg@10"])
        assert metrics["valid/recall_at_20"] == pytest.approx(record["metrics"]["valid"]["recall@20"])
        assert metrics["test/users 1-5/ndcg_at_10"] == pytest.approx(record["metrics"]["test"]["ndcg@10|users 1-5"])
        # the curve as steps: one validation point for a fit without epochs, and no fake loss
        history = client.get_metric_history(run.info.run_id, "curve/valid_ndcg_at_10")
        assert [(m.step, m.value) for m in history] == [(0, pytest.approx(record["curves"][0]["valid"]))]
        assert "curve/loss" not in metrics

    # the report: every file an artifact of the parent run, the config beside it
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert artifacts == {f"report/{Path(p).name}" for p in paths.values()}
    assert "config.json" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    local = Path(client.download_artifacts(parent.info.run_id, "report/report.md", str(tmp_path / "dl")))
    assert local.read_text() == Path(paths["markdown"]).read_text()
    assert parent.data.tags["xdplug.best_method"] in ("Pop", "EASE")

    # resuming (both runs finished: nothing retrained) and `xdplug report` log the report again to the
    # same parent run
    run_benchmark(config, plugins=plugin_manager, progress=False, only=["Pop", "EASE"])
    closed = client.get_run(parent.info.run_id).info.end_time
    assert main(["report", str(QUICKSTART), "--set", f"output.dir={tmp_path / 'out'}"]) == 0
    assert client.get_run(parent.info.run_id).info.end_time > closed  # the report was logged and closed again
    again = client.search_runs([experiment.experiment_id])
    assert len(again) == 3
    assert [r.info.run_id for r in again if r.data.tags.get("xdplug.role") == "benchmark"] == [parent.info.run_id]
    assert client.get_run(parent.info.run_id).info.status == "FINISHED"


def test_a_run_with_a_curve_logs_it_as_steps(plugin_manager, tiny_config, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("XDPLUG_MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("XDPLUG_MLFLOW_EXPERIMENT", "curves")
    config = tiny_config(baselines=[{"baseline": "BPR"}], train={"epochs": 3, "stopping_step": 5})
    run_benchmark(config, plugins=plugin_manager, progress=False)
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("curves")
    (run,) = [r for r in client.search_runs([experiment.experiment_id]) if r.data.tags.get("xdplug.method") == "BPR"]
    valid = client.get_metric_history(run.info.run_id, "curve/valid_ndcg_at_10")
    loss = client.get_metric_history(run.info.run_id, "curve/loss")
    assert [m.step for m in valid] == [0, 1, 2] and [m.step for m in loss] == [0, 1, 2]
    assert run.data.tags["xdplug.curve_phases"] == "train: steps 0-2"
    assert run.data.params["spec.baseline"] == "BPR"


def test_nothing_is_logged_when_no_tracking_uri_is_set(plugin_manager, tiny_config, tmp_path, monkeypatch, caplog):
    import xdplug_mlflow.tracker as tracker

    calls = []
    monkeypatch.setattr(tracker, "tracker_for", lambda uri: calls.append(uri))
    monkeypatch.chdir(tmp_path)  # MLflow's default store would be ./mlruns or ./mlflow.db
    with caplog.at_level(logging.WARNING):
        paths = run_benchmark(tiny_config(), plugins=plugin_manager, progress=False)
    assert Path(paths["markdown"]).is_file()
    assert calls == []
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "mlflow.db").exists()
    assert "mlflow" not in caplog.text.lower()


def test_an_unreachable_tracking_server_is_one_warning_not_a_failed_benchmark(plugin_manager, tiny_config,
                                                                              monkeypatch, caplog):
    monkeypatch.setenv("XDPLUG_MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    config = tiny_config(baselines=[{"baseline": "Pop"}, {"baseline": "EASE"}])
    with caplog.at_level(logging.WARNING, logger="xdplug.mlflow"):
        paths = run_benchmark(config, plugins=plugin_manager, progress=False)
    assert Path(paths["markdown"]).is_file()
    store = RunStore(Path(paths["json"]).parent / "runs.sqlite")
    assert {r["status"] for r in store.runs()} == {"done"}
    store.close()
    failures = [r for r in caplog.records if "failed while logging" in r.getMessage()]
    assert len(failures) == 1, "the first failure skips the rest of the benchmark"
    assert "MLflow tracking to http://127.0.0.1:9 failed" in failures[0].getMessage()
    assert failures[0].levelno == logging.WARNING
    assert any("the report of 'tiny' is not logged" in r.getMessage() for r in caplog.records)
    # the next benchmark tries again
    assert xdplug_mlflow.tracker.tracker_for("http://127.0.0.1:9").broken is None
