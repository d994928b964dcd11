"""Config files and command-line arguments a user gets wrong: one named error, exit 2, before any work.

The inputs of issue 26 (an outside adversarial pass) and more of the same kind: YAML aliases that
recurse or explode, numbers and devices the CLI took unchecked, values the config accepted though
they make no sense (a split that does not sum to 1, repeated cut-offs, format fields in
``output.dir``, a tuning store above the working directory, nested RecBole options), data the
protocol cannot split, recipes whose parameters contradict each other, and the hints a newcomer
needs.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

import xdplug
from xdplug.cli import main
from xdplug.cli_common import device_arg
from xdplug.config import load_config, output_dir
from xdplug.configfile import MAX_YAML_DEPTH
from xdplug.data.prepare import min_user_size, prepare_domains
from xdplug.data.raw import RawDomain, RawDomains
from xdplug.errors import ConfigError, DataError, closest_name
from xdplug.testing.synthetic import SyntheticRecipe

POP = {"baselines": [{"baseline": "Pop"}]}


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def config_error(*args, **kwargs) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(*args, **kwargs)
    return str(info.value)


def with_(**sections) -> dict:
    return {**POP, **sections}


def cli_error(argv: list[str], capsys) -> str:
    """The one ``error:`` line of a command that exits 2 (argparse or the command)."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse refuses an argument
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if "error:" in line]
    assert len(lines) == 1, err
    return lines[0]


# -- 1. YAML aliases: recursive, exploding, nested too deep ---------------------------------

def _bomb(levels: int = 9) -> str:
    text = 'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    prev = "a"
    for name in "bcdefghijk"[: levels - 1]:
        text += f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]\n"
        prev = name
    return text


@pytest.mark.parametrize("text", ["a: &a [*a]\n", "a: &a {b: *a}\n", "x: &x {name: n, more: [1, {deep: *x}]}\n"])
def test_a_recursive_alias_is_one_config_error_naming_the_file(tmp_path, text):
    path = write(tmp_path, text)
    message = config_error(path)
    assert message.startswith(f"{path}: (file): not valid YAML: line ")
    assert "is inside its own anchor" in message and "recursive alias" in message


def test_nine_levels_of_aliases_are_refused_fast(tmp_path):
    path = write(tmp_path, _bomb(9))
    started = time.perf_counter()
    message = config_error(path)
    assert time.perf_counter() - started < 5  # was a MemoryError after 42 s
    assert message.startswith(f"{path}: (file): not valid YAML: line 6, column 4: this value expands to more than "
                              "100,000 values through its aliases")


def test_aliases_below_the_limit_still_load(tmp_path):
    path = write(tmp_path, _bomb(3))  # 9**3 = 729 values: far more than a real config, far below the limit
    message = config_error(path)
    assert message.startswith(f"{path}: a: unknown key")  # it loaded: the schema speaks, not the alias limit


def test_nesting_deeper_than_the_limit_is_refused(tmp_path):
    path = write(tmp_path, "x: " + "[" * (MAX_YAML_DEPTH + 5) + "]" * (MAX_YAML_DEPTH + 5) + "\n")
    assert f"nested more than {MAX_YAML_DEPTH} levels deep" in config_error(path)


@pytest.mark.parametrize("value, problem", [("&a [*a]", "recursive alias"),
                                            (_bomb(7).replace("\n", ", ").join("{}").replace(", }", "}"),
                                             "expands to more than 100,000 values")])
def test_set_values_get_the_same_alias_limits(value, problem):
    message = config_error(data=with_(), overrides=[f"seeds={value}"])
    assert message.startswith("--set: seeds: cannot parse value") and problem in message


def test_the_cli_prints_one_line_for_a_recursive_config(tmp_path, capsys):
    path = write(tmp_path, "a: &a [*a]\n")
    line = cli_error(["config", "show", str(path)], capsys)
    assert line.startswith(f"error: {path}: (file): not valid YAML: line 1, column 8: the alias *a is inside its "
                           "own anchor &a")


