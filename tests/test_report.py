"""The comparison report: right verdict, right numbers, offline HTML, atomic writes."""

from __future__ import annotations

import copy
import json
import os
import re
import statistics

import pandas as pd
import pytest
from plotly.offline import get_plotlyjs

from xdplug.report import REPORT_FILES, write_report

TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "xdplug/runner.py", line 10, in run\n'
    "    model.fit()\n"
    "RuntimeError: gradient reversal exploded at epoch 3"
)
MAIN = ["ndcg@10", "recall@10", "mrr@10", "hit@10", "precision@10"]


def _metrics(ndcg: float, cold: float | None = None) -> dict:
    test = {
        "ndcg@10": ndcg,
        "recall@10": ndcg * 0.7,
        "mrr@10": ndcg * 1.2,
        "hit@10": min(1.0, ndcg * 2.5),
        "precision@10": ndcg * 0.5,
        "ndcg@20": ndcg * 1.1,
        "coverage@10": 0.5 - ndcg,
        "gini@10": 0.9 - ndcg,
        "coverage@20": 0.6 - ndcg,
        "ndcg@10|users 1-5": ndcg * 0.5,
        "ndcg@10|users 6-10": ndcg * 0.8,
        "ndcg@10|users 11+": ndcg * 1.1,
        "n_users|users 1-5": 212.0,
        "n_users|users 6-10": 300.0,
        "n_users|users 11+": 431.0,
    }
    if cold is not None:
        test["ndcg@10|cold items"] = cold
        test["recall@10|cold items"] = cold * 0.9
        test["n_users|cold items"] = 150.0
        test["cold_hit_share@10"] = cold / 4
        test["cold_known_frac"] = 0.0 if cold == 0.0 else 1.0
    return {"test": test, "valid": {"ndcg@10": ndcg * 0.95}}


def _run(method, kind, seed, ndcg=None, status="done", error=None, cold=None, notes=None, curves=None):
    """One run record as the runner stores it (not-applicable runs carry their reason in ``notes``)."""
    return {
        "method": method,
        "kind": kind,
        "seed": seed,
        "status": status,
        "error": error,
        "metrics": _metrics(ndcg, cold) if status == "done" else {},
        "curves": curves or [],
        "time_s": 10.0 + seed % 10,
        "peak_rss_mb": 800.0 + seed % 10,
        "spec": {"baseline": method, "params": {"reg": 250}} if kind == "baseline"
        else {"encoder": "bert", "fusion": "gate", "adaptation": "finetune", "params": {"lr": 0.001}},
        "notes": notes,
    }


def _curves():
    return [
        {"phase": "source", "epoch": 0, "loss": 1.2, "valid": None},
        {"phase": "source", "epoch": 1, "loss": 0.9, "valid": None},
        {"phase": "target", "epoch": 0, "loss": 0.8, "valid": 0.25},
        {"phase": "target", "epoch": 1, "loss": 0.7, "valid": 0.28},
    ]


def _comparison(method, mean, ref_mean, p, significant):
    return {
        "method": method, "reference": "EASE (pooled)", "metric": "ndcg@10", "mean": mean,
        "reference_mean": ref_mean, "improvement_pct": (mean / ref_mean - 1) * 100, "t_stat": 3.1,
        "p_ttest": p / 2, "p_ttest_holm": p, "p_wilcoxon": p / 2, "p_wilcoxon_holm": p * 1.5,
        "effect_size": 0.12, "n_users": 943, "n_seeds": 2, "significant": significant,
    }


