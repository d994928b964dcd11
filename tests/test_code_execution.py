"""No value that reaches RecBole runs as code: not from a config, not from an artifact.

RecBole 1.2.1's ``Config`` calls ``eval`` on every string option. xdplug builds
it without ``eval`` (``recbole_compat.safe_config_class``), the RecBole
baselines refuse at validation any string RecBole would evaluate, and loading
an artifact checks its stored spec like a config before anything is built.
Every bad input here would create a marker file if it were ever evaluated.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import yaml

import xdplug
from xdplug.artifact.format import _write_manifest
from xdplug.artifact import write_artifact
from xdplug.cli import main
from xdplug.config import load_config
from xdplug.data.prepare import prepare
from xdplug.errors import ArtifactError, ConfigError
from xdplug.recbole.compat import evaluates_as_code, literal_value, recbole_config
from xdplug.context import FitContext

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BASE = {"name": "evil", "dataset": {"recipe": "synthetic"}, "seeds": [0], "device": "cpu",
        "train": {"epochs": 1}, "evaluation": {"ks": [5, 10], "valid_metric": "ndcg@10", "user_groups": [5]}}


def evil(marker) -> str:
    return f"__import__('os').system('touch {marker}') or 'stack'"


def config_with(baseline: str, params: dict) -> dict:
    return {**BASE, "baselines": [{"baseline": baseline, "params": params}]}


# -- a config -----------------------------------------------------------------------------------

@pytest.mark.parametrize("baseline,key", [
    ("GCMC", "accum"),  # a string option: RecBole's default is "stack"
    ("ItemKNN", "knn_method"),
    ("NeuMF", "mf_pretrain_path"),  # an option without a default value
    ("BPR", "learning_rate"),
    ("BPR", "embedding_size"),  # a number option
    ("NGCF", "hidden_size_list"),  # a list option
])
def test_a_string_recbole_would_evaluate_fails_validation_and_never_runs(plugin_manager, tmp_path, baseline, key):
    marker = tmp_path / "MARKER"
    with pytest.raises(ConfigError, match=rf"baselines\[0\]\.params\.{key}: .*__import__") as info:
        load_config(data=config_with(baseline, {key: evil(marker)}), registry=plugin_manager.registry)
    assert info.value.path == f"baselines[0].params.{key}"
    assert not marker.exists()


def test_strings_nested_in_options_are_checked_too(plugin_manager, tmp_path):
    marker = tmp_path / "MARKER"
    nested = {"train_neg_sample_args": {"distribution": evil(marker), "sample_num": 1}}
    # the nested keys are declared (xdplug.options.Mapping): the code string is no allowed distribution
    with pytest.raises(ConfigError, match=r"baselines\[0\]\.params\.train_neg_sample_args\.distribution: expected "
                                          r"one of 'uniform', 'popularity', got .*__import__"):
        load_config(data=config_with("BPR", nested), registry=plugin_manager.registry)
    # expressions that are not calls are refused as well: RecBole would evaluate them
    for text in ("1+2", "os.system", "[1, 2][0]", "lambda: 0"):
        with pytest.raises(ConfigError, match=r"baselines\[0\]\.params\.mf_pretrain_path: "):
            load_config(data=config_with("NeuMF", {"mf_pretrain_path": text}), registry=plugin_manager.registry)
    assert not marker.exists()


def test_set_overrides_and_the_cli_refuse_it(plugin_manager, tmp_path, capsys):
    marker = tmp_path / "MARKER"
    config = config_with("GCMC", {})
    with pytest.raises(ConfigError, match=r"baselines\[0\]\.params\.accum: ") as info:
        load_config(data=config, overrides=[f"baselines[0].params.accum={evil(marker)}"],
                    registry=plugin_manager.registry)
    assert "expected" in str(info.value)
    path = tmp_path / "evil.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["run", str(path), "--set", f"baselines.0.params.accum={evil(marker)}"]) == 2
    err = capsys.readouterr().err
    assert "baselines[0].params.accum" in err or "baselines.0.params.accum" in err
    assert "Traceback" not in err
    path.write_text(yaml.safe_dump(config_with("GCMC", {"accum": evil(marker)})))
    assert main(["run", str(path)]) == 2
    assert "baselines[0].params.accum" in capsys.readouterr().err
    assert not marker.exists()


def test_benign_strings_still_work(plugin_manager):
    registry = plugin_manager.registry
    config = {**BASE, "baselines": [
        {"baseline": "ItemKNN", "params": {"knn_method": "item"}},
        {"baseline": "GCMC", "params": {"accum": "sum"}},
        {"baseline": "SimpleX", "params": {"aggregator": "mean"}},
        {"baseline": "NeuMF", "params": {"mf_pretrain_path": "/models/mf.pth"}},
        {"baseline": "BPR", "params": {"train_neg_sample_args": {"distribution": "uniform", "sample_num": 1}}},
    ]}
    resolved = load_config(data=config, registry=registry)
    assert resolved["baselines"][0]["params"] == {"knn_method": "item"}
    knn = registry.get("baseline", "ItemKNN")({"knn_method": "item"}, "baselines[0].params")
    assert knn.params["knn_method"] == "item"


# -- RecBole's Config itself -----------------------------------------------------------------------

def test_recbole_config_never_evaluates_and_keeps_the_string(tmp_path, monkeypatch):
    marker = tmp_path / "MARKER"
    # a command line RecBole would read: ignored (sys.argv is shielded, and the safe Config reads none)
    monkeypatch.setattr("sys.argv", ["prog", f"--learning_rate={evil(marker)}", f"--accum={evil(marker)}"])
    config = recbole_config("GCMC", "evil", tmp_path, {"accum": evil(marker), "mf_pretrain_path": "1+2",
                                                        "reg_weight": "1e-3", "hidden_size_list": "[64, 32]",
                                                        "flag": "true", "valid_metric": "NDCG@10"},
                            torch.device("cpu"))
    assert not marker.exists()
    assert config["accum"] == evil(marker)  # kept as the plain string
    assert config["mf_pretrain_path"] == "1+2"
    assert config["learning_rate"] != evil(marker)
    # literals still mean what they meant to RecBole, and so do the strings xdplug passes itself
    assert config["reg_weight"] == 1e-3 and config["hidden_size_list"] == [64, 32] and config["flag"] is True
    assert config["user_inter_num_interval"] == "[0,inf)" and config["valid_metric"] == "NDCG@10"


def test_the_evaluation_check():
    bad = ["__import__('os')", "1+2", "a.b", "f(x)", "[1][0]", "lambda: 0", "\n__import__('os')", "  open('x')",
           "{**x}", "(x for x in y)", "f'{x}'"]
    good = ["stack", "item", "01", "0.5", "[64, 32]", "{'a': 1}", "'text'", "None", "true", "[0,inf)", "/a/b.pth",
            "-1", "1e-5"]
    assert [t for t in bad if not evaluates_as_code(t)] == []
    assert [t for t in good if evaluates_as_code(t)] == []
    assert literal_value("[0,inf)") == "[0,inf)" and literal_value("False") is False and literal_value("x") == "x"


# -- an artifact --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def knn_artifact(tmp_path_factory):
    """An ItemKNN artifact (training-free, seconds) on the synthetic fixture."""
    from xdplug.plugins import make_plugin_manager

    root = tmp_path_factory.mktemp("evil-artifact")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDPLUG_HOME", str(root / "home"))
        registry = make_plugin_manager().registry
        entry = {"baseline": "ItemKNN", "params": {"knn_method": "item"}}
        config = load_config(data={**BASE, "baselines": [entry]}, registry=registry)
        data = prepare(registry.get("dataset", "synthetic")({}), config["dataset"], 0)
        ctx = FitContext(data=data, seed=0, device=torch.device("cpu"), train=config["train"],
                         evaluation=config["evaluation"], workdir=root / "work")
        scorer = registry.get("baseline", "ItemKNN")(entry["params"]).fit(ctx)
        return write_artifact(root / "knn", kind="baseline", method="ItemKNN", entry=entry, seed=0, config=config,
                              data=data, registry=registry, scorer=scorer, run_id="run-knn")


def tampered(knn_artifact, tmp_path, change):
    """A copy whose meta.json is changed by ``change`` and whose manifest is recomputed as export does."""
    folder = tmp_path / "tampered"
    shutil.copytree(knn_artifact, folder)
    meta = json.loads((folder / "meta.json").read_text())
    change(meta)
    (folder / "meta.json").write_text(json.dumps(meta, indent=2))
    _write_manifest(folder, meta)
    return folder


def _spec_param(marker):
    def change(meta):
        meta["spec"]["params"]["knn_method"] = evil(marker)
    return change


def _other_model(marker):
    def change(meta):
        meta["spec"] = {"baseline": "GCMC", "params": {"accum": evil(marker)}}
    return change


def _config_value(marker):
    def change(meta):  # the stored train block reaches RecBole's Config on loading
        meta["config"]["train"]["learning_rate"] = evil(marker)
    return change


def _training_option(marker):
    def change(meta):
        meta["spec"]["params"]["learning_rate"] = evil(marker)
    return change


@pytest.mark.parametrize("change,key", [
    (_spec_param, r"spec\.params\.knn_method"),
    (_other_model, r"spec\.params\.accum"),
    (_config_value, r"config\.train\.learning_rate"),
    (_training_option, r"spec\.params\.learning_rate"),
])
def test_a_tampered_spec_is_refused_before_anything_is_built(knn_artifact, tmp_path, capsys, monkeypatch,
                                                             change, key):
    import xdplug.artifact.recommender as artifact

    marker = tmp_path / "MARKER"
    folder = tampered(knn_artifact, tmp_path, change(marker))
    built = []
    monkeypatch.setattr(artifact, "_load_data", lambda *a: built.append("data"))
    monkeypatch.setattr(artifact, "_baseline_from_state", lambda *a: built.append("model"))
    with pytest.raises(ArtifactError, match=rf"meta\.json: {key}: .*__import__"):
        xdplug.load(folder)
    assert built == [] and not marker.exists()
    monkeypatch.undo()
    assert main(["recommend", str(folder), "--user", "u0"]) == 2
    err = capsys.readouterr().err
    assert "meta.json" in err and key.replace("\\", "") in err and "Traceback" not in err
    assert not marker.exists()


def test_the_untampered_artifact_loads(knn_artifact):
    rec = xdplug.load(knn_artifact)
    assert rec.meta["spec"]["params"]["knn_method"] == "item"
    assert len(rec.recommend(user=rec.users[0], k=3)) == 3


def test_checking_strings_prints_no_syntax_warning():
    import warnings

    from xdplug.recbole.compat import evaluates_as_code, literal_value

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Python warns about "0.01x" while parsing it
        assert evaluates_as_code("0.01x") is False
        assert literal_value("0.01x") == "0.01x"