# -- 2. numbers and devices on the command line ---------------------------------------------

@pytest.mark.parametrize("argv, expected", [
    (["recommend", "A", "--user", "u", "--device", "foo"],
     "argument --device: expected auto, cpu, cuda or cuda:N, got 'foo'"),
    (["update", "A", "new.csv", "--device", "cuda:x"],
     "argument --device: expected auto, cpu, cuda or cuda:N, got 'cuda:x'"),
    (["update", "A", "new.csv", "--device", "mps"], "argument --device: expected auto, cpu, cuda or cuda:N, got 'mps'"),
    (["update", "A", "new.csv", "--learning-rate", "-1"],
     "argument --learning-rate: expected a number in (0, 10], got -1.0"),
    (["update", "A", "new.csv", "--learning-rate", "nan"],
     "argument --learning-rate: expected a number in (0, 10], got nan (not a finite number)"),
    (["update", "A", "new.csv", "--learning-rate", "0"],
     "argument --learning-rate: expected a number in (0, 10], got 0.0"),
    (["update", "A", "new.csv", "--replay", "-1"], "argument --replay: expected a number in [0, 1000], got -1.0"),
    (["update", "A", "new.csv", "--replay", "nan"],
     "argument --replay: expected a number in [0, 1000], got nan (not a finite number)"),
    (["update", "A", "new.csv", "--replay", "inf"],
     "argument --replay: expected a number in [0, 1000], got inf (not a finite number)"),
    (["update", "A", "new.csv", "--seed", "-1"], "argument --seed: expected an integer in [0, 4294967295], got -1"),
    (["update", "A", "new.csv", "--seed", str(2**32)],
     "argument --seed: expected an integer in [0, 4294967295], got 4294967296"),
    (["update", "A", "new.csv", "--epochs", "0"], "argument --epochs: expected an integer in [1, 100000], got 0"),
    (["update", "A", "new.csv", "--epochs", "-1"], "argument --epochs: expected an integer in [1, 100000], got -1"),
    (["update", "A", "new.csv", "--holdout", "1"], "argument --holdout: expected a number in [0, 1), got 1.0"),
    (["update", "A", "new.csv", "--holdout", "-0.1"], "argument --holdout: expected a number in [0, 1), got -0.1"),
    (["recommend", "A", "--user", "u", "-k", "0"], "argument -k: expected an integer in [1, 100000], got 0"),
    (["recommend", "A", "--user", "u", "-k", "-3"], "argument -k: expected an integer in [1, 100000], got -3"),
    (["recommend", "A", "--user", "u", "-k", "ten"], "argument -k: expected an integer in [1, 100000], got 'ten'"),
    (["export", "c.yaml", "--method", "Pop", "--seed", "-1"],
     "argument --seed: expected an integer in [0, 4294967295], got -1"),
    (["run", "c.yaml", "--workers", "-1"], "argument --workers: expected an integer in [0, 100000], got -1"),
    (["datasets", "prepare", "synthetic", "--seed", "-1"],
     "argument --seed: expected an integer in [0, 4294967295], got -1"),
])
def test_cli_numbers_and_devices_are_refused_at_parsing(argv, expected, capsys):
    line = cli_error(argv, capsys)
    assert line.endswith(expected), line


@pytest.mark.parametrize("device", ["cpu", "auto", "cuda", "cuda:0", "cuda:12"])
def test_cli_devices_the_config_accepts(device):
    assert device_arg(device) == device


@pytest.mark.parametrize("device", ["foo", "cuda:", "cuda:-1", "cuda:١", "CPU", "cuda:0 "])
def test_config_device_refuses_what_the_cli_refuses(device):
    assert config_error(data=with_(device=device)) == f"device: expected auto, cpu, cuda or cuda:N, got {device!r}"


