"""The example plugin (plugins/xdplug-example): contracts, a tiny training run, a whole benchmark."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from xdplug.errors import ConfigError
from xdplug.testing import (
    AdaptationContract,
    BaselineContract,
    DatasetContract,
    EncoderContract,
    EvaluatorContract,
    FusionContract,
    make_fit_context,
)

example = pytest.importorskip("xdplug_example", reason="pip install -e plugins/xdplug-example")

from xdplug_example.adaptation import Warmup  # noqa: E402
from xdplug_example.baseline import RandomBaseline  # noqa: E402
from xdplug_example.dataset import ExampleSynthetic  # noqa: E402
from xdplug_example.encoder import HashedBagOfWords, hashed_bow  # noqa: E402
from xdplug_example.evaluator import Novelty  # noqa: E402
from xdplug_example.fusion import SumFusion  # noqa: E402


@pytest.fixture(autouse=True)
def _installed(example_plugin):
    """Fail (not skip) when the package imports but its entry point is not installed."""


class TestHashedBagOfWords(EncoderContract):
    encoder_class = HashedBagOfWords
    params = {"dim": 32, "bigrams": True}


class TestSumFusion(FusionContract):
    fusion_class = SumFusion
    params = {"id_scale": 0.5}


class TestWarmup(AdaptationContract):
    adaptation_class = Warmup
    fit_on_synthetic = False  # trained below, with the example encoder and fusion


class TestRandomBaseline(BaselineContract):
    baseline_class = RandomBaseline


class TestNovelty(EvaluatorContract):
    evaluator_class = Novelty


class TestExampleSynthetic(DatasetContract):
    dataset_class = ExampleSynthetic


def test_options_are_checked_beyond_their_type():
    with pytest.raises(ConfigError, match=r"strategies\[0\]\.params\.adaptation\.source_epochs: expected an integer in \[1, 10000\]"):
        Warmup({"source_epochs": 0}, "strategies[0].params.adaptation")
    with pytest.raises(ConfigError, match="dataset.params.n_shared_users: cannot exceed n_users"):
        ExampleSynthetic({"n_users": 10, "n_shared_users": 20}, "dataset.params")
    with pytest.raises(ConfigError, match=r"\.dim: expected an integer in \[1, 65536\]"):
        HashedBagOfWords({"dim": 0})


def test_hashed_bow_is_deterministic_and_normalised():
    texts = ["Space Adventure Story", "space adventure story!", "Crime Thriller", ""]
    table = hashed_bow(texts, 64)
    np.testing.assert_array_equal(table, hashed_bow(texts, 64))
    np.testing.assert_allclose(np.linalg.norm(table[:3], axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(table[0], table[1])  # case and punctuation do not matter
    assert not table[3].any()  # no words, no vector
    assert not np.array_equal(table, hashed_bow(texts, 64, seed=1))


def test_warmup_and_random_train_on_synthetic_data(plugin_manager, synthetic_data, tmp_path):
    """fit_strategy with the example's encoder, fusion and adaptation; the random baseline beside it."""
    from xdplug.model.strategy import fit_strategy
    from xdplug.evaluation import rank_split

    ctx = make_fit_context(synthetic_data, tmp_path, seed=3)
    entry = {"encoder": "example-hashed-bow", "fusion": "example-sum", "adaptation": "example-warmup",
             "params": {"encoder": {"dim": 64}, "adaptation": {"source_epochs": 1},
                        "model": {"dim": 16, "batch_users": 64}}}
    scorer = fit_strategy(entry, plugin_manager.registry, ctx, "strategies[0]")
    phases = scorer.session.phases
    assert [(p["phase"], p["domains"], p["validate_on"]) for p in phases] == [
        ("warmup", ["source"], "source"), ("target", ["target"], "target")]
    assert {c["phase"] for c in ctx.curves} == {"warmup", "target"}
    scores = scorer.score(torch.arange(5))
    assert scores.shape == (5, synthetic_data.n_target_items) and torch.isfinite(scores).all()
    assert scorer.item_known.all()  # a text encoder reaches every item

    random = RandomBaseline({}).fit(ctx)
    result = rank_split(random.score, synthetic_data, "test", [5, 10], ctx.device, [5, 10])
    assert result.topk.shape[1] == 10
    novelty = Novelty({}).evaluate(result)
    assert set(novelty) == {"novelty@5", "novelty@10"} and all(v > 0 for v in novelty.values())


