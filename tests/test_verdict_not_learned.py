"""The verdict decides among methods that learned: a run flagged "did not learn" neither wins nor sets the bar."""

from __future__ import annotations

from xdplug.report.aggregate import build_context
from xdplug.report.collect import pick_reference
from xdplug.report.verdict import make_verdict

FLAG = "did not learn: best validation score at epoch 0 of 3 (train phase), 0.0094, never beaten"


def run(method, kind, seed, ndcg, notes=None):
    return {"method": method, "kind": kind, "seed": seed, "status": "done", "error": None, "notes": notes,
            "metrics": {"test": {"ndcg@10": ndcg}, "valid": {"ndcg@10": ndcg}}, "curves": [], "spec": {},
            "time_s": 1.0, "peak_rss_mb": 100.0}


def data(runs, reference=None):
    return {"name": "v", "primary_metric": "ndcg@10", "metrics": ["ndcg@10"], "runs": runs, "seeds": [0, 1],
            "reference": reference if reference is not None else pick_reference(runs, "ndcg@10"), "comparisons": []}


def test_a_strategy_that_did_not_learn_is_not_the_best_method():
    runs = [run("EASE", "baseline", s, 0.30) for s in (0, 1)] + [
        run("lucky", "strategy", 0, 0.50, notes=FLAG), run("lucky", "strategy", 1, 0.48),
        run("steady", "strategy", 0, 0.31), run("steady", "strategy", 1, 0.33)]
    verdict = make_verdict(build_context(data(runs)))
    assert verdict.best_method == "steady" and verdict.best_strategy == "steady" and verdict.best_baseline == "EASE"
    assert verdict.text.startswith("Best method: steady (ndcg@10 = 0.3200")
    assert "steady beats EASE by +6.67%" in verdict.text
    assert ("Left out of this decision: lucky, whose 1 finished run(s) did not learn (their scores are those of a "
            "(nearly) untrained model; see below).") in verdict.text


def test_a_baseline_that_did_not_learn_is_no_reference():
    runs = [run("BPR", "baseline", 0, 0.40, notes=FLAG), run("EASE", "baseline", 0, 0.30),
            run("text", "strategy", 0, 0.35)]
    assert pick_reference(runs, "ndcg@10") == "EASE"
    verdict = make_verdict(build_context(data(runs)))
    assert verdict.best_method == "text" and verdict.best_baseline == "EASE"
    assert "text beats EASE" in verdict.text and "Left out of this decision: BPR" in verdict.text
    # a reference pinned to it (evaluation.reference) gives way to the best baseline that learned
    verdict = make_verdict(build_context(data(runs, reference="BPR")))
    assert verdict.best_baseline == "EASE" and "Best baseline: EASE" in verdict.text


def test_when_no_method_learned_there_is_nothing_to_decide():
    runs = [run("BPR", "baseline", 0, 0.40, notes=FLAG), run("text", "strategy", 0, 0.35, notes=FLAG)]
    assert pick_reference(runs, "ndcg@10") is None
    verdict = make_verdict(build_context(data(runs)))
    assert verdict.best_method is None
    assert verdict.text.startswith("No method with a test ndcg@10 learned in all its runs, so there is nothing to "
                                   "compare. Left out of this decision: BPR, text")


def test_methods_that_learned_are_decided_as_before():
    runs = [run("EASE", "baseline", 0, 0.30), run("text", "strategy", 0, 0.25)]
    verdict = make_verdict(build_context(data(runs)))
    assert verdict.best_method == "EASE" and "Left out" not in verdict.text
    assert "No strategy beat the best baseline" in verdict.text