def make_data() -> dict:
    """A two-seed report: one strategy significantly beats the pooled-EASE reference, one does not."""
    runs = []
    for seed, (pop, ease, pooled, gate, mean_) in zip(
        (2022, 2023), ((0.12, 0.29, 0.300, 0.310, 0.303), (0.13, 0.30, 0.304, 0.316, 0.305))
    ):
        runs += [
            _run("Pop", "baseline", seed, pop, cold=0.05),
            _run("EASE", "baseline", seed, ease, cold=0.0, notes="cannot score cold items (ID-only)"),
            _run("EASE (pooled)", "baseline", seed, pooled, cold=0.42),
            _run("bert+gate+finetune", "strategy", seed, gate, cold=0.44, curves=_curves()),
            _run("bert+mean+frozen", "strategy", seed, mean_, cold=0.2),
            # the runner's format (summary line, blank, traceback) and a bare traceback
            _run("dann", "strategy", seed, status="failed",
                 error=TRACEBACK if seed == 2022 else TRACEBACK.splitlines()[-1] + "\n\n" + TRACEBACK),
        ]
    runs.append(_run("idonly+zeroshot", "strategy", 2022, status="not_applicable",
                     notes="domains share no item IDs; zero-shot needs shared items"))
    return {
        "name": "quickstart",
        "config_hash": "ab12cd34ef56",
        "config": {"dataset": {"recipe": "ml100k-genres"}, "seeds": [2022, 2023]},
        "primary_metric": "ndcg@10",
        "metrics": MAIN + ["ndcg@20", "coverage@10"],
        "dataset": {
            "recipe": "ml100k-genres",
            "regime": "20% of target train kept",
            "domains": {
                "source": {"users": 943, "items": 800, "interactions": 60000, "sparsity": 0.92, "text_coverage": 1.0},
                "target": {"users": 943, "items": 600, "interactions": 20000, "sparsity": 0.96, "text_coverage": 0.98},
            },
            "overlap": {"users": 943, "items": 0, "user_fraction": 1.0, "item_fraction": 0.0},
            "split": {"train": 16000, "valid": 2000, "test": 2000},
            "protocol": {"positive_threshold": 3, "split": "RO 8:1:1", "ranking": "full"},
            "cold_items": 120,
        },
        "seeds": [2022, 2023],
        "versions": {"xdplug": "0.1.0", "recbole": "1.2.1", "torch": "2.13.0"},
        "device": "cpu",
        "reference": "EASE (pooled)",
        # what the evaluators declare (collect.declarations): directions and the cold-item slice's label
        "lower_is_better": ["avg_pop", "gini"],
        "cold_slice": "cold items",
        "runs": runs,
        "comparisons": [
            _comparison("bert+gate+finetune", 0.313, 0.302, 0.004, True),
            _comparison("bert+mean+frozen", 0.304, 0.302, 0.40, False),
        ],
        "tuning": {
            "bert+gate+finetune": {
                "space": {"lr": [1e-4, 1e-2]},
                "trials": [{"number": i, "value": 0.2 + 0.01 * i, "params": {"lr": 10 ** -(i + 2)}} for i in range(3)],
                "chosen": {"lr": 0.01},
                "budget": 3,
            }
        },
    }


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """One report shared by the read-only tests (the HTML inlines ~5 MB of plotly.js)."""
    data = make_data()
    paths = write_report(data, tmp_path_factory.mktemp("report") / "out")
    return data, paths


def _table_row(md: str, method: str) -> str:
    """The first table row of ``method`` (the main results table comes first)."""
    return next(line for line in md.splitlines() if line.startswith(f"| {method} |"))


def test_write_report_returns_every_file(report):
    _, paths = report
    assert set(paths) == set(REPORT_FILES)
    for key, path in paths.items():
        assert path.name == REPORT_FILES[key] and path.is_file() and path.stat().st_size > 0
    assert not [p for p in paths["markdown"].parent.iterdir() if p.name.endswith(".tmp")]


def test_markdown_verdict_names_best_method_and_hand_computed_improvement(report):
    _, paths = report
    md = paths["markdown"].read_text()
    mean = (0.310 + 0.316) / 2
    std = statistics.stdev([0.310, 0.316])
    assert f"Best method: bert+gate+finetune (ndcg@10 = {mean:.4f} ± {std:.4f}, 2 seeds)" in md
    assert "Best baseline: EASE (pooled)" in md
    improvement = (0.313 / 0.302 - 1) * 100
    assert f"beats EASE (pooled) by +{improvement:.2f}%" in md
    assert "paired t-test p_holm = 0.004" in md
    assert ": significant at α = 0.05" in md


