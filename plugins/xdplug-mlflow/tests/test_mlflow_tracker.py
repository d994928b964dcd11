"""xdplug-mlflow's own tests: names MLflow accepts, and the hooks against a local database store.

A benchmark logged end to end (the quickstart, to a file store) is xdplug's
``tests/test_mlflow_plugin.py``; here the hooks get hand-made records.
"""

from __future__ import annotations

import pytest

pytest.importorskip("mlflow")

import xdplug_mlflow  # noqa: E402
from xdplug.api import config_hash  # noqa: E402
from xdplug_mlflow.tracker import flatten, metric_name, mlflow_name  # noqa: E402

CONFIG = {"name": "unit", "seeds": [1], "dataset": {"recipe": "synthetic", "params": {"n_users": 40}},
          "train": {"epochs": 3}, "evaluation": {"valid_metric": "ndcg@10", "ks": [10]}}


def record(**changes) -> dict:
    base = {"run_id": "r-pop", "config_hash": config_hash(CONFIG), "method": "Pop", "kind": "baseline", "seed": 1,
            "status": "done", "spec": {"baseline": "Pop"}, "metrics": {"test": {"ndcg@10": 0.25},
                                                                       "valid": {"ndcg@10": 0.2}},
            "error": None, "notes": None, "curves": [], "time_s": 1.5, "peak_rss_mb": 100.0,
            "started_at": 1_700_000_000.0, "finished_at": 1_700_000_002.0, "attempts": 1}
    base.update(changes)
    return base


