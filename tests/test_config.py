"""Config layering, the stable hash, and every validation message."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from xdplug.frozen import thaw
from xdplug.config import DEFAULTS, SCHEMA, config_hash, load_config
from xdplug.errors import ConfigError

MINIMAL = {"baselines": [{"baseline": "Pop"}], "controls": "none"}  # the control set: tests/test_control_set.py

STRATEGY = {"name": "s", "encoder": "id", "fusion": "id", "adaptation": "target-only"}


def write(tmp_path, data, name="config.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return str(path)


def with_(**sections) -> dict:
    out = copy.deepcopy(MINIMAL)
    out.update(copy.deepcopy(sections))
    return out


def error(data=None, overrides=(), registry=None, path=None) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides=list(overrides), data=data, registry=registry)
    return str(info.value)


# -- layering ---------------------------------------------------------------------------

def test_defaults_fill_everything_not_given():
    config = load_config(data=MINIMAL)
    assert set(config) == set(SCHEMA)
    assert config["train"] == DEFAULTS["train"]
    assert config["dataset"]["protocol"] == DEFAULTS["dataset"]["protocol"]
    assert config["baselines"] == [{"baseline": "Pop"}]


def test_layers_defaults_then_file_then_overrides(tmp_path):
    path = write(tmp_path, with_(train={"epochs": 7, "learning_rate": 0.01},
                                 dataset={"protocol": {"min_rating": 4}}))
    from_file = load_config(path)
    assert from_file["train"]["epochs"] == 7
    assert from_file["train"]["learning_rate"] == 0.01
    assert from_file["train"]["batch_size"] == DEFAULTS["train"]["batch_size"]  # default kept
    # a nested mapping in the file merges with the defaults instead of replacing them
    assert from_file["dataset"]["protocol"]["min_rating"] == 4
    assert from_file["dataset"]["protocol"]["split"] == DEFAULTS["dataset"]["protocol"]["split"]

    overridden = load_config(path, overrides=["train.epochs=3", "dataset.protocol.order=TO", "seeds=[1, 2]"])
    assert overridden["train"]["epochs"] == 3
    assert overridden["train"]["learning_rate"] == 0.01  # the file's value survives
    assert overridden["dataset"]["protocol"]["order"] == "TO"
    assert overridden["seeds"] == [1, 2]


def test_overrides_index_into_lists(tmp_path):
    path = write(tmp_path, with_(strategies=[STRATEGY, {**STRATEGY, "name": "t"}]))
    config = load_config(path, overrides=["strategies.0.name=x", "strategies[1].fusion=gate",
                                          "strategies.1.params.model.dim=32", "baselines.0.pooled=true"])
    assert config["strategies"][0]["name"] == "x"
    assert config["strategies"][1]["fusion"] == "gate"
    assert config["strategies"][1]["params"] == {"model": {"dim": 32}}
    assert config["baselines"][0]["pooled"] is True


def test_override_values_are_yaml():
    config = load_config(data=MINIMAL, overrides=["train.learning_rate=0.01", "description=with spaces",
                                                  "evaluation.ks=[5, 10]", "evaluation.valid_metric=ndcg@5"])
    assert config["train"]["learning_rate"] == 0.01
    assert config["description"] == "with spaces"
    assert config["evaluation"]["ks"] == [5, 10]


def test_override_accepts_exponent_floats():
    assert load_config(data=MINIMAL, overrides=["train.learning_rate=1e-3"])["train"]["learning_rate"] == 0.001


def test_override_errors():
    assert "no list element '3' (list has 1)" in error(MINIMAL, ["baselines.3.baseline=EASE"])
    assert "no list element 'x'" in error(MINIMAL, ["baselines.x.baseline=EASE"])
    assert "KEY.PATH=VALUE" in error(MINIMAL, ["train.epochs"])
    message = error(MINIMAL, ["train.epoch=3"])
    assert "(with --set)" in message and "train.epoch: unknown key" in message
    assert "train.epochs: expected an integer in [1, 100000], got 'many'" in error(MINIMAL, ["train.epochs=many"])


# -- the hash ---------------------------------------------------------------------------

def test_hash_is_stable_and_ignores_key_order():
    a = load_config(data=with_(train={"epochs": 5, "learning_rate": 0.01}))
    b = load_config(data=dict(reversed(list(with_(train={"learning_rate": 0.01, "epochs": 5}).items()))))
    assert config_hash(a) == config_hash(b) == config_hash(copy.deepcopy(a))
    reordered = {key: a[key] for key in reversed(list(a))}
    reordered["train"] = {key: a["train"][key] for key in reversed(list(a["train"]))}
    assert config_hash(reordered) == config_hash(a)
    assert len(config_hash(a)) == 16 and int(config_hash(a), 16) >= 0


def test_hash_ignores_output_and_description_but_not_values():
    base = load_config(data=MINIMAL)
    same = load_config(data=with_(description="another text", output={"dir": "elsewhere", "store": "x.sqlite"},
                                  executor={"workers": 8}))
    assert config_hash(same) == config_hash(base)
    for change in (["train.epochs=99"], ["seeds=[1]"], ["dataset.protocol.min_rating=4"],
                   ["baselines.0.baseline=EASE"], ["name=other"]):
        assert config_hash(load_config(data=MINIMAL, overrides=change)) != config_hash(base), change


# -- structural validation --------------------------------------------------------------

def test_unknown_top_level_key_names_the_key_and_the_allowed_ones():
    message = error(with_(trian={"epochs": 3}))
    assert message.startswith("trian: unknown key; allowed here: name, description, dataset, seeds,")
    for key in SCHEMA:
        assert key in message


def test_unknown_nested_key_names_the_path():
    message = error(with_(train={"epoch": 3}))
    assert message.startswith("train.epoch: unknown key; allowed here: epochs, batch_size,")
    assert "dataset.protocol.min_ratings: unknown key; allowed here: min_rating," in error(
        with_(dataset={"protocol": {"min_ratings": 3}}))
    assert "strategies[0].fusoin: unknown key; allowed here: name, encoder, fusion, adaptation, params" in error(
        with_(strategies=[{**STRATEGY, "fusoin": "id"}]))


def test_the_file_is_named_in_messages(tmp_path):
    path = write(tmp_path, with_(train={"epoch": 3}))
    assert error(path=path).startswith(f"{path}: train.epoch: unknown key")


@pytest.mark.parametrize("data, expected", [
    (with_(train={"epochs": "ten"}), "train.epochs: expected an integer in [1, 100000], got 'ten'"),
    (with_(train={"epochs": True}), "train.epochs: expected an integer in [1, 100000], got True"),
    (with_(train={"learning_rate": "fast"}), "train.learning_rate: expected a number in (0, 10], got 'fast'"),
    (with_(seeds=3), "seeds: expected a list of integers in [0, 4294967295], got 3"),
    (with_(seeds=[1, "two"]), "seeds[1]: expected an integer in [0, 4294967295], got 'two'"),
    (with_(name=5), "name: expected str, got 5"),
    (with_(train=[1]), "train: expected a mapping, got [1]"),
    (with_(baselines=[{"baseline": "Pop", "params": [1]}]), "baselines[0].params: expected a mapping, got [1]"),
    (with_(baselines=[{"baseline": "Pop", "pooled": "yes"}]), "baselines[0].pooled: expected bool, got 'yes'"),
])
def test_wrong_types(data, expected):
    assert expected in error(data)


@pytest.mark.parametrize("data, expected", [
    (with_(train={"neg_sampling": "pop"}), "train.neg_sampling: expected one of 'uniform', 'none', got 'pop'"),
    (with_(dataset={"protocol": {"order": "random"}}), "dataset.protocol.order: expected one of 'RO', 'TO'"),
    (with_(dataset={"align": "always"}), "dataset.align: expected one of 'auto', 'none', got 'always'"),
    (with_(executor={"kind": "slurm"}), "executor.kind: expected one of 'local', 'ray', got 'slurm'"),
])
def test_bad_choices(data, expected):
    assert expected in error(data)


# -- semantic validation ----------------------------------------------------------------

@pytest.mark.parametrize("metric", ["ndcg10", "auc@10", "ndcg@ten", "@10"])
def test_bad_valid_metric(metric):
    message = error(with_(evaluation={"valid_metric": metric}))
    assert message.startswith("evaluation.valid_metric: expected METRIC@K with METRIC one of recall, ndcg,")
    assert repr(metric) in message


def test_valid_metric_k_must_be_a_reported_k():
    message = error(with_(evaluation={"ks": [10, 20], "valid_metric": "ndcg@5"}))
    assert message == "evaluation.valid_metric: K=5 must be one of evaluation.ks [10, 20]"
    assert "evaluation.ks[0]: expected an integer in [1, 100000], got 0" in error(with_(evaluation={"ks": [0, 10]}))
    assert "evaluation.ks: expected positive integers" in error(with_(evaluation={"ks": []}))


def test_seeds():
    assert error(with_(seeds=[])) == "seeds: expected at least one seed"
    assert error(with_(seeds=[1, 1])) == "seeds: seeds repeat: [1, 1]"


def test_method_names_must_be_unique():
    message = error(with_(baselines=[{"baseline": "Pop"}, {"baseline": "Pop"}]))
    assert "two methods are named 'Pop'; give each a unique name" in message
    message = error(with_(strategies=[STRATEGY, STRATEGY]))
    assert "two methods are named 's'" in message
    # pooled and plain versions of one baseline get different default names
    load_config(data=with_(baselines=[{"baseline": "EASE"}, {"baseline": "EASE", "pooled": True}]))


def test_a_config_needs_a_method():
    assert "names no baseline and no strategy" in error({})
    assert "baselines[0].baseline: missing; name a registered baseline" in error({"baselines": [{"name": "x"}]})
    assert "strategies[0].fusion: missing; name a registered fusion" in error(
        {"strategies": [{"encoder": "id", "adaptation": "joint"}]})


@pytest.mark.parametrize("split", [[0.8, 0.2], [0, 0, 0], [0.5, 0.25, 0.25, 0.0]])
def test_bad_split(split):
    message = error(with_(dataset={"protocol": {"split": split}}))
    assert message == f"dataset.protocol.split: expected three ratios (train, valid, test), got {split!r}"


def test_split_ratios_are_fractions_and_every_part_is_used():
    assert error(with_(dataset={"protocol": {"split": [0.8, -0.1, 0.3]}})) == (
        "dataset.protocol.split[1]: expected a number in [0, 1], got -0.1")
    # no test part: NaN test metrics; no valid part: early stopping reads nothing
    assert "the test ratio must be > 0" in error(with_(dataset={"protocol": {"split": [0.8, 0.2, 0]}}))
    assert "the valid ratio must be > 0" in error(with_(dataset={"protocol": {"split": [0.9, 0, 0.1]}}))


def test_fractions():
    assert "dataset.sparse.keep: expected a number in (0, 1], got 1.5" in error(with_(dataset={"sparse": {"keep": 1.5}}))
    assert "dataset.cold_items.fraction: expected a number in (0, 1), got 1" in error(
        with_(dataset={"cold_items": {"fraction": 1}}))


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "mps", ""])
def test_bad_device(device):
    assert error(with_(device=device)) == f"device: expected auto, cpu, cuda or cuda:N, got {device!r}"


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:1"])
def test_good_devices(device):
    assert load_config(data=with_(device=device))["device"] == device


def test_positive_training_sizes():
    assert "train.epochs: expected an integer in [1, 100000], got 0" in error(with_(train={"epochs": 0}))
    assert "train.batch_size: expected an integer in [1, 100000000], got 0" in error(with_(train={"batch_size": 0}))


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.yaml"
    assert error(path=missing) == f"{missing}: (file): config file not found: {missing}"


def test_invalid_yaml(tmp_path):
    path = write(tmp_path, "train: {epochs: 3\nseeds: [1")
    message = error(path=path)
    assert message.startswith(f"{path}: (file): not valid YAML:")


def test_top_level_must_be_a_mapping(tmp_path):
    assert "the top level must be a mapping" in error(path=write(tmp_path, "- a\n- b\n"))


def test_empty_file_means_defaults(tmp_path):
    # an empty file is valid YAML; the config then lacks a method
    assert "names no baseline and no strategy" in error(path=write(tmp_path, ""))


# -- component names and options (with the registry) ------------------------------------

@pytest.fixture
def registry(plugin_manager):
    return plugin_manager.registry


@pytest.mark.parametrize("data, expected", [
    (with_(dataset={"recipe": "ml100k-genre"}),
     "dataset.recipe: unknown dataset 'ml100k-genre'. Did you mean 'ml100k-genres'? Available datasets: "),
    ({"baselines": [{"baseline": "EAZE"}]},
     "baselines[0].baseline: unknown baseline 'EAZE'. Did you mean 'EASE'? Available baselines: "),
    (with_(strategies=[{**STRATEGY, "encoder": "bertt"}]),
     "strategies[0].encoder: unknown encoder 'bertt'. Did you mean 'bert'? Available encoders: "),
    (with_(strategies=[{**STRATEGY, "fusion": "gaet"}]),
     "strategies[0].fusion: unknown fusion 'gaet'. Did you mean 'gate'? Available fusions: "),
    (with_(strategies=[{**STRATEGY, "adaptation": "fine-tune"}]),
     "strategies[0].adaptation: unknown adaptation 'fine-tune'. Did you mean 'finetune'? Available adaptations: "),
    (with_(evaluation={"evaluators": ["ranking", "signifcance"]}),
     "evaluation.evaluators: unknown evaluator 'signifcance'. Did you mean 'significance'? Available evaluators: "),
])
def test_unknown_component_names(registry, data, expected):
    message = error(data, registry=registry)
    assert message.startswith(expected)


def test_unknown_component_lists_every_available_name(registry):
    message = error(with_(strategies=[{**STRATEGY, "fusion": "zzz"}]), registry=registry)
    assert "Did you mean" not in message
    for name in registry.names("fusion"):
        assert name in message


def test_component_names_are_only_checked_with_a_registry():
    load_config(data=with_(strategies=[{**STRATEGY, "fusion": "not-checked"}]))


@pytest.mark.parametrize("params, expected", [
    ({"fusion": {"beta": 1}},
     "strategies[0].params.fusion.beta: unknown option for fusion 'weighted'; allowed: alpha, learn_alpha"),
    ({"fusion": {"alpha": "high"}},
     "strategies[0].params.fusion.alpha: expected a number in [0, 1], got 'high'"),
    ({"fusion": {"learn_alpha": 1}},
     "strategies[0].params.fusion.learn_alpha: expected true or false, got 1"),
    ({"encoder": {"dimension": 8}},
     "strategies[0].params.encoder.dimension: unknown option for encoder 'id'; allowed: dim, init_std"),
    ({"adaptation": {"weight": 1}},
     "strategies[0].params.adaptation.weight: unknown option for adaptation 'target-only'; allowed: (none)"),
    ({"model": {"dimm": 8}}, "strategies[0].params.model.dimm: unknown option for family 'embedding'; allowed: "),
    ({"model": {"dim": 8.5}}, "strategies[0].params.model.dim: expected an integer in [1, 4096], got 8.5"),
])
def test_bad_strategy_options(registry, params, expected):
    strategy = {**STRATEGY, "fusion": "weighted", "params": params}
    assert error(with_(strategies=[strategy]), registry=registry).startswith(expected)


def test_bad_baseline_and_dataset_options(registry):
    assert error({"baselines": [{"baseline": "text-knn", "params": {"neighbors": "ten"}}]}, registry=registry) == (
        "baselines[0].params.neighbors: expected an integer in [0, 1000000], got 'ten'")
    assert error({"baselines": [{"baseline": "source-pop", "params": {"k": 1}}]}, registry=registry).startswith(
        "baselines[0].params.k: unknown option for baseline 'source-pop'")
    assert error(with_(dataset={"params": {"userz": "shared"}}), registry=registry).startswith(
        "dataset.params.userz: unknown option for dataset 'ml100k-genres'; allowed: split_seed, users")


def test_a_full_config_validates_with_the_registry(registry):
    config = load_config(data=with_(strategies=[{**STRATEGY, "encoder": "bert", "fusion": "weighted",
                                                 "params": {"fusion": {"alpha": 1}}}]), registry=registry)
    assert config["strategies"][0]["params"]["fusion"] == {"alpha": 1}


def test_quickstart_config_is_valid(registry):
    config = load_config("configs/quickstart.yaml", registry=registry)
    assert config["name"] == "quickstart"
    assert config["dataset"]["recipe"] == "ml100k-genres"


@pytest.mark.parametrize("path", sorted(str(p) for p in (Path(__file__).resolve().parents[1] / "configs").glob("*.yaml")
                                         if p.name != "search_spaces.yaml"))
def test_every_shipped_config_validates(registry, path):
    """A config the README points to must load against the built-in registry (names, options,
    tuning blocks, slice metrics) before anyone runs it."""
    config = load_config(path, registry=registry)
    assert config["baselines"] or config["strategies"]


# -- YAML that would silently mean something else --------------------------------------------

ANCHORED = """
strategies:
  - &base {name: a, encoder: id, fusion: id, adaptation: target-only, params: {model: {dim: 32}}}
  - {<<: *base, name: b}
