"""The built-in evaluators against hand-computed values and against RecBole / scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from xdplug.errors import ConfigError
from xdplug.evaluation import RankingResult
from xdplug_builtin.evaluators import (
    BeyondAccuracyEvaluator,
    ColdStartEvaluator,
    RankingEvaluator,
    SignificanceEvaluator,
)
from xdplug_builtin.evaluators.beyond_accuracy import gini_index, tail_items
from xdplug_builtin.evaluators.ranking import METRICS, metric_matrix
from xdplug_builtin.evaluators.significance import holm

L2 = np.log2


def tiny(**overrides) -> RankingResult:
    """Four users, ten items, K in {2, 4}.

    user 0: hits at ranks 1 and 3, 4 positives     train count 3   (group 1-5)
    user 1: hit at rank 3, 1 positive              train count 7   (group 6-10)
    user 2: no hit, 1 positive                     train count 60  (group 51+)
    user 3: hits at ranks 2 and 4, 2 positives     train count 4   (group 1-5)
    """
    fields = dict(
        users=np.array([10, 11, 12, 13]),
        topk=np.array([[0, 1, 2, 3], [4, 5, 6, 7], [1, 0, 5, 4], [9, 8, 7, 6]]),
        positives=[np.array([0, 2, 8, 9]), np.array([6]), np.array([3]), np.array([8, 6])],
        ks=[2, 4],
        n_items=10,
        train_counts=np.array([3, 7, 60, 4]),
        item_popularity=np.array([50, 40, 1, 2, 30, 3, 0, 5, 20, 10]),
    )
    fields.update(overrides)
    return RankingResult(**fields)


# -- ranking ---------------------------------------------------------------------

def test_ndcg_hits_at_ranks_1_and_3_with_4_positives():
    per_user = RankingEvaluator().per_user(tiny())
    # DCG = 1/log2(2) + 1/log2(4); ideal DCG over min(4, K) ranks
    expected_4 = (1 + 1 / L2(4)) / (1 + 1 / L2(3) + 1 / L2(4) + 1 / L2(5))
    assert expected_4 == pytest.approx(0.5855700749881525)
    assert per_user["ndcg@4"][0] == pytest.approx(expected_4)
    # at K = 2 only the hit at rank 1 counts and the ideal has 2 ranks
    assert per_user["ndcg@2"][0] == pytest.approx(1 / (1 + 1 / L2(3)))
    assert per_user["recall@4"][0] == pytest.approx(2 / 4)
    assert per_user["recall@2"][0] == pytest.approx(1 / 4)
    assert per_user["precision@4"][0] == pytest.approx(2 / 4)
    assert per_user["mrr@4"][0] == pytest.approx(1.0)


def test_ranking_hand_computed_means():
    out = RankingEvaluator().evaluate(tiny())
    assert list(out) == [f"{m}@{k}" for k in (2, 4) for m in METRICS]
    expected = {
        "recall@2": (1 / 4 + 0 + 0 + 1 / 2) / 4,  # 0.1875
        "ndcg@2": (0.6131471927654584 + 0 + 0 + 0.38685280723454163) / 4,  # 0.25
        "mrr@2": (1 + 0 + 0 + 1 / 2) / 4,  # 0.375
        "hit@2": 2 / 4,
        "precision@2": (1 / 2 + 0 + 0 + 1 / 2) / 4,  # 0.25
        "recall@4": (1 / 2 + 1 + 0 + 1) / 4,  # 0.625
        # user 1: one hit at rank 3 of one positive; user 3: hits at 2 and 4 of 2 positives
        "ndcg@4": (0.5855700749881525 + 1 / L2(4) + 0 + (1 / L2(3) + 1 / L2(5)) / (1 + 1 / L2(3))) / 4,
        "mrr@4": (1 + 1 / 3 + 0 + 1 / 2) / 4,  # 0.458333
        "hit@4": 3 / 4,
        "precision@4": (2 / 4 + 1 / 4 + 0 + 2 / 4) / 4,  # 0.3125
    }
    assert out["ndcg@2"] == pytest.approx(0.25)
    assert out["ndcg@4"] == pytest.approx(0.4341226)
    for key, value in expected.items():
        assert out[key] == pytest.approx(value), key


def random_result(seed=0, n_users=200, n_items=60, k=20, ks=(1, 5, 10, 20)) -> RankingResult:
    rng = np.random.default_rng(seed)
    topk = np.stack([rng.permutation(n_items)[:k] for _ in range(n_users)])
    positives = [rng.choice(n_items, size=rng.integers(1, 30), replace=False) for _ in range(n_users)]
    return RankingResult(
        users=np.arange(n_users),
        topk=topk,
        positives=positives,
        ks=list(ks),
        n_items=n_items,
        train_counts=rng.integers(0, 80, n_users),
        item_popularity=rng.integers(1, 100, n_items),
    )


def test_ranking_means_equal_per_user_means():
    result = random_result(1)
    ev = RankingEvaluator()
    means, per_user = ev.evaluate(result), ev.per_user(result)
    assert set(means) == set(per_user)
    for key, values in per_user.items():
        assert values.shape == (len(result.users),)
        assert values.dtype.kind == "f"
        assert means[key] == pytest.approx(values.mean())


class _Data:
    def __init__(self, **values):
        self.values = values

    def get(self, name):
        return self.values[name]


def test_ranking_agrees_with_recbole(monkeypatch):
    # RecBole's Config puts np.float back for numpy >= 1.24; its metrics need it
    monkeypatch.setattr(np, "float", np.float64, raising=False)
    from recbole.evaluator import metrics as rb

    result = random_result(2)
    pos_index, pos_len = result.hits(), result.positive_counts()
    config = {"topk": result.ks, "metric_decimal_place": 4}
    ours = RankingEvaluator().evaluate(result)
    per_user = RankingEvaluator().per_user(result)
    rec_topk = torch.from_numpy(np.concatenate([pos_index, pos_len[:, None]], axis=1).astype(np.int64))
    data = _Data(**{"rec.topk": rec_topk})
    classes = {"recall": rb.Recall, "ndcg": rb.NDCG, "mrr": rb.MRR, "hit": rb.Hit, "precision": rb.Precision}
    for name, cls in classes.items():
        metric = cls(config)
        if name in ("recall", "ndcg"):
            theirs = metric.metric_info(pos_index, pos_len)
        else:
            theirs = metric.metric_info(pos_index)
        np.testing.assert_allclose(metric_matrix(name, pos_index, pos_len), theirs, rtol=1e-12, err_msg=name)
        for k in result.ks:
            np.testing.assert_allclose(per_user[f"{name}@{k}"], theirs[:, k - 1], rtol=1e-12)
        for key, value in metric.calculate_metric(data).items():
            assert round(ours[key], 4) == pytest.approx(value, abs=1e-12), key


def test_ranking_rejects_unknown_metric_option():
    with pytest.raises(ConfigError):
        RankingEvaluator({"metrics": ["ndcg", "auc"]})
    with pytest.raises(ConfigError):
        RankingEvaluator({"metrics": "ndcg"})
    assert list(RankingEvaluator({"metrics": ["ndcg"]}).evaluate(tiny())) == ["ndcg@2", "ndcg@4"]


# -- beyond accuracy -----------------------------------------------------------------

def test_beyond_accuracy_hand_computed():
    out = BeyondAccuracyEvaluator().evaluate(tiny())
    expected = {
        # @2 lists: [0 1] [4 5] [1 0] [9 8] -> 6 distinct of 10 items
        "coverage@2": 0.6,
        # counts sorted [1 1 1 1 2 2] at ranks 5..10 of 10: sum((2i - 11) c) = 40, / 8 recs / 10 items
        "gini@2": 40 / 8 / 10,
        "avg_pop@2": ((50 + 40) / 2 + (30 + 3) / 2 + (40 + 50) / 2 + (10 + 20) / 2) / 4,  # 30.375
        # tail (ratio 0.1): 1 of the 9 seen items, the least popular (item 2), plus unseen item 6
        "tail_pct@2": 0.0,
        "coverage@4": 1.0,
        # counts sorted [1 1 1 1 2 2 2 2 2 2] at ranks 1..10: -24 + 48 = 24, / 16 recs / 10 items
        "gini@4": 24 / 16 / 10,
        "avg_pop@4": ((50 + 40 + 1 + 2) / 4 + (30 + 3 + 0 + 5) / 4 + (40 + 50 + 3 + 30) / 4
                      + (10 + 20 + 5 + 0) / 4) / 4,  # 18.0625
        "tail_pct@4": (1 / 4 + 1 / 4 + 0 + 1 / 4) / 4,  # 0.1875
    }
    assert set(out) == set(expected)
    for key, value in expected.items():
        assert out[key] == pytest.approx(value), key


def test_beyond_accuracy_tail_options():
    strict = BeyondAccuracyEvaluator({"unseen_is_tail": False}).evaluate(tiny())
    assert strict["tail_pct@4"] == pytest.approx((1 / 4) / 4)  # only item 2, in user 0's list
    # a count threshold: seen at most 3 times -> items 2, 3, 5; plus unseen item 6
    counted = BeyondAccuracyEvaluator({"tail_ratio": 3}).evaluate(tiny())
    assert counted["tail_pct@4"] == pytest.approx((2 / 4 + 2 / 4 + 1 / 4 + 1 / 4) / 4)
    # ties between equally popular items break by item index, as in RecBole
    assert tail_items(np.array([5, 2, 2, 9, 2]), 0.4, False).tolist() == [False, True, True, False, False]
    with pytest.raises(ConfigError):
        BeyondAccuracyEvaluator({"tail_ratio": 0})


def test_beyond_accuracy_per_user_means():
    result = random_result(3)
    ev = BeyondAccuracyEvaluator()
    means, per_user = ev.evaluate(result), ev.per_user(result)
    assert set(per_user) == {f"{m}@{k}" for m in ("avg_pop", "tail_pct") for k in result.ks}
    for key, values in per_user.items():
        assert means[key] == pytest.approx(values.mean())


@pytest.mark.parametrize("tail_ratio", [0.1, 0.35, 4.0])
def test_beyond_accuracy_agrees_with_recbole(tail_ratio):
    from recbole.evaluator import metrics as rb

    result = random_result(4)
    pop = result.item_popularity.copy()
    pop[[3, 7, 11]] = 0  # never seen in training: absent from RecBole's counter
    pop[[1, 2, 5]] = 4  # ties
    result.item_popularity = pop
    counter = {i: int(c) for i, c in enumerate(pop) if c > 0}
    config = {"topk": result.ks, "metric_decimal_place": 4, "tail_ratio": tail_ratio}
    ours = BeyondAccuracyEvaluator({"tail_ratio": tail_ratio, "unseen_is_tail": False})
    out, per_user = ours.evaluate(result), ours.per_user(result)

    avg_pop = rb.AveragePopularity(config)
    avg_pop_matrix = avg_pop.metric_info(avg_pop.get_pop(result.topk, counter))
    tail = rb.TailPercentage(config)
    tail_matrix = tail.metric_info(tail.get_tail(result.topk, counter))
    for k in result.ks:
        items = result.topk[:, :k]
        assert out[f"coverage@{k}"] == pytest.approx(
            rb.ItemCoverage(config).get_coverage(items, result.n_items))
        assert out[f"gini@{k}"] == pytest.approx(rb.GiniIndex(config).get_gini(items, result.n_items))
        np.testing.assert_allclose(per_user[f"avg_pop@{k}"], avg_pop_matrix[:, k - 1])
        np.testing.assert_allclose(per_user[f"tail_pct@{k}"], tail_matrix[:, k - 1])


def test_gini_extremes():
    assert gini_index(np.zeros(12, dtype=int), 4) == pytest.approx(3 / 4)  # one item, (n - 1) / n
    assert gini_index(np.arange(8) % 4, 4) == pytest.approx(0.0)  # every item equally often


# -- cold start ------------------------------------------------------------------------

def cold_tiny(**overrides) -> RankingResult:
    """``tiny`` with items 6, 8, 9 cold; cold-only rankings padded with -1 (3 cold items)."""
    fields = dict(
        cold_items=np.array([6, 8, 9]),
        topk_cold=np.array([[9, 6, 8, -1], [8, 9, 6, -1], [6, 9, 8, -1], [6, 8, 9, -1]]),
        item_known=np.array([True] * 8 + [False, False]),
    )
    fields.update(overrides)
    return tiny(**fields)


def test_cold_start_user_groups_hand_computed():
    out = ColdStartEvaluator().evaluate(tiny())
    ndcg_u0_4 = 0.5855700749881525
    ndcg_u3_4 = (1 / L2(3) + 1 / L2(5)) / (1 + 1 / L2(3))
    expected = {
        # users 0 and 3
        "ndcg@2|users 1-5": (1 / (1 + 1 / L2(3)) + (1 / L2(3)) / (1 + 1 / L2(3))) / 2,  # 0.5
        "recall@2|users 1-5": (1 / 4 + 1 / 2) / 2,
        "hit@2|users 1-5": 1.0,
        "ndcg@4|users 1-5": (ndcg_u0_4 + ndcg_u3_4) / 2,  # 0.618245
        "recall@4|users 1-5": (2 / 4 + 2 / 2) / 2,
        "hit@4|users 1-5": 1.0,
        "n_users|users 1-5": 2.0,
        # user 1: one positive, hit at rank 3
        "ndcg@2|users 6-10": 0.0,
        "recall@2|users 6-10": 0.0,
        "hit@2|users 6-10": 0.0,
        "ndcg@4|users 6-10": 1 / L2(4),
        "recall@4|users 6-10": 1.0,
        "hit@4|users 6-10": 1.0,
        "n_users|users 6-10": 1.0,
        # empty groups: a count, no metrics
        "n_users|users 11-20": 0.0,
        "n_users|users 21-50": 0.0,
        # user 2: no hit
        "ndcg@2|users 51+": 0.0,
        "recall@2|users 51+": 0.0,
        "hit@2|users 51+": 0.0,
        "ndcg@4|users 51+": 0.0,
        "recall@4|users 51+": 0.0,
        "hit@4|users 51+": 0.0,
        "n_users|users 51+": 1.0,
    }
    assert out["ndcg@2|users 1-5"] == pytest.approx(0.5)
    assert out["ndcg@4|users 1-5"] == pytest.approx(0.6182455)
    assert set(out) == set(expected)  # no "users 0" group: nobody has zero training interactions
    for key, value in expected.items():
        assert out[key] == pytest.approx(value), key
    assert ColdStartEvaluator().per_user(tiny()) == {}


def test_cold_start_zero_group_and_custom_bounds():
    result = tiny(train_counts=np.array([0, 2, 3, 0]), user_groups=[2])
    out = ColdStartEvaluator({"metrics": ["hit"]}).evaluate(result)
    assert out == {
        "hit@2|users 0": 1.0, "hit@4|users 0": 1.0, "n_users|users 0": 2.0,  # users 0 and 3
        "hit@2|users 1-2": 0.0, "hit@4|users 1-2": 1.0, "n_users|users 1-2": 1.0,  # user 1
        "hit@2|users 3+": 0.0, "hit@4|users 3+": 0.0, "n_users|users 3+": 1.0,  # user 2
    }


def test_cold_start_cold_items_hand_computed():
    out = ColdStartEvaluator().evaluate(cold_tiny())
    # cold positives: user 0 {8, 9}, user 1 {6}, user 2 none (left out), user 3 {8, 6}
    # cold rankings: user 0 hits at 1, 3 of 2; user 1 hit at 3 of 1; user 3 hits at 1, 2 of 2
    expected = {
        "ndcg@2|cold items": (1 / (1 + 1 / L2(3)) + 0 + 1) / 3,  # 0.537716
        "recall@2|cold items": (1 / 2 + 0 + 1) / 3,
        "hit@2|cold items": 2 / 3,
        "ndcg@4|cold items": ((1 + 1 / L2(4)) / (1 + 1 / L2(3)) + 1 / L2(4) + 1) / 3,  # 0.806574
        "recall@4|cold items": 1.0,
        "hit@4|cold items": 1.0,
        "n_users|cold items": 3.0,
        # all-items hits @2: item 0 (user 0), item 8 (user 3, cold)
        "cold_hit_share@2": 1 / 2,
        # @4: items 0, 2 (user 0), 6 (user 1, cold), 8, 6 (user 3, cold)
        "cold_hit_share@4": 3 / 5,
        "cold_known_frac": 1 / 3,  # of 6, 8, 9 only 6 is known
    }
    assert out["ndcg@2|cold items"] == pytest.approx(0.5377157)
    assert out["ndcg@4|cold items"] == pytest.approx(0.8065736)
    for key, value in expected.items():
        assert out[key] == pytest.approx(value), key
    assert set(out) - set(expected) == set(ColdStartEvaluator().evaluate(tiny()))


def test_cold_start_without_hits_or_known_items():
    result = cold_tiny(item_known=None, topk=np.array([[1, 3, 4, 5]] * 4),
                       positives=[np.array([9])] * 4)
    out = ColdStartEvaluator().evaluate(result)
    assert out["cold_hit_share@2"] == 0.0 and out["cold_hit_share@4"] == 0.0
    assert "cold_known_frac" not in out
    assert out["n_users|cold items"] == 4.0
    # cold ranking of user 0 puts item 9 first; users 1 and 2 second; user 3 third
    assert out["hit@2|cold items"] == pytest.approx(3 / 4)
    assert not any("cold" in key for key in ColdStartEvaluator().evaluate(tiny()))


# -- significance ------------------------------------------------------------------------

def test_holm_hand_computed():
    # sorted: 0.005 x4 = 0.02, 0.01 x3 = 0.03, 0.03 x2 = 0.06, 0.04 x1 = 0.04 -> monotone 0.06
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm([0.5, 0.6]), [1.0, 1.0])  # capped at 1
    np.testing.assert_allclose(holm([0.2]), [0.2])
    assert holm([]).size == 0


def _run(method, seed, users, values):
    users = np.asarray(users)
    return {"method": method, "seed": seed, "users": users,
            "per_user": {"ndcg@10": np.asarray(values, float), "recall@10": np.asarray(values, float) * 2}}


def _significance_runs():
    rng = np.random.default_rng(7)
    users1, users2 = np.arange(30), np.arange(5, 40)
    ref1, ref2 = rng.random(30), rng.random(35)
    a1, a2 = ref1 + rng.normal(0.1, 0.1, 30), ref2 + rng.normal(0.1, 0.1, 35)
    b1 = ref1 + rng.normal(0.0, 0.1, 30)
    order = rng.permutation(35)  # the same users listed in another order
    runs = [
        _run("EASE", 1, users1, ref1), _run("EASE", 2, users2, ref2),
        _run("A", 1, users1, a1), _run("A", 2, users2[order], a2[order]),
        _run("B", 1, users1[:20], b1[:20]),  # one seed, fewer users
        _run("C", 3, users1, b1),  # no seed in common with EASE: no row
        _run("D", 1, users1, ref1),  # identical to the reference
    ]
    return runs, dict(ref1=ref1, ref2=ref2, a1=a1, a2=a2, b1=b1)


def test_significance_pairs_by_seed_and_user_and_matches_scipy():
    runs, v = _significance_runs()
    rows = SignificanceEvaluator().compare(runs, "EASE")
    assert [(r["method"], r["metric"]) for r in rows] == [
        ("A", "ndcg@10"), ("B", "ndcg@10"), ("D", "ndcg@10"),
        ("A", "recall@10"), ("B", "recall@10"), ("D", "recall@10"),
    ]
    a = {row["method"]: row for row in rows if row["metric"] == "ndcg@10"}
    # A: users 0-4 only in seed 1, 30-39 only in seed 2, 5-29 averaged over both seeds
    a_user = np.concatenate([v["a1"][:5], (v["a1"][5:] + v["a2"][:25]) / 2, v["a2"][25:]])
    r_user = np.concatenate([v["ref1"][:5], (v["ref1"][5:] + v["ref2"][:25]) / 2, v["ref2"][25:]])
    row = a["A"]
    assert (row["n_users"], row["n_seeds"], row["reference"]) == (40, 2, "EASE")
    assert row["mean"] == pytest.approx(a_user.mean())
    assert row["reference_mean"] == pytest.approx(r_user.mean())
    assert row["improvement_pct"] == pytest.approx((a_user.mean() / r_user.mean() - 1) * 100)
    t = stats.ttest_rel(a_user, r_user)
    assert row["t_stat"] == pytest.approx(t.statistic)
    assert row["p_ttest"] == pytest.approx(t.pvalue)
    assert row["p_wilcoxon"] == pytest.approx(stats.wilcoxon(a_user, r_user).pvalue)
    diff = a_user - r_user
    assert row["effect_size"] == pytest.approx(diff.mean() / diff.std(ddof=1))

    b = a["B"]
    assert (b["n_users"], b["n_seeds"]) == (20, 1)
    assert b["p_ttest"] == pytest.approx(stats.ttest_rel(v["b1"][:20], v["ref1"][:20]).pvalue)
    assert b["p_wilcoxon"] == pytest.approx(stats.wilcoxon(v["b1"][:20], v["ref1"][:20]).pvalue)

    d = a["D"]  # all differences zero: no crash, nothing significant
    assert (d["p_ttest"], d["p_wilcoxon"], d["effect_size"], d["t_stat"]) == (1.0, 1.0, 0.0, 0.0)
    assert d["improvement_pct"] == 0.0 and d["significant"] is False

    # Holm across the three compared methods, per metric and per test
    for test in ("p_ttest", "p_wilcoxon"):
        raw = [a[m][test] for m in ("A", "B", "D")]
        np.testing.assert_allclose([a[m][f"{test}_holm"] for m in ("A", "B", "D")], holm(raw))
    assert row["p_ttest_holm"] == pytest.approx(min(1.0, 3 * row["p_ttest"]))  # the smallest p
    assert row["significant"] is (row["p_ttest_holm"] < 0.05 and row["p_wilcoxon_holm"] < 0.05)
    assert row["significant"] is True
    assert set(row) == {
        "method", "reference", "metric", "mean", "reference_mean", "improvement_pct", "t_stat",
        "p_ttest", "p_ttest_holm", "p_wilcoxon", "p_wilcoxon_holm", "effect_size", "n_users",
        "n_seeds", "significant",
    }


def test_significance_options_and_edge_cases():
    runs, _ = _significance_runs()
    rows = SignificanceEvaluator({"metrics": ["recall@10"], "alpha": 1e-300}).compare(runs, "EASE")
    assert {r["metric"] for r in rows} == {"recall@10"}
    assert not any(r["significant"] for r in rows)
    assert SignificanceEvaluator().compare(runs, "nobody") == []
    # a single seed and a single user: no exception, p = 1
    one = [_run("EASE", 1, [3], [0.2]), _run("A", 1, [3], [0.5])]
    (row,) = [r for r in SignificanceEvaluator().compare(one, "EASE") if r["metric"] == "ndcg@10"]
    assert row["p_ttest"] == 1.0 and row["effect_size"] == 0.0 and row["n_users"] == 1
    assert row["improvement_pct"] == pytest.approx(150.0)
    # reference mean zero
    zero = [_run("EASE", 1, [1, 2], [0.0, 0.0]), _run("A", 1, [1, 2], [0.1, 0.3])]
    assert math.isnan(SignificanceEvaluator().compare(zero, "EASE")[0]["improvement_pct"])


# -- registration ------------------------------------------------------------------------

def test_builtin_evaluators_are_registered():
    from xdplug.plugins import make_plugin_manager

    registry = make_plugin_manager().registry
    names = registry.names("evaluator")
    assert {"ranking", "beyond-accuracy", "cold-start", "significance"} <= set(names)
    assert registry.get("evaluator", "significance").scope == "report"
    for name in ("ranking", "beyond-accuracy", "cold-start"):
        cls = registry.get("evaluator", name)
        assert cls.scope == "run"
        assert cls(None).evaluate(cold_tiny())  # builds from defaults and runs