@pytest.mark.parametrize("option, value, expected", [
    ("replay", -1, "replay: expected a number in [0, 1000], got -1"),
    ("learning_rate", float("nan"), "learning_rate: expected a number in (0, 10] (or null), got nan"),
    ("seed", -1, "seed: expected an integer in [0, 4294967295], got -1"),
    ("holdout", 1.5, "holdout: expected a number in [0, 1), got 1.5"),
])
def test_update_from_python_checks_its_numbers_before_loading(tmp_path, option, value, expected):
    from xdplug.artifact import update_artifact

    with pytest.raises(ConfigError) as info:  # the artifact does not exist: nothing was loaded
        update_artifact(tmp_path / "no-artifact", tmp_path / "new.csv", **{option: value})
    assert str(info.value).startswith(expected)


# -- 3. values the config accepted though they make no sense ---------------------------------

@pytest.mark.parametrize("split", [[0.5, 0.5, 0.5], [0.6, 0.2, 0.1], [0.8, 0.1, 0.05]])
def test_split_ratios_must_sum_to_one(split):
    message = config_error(data=with_(dataset={"protocol": {"split": split}}))
    assert message.startswith(f"dataset.protocol.split: the three ratios must sum to 1, got {split!r} (sum ")


@pytest.mark.parametrize("split", [[0.7, 0.2, 0.1], [0.8, 0.1, 0.1], [0.6, 0.3, 0.1]])
def test_split_ratios_that_sum_to_one_in_floating_point_pass(split):
    assert load_config(data=with_(dataset={"protocol": {"split": split}}))["dataset"]["protocol"]["split"] == split


@pytest.mark.parametrize("ks", [[10, 10], [10, 20, 10]])
def test_repeated_cut_offs_are_refused(ks):
    assert config_error(data=with_(evaluation={"ks": ks})) == f"evaluation.ks: cut-offs repeat: {ks}; list each K once"


@pytest.mark.parametrize("folder, shown", [
    ("runs/{name.__class__.__name__}", "{name.__class__.__name__}"),
    ("runs/{name[0]}", "{name[0]}"),
    ("runs/{name!r}", "{name!r}"),
    ("runs/{name:>30}", "{name:>30}"),
    ("runs/{0}", "{0}"),
    ("runs/{}", "{}"),
])
def test_output_dir_takes_the_plain_name_placeholder_only(folder, shown):
    assert config_error(data=with_(output={"dir": folder})) == (
        f"output.dir: {folder!r}: the only placeholder allowed is {{name}} (write {{{{ and }}}} for literal braces), "
        f"got {shown}")


def test_output_dir_with_a_lone_brace_and_with_escaped_braces():
    assert "Single '{' encountered" in config_error(data=with_(output={"dir": "runs/{"}))
    config = load_config(data=with_(name="b", output={"dir": "runs/{{x}}/{name}"}))
    assert output_dir(config) == Path("runs/{x}/b")


@pytest.mark.parametrize("template, shown", [("{title:>30000000}", "{title:>30000000}"), ("{title!r}", "{title!r}"),
                                             ("{title} {genres!s:^9}", "{genres!s:^9}"),
                                             ("{title.__class__}", "{title.__class__}")])
def test_text_template_placeholders_are_plain_names_checked_at_config_time(template, shown):
    """A width of 3*10^7 padded every item's text: a run that never ended; refused before any work now."""
    assert config_error(data=with_(dataset={"text_template": template})) == (
        f"dataset.text_template: placeholder {shown} in {template!r} must be a plain item field name like {{title}} "
        "(no format spec or conversion)")


@pytest.mark.parametrize("storage", ["sqlite:///../x.sqlite", "sqlite:///a/../../x.sqlite",
                                     "sqlite+pysqlite:///../x.db"])
def test_a_tuning_store_above_the_working_directory_is_refused(storage):
    assert config_error(data=with_(tuning={"storage": storage})) == (
        f"tuning.storage: {storage!r} leaves the working directory through '..'; give an absolute path "
        "(sqlite:////abs/path/tuning.sqlite) to write outside it")


