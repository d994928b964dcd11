"""Issue 19's report parts: target users sliced by their source history, and unconverged tuning marked."""

from __future__ import annotations

import numpy as np
import pytest

from xdplug.evaluation import RankingResult, rank_split
from xdplug.report import write_report
from xdplug.report.tables import convergence
from xdplug_builtin.evaluators.cold_start import ColdStartEvaluator


def result(**overrides) -> RankingResult:
    """Four users: hits at ranks (1, 3), (3), none, (2, 4); ten items, K in {2, 4}."""
    fields = dict(users=np.array([10, 11, 12, 13]),
                  topk=np.array([[0, 1, 2, 3], [4, 5, 6, 7], [1, 0, 5, 4], [9, 8, 7, 6]]),
                  positives=[np.array([0, 2, 8, 9]), np.array([6]), np.array([3]), np.array([8, 6])],
                  ks=[2, 4], n_items=10, train_counts=np.array([3, 7, 60, 4]),
                  item_popularity=np.ones(10, dtype=np.int64))
    fields.update(overrides)
    return RankingResult(**fields)


def test_source_history_groups_hand_computed():
    out = ColdStartEvaluator({"metrics": ["hit"]}).evaluate(result(source_counts=np.array([0, 5, 30, 0])))
    groups = {k: v for k, v in out.items() if "source history" in k}
    assert groups == {
        "hit@2|source history 0": 1.0, "hit@4|source history 0": 1.0, "n_users|source history 0": 2.0,  # 0, 3
        "hit@2|source history 1-20": 0.0, "hit@4|source history 1-20": 1.0,  # user 1
        "n_users|source history 1-20": 1.0,
        "hit@2|source history 21+": 0.0, "hit@4|source history 21+": 0.0,  # user 2
        "n_users|source history 21+": 1.0,
    }
    # the user groups by target activity are unchanged next to them
    assert out["n_users|users 1-5"] == 2.0
    custom = ColdStartEvaluator({"metrics": ["hit"], "source_groups": [4, 10]}).evaluate(
        result(source_counts=np.array([0, 5, 30, 3])))
    assert {k for k in custom if k.startswith("n_users|source")} == {
        "n_users|source history 0", "n_users|source history 1-4", "n_users|source history 5-10",
        "n_users|source history 11+"}
    # no users in both domains: no source slice
    assert not any("source" in k for k in ColdStartEvaluator().evaluate(result()))


def test_rank_split_counts_each_target_users_source_history(synthetic_data):
    data = synthetic_data
    assert len(data.shared_users)
    scores = np.random.default_rng(0).random((data.n_target_users, data.n_target_items))
    res = rank_split(lambda users: __import__("torch").as_tensor(scores[users.numpy()]), data, "test", [5],
                     "cpu", [5, 10])
    per_source = np.bincount(data.source_train[:, 0], minlength=data.n_source_users)
    expected = {t: per_source[s] for t, s in data.shared_users}
    assert res.source_counts.tolist() == [expected.get(u, 0) for u in res.users]
    assert (res.source_counts == 0).any() and (res.source_counts > 0).any()


@pytest.mark.parametrize("values, verdict", [
    ([0.1, 0.3, 0.2, 0.25, 0.3, 0.29, 0.28, 0.1, 0.2, 0.3], "converged"),  # best first reached at trial 2
    ([0.1, 0.2, 0.2, 0.25, 0.26, 0.27, 0.28, 0.29, 0.3, 0.31], "still improving (best at trial 10 of 10)"),
    ([0.1, 0.2, 0.2, 0.25, 0.26, 0.27, 0.28, 0.35, 0.3, 0.31], "converged"),  # trial 8 of 10: before the tail
    ([0.1, 0.2, 0.2, 0.25, 0.26, 0.27, 0.28, 0.29, 0.35, 0.31], "still improving (best at trial 9 of 10)"),
])
def test_convergence_marks_a_best_value_found_in_the_last_fifth(values, verdict):
    trials = [{"number": i, "value": v} for i, v in enumerate(values)]
    assert convergence({"trials": list(reversed(trials))}) == verdict
    flipped = [{"number": i, "value": -v} for i, v in enumerate(values)]
    assert convergence({"trials": flipped, "direction": "minimize"}) == verdict


def test_report_shows_source_groups_and_unconverged_studies(tmp_path):
    from test_report import make_data

    data = make_data()
    for run in data["runs"]:
        test = (run.get("metrics") or {}).get("test")
        if test:
            test.update({"ndcg@10|source history 0": 0.1, "n_users|source history 0": 40.0,
                         "ndcg@10|source history 1-20": 0.2, "n_users|source history 1-20": 300.0,
                         "ndcg@10|source history 21+": 0.3, "n_users|source history 21+": 600.0})
    data["tuning"]["bert+gate+finetune"]["trials"] = [{"number": i, "value": 0.2 + 0.01 * i, "params": {}}
                                                      for i in range(10)]
    md = (write_report(data, tmp_path / "out")["markdown"]).read_text()
    section = md[md.index("### By source history"):]
    header = next(line for line in section.splitlines() if line.startswith("| Method"))
    assert "source history 0 (n=40)" in header and header.index("1-20") < header.index("21+")
    assert "still improving (best at trial 10 of 10)" in md
    assert "Slice: source history" not in md