def test_markdown_bold_best_and_significance_markers(report):
    _, paths = report
    md = paths["markdown"].read_text()
    best = f"**{(0.310 + 0.316) / 2:.4f} ± {statistics.stdev([0.310, 0.316]):.4f}**"
    gate_row = _table_row(md, "bert+gate+finetune")
    assert best in gate_row
    assert gate_row.rstrip(" |").endswith(f"+{(0.313 / 0.302 - 1) * 100:.2f}% \\*\\*")
    frozen_row = _table_row(md, "bert+mean+frozen")
    assert f"+{(0.304 / 0.302 - 1) * 100:.2f}%" in frozen_row and "\\*" not in frozen_row
    assert "**" not in frozen_row  # not the best of any main column either
    assert "\\* p < 0.05, \\*\\* p < 0.01" in md  # the legend
    # rows ranked by the primary metric
    order = ["bert+gate+finetune", "bert+mean+frozen", "EASE (pooled)", "EASE", "Pop"]
    positions = [md.index(f"| {m} |") for m in order]
    assert positions == sorted(positions)


def test_markdown_failures_cold_start_and_protocol(report):
    _, paths = report
    md = paths["markdown"].read_text()
    failures = md.split("## Failed and not-applicable runs")[1].split("<details>")[0]
    dann_rows = [line for line in failures.splitlines() if line.startswith("| dann |")]
    assert len(dann_rows) == 2
    for row in dann_rows:
        assert "| failed | RuntimeError: gradient reversal exploded at epoch 3 |" in row
    assert TRACEBACK.splitlines()[1] in md  # full traceback in the details section
    assert "domains share no item IDs" in md and "| not_applicable |" in md
    assert "0/2 (2 failed)" in _table_row(md, "dann")
    cold = md.split("### Slice: cold items")[1]
    ease_cold = _table_row(cold, "EASE")
    assert "0.0000 ± 0.0000" in ease_cold and "cannot score cold items (ID-only)" in ease_cold
    assert "users 1-5 (n=212) | users 6-10 (n=300) | users 11+ (n=431)" in md
    assert "150 users with such a test item" in md
    assert "n\\_users" not in md and "| n_users" not in md
    measures = md.split("### Cold-item measures")[1].split("##")[0]
    assert "cold_hit_share@10" in measures and "cold_known_frac" in measures
    protocol = md.split("## Protocol")[1]
    for text in ("ml100k-genres", "20% of target train kept", "ab12cd34ef56", "2022, 2023", "recbole | 1.2.1",
                 "| cpu |", "16,000", "bert+gate+finetune: 3 trials"):
        assert text in protocol, text
    beyond = md.split("## Beyond accuracy")[1].split("\n## ")[0]
    assert "coverage@10 | gini@10" in beyond and "Lower is better for gini@10" in beyond
    assert "coverage@20" in beyond.split("Other cut-offs")[1]
    assert "**0.5870 ± 0.0042**" in _table_row(beyond, "bert+gate+finetune")  # lowest gini@10 wins


def test_csv_and_json_round_trip_the_numbers(report):
    data, paths = report
    results = pd.read_csv(paths["results"], float_precision="round_trip")
    assert len(results) == len(data["runs"])
    for run in data["runs"]:
        row = results[(results["method"] == run["method"]) & (results["seed"] == run["seed"])].iloc[0]
        assert row["status"] == run["status"]
        for metric, value in (run["metrics"].get("test") or {}).items():
            assert row[metric] == value
        if run["status"] != "done":
            assert pd.isna(row["ndcg@10"])
    summary = pd.read_csv(paths["summary"], float_precision="round_trip").set_index("method")
    assert list(summary.index[:2]) == ["bert+gate+finetune", "bert+mean+frozen"]
    assert summary.loc["EASE", "ndcg@10_mean"] == pytest.approx(0.295)
    assert summary.loc["EASE", "ndcg@10_std"] == pytest.approx(statistics.stdev([0.29, 0.30]))
    assert summary.loc["dann", "n_failed"] == 2 and pd.isna(summary.loc["dann", "ndcg@10_mean"])
    assert bool(summary.loc["EASE (pooled)", "is_reference"])
    assert summary.loc["bert+gate+finetune", "improvement_pct"] == pytest.approx((0.313 / 0.302 - 1) * 100)

    report_json = json.loads(paths["json"].read_text())
    assert report_json["data"]["runs"] == json.loads(json.dumps(data["runs"]))
    assert report_json["data"]["comparisons"] == data["comparisons"]
    assert report_json["verdict"]["best_method"] == "bert+gate+finetune"
    assert report_json["verdict"]["significant"] is True
    gate = next(s for s in report_json["summary"] if s["method"] == "bert+gate+finetune")
    assert gate["test"]["ndcg@10"]["mean"] == pytest.approx(0.313)
    assert gate["test"]["ndcg@10"]["n"] == 2