@pytest.mark.parametrize("storage", ["sqlite:///tuning.sqlite", "sqlite:////tmp/x/../tuning.sqlite",
                                     "postgresql://user@host/db"])
def test_tuning_stores_under_the_working_directory_or_absolute_pass(storage):
    assert load_config(data=with_(tuning={"storage": storage}))["tuning"]["storage"] == storage


CODE = "__import__('os').system('true')"


def test_a_tuning_choice_is_checked_like_a_written_value():
    written = config_error(data={"baselines": [{"baseline": "NeuMF", "params": {"mf_pretrain_path": CODE}}]},
                           registry=xdplug.plugins.make_plugin_manager().registry)
    space = {"params.mf_pretrain_path": {"type": "categorical", "choices": ["/tmp/mf.pth", CODE]}}
    tuned = config_error(data={"baselines": [{"baseline": "NeuMF", "tuning": {"trials": 2, "space": space}}]},
                         registry=xdplug.plugins.make_plugin_manager().registry)
    assert written.startswith("baselines[0].params.mf_pretrain_path: got ")
    why = written.split(": ", 1)[1]
    assert tuned == (f"baselines[0].tuning.space.params.mf_pretrain_path: the search space reaches {CODE!r}, "
                     f"which the option refuses: {why}")


def test_a_tuning_choice_the_option_accepts_passes():
    space = {"params.knn_method": {"type": "categorical", "choices": ["user", "item"]}}
    config = load_config(data={"baselines": [{"baseline": "ItemKNN", "tuning": {"trials": 2, "space": space}}]},
                         registry=xdplug.plugins.make_plugin_manager().registry)
    assert config["baselines"][0]["tuning"]["space"] == space


@pytest.mark.parametrize("key, value, expected", [
    ("train_neg_sample_args", {"distribution": "uniform", "sample_nmu": 1},
     "train_neg_sample_args.sample_nmu: unknown key; expected a mapping with keys distribution, sample_num, alpha, "
     "dynamic, candidate_num"),
    ("train_neg_sample_args", {"distribution": "gaussian"},
     "train_neg_sample_args.distribution: expected one of 'uniform', 'popularity', got 'gaussian'"),
    ("train_neg_sample_args", {"distribution": "uniform", "sample_num": 0},
     "train_neg_sample_args.sample_num: expected an integer in [1, 10000], got 0"),
    ("train_neg_sample_args", {"sample_num": 2},
     "train_neg_sample_args.distribution: missing; expected a mapping with keys distribution, sample_num, alpha, "
     "dynamic, candidate_num (required: distribution)"),
    ("clip_grad_norm", {"max_nrom": 5},
     "clip_grad_norm.max_nrom: unknown key; expected a mapping with keys max_norm, norm_type, error_if_nonfinite, "
     "foreach"),
    ("clip_grad_norm", {"norm_type": 2},
     "clip_grad_norm.max_norm: missing; expected a mapping with keys max_norm, norm_type, error_if_nonfinite, "
     "foreach (required: max_norm)"),
    ("clip_grad_norm", {"max_norm": -1}, "clip_grad_norm.max_norm: expected a number in (0, 1000000000], got -1"),
    ("clip_grad_norm", {"max_norm": None},
     "clip_grad_norm.max_norm: missing; expected a mapping with keys max_norm, norm_type, error_if_nonfinite, "
     "foreach (required: max_norm)"),
    ("clip_grad_norm", {"max_norm": 5, "error_if_nonfinite": "yes"},
     "clip_grad_norm.error_if_nonfinite: expected true or false, got 'yes'"),
])
def test_nested_recbole_options_are_checked_at_config_time(key, value, expected):
    message = config_error(data={"baselines": [{"baseline": "BPR", "params": {key: value}}]},
                           registry=xdplug.plugins.make_plugin_manager().registry)
    assert message == f"baselines[0].params.{expected}"


