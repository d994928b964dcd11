"""Tuning: equal budgets, validation-only selection, resumable studies, named config errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import xdplug.evaluation
import xdplug.engine.tuning
from xdplug.config import load_config
from xdplug.errors import ConfigError
from xdplug.engine.plan import expand
from xdplug.engine.runner import run_benchmark
from xdplug.config import store_path
from xdplug.store import RunStore
from xdplug.engine.tuning import method_tuning, storage_url
from xdplug.spaces import default_spaces, param_problem

ROOT = Path(__file__).resolve().parent.parent
STRATEGY = {"name": "id-only", "encoder": "id", "fusion": "id", "adaptation": "target-only",
            "params": {"model": {"batch_users": 16, "dim": 16}}}
BASELINES = [{"baseline": "Pop"}, {"baseline": "EASE"}, {"baseline": "ItemKNN"}]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tuning_meta(config) -> dict:
    store = RunStore(store_path(config))
    try:
        return store.get_meta("tuning"), {r["method"]: r for r in store.runs()}
    finally:
        store.close()


def test_tuning_reads_only_validation_before_selection_and_gives_equal_budgets(tiny_config, monkeypatch):
    events: list[tuple] = []
    split_users = xdplug.evaluation.split_users
    summarize = xdplug.engine.tuning.summarize

    def spy_split(data, split):  # every ranking of a split, by any caller, goes through here
        events.append(("rank", split))
        return split_users(data, split)

    def spy_summarize(study, mt, url):  # the selection of one method's parameters
        events.append(("select", mt.method))
        return summarize(study, mt, url)

    monkeypatch.setattr(xdplug.evaluation, "split_users", spy_split)
    monkeypatch.setattr(xdplug.engine.tuning, "summarize", spy_summarize)
    config = tiny_config(baselines=BASELINES, strategies=[STRATEGY], tuning={"trials": 2})
    run_benchmark(config, progress=False)

    first_test = events.index(("rank", "test"))
    selections = [i for i, e in enumerate(events) if e[0] == "select"]
    assert {events[i][1] for i in selections} == {"EASE", "ItemKNN", "id-only"}
    assert max(selections) < first_test, "a test split was ranked before every method's parameters were chosen"
    assert ("rank", "valid") in events[:min(selections)]  # the trials did evaluate (on validation)

    meta, runs = tuning_meta(config)
    # the same budget and number of trials for every baseline and strategy with something to tune
    for name in ("EASE", "ItemKNN", "id-only"):
        assert meta[name]["budget"] == 2 and len(meta[name]["trials"]) == 2, name
        assert meta[name]["chosen"], name
        assert meta[name]["metric"] == "ndcg@10" and meta[name]["split"] == "valid"
        best = max(meta[name]["trials"], key=lambda t: t["value"])
        assert meta[name]["chosen"] == best["params"]
        # the grid run uses the chosen parameters
        entry = runs[name]["spec"]
        for path, value in meta[name]["chosen"].items():
            node = entry
            for part in path.split(".")[:-1]:
                node = node[part]
            assert node[path.split(".")[-1]] == value
        assert "test" in runs[name]["metrics"]
    assert meta["Pop"]["budget"] == 0 and "nothing to tune" in meta["Pop"]["note"]
    # an explicit option of the entry (dim: 16) is fixed, not searched
    assert "params.model.dim" not in meta["id-only"]["space"] and runs["id-only"]["spec"]["params"]["model"]["dim"] == 16
    report = (store_path(config).parent / "report.md").read_text()
    assert "## Tuning" in report and "EASE: 2 trials" in report


def test_a_second_run_resumes_the_study(tiny_config, plugin_manager):
    import optuna

    config = tiny_config(baselines=[{"baseline": "EASE"}], tuning={"trials": 2})
    run_benchmark(config, progress=False)
    first, _ = tuning_meta(config)
    more = tiny_config(baselines=[{"baseline": "EASE"}], tuning={"trials": 4})
    run_benchmark(more, progress=False)
    second, runs = tuning_meta(more)
    assert [t["number"] for t in second["EASE"]["trials"]] == [0, 1, 2, 3]
    assert second["EASE"]["trials"][:2] == first["EASE"]["trials"]  # the first two trials were kept, not redone
    assert second["EASE"]["study"] == first["EASE"]["study"]
    study = optuna.load_study(study_name=second["EASE"]["study"], storage=storage_url(more))
    assert len(study.trials) == 4
    # a different budget is a different tuned run: it ran again with the new choice
    registry = plugin_manager.registry
    assert {s.run_id for s in expand(config, registry)} != {s.run_id for s in expand(more, registry)}
    assert runs["EASE"]["status"] == "done"
    # same config again: nothing new, nothing rerun
    run_benchmark(more, progress=False)
    third, runs_again = tuning_meta(more)
    assert third["EASE"]["trials"] == second["EASE"]["trials"] and runs_again["EASE"]["attempts"] == 1


def test_a_run_narrowed_by_only_keeps_the_other_methods_tuning_record(tiny_config):
    config = tiny_config(baselines=[{"baseline": "EASE"}, {"baseline": "ItemKNN"}], tuning={"trials": 1})
    run_benchmark(config, progress=False, only=["ItemKNN"])
    run_benchmark(config, progress=False, only=["EASE"])
    meta, runs = tuning_meta(config)
    assert list(meta) == ["EASE", "ItemKNN"]  # the grid's order, both searches recorded
    assert len(meta["ItemKNN"]["trials"]) == 1 and meta["ItemKNN"]["chosen"]
    assert set(runs) == {"EASE", "ItemKNN"}
    report = (store_path(config).parent / "report.md").read_text()
    assert "| ItemKNN | 1 | 1 |" in report  # its row of the report's tuning table
    # a method the config no longer has: its search leaves the record and the report
    paths = run_benchmark(tiny_config(baselines=[{"baseline": "EASE"}], tuning={"trials": 1}), progress=False)
    assert set(json.loads(Path(paths["json"]).read_text())["data"]["tuning"]) == {"EASE"}


def test_per_method_budgets_and_spaces(tiny_config, plugin_manager):
    config = tiny_config(
        baselines=[{"baseline": "EASE", "tuning": {"trials": 1, "space": {
                       "params.reg_weight": {"type": "categorical", "choices": [10.0, 100.0]}}}},
                   {"baseline": "ItemKNN", "tuning": {"trials": 0}}],
        tuning={"trials": 3})
    ease = method_tuning(config, "baseline", config["baselines"][0], "", plugin_manager.registry)
    assert ease.trials == 1 and ease.space == {"params.reg_weight": {"type": "categorical", "choices": [10.0, 100.0]}}
    knn = method_tuning(config, "baseline", config["baselines"][1], "", plugin_manager.registry)
    assert not knn.active
    run_benchmark(config, progress=False)
    meta, runs = tuning_meta(config)
    assert meta["EASE"]["budget"] == 1 and len(meta["EASE"]["trials"]) == 1
    assert meta["ItemKNN"]["budget"] == 0 and "trials: 0" in meta["ItemKNN"]["note"]
    assert runs["EASE"]["spec"]["params"]["reg_weight"] in (10.0, 100.0)
    assert "tuning" not in runs["EASE"]["spec"]


def test_untuned_configs_keep_their_run_ids(tiny_config, plugin_manager):
    plain = tiny_config(baselines=[{"baseline": "Pop"}, {"baseline": "EASE"}])
    tuned = tiny_config(baselines=[{"baseline": "Pop"}, {"baseline": "EASE"}], tuning={"trials": 2})
    a, b = expand(plain, plugin_manager.registry), expand(tuned, plugin_manager.registry)
    assert a[0].run_id == b[0].run_id  # Pop: nothing to tune
    assert a[1].run_id != b[1].run_id  # EASE: its tuned runs depend on the search


@pytest.mark.parametrize("section, path, message", [
    ({"tuning": {"trials": -1}}, "tuning.trials", "an integer in [0, 100000], got -1"),
    ({"tuning": {"metric": "ndcg@20"}}, "tuning.metric", "K=20 must be one of evaluation.ks"),
    ({"tuning": {"metric": "auc@10"}}, "tuning.metric", "expected METRIC@K"),
    ({"tuning": {"storage": "tuning.sqlite"}}, "tuning.storage", "SQLAlchemy URL"),
    ({"tuning": {"space": {"reg_weight": {"type": "uniform", "low": 0, "high": 1}}}},
     "tuning.space.reg_weight", "starts with 'params.'"),
    ({"tuning": {"space": {"params.reg_weight": {"type": "normal", "low": 0, "high": 1}}}},
     "tuning.space.params.reg_weight.type", "expected one of"),
    ({"tuning": {"space": {"params.reg_weight": {"type": "uniform", "low": 5, "high": 1}}}},
     "tuning.space.params.reg_weight", "low < high"),
    ({"tuning": {"space": {"params.reg_weight": {"type": "loguniform", "low": 0, "high": 1}}}},
     "tuning.space.params.reg_weight.low", "log scale needs low > 0"),
    ({"tuning": {"space": {"params.reg_weight": {"type": "categorical", "choices": []}}}},
     "tuning.space.params.reg_weight.choices", "non-empty list"),
    ({"tuning": {"space": {"params.reg_weight": {"type": "int", "low": 1.5, "high": 3}}}},
     "tuning.space.params.reg_weight.low", "integer bounds"),
    ({"tuning": {"space": {"params.reg_weight": {"type": "uniform", "low": 1, "high": 3, "step": 1}}}},
     "tuning.space.params.reg_weight.step", "unknown key"),
    ({"tuning": {"space": {"params.nope": {"type": "uniform", "low": 1, "high": 3}}}},
     "tuning.space.params.nope", "applies to no method"),
    ({"baselines": [{"baseline": "EASE", "tuning": {"trials": 2, "space": {
        "params.nope": {"type": "uniform", "low": 1, "high": 3}}}}]},
     "baselines[0].tuning.space.params.nope", "no such option; allowed under params: clip_grad_norm"),
    ({"baselines": [{"baseline": "ItemKNN", "tuning": {"trials": 2, "space": {
        "params.k": {"type": "uniform", "low": 1, "high": 3}}}}]},
     "baselines[0].tuning.space.params.k", "integer option"),
    ({"tuning": {"trials": 2, "spaces": {}}}, "tuning.spaces", "unknown key"),
    ({"executor": {"workers": -1}}, "executor.workers", "an integer in [0, 100000], got -1"),
    ({"executor": {"cpus_per_task": 0}}, "executor.cpus_per_task", "an integer in [1, 100000], got 0"),
    ({"executor": {"gpus_per_task": 0}}, "executor.gpus_per_task", "a number in (0, 1024], got 0"),
    ({"executor": {"gpus_per_task": 1.5}}, "executor.gpus_per_task", "whole number"),
])
def test_tuning_config_errors_name_the_key(tiny_config, section, path, message):
    with pytest.raises(ConfigError) as info:
        tiny_config(**section)
    assert info.value.path == path and message in str(info.value)


def test_default_spaces_are_documented_and_valid(plugin_manager):
    documented = yaml.safe_load((ROOT / "configs" / "search_spaces.yaml").read_text())
    registry = plugin_manager.registry
    # the spaces the components declare (search_space, pooled_search_space, closed_form_search_space)
    spaces = default_spaces(registry, plugins=lambda name: name.startswith("builtin-"))
    DEFAULT_SPACES = {k: v for k, v in spaces.items() if k not in ("pooled", "family")}
    POOLED_SPACES, EASE_FAMILY_SPACES = spaces["pooled"], spaces["family"]["ease"]
    assert documented == dict(DEFAULT_SPACES, pooled=POOLED_SPACES, family=spaces["family"])
    assert set(spaces["family"]) == {"embedding", "ease", "factor", "sequence"}
    sequence_entry = {"encoder": "id", "fusion": "id", "adaptation": "finetune", "params": {"model": {"family": "sequence"}}}
    for param, dist in spaces["family"]["sequence"]["model"].items():
        assert param_problem("strategy", sequence_entry, param, dist, registry) is None, param
    for adaptation in ("target-only", *EASE_FAMILY_SPACES["adaptation"]):
        ease_entry = {"encoder": "id", "fusion": "id", "adaptation": adaptation,
                      "params": {"model": {"family": "ease"}}}
        space = dict(EASE_FAMILY_SPACES["model"], **EASE_FAMILY_SPACES["adaptation"].get(adaptation, {}))
        for param, dist in space.items():
            assert param_problem("strategy", ease_entry, param, dist, registry) is None, (adaptation, param)
    for name, space in POOLED_SPACES.items():
        for param, dist in space.items():
            assert param_problem("baseline", {"baseline": name, "pooled": True}, param, dist, registry) is None
    for name, space in DEFAULT_SPACES["baseline"].items():
        entry = {"baseline": name}
        for param, dist in space.items():
            assert param_problem("baseline", entry, param, dist, registry) is None, (name, param)
    base = {"encoder": "id", "fusion": "id", "adaptation": "target-only"}
    for part in ("adaptation", "fusion", "encoder"):
        for name, space in DEFAULT_SPACES[part].items():
            entry = dict(base, **{part: name})
            if part == "fusion":
                entry["encoder"] = "bert"
            for param, dist in space.items():
                assert param_problem("strategy", entry, param, dist, registry) is None, (name, param)
    for param, dist in spaces["family"]["embedding"]["model"].items():
        assert param_problem("strategy", base, param, dist, registry) is None, param
    # every RecBole baseline with hyper-parameters of its own has a default space
    for entry in registry.all("baseline"):
        own = {k for k, v in entry.cls.defaults.items() if v is not None} - {"knn_method", "inter_matrix_type"}
        if own and entry.plugin == "builtin-baselines":
            # (or, like RP3beta, iALS, GF-CF and SANSA, a search_space of its own class)
            assert entry.name in DEFAULT_SPACES["baseline"] or getattr(entry.cls, "search_space", None), entry.name


def test_example_config_with_tuning_loads(plugin_manager):
    config = load_config(ROOT / "configs" / "ml1m-ml100k.yaml",
                         overrides=["tuning.trials=20", "tuning.sampler_seed=7"], registry=plugin_manager.registry)
    tunings = [method_tuning(config, k, e, "", plugin_manager.registry)
               for k, key in (("baseline", "baselines"), ("strategy", "strategies")) for e in config[key]]
    budgets = {t.method: t.trials for t in tunings if t.active}
    # the global budget applies to every method without its own; the config's per-method 40 wins
    assert budgets["l2sp"] == budgets["finetune"] == 20
    # the strong controls get the largest strategy budget (ease-l2sp's 40)
    assert budgets["EASE"] == budgets["EASE (pooled)"] == budgets["iALS (pooled)"] == budgets["ease-l2sp"] == 40


def test_start_config_evaluates_the_written_values_first(tiny_config, plugin_manager):
    """``tuning.start: config``: the first trial is the entry's written point, then TPE goes on."""
    ease = {"baseline": "EASE", "params": {"reg_weight": 123.0},
            "tuning": {"trials": 3, "start": "config",
                       "space": {"params.reg_weight": {"type": "loguniform", "low": 1.0, "high": 1000.0}}}}
    config = tiny_config(baselines=[ease])
    run_benchmark(config, progress=False)
    meta, _ = tuning_meta(config)
    trials = meta["EASE"]["trials"]
    assert len(trials) == 3 and trials[0]["params"] == {"params.reg_weight": 123.0}
    assert len({t["params"]["params.reg_weight"] for t in trials}) == 3
    # the default start keeps the run IDs and the identity of before; `config` is part of them
    default = method_tuning(tiny_config(baselines=[{**ease, "tuning": {k: v for k, v in ease["tuning"].items()
                                                                       if k != "start"}}]),
                            "baseline", {**ease, "tuning": {k: v for k, v in ease["tuning"].items() if k != "start"}},
                            "", plugin_manager.registry)
    assert "start" not in default.identity()
    assert method_tuning(config, "baseline", ease, "", plugin_manager.registry).identity()["start"] == "config"