def test_html_is_offline_with_one_plotly_and_every_figure(report):
    _, paths = report
    page = paths["html"].read_text()
    plotly_js = get_plotlyjs()
    assert page.count(plotly_js) == 1
    rest = page.replace(plotly_js, "")  # plotly.js itself mentions map-tile CDNs it never loads here
    assert 'src="http' not in rest and "cdn" not in rest.lower()
    assert not re.search(r"<script[^>]*\bsrc=", page)
    # one chart for the decision (no bar chart per metric, no cold-start chart), training curves, tuning
    expected = ["fig-primary", "fig-training", "fig-tuning-bert-gate-finetune"]
    assert page.count('class="plotly-graph-div"') == len(expected)
    for fig_id in expected:
        assert page.count(f'<div id="{fig_id}" class="plotly-graph-div"') == 1, fig_id
    assert "Best method: bert+gate+finetune" in page
    assert "RuntimeError: gradient reversal exploded at epoch 3" in page


def test_failure_while_writing_leaves_no_partial_report(tmp_path, monkeypatch):
    data = make_data()
    calls = {"n": 0}
    real_fsync = os.fsync

    def failing_fsync(fd):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        real_fsync(fd)

    out = tmp_path / "fresh"
    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="disk full"):
        write_report(data, out)
    assert list(out.iterdir()) == []

    # an existing report survives a failed rewrite byte for byte
    monkeypatch.setattr(os, "fsync", real_fsync)
    paths = write_report(data, tmp_path / "kept")
    before = {p.name: p.read_bytes() for p in (tmp_path / "kept").iterdir()}
    changed = copy.deepcopy(data)
    changed["name"] = "changed"
    calls["n"] = 0
    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError):
        write_report(changed, tmp_path / "kept")
    assert {p.name: p.read_bytes() for p in (tmp_path / "kept").iterdir()} == before
    assert set(before) == {p.name for p in paths.values()}


def test_single_seed_no_comparisons_and_no_winning_strategy(tmp_path):
    data = make_data()
    data["seeds"] = [2022]
    data["runs"] = [r for r in data["runs"] if r["seed"] == 2022 and r["method"] != "bert+gate+finetune"]
    data["comparisons"] = []
    data.pop("tuning")
    for run in data["runs"]:
        if run["method"] == "bert+mean+frozen":
            run["metrics"]["test"]["ndcg@10"] = 0.25
            del run["metrics"]["test"]["recall@10"]
    paths = write_report(data, tmp_path)
    md = paths["markdown"].read_text()
    assert "Best method: EASE (pooled) (ndcg@10 = 0.3000, 1 seed)" in md
    assert "No strategy beat the best baseline" in md and "stay with EASE (pooled)" in md
    assert "No significance tests were run" in md
    assert "\\*" not in _table_row(md, "bert+mean+frozen")
    frozen = _table_row(md, "bert+mean+frozen").split(" | ")
    assert frozen[4] == "–"  # missing recall@10
    summary = pd.read_csv(paths["summary"], float_precision="round_trip").set_index("method")
    assert pd.isna(summary.loc["EASE", "ndcg@10_std"])
    page = paths["html"].read_text()
    assert "fig-tuning" not in page and page.count(get_plotlyjs()) == 1