@pytest.fixture
def uri(tmp_path, monkeypatch):
    """A local database store (what the README recommends), set as the plugin's tracking URI; its
    artifacts in a folder of their own (a database store's default is ./mlruns)."""
    for name in ("MLFLOW_TRACKING_URI", "XDPLUG_MLFLOW_EXPERIMENT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("XDPLUG_MLFLOW_ARTIFACT_LOCATION", str(tmp_path / "artifacts"))
    value = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("XDPLUG_MLFLOW_TRACKING_URI", value)
    return value


def runs_by_method(uri: str, experiment: str = "unit", listed: bool = False):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    return runs if listed else {r.data.tags.get("xdplug.method", "parent"): r for r in runs}


def test_names_are_legal_for_mlflow():
    assert mlflow_name("test/ndcg@10") == "test/ndcg_at_10"
    assert metric_name("test", "ndcg@10|users 1-5") == "test/users 1-5/ndcg_at_10"
    assert metric_name("valid", "hit@20|source history 21+") == "valid/source history 21_/hit_at_20"
    assert mlflow_name("a//b/./c") == "a/b/_/c" and mlflow_name("") == "_"
    assert flatten({"params": {"model": {"dim": 64}, "ks": [5, 10], "on": True, "none": None}}, "spec") == {
        "spec.params.model.dim": "64", "spec.params.ks": "[5, 10]", "spec.params.on": "true",
        "spec.params.none": "null"}
    assert len(flatten({"long": "x" * 10_000}, "p")["p.long"]) == 500


def test_the_tracking_uri_comes_from_either_variable(monkeypatch):
    monkeypatch.delenv("XDPLUG_MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert xdplug_mlflow.tracking_uri() is None
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///a.db")
    assert xdplug_mlflow.tracking_uri() == "sqlite:///a.db"
    monkeypatch.setenv("XDPLUG_MLFLOW_TRACKING_URI", "sqlite:///b.db")
    assert xdplug_mlflow.tracking_uri() == "sqlite:///b.db"


def test_runs_failed_runs_and_notes_land_in_a_database_store(uri, tmp_path):
    curves = [{"phase": "source", "epoch": 0, "loss": 9.0, "valid": 0.1, "seconds": 1.0},
              {"phase": "target", "epoch": 0, "loss": 8.0, "valid": 0.2, "seconds": 1.0},
              {"phase": "target", "epoch": 1, "loss": 7.5, "valid": 0.19, "seconds": 1.0}]
    xdplug_mlflow.run_finished(record(), CONFIG)
    xdplug_mlflow.run_finished(record(run_id="r-s", method="s", kind="strategy", curves=curves,
                                      spec={"encoder": "id", "params": {"model": {"dim": 8}}},
                                      notes="did not learn: phase target: validation never beat epoch 0"), CONFIG)
    xdplug_mlflow.run_finished(record(run_id="r-f", method="f", status="failed", metrics={},
                                      error="Traceback ...\nValueError: boom"), CONFIG)
    report = tmp_path / "report.md"
    report.write_text("# unit\n")
    (tmp_path / "report.json").write_text('{"verdict": {"text": "Best method: Pop.", "best_method": "Pop"}}')
    xdplug_mlflow.report_written({"markdown": report, "json": tmp_path / "report.json"}, CONFIG)

    runs = runs_by_method(uri)
    assert set(runs) == {"parent", "Pop", "s", "f"}
    assert len(runs_by_method(uri, listed=True)) == 4  # one parent: the report went to the runs' parent
    parent = runs["parent"]
    assert parent.data.tags["xdplug.role"] == "benchmark" and parent.data.tags["xdplug.best_method"] == "Pop"
    assert parent.data.tags["mlflow.note.content"] == "Best method: Pop."
    assert parent.data.params["dataset.params.n_users"] == "40"

    pop = runs["Pop"]
    assert pop.info.status == "FINISHED" and pop.info.start_time == 1_700_000_000_000
    assert pop.data.metrics == {"test/ndcg_at_10": 0.25, "valid/ndcg_at_10": 0.2, "time_s": 1.5,
                                "peak_rss_mb": 100.0}
    assert pop.data.params["dataset.recipe"] == "synthetic" and pop.data.params["seed"] == "1"

    strategy = runs["s"]
    assert strategy.data.params["spec.params.model.dim"] == "8"
    assert strategy.data.tags["xdplug.did_not_learn"] == "true"
    assert strategy.data.tags["xdplug.notes"].startswith("did not learn")
    assert strategy.data.tags["xdplug.curve_phases"] == "source: steps 0-0; target: steps 1-2"
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    history = client.get_metric_history(strategy.info.run_id, "curve/valid_ndcg_at_10")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [(0, 0.1), (1, 0.2), (2, 0.19)]

    failed = runs["f"]
    assert failed.info.status == "FAILED" and failed.data.tags["xdplug.status"] == "failed"
    assert failed.data.tags["xdplug.error"].endswith("ValueError: boom")
    assert [a.path for a in client.list_artifacts(parent.info.run_id, "report")] == ["report/report.json",
                                                                                     "report/report.md"]
    assert (tmp_path / "artifacts").is_dir() and not (tmp_path / "mlruns").exists()


def test_hooks_do_nothing_without_a_tracking_uri(monkeypatch, tmp_path):
    monkeypatch.delenv("XDPLUG_MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    xdplug_mlflow.run_finished(record(), CONFIG)
    xdplug_mlflow.report_written({}, CONFIG)
    assert list(tmp_path.iterdir()) == []


def test_a_refused_store_is_a_warning(monkeypatch, tmp_path, caplog):
    """MLflow 3 refuses a plain folder store unless MLFLOW_ALLOW_FILE_STORE is set: a warning, not an error."""
    import logging

    import mlflow

    if int(mlflow.__version__.split(".")[0]) < 3:
        pytest.skip("MLflow 2 accepts the folder store")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    monkeypatch.setenv("XDPLUG_MLFLOW_TRACKING_URI", (tmp_path / "refused").as_uri())
    with caplog.at_level(logging.WARNING, logger="xdplug.mlflow"):
        xdplug_mlflow.run_finished(record(), CONFIG)
        xdplug_mlflow.report_written({}, CONFIG)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2 and "failed while logging run Pop seed 1" in messages[0]
    assert "MLFLOW_ALLOW_FILE_STORE" in messages[0] or "maintenance" in messages[0]