def test_start_config_outside_the_space_is_refused_before_work(tiny_config, plugin_manager):
    ease = {"baseline": "EASE", "params": {"reg_weight": 5000.0},
            "tuning": {"trials": 3, "start": "config",
                       "space": {"params.reg_weight": {"type": "loguniform", "low": 1.0, "high": 1000.0}}}}
    with pytest.raises(ConfigError, match=r"baselines\[0\]\.tuning\.start: starts the search from the written "
                                          r"params\.reg_weight = 5000\.0, which lies outside its search space"):
        expand(tiny_config(baselines=[ease]), plugin_manager.registry)
    with pytest.raises(ConfigError, match="tuning.start"):
        tiny_config(baselines=[{**ease, "tuning": {**ease["tuning"], "start": "nowhere"}}])


def test_a_search_can_maximise_a_validation_slice(tiny_config):
    """``tuning.metric: ndcg@10|cold items``: the trials' values are the cold slice's, and the chosen
    point's grid run (same first seed) records that value on validation."""
    ease = {"baseline": "EASE", "tuning": {"trials": 3, "metric": "NDCG@10 | Cold  Items",
                                           "space": {"params.reg_weight": {"type": "loguniform",
                                                                           "low": 1.0, "high": 1000.0}}}}
    config = tiny_config(baselines=[ease], dataset={"cold_items": {"fraction": 0.3, "seed": 0}})
    run_benchmark(config, progress=False)
    meta, runs = tuning_meta(config)
    assert meta["EASE"]["metric"] == "ndcg@10|cold items"
    valid = runs["EASE"]["metrics"]["valid"]
    assert valid["ndcg@10|cold items"] == pytest.approx(meta["EASE"]["best_value"], rel=1e-9)
    assert valid["ndcg@10|cold items"] != pytest.approx(valid["ndcg@10"])  # a different objective