def test_a_whole_benchmark_with_the_example_components(tiny_config, plugin_manager, tmp_path, monkeypatch):
    """run_benchmark on the example recipe; the example's run_finished hook sees every run."""
    from xdplug.engine.runner import run_benchmark
    from xdplug.store import RunStore
    from xdplug.config import store_path

    log = tmp_path / "runs.jsonl"
    monkeypatch.setenv("XDPLUG_EXAMPLE_RUN_LOG", str(log))
    config = tiny_config(
        dataset={"recipe": "example-synthetic"},
        baselines=[{"baseline": "example-random"}, {"baseline": "Pop"}],
        strategies=[{"name": "bow-warmup", "encoder": "example-hashed-bow", "fusion": "example-sum",
                     "adaptation": "example-warmup",
                     "params": {"adaptation": {"source_epochs": 1}, "model": {"dim": 16, "batch_users": 64}}}],
        evaluation={"evaluators": ["ranking", "example-novelty"], "reference": "Pop"},
        train={"epochs": 1},
    )
    paths = run_benchmark(config, plugins=plugin_manager, progress=False)
    assert paths
    store = RunStore(store_path(config))
    runs = {run["method"]: run for run in store.runs()}
    store.close()
    assert set(runs) == {"example-random", "Pop", "bow-warmup"}
    for run in runs.values():
        assert run["status"] == "done", run.get("error")
        assert "novelty@10" in run["metrics"]["test"] and "ndcg@10" in run["metrics"]["test"]
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert sorted(line["method"] for line in lines) == ["Pop", "bow-warmup", "example-random"]
    assert all(line["status"] == "done" and "ndcg@10" in line["test"] for line in lines)


def test_a_third_party_search_space_evaluator_and_export_work_end_to_end(tiny_config, plugin_manager, tmp_path,
                                                                       capsys):
    """What the example plugin declares is all the engine needs: its search space is tuned, its
    evaluator's own row keys reach the report, its baseline refits on export and recommends."""
    from pathlib import Path

    from xdplug.cli import main
    from xdplug.config import dump_yaml, output_dir
    from xdplug.engine.runner import run_benchmark
    from xdplug.store import RunStore
    from xdplug.config import store_path
    from xdplug_example.baseline import CooccurrenceBaseline
    from xdplug_example.evaluator import WinRate

    core = Path(__file__).resolve().parents[1] / "xdplug"
    for file in core.rglob("*.py"):  # no name of the plugin in the core
        text = file.read_text()
        assert not any(name in text for name in ("example-cooc", "example-wins", "xdplug_example")), file
    config = tiny_config(
        baselines=[{"baseline": "Pop"}, {"baseline": "example-cooc", "tuning": {"trials": 2}}],
        evaluation={"evaluators": ["ranking", "significance", "example-wins"], "reference": "Pop"},
    )
    run_benchmark(config, plugins=plugin_manager, progress=False)
    store = RunStore(store_path(config))
    tuning = store.get_meta("tuning")
    runs = {run["method"]: run for run in store.runs()}
    store.close()
    assert tuning["example-cooc"]["space"] == CooccurrenceBaseline.search_space  # the declared space, searched
    assert len(tuning["example-cooc"]["trials"]) == 2
    assert runs["example-cooc"]["status"] == "done"
    report = json.loads((output_dir(config) / "report.json").read_text())["data"]
    table = next(t for t in report["comparison_tables"] if t["evaluator"] == "example-wins")
    assert table["row_keys"] == list(WinRate.row_keys) and table["rows"]
    assert set(table["rows"][0]) == set(WinRate.row_keys)
    markdown = (output_dir(config) / "report.md").read_text()
    assert "Comparisons: example-wins" in markdown and "win_rate" in markdown and "p_sign" in markdown
    assert "p t-test (Holm)" in markdown  # the significance evaluator's rows keep their own table

    config_file = tmp_path / "example.yaml"
    config_file.write_text(dump_yaml(config))
    artifact = tmp_path / "cooc-artifact"
    assert main(["export", str(config_file), "--method", "example-cooc", "-o", str(artifact), "--quiet",
                 "--json"]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert exported["reproduction"]["match"] and exported["roundtrip"]["scores_match"]
    assert json.loads((artifact / "meta.json").read_text())["rebuild"] == "refit"
    user = json.loads((artifact / "ids.json").read_text())["users"][0]
    assert main(["recommend", str(artifact), "--user", user, "-k", "3", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 3
    items = json.loads((artifact / "ids.json").read_text())["items"][:2]
    history = tmp_path / "history.txt"
    history.write_text("\n".join(items) + "\n")
    assert main(["recommend", str(artifact), "--history", str(history), "-k", "3", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 3
