"""Tuned values at the edge of their search range are flagged (xdplug/report/edges.py), for controls and
strategies alike, in the tuning table, report.json and the verdict."""

from __future__ import annotations

import json

import pytest

from xdplug.report import write_report
from xdplug.report.edges import edge_flags, edge_of

LOG_REG = {"type": "loguniform", "low": 1.0e-3, "high": 100.0}


@pytest.mark.parametrize("value, dist, expected", [
    (98.0, LOG_REG, "high"),            # issue 31: iALS chose 96-99 against a bound of 100
    (60.0, LOG_REG, "high"),            # 95.6 % of the way on the log axis
    (50.0, LOG_REG, None),              # 94.0 %: inside
    (10.0, LOG_REG, None),              # near the bound linearly (10 %), far from it on the log axis
    (1.1e-3, LOG_REG, "low"),
    (1.95, {"type": "uniform", "low": 0.0, "high": 2.0}, "high"),
    (0.0, {"type": "uniform", "low": 0.0, "high": 2.0}, None),   # 0 = the term off: a natural limit
    (0.1, {"type": "uniform", "low": 0.1, "high": 1.0}, "low"),
    (950, {"type": "int", "low": 5, "high": 1000, "log": True}, "high"),
    (500, {"type": "int", "low": 5, "high": 1000, "log": True}, None),
    (512, {"type": "categorical", "choices": [32, 64, 128, 256, 512]}, "high"),
    (32, {"type": "categorical", "choices": [32, 64, 128, 256, 512]}, "low"),
    (128, {"type": "categorical", "choices": [32, 64, 128, 256, 512]}, None),
    (True, {"type": "categorical", "choices": [False, True]}, None),
    (0.0, {"type": "categorical", "choices": [0.0, 1.0, 10.0, 100.0]}, None),
])
def test_edge_of(value, dist, expected):
    assert edge_of(value, dist) == expected


def test_edge_flags_name_the_parameter_its_value_and_bound():
    space = {"params.regularization": LOG_REG, "params.alpha": {"type": "loguniform", "low": 0.1, "high": 100.0}}
    flags = edge_flags(space, {"params.regularization": 97.3, "params.alpha": 3.0})
    assert flags == [{"param": "params.regularization", "value": 97.3, "edge": "high", "low": 1.0e-3, "high": 100.0}]
    assert edge_flags(space, {}) == []


def _run(method, kind, seed, ndcg):
    return {"method": method, "kind": kind, "seed": seed, "status": "done",
            "metrics": {"test": {"ndcg@10": ndcg}, "valid": {"ndcg@10": ndcg}}, "time_s": 1.0,
            "spec": {"baseline": "iALS"} if kind == "baseline" else {"encoder": "id"}}


def test_report_marks_controls_and_flags_tuned_values_at_the_edge(tmp_path):
    """A tiny tuned run's report data: the tuned iALS control stopped at its bound, the strategy did not."""
    config = {"strategies": [{"name": "freeze"}],
              "baselines": [{"baseline": "BPR"}, {"baseline": "iALS", "control": "strong", "tuning": {"trials": 2}}]}
    data = {
        "name": "edges", "config": config, "primary_metric": "ndcg@10", "metrics": ["ndcg@10"],
        "reference": "iALS", "seeds": [1],
        "runs": [_run("iALS", "baseline", 1, 0.1007), _run("freeze", "strategy", 1, 0.0965),
                 _run("BPR", "baseline", 1, 0.08)],
        "tuning": {
            "iALS": {"space": {"params.regularization": LOG_REG}, "budget": 2,
                     "chosen": {"params.regularization": 98.0},
                     "trials": [{"number": 0, "value": 0.09, "params": {"params.regularization": 0.5}},
                                {"number": 1, "value": 0.1, "params": {"params.regularization": 98.0}}]},
            "freeze": {"space": {"params.model.dim": {"type": "categorical", "choices": [32, 64, 128]}}, "budget": 2,
                       "chosen": {"params.model.dim": 64},
                       "trials": [{"number": 0, "value": 0.09, "params": {"params.model.dim": 64}}]},
        },
    }
    paths = write_report(data, tmp_path)
    md = paths["markdown"].read_text()
    flag = "params.regularization = 98 (high edge of \\[0.001, 100\\])"  # report.md escapes the brackets
    tuning_row = next(line for line in md.splitlines() if line.startswith("| iALS (control) |"))
    assert tuning_row.rstrip(" |").endswith(flag)
    assert "| freeze |" in md and "1 tuned method(s) chose a value at the edge of its search range: iALS: " + flag in md
    assert "| iALS | baseline (control, reference) |" in md and "| BPR | baseline |" in md
    assert "Best baseline (the strongest control): iALS" in md
    assert f"Tuned at the edge of its search range, so it may be stronger than shown: iALS ({flag})" in md
    report = json.loads(paths["json"].read_text())
    assert report["controls"] == ["iALS"]
    assert report["tuned_at_edge"] == {"iALS": [{"param": "params.regularization", "value": 98.0, "edge": "high",
                                                "low": 0.001, "high": 100.0}]}
    assert report["verdict"]["best_control"] == "iALS" and report["verdict"]["at_edge"] == ["iALS"]
    assert {s["method"]: s["is_control"] for s in report["summary"]} == {"iALS": True, "freeze": False, "BPR": False}