def test_a_slice_no_run_records_stops_the_search_with_what_it_records(tiny_config, tmp_path):
    ease = {"baseline": "EASE", "tuning": {"trials": 3, "metric": "ndcg@10|cold items"}}
    config = tiny_config(baselines=[ease])  # no cold items: no such slice
    with pytest.raises(ConfigError) as info:
        run_benchmark(config, progress=False)
    assert info.value.path == "baselines[0].tuning.metric"
    assert "EASE: 'ndcg@10|cold items' is not among the validation metrics this run records" in str(info.value)
    assert "ndcg@10|users 1-5" in str(info.value)
    with pytest.raises(ConfigError) as info:  # set globally: the global key is named
        run_benchmark(tiny_config(baselines=[{"baseline": "EASE"}], output={"dir": str(tmp_path / "global")},
                                  tuning={"trials": 2, "metric": "ndcg@10|cold items"}), progress=False)
    assert info.value.path == "tuning.metric"


def test_a_slice_metric_is_checked_when_the_config_is_read(tiny_config):
    with pytest.raises(ConfigError, match=r"tuning.metric: expected METRIC@K or METRIC@K\|SLICE"):
        tiny_config(tuning={"metric": "ndcg@10|"})
    with pytest.raises(ConfigError, match="K=20 must be one of evaluation.ks"):
        tiny_config(tuning={"metric": "ndcg@20|cold items"})