def test_every_run_failed(tmp_path):
    data = make_data()
    data["runs"] = [r for r in data["runs"] if r["status"] != "done"]
    data["reference"] = None
    data["comparisons"] = []
    paths = write_report(data, tmp_path)
    md = paths["markdown"].read_text()
    assert "No run produced a test ndcg@10" in md
    assert "RuntimeError: gradient reversal exploded at epoch 3" in md
    assert pd.read_csv(paths["results"])["status"].tolist() == ["failed", "failed", "not_applicable"]
    assert json.loads(paths["json"].read_text())["verdict"]["best_method"] is None


def test_reference_recomputed_when_missing(tmp_path):
    data = make_data()
    data["reference"] = None
    md = write_report(data, tmp_path)["markdown"].read_text()
    assert "| EASE (pooled) | baseline (reference) |" in md


def test_same_data_same_bytes(tmp_path):
    data = make_data()
    a = write_report(data, tmp_path / "a", generated_at="2026-11-25 12:00 UTC")
    b = write_report(data, tmp_path / "b", generated_at="2026-11-25 12:00 UTC")
    assert all(a[k].read_bytes() == b[k].read_bytes() for k in a)


def test_a_pinned_reference_is_named_as_such(tmp_path):
    """evaluation.reference may pin a baseline that is not the best; the verdict must not call it the best."""
    data = make_data()
    data["reference"] = "EASE"
    data["comparisons"] = [dict(c, reference="EASE", reference_mean=0.295) for c in data["comparisons"]]
    md = write_report(data, tmp_path)["markdown"].read_text()
    assert "Reference baseline (evaluation.reference): EASE (ndcg@10 = 0.2950" in md
    assert "Best baseline" not in md.split("## Results")[0]


# --- what a reader sees: one chart for the decision, compact tables ----------------------------------


def _figures(data):
    from xdplug.report.aggregate import build_context
    from xdplug.report.figures import build_figures

    return build_figures(build_context(data))


def test_one_primary_chart_with_t_intervals_zoomed_axis_and_reference_line():
    from scipy.stats import t as student

    figures = _figures(make_data())
    assert "primary" in figures and not any(k.startswith(("bar:", "coldstart")) for k in figures)
    fig = figures["primary"]
    points = {y: (x, trace) for trace in fig.data for x, y in zip(trace.x, trace.y)}
    x, trace = points["bert+gate+finetune"]
    assert x == pytest.approx(0.313)
    half = student.ppf(0.975, 1) * statistics.stdev([0.310, 0.316]) / 2 ** 0.5  # t-based, 2 seeds
    assert trace.error_x.array[list(trace.y).index("bert+gate+finetune")] == pytest.approx(half)
    assert points["EASE (pooled)"][1].name == "reference: EASE (pooled)"
    assert {t.name for t in fig.data} >= {"baseline", "strategy"}  # not "strategys"
    lines = [s for s in fig.layout.shapes if s.type == "line"]
    assert len(lines) == 1 and lines[0].x0 == pytest.approx(0.302)  # the reference's mean
    low, high = fig.layout.xaxis.range
    assert low > 0.05 and high < 0.5  # zoomed to the data, not from 0
    assert "95% interval over 2 seeds" in fig.layout.title.text


def test_single_seed_report_shows_plain_means_and_no_interval(tmp_path):
    data = make_data()
    data["seeds"] = [2022]
    data["runs"] = [r for r in data["runs"] if r["seed"] == 2022]
    paths = write_report(data, tmp_path)
    md = paths["markdown"].read_text()
    body = md.split("## Results")[1].split("## Failed")[0]
    cells = [c for line in body.splitlines() if line.startswith("| ") for c in line.split(" | ")]
    assert cells and not any("±" in c for c in cells)
    assert "| **0.3100** |" in _table_row(md, "bert+gate+finetune")  # the mean alone, no "± –"
    fig = _figures(data)["primary"]
    assert all(trace.error_x.array is None for trace in fig.data)
    assert "one seed, no interval" in fig.layout.title.text
    page = paths["html"].read_text()
    assert "One seed: no confidence interval can be computed" in page
    assert "± –" not in page and "± –" not in md