baselines: [{baseline: Pop}]
controls: none
"""


def test_anchors_become_independent_values(tmp_path, capsys):
    from xdplug.cli import main

    path = tmp_path / "anchored.yaml"
    path.write_text(ANCHORED)
    config = load_config(path, overrides=["strategies.0.params.model.dim=128"])
    assert [s["params"]["model"]["dim"] for s in config["strategies"]] == [128, 32]
    with pytest.raises(TypeError, match="read-only"):  # a validated config is never changed in place
        config["strategies"][1]["params"]["model"]["dim"] = 7
    config = thaw(config)
    config["strategies"][1]["params"]["model"]["dim"] = 7  # no later change leaks either
    assert config["strategies"][0]["params"]["model"]["dim"] == 128
    assert main(["config", "show", str(path), "--set", "strategies.0.params.model.dim=128"]) == 0
    shown = capsys.readouterr().out
    assert "&id" not in shown and "*id" not in shown and "dim: 128" in shown and "dim: 32" in shown


def test_a_key_given_twice_is_an_error(tmp_path):
    path = tmp_path / "twice.yaml"
    path.write_text("name: a\ntrain:\n  epochs: 3\n  epochs: 5\nbaselines: [{baseline: Pop}]\n")
    message = error(path=path)
    assert message.startswith(f"{path}: (file): not valid YAML: line 4, column 3: key 'epochs' appears twice")


def test_non_utf8_config_and_directory(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9\nbaselines: [{baseline: Pop}]\n".encode("latin-1"))
    assert "not UTF-8 text" in error(path=path) and str(path) in error(path=path)
    assert error(path=tmp_path) == f"{tmp_path}: (file): is a directory; expected a YAML config file"


def test_set_into_a_scalar_names_the_key():
    message = error(MINIMAL, ["seeds.0.foo=1"])
    assert message == "--set: seeds.0.foo: seeds.0 is the value 2022, not a mapping or list; it has no keys to set"


@pytest.mark.parametrize("name", ["../../x", "", "a/b", ".hidden", "x" * 101, "tab\tname"])
def test_run_name_is_a_slug(name):
    assert error(with_(name=name)).startswith("name: expected a name of letters, digits")


@pytest.mark.parametrize("output, expected", [
    ({"dir": "../../x"}, "output.dir: '../../x' leaves the working directory through '..'"),
    ({"dir": "runs/../../{name}"}, "output.dir: 'runs/../../xdplug-run' leaves the working directory"),
    ({"dir": ""}, "output.dir: is empty"),
    ({"store": "../../x.sqlite"}, "output.store: expected a file name inside output.dir"),
    ({"store": "sub/x.sqlite"}, "output.store: expected a file name inside output.dir"),
    ({"store": ""}, "output.store: expected a file name inside output.dir"),
])
def test_output_stays_under_the_working_directory(output, expected):
    assert error(with_(output=output)).startswith(expected)


def test_an_absolute_output_dir_is_allowed(tmp_path):
    assert load_config(data=with_(output={"dir": str(tmp_path / "{name}")}))["output"]["dir"].startswith(str(tmp_path))