def test_nested_recbole_options_reach_recbole_as_plain_mutable_dicts():
    """RecBole fills in the defaults of ``train_neg_sample_args`` in place: a read-only mapping was a TypeError."""
    registry = xdplug.plugins.make_plugin_manager().registry
    params = {"train_neg_sample_args": {"distribution": "popularity", "sample_num": 2},
              "clip_grad_norm": {"max_norm": 5.0}}
    config = load_config(data={"baselines": [{"baseline": "BPR", "params": params}]}, registry=registry)
    bpr = registry.get("baseline", "BPR")(config["baselines"][0]["params"], "baselines[0].params")
    for key, value in params.items():
        assert type(bpr.params[key]) is dict and bpr.params[key] == value
        bpr.params[key]["alpha"] = 1.0  # what RecBole's Config does


def test_bpr_trains_with_nested_recbole_options_from_a_validated_config(plugin_manager, fit_context):
    """The issue's case: the same options ended the run with 'a validated config is read-only'."""
    params = {"train_neg_sample_args": {"distribution": "uniform", "sample_num": 2}, "clip_grad_norm": {"max_norm": 1}}
    config = load_config(data={"baselines": [{"baseline": "BPR", "params": params}]},
                         registry=plugin_manager.registry)  # frozen, as a run gets it
    bpr = plugin_manager.registry.get("baseline", "BPR")(config["baselines"][0]["params"], "baselines[0].params")
    scorer = bpr.fit(fit_context)
    assert scorer.rb.config["train_neg_sample_args"]["sample_num"] == 2  # RecBole read (and completed) it
    scores = scorer.score(torch.arange(3))
    assert scores.shape == (3, fit_context.data.n_target_items) and bool(torch.isfinite(scores).all())


# -- the protocol cannot split these data -----------------------------------------------------

def _domains(target_rows, target_items=None) -> RawDomains:
    source = pd.DataFrame([(f"u{u}", f"b{i}", 5.0, float(i)) for u in range(30) for i in range((u % 5) + 6)],
                          columns=["user", "item", "rating", "timestamp"])
    target = pd.DataFrame(target_rows, columns=["user", "item", "rating", "timestamp"])
    items = pd.DataFrame({"item": []}) if target_items is None else target_items
    return RawDomains(source=RawDomain("books", source, pd.DataFrame({"item": []}), "books.csv"),
                      target=RawDomain("movies", target, items, "movies.csv"), align_users="id", align_items=None)


def _prepare(raw: RawDomains, **protocol):
    cfg = load_config(data=with_(dataset={"recipe": "synthetic", "protocol": protocol}))["dataset"]
    with tempfile.TemporaryDirectory() as work:
        return prepare_domains(raw, cfg, 0, Path(work))


@pytest.mark.parametrize("per_user, min_user_inter", [(1, 0), (1, 1), (2, 0), (2, 2)])
def test_users_too_small_for_the_split_are_a_data_error_not_an_empty_test(per_user, min_user_inter):
    rows = [(f"u{u}", f"m{(u + j) % 20}", 5.0, float(j)) for u in range(40) for j in range(per_user)]
    with pytest.raises(DataError) as info:
        _prepare(_domains(rows), min_user_inter=min_user_inter, min_item_inter=0)
    part = "validation"  # 1 interaction: train only; 2: train and test, no validation
    assert str(info.value) == (
        f"movies.csv, field 'dataset.protocol.min_user_inter': the target split has no {part} interaction, so no "
        f"method could be validated: a user needs at least 3 interactions to get train, validation and test items "
        f"under split [0.8, 0.1, 0.1], and the most any target user has is {per_user}; set "
        "dataset.protocol.min_user_inter to 3 or more (default 5), or add interactions")