def test_parameter_lists_read_key_value_not_json(report):
    _, paths = report
    md = paths["markdown"].read_text()
    methods = md.split("### Methods")[1]
    assert "| EASE | baseline | baseline=EASE | reg=250 |" in methods
    assert "lr=0.001" in _table_row(methods, "bert+gate+finetune")
    assert '{"' not in methods.split("<details>")[0]
    tuning = md.split("## Tuning")[1].split("## Protocol")[0]
    assert "lr=0.01" in tuning and '{"lr"' not in tuning.split("<details>")[0]

    from xdplug.report.tables import fmt_params
    assert fmt_params({"model": {"dim": 64, "tower": "mlp"}, "adaptation": {}, "lr": 1e-3}) == \
        "model.dim=64, model.tower=mlp, adaptation={}, lr=0.001"
    assert fmt_params({}) == "–"


def test_training_curves_draw_validation_of_trained_methods_only(tmp_path):
    data = make_data()
    for run in data["runs"]:
        if run["method"] == "EASE":  # a closed-form fit: one point at epoch 0
            run["curves"] = [{"phase": "train", "epoch": 0, "loss": 0.0, "valid": 0.28, "best": True}]
        if run["method"] == "bert+mean+frozen":  # a source warm-up, tagged as the session tags it
            run["curves"] = [{"phase": "warmup", "epoch": e, "loss": 1.0, "valid": 0.5, "validated_on": "source"}
                             for e in range(3)]
    fig = _figures(data)["training"]
    assert [t.name for t in fig.data] == ["bert+gate+finetune"]  # EASE left out, source phases not drawn
    assert list(fig.data[0].y) == [0.25, 0.28]  # validation scores, not losses
    assert "Validation ndcg@10 by epoch" in fig.layout.title.text
    assert fig.layout.legend.orientation == "h"  # below the plot, not a scroll box beside it
    page = write_report(data, tmp_path)["html"].read_text()
    assert "Not drawn (fitted in one step or trained for one epoch): " in page
    assert "EASE" in page.split("Not drawn")[1].split("</p>")[0]


def test_slices_highlight_the_reference_and_the_best_strategy(report):
    _, paths = report
    md = paths["markdown"].read_text()
    groups = md.split("## Cold start")[1].split("<details>")[0]
    # best strategy per user group: bert+gate+finetune, also best overall there (bold italic)
    assert f"***{0.313 * 0.5:.4f} ± " in _table_row(groups, "bert+gate+finetune")
    assert "*" not in _table_row(groups, "bert+mean+frozen")
    page = paths["html"].read_text()
    cold = page.split("<h2>Cold start</h2>")[1].split("</table>")[0]
    assert '<tr class="reference"><td>EASE (pooled)</td>' in cold
    assert cold.count('class="num highlight"') == 3  # one best strategy per user group


def test_metric_directions_come_from_the_declarations(tmp_path):
    """The report knows no metric's direction: without ``gini`` declared lower-is-better, its highest value is
    the column's best, and the note says nothing of it."""
    data = make_data()
    data["lower_is_better"] = []
    md = write_report(data, tmp_path)["markdown"].read_text()
    beyond = md.split("## Beyond accuracy")[1].split("\n## ")[0]
    assert "Lower is better" not in beyond
    assert "**0.5870 ± 0.0042**" not in _table_row(beyond, "bert+gate+finetune")


def test_evaluator_declarations_reach_the_report_data(register_plugin, plugin_manager):
    """A third-party evaluator's lower-is-better family and cold-item slice label are what the report reads."""
    from xdplug.api import Evaluator, hookimpl
    from xdplug.report.collect import declarations

    class Misses(Evaluator):
        name = "test-misses"
        description = "d"
        directions = {"misses": "lower"}
        slices = {"new titles": "items released after the split"}
        cold_slice = "new titles"

        def evaluate(self, result):
            return {}

    class Plugin:
        @hookimpl
        def register_evaluators(self, register):
            register(Misses)

    register_plugin(Plugin(), name="test-misses-plugin")
    config = {"evaluation": {"evaluators": ["ranking", "beyond-accuracy", "test-misses"]}}
    declared = declarations(config, plugin_manager.registry)
    assert declared["lower_is_better"] == ["avg_pop", "gini", "misses"]
    assert declared["cold_slice"] == "new titles" and declared["slices"]["new titles"].startswith("items")
