"""The per-user file beside results.csv: one row per (method, seed, user, metric), means = the report's."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest


def _run(tiny_config, **sections):
    from xdplug.engine.runner import run_benchmark

    config = tiny_config(seeds=[0, 1], strategies=[],
                         baselines=[{"baseline": "Pop"}, {"baseline": "RP3beta"},
                                    {"baseline": "SANSA", "pooled": True}], **sections)
    return run_benchmark(config, progress=False)


def _check_means(frame: pd.DataFrame, results: pd.DataFrame) -> None:
    assert list(frame.columns) == ["method", "seed", "user", "metric", "value"]
    assert {"ndcg@10", "recall@10", "mrr@5", "hit@5", "precision@10"} <= set(frame["metric"])
    done = results[results["status"] == "done"]
    assert len(done) == 6
    means = frame.groupby(["method", "seed", "metric"])["value"].mean()
    checked = 0
    for _, row in done.iterrows():
        for metric in means.loc[(row["method"], int(row["seed"]))].index:
            if metric in results.columns:
                assert means[(row["method"], int(row["seed"]), metric)] == pytest.approx(row[metric], rel=1e-9, abs=1e-12)
                checked += 1
        # one row per user and metric, no user twice
        users = frame[(frame["method"] == row["method"]) & (frame["seed"] == row["seed"])
                      & (frame["metric"] == "ndcg@10")]["user"]
        assert users.is_unique and len(users) > 0
    assert checked >= 6 * 10


def test_per_user_csv_means_equal_the_reports(tiny_config, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if pyarrow were not installed: CSV
    paths = _run(tiny_config)
    out = paths["results"].parent
    assert paths["per_user"] == out / "per_user.csv" and not (out / "per_user.parquet").exists()
    _check_means(pd.read_csv(out / "per_user.csv"), pd.read_csv(paths["results"]))


def test_per_user_parquet_when_pyarrow_is_installed(tiny_config):
    pytest.importorskip("pyarrow")
    paths = _run(tiny_config)
    out = paths["results"].parent
    assert paths["per_user"] == out / "per_user.parquet" and not (out / "per_user.csv").exists()
    _check_means(pd.read_parquet(out / "per_user.parquet"), pd.read_csv(paths["results"]))


def test_per_user_frame_skips_unfinished_runs_and_misshaped_arrays():
    from xdplug.report.files import per_user_frame

    runs = [{"method": "A", "seed": 0, "status": "done",
             "per_user": {"users": np.array([3, 5]), "ndcg@10": np.array([0.5, 1.0]), "list_level": np.array([1.0])}},
            {"method": "B", "seed": 0, "status": "failed", "per_user": {}},
            {"method": "C", "seed": 0, "status": "done", "per_user": None}]
    frame = per_user_frame(runs)
    assert frame.to_dict("records") == [{"method": "A", "seed": 0, "user": 3, "metric": "ndcg@10", "value": 0.5},
                                        {"method": "A", "seed": 0, "user": 5, "metric": "ndcg@10", "value": 1.0}]
    assert list(per_user_frame([]).columns) == ["method", "seed", "user", "metric", "value"]