def test_a_few_users_big_enough_for_the_split_are_enough():
    rows = [(f"u{u}", f"m{(u + j) % 20}", 5.0, float(j)) for u in range(40) for j in range(1 if u else 3)]
    summary = _prepare(_domains(rows), min_user_inter=0, min_item_inter=0)["summary"]
    assert summary["split"] == {"train": 40, "valid": 1, "test": 1}


@pytest.mark.parametrize("split, need", [([0.8, 0.1, 0.1], 3), ([0.98, 0.01, 0.01], 3), ([0.2, 0.4, 0.4], 3)])
def test_min_user_size_matches_the_split_rule(split, need):
    assert min_user_size(split) == need


def test_a_target_with_one_item_is_a_data_error_naming_the_domain():
    rows = [(f"u{u}", "m0", 5.0, 0.0) for u in range(40)]
    with pytest.raises(DataError) as info:
        _prepare(_domains(rows), min_user_inter=0, min_item_inter=0)
    assert str(info.value) == ("movies.csv, field 'dataset.protocol': the target domain has 1 item after filtering; "
                               "ranking needs at least 2 items (a user's held-out items among the ones they have "
                               "not seen)")


# -- 4. recipe parameters that contradict each other ----------------------------------------

@pytest.mark.parametrize("params, key, expected", [
    ({"n_users": 10, "n_shared_users": 100}, "n_shared_users",
     "100 shared users cannot exceed n_users (10, the users of each domain); expected n_shared_users <= n_users"),
    ({"n_target_items": 5, "n_shared_items": 12}, "n_shared_items",
     "12 shared items cannot exceed n_target_items (5); expected n_shared_items <= n_target_items"),
    ({"n_source_items": 8, "n_shared_items": 10}, "n_shared_items",
     "10 shared items cannot exceed n_source_items (8); expected n_shared_items <= n_source_items"),
])
def test_synthetic_recipe_refuses_contradicting_sizes(params, key, expected):
    with pytest.raises(ConfigError) as info:
        SyntheticRecipe(params, "dataset.params")
    assert str(info.value) == f"dataset.params.{key}: {expected}"


def test_synthetic_contradiction_stops_load_config():
    message = config_error(data=with_(dataset={"recipe": "synthetic", "params": {"n_users": 10,
                                                                                "n_shared_users": 11}}),
                           registry=xdplug.plugins.make_plugin_manager().registry)
    assert message.startswith("dataset.params.n_shared_users: 11 shared users cannot exceed n_users (10")
    assert SyntheticRecipe({"n_users": 10, "n_shared_users": 10}).params["n_shared_users"] == 10


# -- 5. a newcomer's frictions: overrides as a mapping, hints -------------------------------

def test_overrides_may_be_a_mapping_or_one_string():
    as_list = load_config(data=with_(), overrides=["seeds=[1, 2]", "train.epochs=3", "strategies=[]"])
    as_map = load_config(data=with_(), overrides={"seeds": [1, 2], "train.epochs": 3, "strategies": []})
    assert as_map == as_list and as_map["seeds"] == [1, 2] and as_map["train"]["epochs"] == 3
    assert load_config(data=with_(), overrides="train.epochs=4")["train"]["epochs"] == 4
    assert config_error(data=with_(), overrides={"train.epochs": 0}).startswith("config (with --set): train.epochs: "
                                                                               "expected an integer in [1, 100000]")
    assert config_error(data=with_(), overrides={3: 1}) == (
        "overrides: 3: an override's key must be a dotted key path such as train.epochs")


def test_xdplug_run_takes_a_mapping_of_overrides(tmp_path):
    with pytest.raises(ConfigError, match=r"train\.epochs: expected an integer in \[1, 100000\], got 0"):
        xdplug.run(with_(output={"dir": str(tmp_path / "out")}), overrides={"train.epochs": 0})
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name, expected", [("ml-100k", "ml100k-genres"), ("ML100K", "ml100k-genres"),
                                            ("ml-1m", "ml1m-genres"), ("amazon-2023", "amazon2023"),
                                            ("synthetc", "synthetic")])
