"""The cold-item slice is tested per user, against a reference of its own (issue 16).

An ID model's cold ranking is a tie, so the all-items reference is no yardstick there: the
report tests ``ndcg@10|cold items`` against the best baseline on that slice (or
``evaluation.cold_reference``), pairing only users who have a cold test positive.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from xdplug.evaluation import RankingResult
from xdplug_builtin.evaluators import ColdStartEvaluator, SignificanceEvaluator


def _cold_result() -> RankingResult:
    # 4 users, items 6, 8, 9 cold; user 2 has no cold test positive
    return RankingResult(
        users=np.arange(4), topk=np.array([[0, 6, 1, 2], [1, 2, 3, 4], [2, 3, 4, 5], [8, 6, 1, 2]]),
        positives=[np.array([0, 8, 9]), np.array([6, 5]), np.array([1]), np.array([8, 6])],
        ks=[2, 4], n_items=10, train_counts=np.array([3, 6, 12, 40]), item_popularity=np.ones(10),
        cold_items=np.array([6, 8, 9]),
        topk_cold=np.array([[9, 6, 8, -1], [8, 9, 6, -1], [6, 9, 8, -1], [6, 8, 9, -1]]),
    )


def test_cold_per_user_values_are_nan_outside_the_slice_and_average_to_the_metric():
    ev, result = ColdStartEvaluator(), _cold_result()
    means, per_user = ev.evaluate(result), ev.per_user(result)
    assert set(per_user) == {f"{m}@{k}|cold items" for m in ("ndcg", "recall", "hit") for k in (2, 4)}
    for key, values in per_user.items():
        assert values.shape == (4,)
        assert np.isnan(values[2]) and np.isfinite(values[[0, 1, 3]]).all()
        assert np.nanmean(values) == pytest.approx(means[key])
    assert per_user["hit@2|cold items"][[0, 1, 3]].tolist() == [1.0, 0.0, 1.0]


def test_cold_per_user_is_empty_without_cold_items():
    result = _cold_result()
    result.cold_items, result.topk_cold = None, None
    assert ColdStartEvaluator().per_user(result) == {}


def test_significance_pairs_only_users_measured_in_both_runs():
    rng = np.random.default_rng(3)
    users = np.arange(40)
    ref, mine = rng.random(40), rng.random(40) + 0.2
    ref[:10] = np.nan  # outside the slice in the reference's run
    mine[35:] = np.nan
    runs = [{"method": m, "seed": 1, "users": users, "per_user": {"ndcg@10|cold items": v}}
            for m, v in (("text-knn", ref), ("text-cf", mine))]
    (row,) = SignificanceEvaluator({"metrics": ["ndcg@10|cold items"]}).compare(runs, "text-knn")
    both = slice(10, 35)
    assert row["n_users"] == 25
    assert row["mean"] == pytest.approx(mine[both].mean())
    assert row["reference_mean"] == pytest.approx(ref[both].mean())
    assert row["p_ttest"] == pytest.approx(stats.ttest_rel(mine[both], ref[both]).pvalue)


def test_report_tests_the_cold_slice_against_its_own_reference(tiny_config, plugin_manager):
    from xdplug.config import output_dir
    from xdplug.engine.runner import run_benchmark

    config = tiny_config(
        dataset={"cold_items": {"fraction": 0.25, "seed": 0, "new_in_source": True}},
        baselines=[{"baseline": "Pop"}, {"baseline": "EASE"}, {"baseline": "text-knn"}],
        evaluation={"reference": "EASE", "cold_reference": "text-knn"},
    )
    run_benchmark(config, plugins=plugin_manager, progress=False)
    out = output_dir(config)
    report = json.loads((out / "report.json").read_text())
    data = report.get("data", report)
    assert data["reference"] == "EASE" and data["cold_reference"] == "text-knn"
    cold_rows = [c for c in data["comparisons"] if c["metric"] == "ndcg@10|cold items"]
    assert {(c["method"], c["reference"]) for c in cold_rows} == {("Pop", "text-knn"), ("EASE", "text-knn")}
    assert all(c["metric"] != "ndcg@10|cold items" or c["reference"] == "text-knn" for c in data["comparisons"])
    md = (out / "report.md").read_text()
    assert "cold items (vs text-knn)" in md  # the improvement table names the slice's own reference
    cold_section = md.split("### Slice: cold items")[1].split("###")[0]
    assert "are against text-knn" in cold_section
    assert "_text-knn_" in cold_section or "| text-knn |" in cold_section
    # the per-user file holds the slice's users only; their mean is the reported cold metric
    frame = pd.read_csv(out / "per_user.csv")
    cold = frame[(frame.method == "text-knn") & (frame.metric == "ndcg@10|cold items")]
    run = next(r for r in data["runs"] if r["method"] == "text-knn")
    assert len(cold) == run["metrics"]["test"]["n_users|cold items"]
    assert cold.value.mean() == pytest.approx(run["metrics"]["test"]["ndcg@10|cold items"])


def test_the_verdict_names_the_cold_items_leader_against_the_slice_reference(tiny_config, plugin_manager):
    """Only text reaches cold items, so the verdict says who ranks them best, with the slice's test."""
    from xdplug.config import output_dir
    from xdplug.engine.runner import run_benchmark

    config = tiny_config(
        dataset={"cold_items": {"fraction": 0.25, "seed": 0, "new_in_source": True}},
        baselines=[{"baseline": "EASE"}, {"baseline": "text-knn"}, {"baseline": "text-cf"}],
        evaluation={"cold_reference": "EASE"},  # an ID-only reference, so the leader is another method
    )
    run_benchmark(config, plugins=plugin_manager, progress=False)
    report = json.loads((output_dir(config) / "report.json").read_text())
    verdict, runs = report["verdict"], report["data"]["runs"]
    means = {m: np.mean([r["metrics"]["test"]["ndcg@10|cold items"] for r in runs if r["method"] == m])
             for m in ("EASE", "text-knn", "text-cf")}
    leader = max(means, key=means.get)
    assert leader != "EASE" and verdict["cold_best_method"] == leader and verdict["cold_reference"] == "EASE"
    row = next(c for c in report["data"]["comparisons"]
               if c["method"] == leader and c["metric"] == "ndcg@10|cold items")
    assert verdict["cold_improvement_pct"] == pytest.approx(row["improvement_pct"])
    assert (f"On the cold items (ranked among themselves), {leader} leads (ndcg@10|cold items = "
            f"{means[leader]:.4f}") in verdict["text"]
    assert "against EASE, paired t-test p_holm" in verdict["text"]


def test_without_cold_items_the_verdict_says_nothing_of_them(tiny_config, plugin_manager):
    from xdplug.config import output_dir
    from xdplug.engine.runner import run_benchmark

    config = tiny_config(baselines=[{"baseline": "Pop"}, {"baseline": "EASE"}])
    run_benchmark(config, plugins=plugin_manager, progress=False)
    verdict = json.loads((output_dir(config) / "report.json").read_text())["verdict"]
    assert "cold items" not in verdict["text"] and verdict["cold_best_method"] is None