def test_recipe_hints_prefer_the_name_the_typed_one_begins(name, expected):
    names = ["amazon", "amazon2023", "douban", "files", "ml100k-genres", "ml1m-genres", "ml1m-ml100k", "synthetic",
             "synthetic-scale"]
    assert closest_name(name, names) == expected


def test_the_recipe_hint_in_a_config_error():
    message = config_error(data=with_(dataset={"recipe": "ml-100k"}), registry=xdplug.plugins.make_plugin_manager().registry)
    assert message.startswith("dataset.recipe: unknown dataset 'ml-100k'. Did you mean 'ml100k-genres'?")


@pytest.mark.parametrize("override, expected", [
    ("train.epoch=3", "train.epoch: unknown key; allowed here: epochs, batch_size, eval_batch_size, learning_rate, "
                      "weight_decay, stopping_step, eval_step, neg_sampling (did you mean 'epochs'?)"),
    ("evaluation.k=[10]", "evaluation.k: unknown key; allowed here: ks, valid_metric, user_groups, evaluators, "
                          "reference, cold_reference, max_users (did you mean 'ks'?)"),
    ("seeds=2022,2023", "seeds: expected a list of integers in [0, 4294967295], got '2022,2023'; write a list in "
                        "brackets: [2022, 2023] (with --set: seeds=[2022,2023])"),
    ("seeds=2022", "seeds: expected a list of integers in [0, 4294967295], got 2022; write a list in brackets: "
                   "[2022] (with --set: seeds=[2022])"),
    ("evaluation.ks=10,20", "evaluation.ks: expected a list of integers in [1, 100000], got '10,20'; write a list in "
                            "brackets: [10, 20] (with --set: evaluation.ks=[10,20])"),
    ("evaluation.evaluators=ranking,significance",
     "evaluation.evaluators: expected a list of str, got 'ranking,significance'; write a list in brackets: "
     "[ranking, significance] (with --set: evaluation.evaluators=[ranking,significance])"),
])
def test_hints_for_a_newcomers_mistakes(override, expected, tmp_path, capsys):
    path = write(tmp_path, yaml.safe_dump({**POP, "output": {"dir": str(tmp_path / "out")}}))
    line = cli_error(["config", "show", str(path), "--set", override], capsys)
    assert line == f"error: {path} (with --set): {expected}"


def test_one_interaction_users_walk_through_the_cli(tmp_path, capsys, monkeypatch):
    """The issue's case end to end: own CSVs, ``min_user_inter: 0``, every target user with one interaction."""
    monkeypatch.setenv("XDPLUG_HOME", str(tmp_path / "home"))
    rng = np.random.default_rng(0)
    pd.DataFrame({"user": [f"u{u}" for u in range(60) for _ in range(6)],
                  "item": [f"b{i}" for _ in range(60) for i in rng.choice(20, 6, replace=False)]}
                 ).to_csv(tmp_path / "books.csv", index=False)
    pd.DataFrame({"user": [f"u{u}" for u in range(60)], "item": [f"m{u % 15}" for u in range(60)]}
                 ).to_csv(tmp_path / "movies.csv", index=False)
    config = {**POP, "name": "one", "output": {"dir": str(tmp_path / "out")},
              "dataset": {"recipe": "files", "protocol": {"min_user_inter": 0, "min_item_inter": 0},
                          "params": {"source": {"interactions": str(tmp_path / "books.csv")},
                                     "target": {"interactions": str(tmp_path / "movies.csv")},
                                     "align_users": "id", "align_items": "none"}}}
    path = write(tmp_path, yaml.safe_dump(config))
    line = cli_error(["run", str(path), "--quiet"], capsys)
    assert "the target split has no validation interaction" in line and "the most any target user has is 1" in line
    assert not (tmp_path / "out" / "report.md").exists()
