"""The strong control set (``controls: strong``, xdplug/controls.py): one line, the same methods and
equal budgets in every shipped config, shown by ``xdplug config show``, never run twice."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from xdplug.cli import main
from xdplug.config import load_config
from xdplug.controls import NEXT_ITEM_STRONG, STRONG, control_entries, control_methods, strategy_budget
from xdplug.errors import ConfigError
from xdplug.frozen import thaw

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p for p in (ROOT / "configs").glob("*.yaml") if p.name != "search_spaces.yaml")
STRATEGY = {"name": "s", "encoder": "id", "fusion": "id", "adaptation": "target-only"}
#: the control methods of the strong set, in expansion order
NAMES = [n for b in STRONG for n in (b, f"{b} (pooled)")]


def _config(**sections) -> dict:
    return load_config(data={"strategies": [STRATEGY], **sections})


def test_a_config_of_baselines_only_gets_no_controls_unless_it_asks():
    baselines = {"baselines": [{"baseline": "text-knn"}]}
    assert control_methods(load_config(data=baselines)) == []
    asked = load_config(data={**baselines, "controls": "strong", "tuning": {"trials": 3}})
    assert control_methods(asked) == NAMES and asked["controls"]["trials"] == 3


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_no_shipped_search_starts_from_written_values(path):
    """Searches start from the defaults, not from values a study chose on the same split: no
    ``tuning.start: config``, and an ensemble strategy searches in stages with the controls' budget."""
    config = load_config(path)
    blocks = [("tuning", config.get("tuning") or {})] + [
        (f"{key}[{i}].tuning", e.get("tuning") or {}) for key in ("baselines", "strategies")
        for i, e in enumerate(config[key])]
    assert [where for where, block in blocks if block.get("start", "sampler") != "sampler"] == []
    for entry in config["strategies"]:
        if (entry.get("tuning") or {}).get("staged"):
            assert entry["tuning"]["trials"] <= config["controls"].get("trials", 0), entry.get("name")


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_shipped_config_that_compares_methods_expands_the_same_controls(path):
    config = load_config(path)
    if config["name"] in ("scale", "next-item"):  # the documented opt-outs: a cost benchmark at 10^5 items,
        # a tour of the sequential baselines (untuned, no strategy)
        assert config["controls"] == {"set": "none"} and control_methods(config) == []
        return
    assert config["controls"]["set"] == "strong"
    trials = config["controls"]["trials"]
    pooled = config["dataset"].get("align") != "none"
    task = config["dataset"]["protocol"].get("task", "general")
    controls = [e for e in config["baselines"] if e.get("control")]
    assert controls == control_entries("strong", trials, pooled, task)  # same methods, same budget each
    strong = NEXT_ITEM_STRONG if task == "next-item" else STRONG  # the sequential set ranks sequences
    assert control_methods(config) == ([n for b in strong for n in (b, f"{b} (pooled)")] if pooled else list(strong))
    # never tuned less than a strategy they are compared with, and tuned at all
    assert trials >= strategy_budget(config)[0] and trials > 0
    overlap = config["dataset"]["recipe"] == "ml1m-genres" or config["name"].startswith("user-overlap")
    if task == "general" and overlap:
        assert {"iALS", "iALS (pooled)"} <= set(control_methods(config))


def test_config_show_prints_the_expansion(plugin_manager, capsys):
    assert main(["config", "show", "configs/user-overlap-sparse.yaml"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[1] == "# controls: strong, 14 methods x 30 trials: " + ", ".join(NAMES)
    shown = yaml.safe_load(out)
    assert {"baseline": "iALS", "pooled": True, "control": "strong", "tuning": {"trials": 30}} in shown["baselines"]
    assert shown["controls"] == {"set": "strong", "trials": 30}


def test_default_is_strong_where_a_strategy_is_compared_and_explicit_opt_out():
    config = _config()
    assert config["controls"] == {"set": "strong", "trials": 0}
    assert control_methods(config) == NAMES
    tuned = _config(tuning={"trials": 7})  # the global budget reaches the strategies, so the controls too
    assert {e["tuning"]["trials"] for e in tuned["baselines"]} == {7}
    assert control_methods(_config(controls="none")) == []
    assert control_methods(load_config(data={"baselines": [{"baseline": "Pop"}]})) == []
    assert control_methods(load_config(data={"baselines": [{"baseline": "BPR"}], "controls": "strong"})) == NAMES
    no_ids = _config(dataset={"align": "none"}, controls={"trials": 3})
    assert control_methods(no_ids) == list(STRONG)  # nothing shared: nothing to pool


def test_budget_follows_the_largest_strategy_budget_and_cannot_undercut_it():
    strategies = [{**STRATEGY, "tuning": {"trials": 12}}, {**STRATEGY, "name": "t"}]
    config = load_config(data={"strategies": strategies, "tuning": {"trials": 4}})
    assert config["controls"]["trials"] == 12
    untuned = [{**s, "tuning": {"trials": 0}} for s in strategies]  # the global budget still reaches the controls
    assert load_config(data={"strategies": untuned, "tuning": {"trials": 4}})["controls"]["trials"] == 4
    with pytest.raises(ConfigError) as info:
        load_config(data={"strategies": strategies, "controls": {"set": "strong", "trials": 5}})
    assert "controls.trials: 5 would tune the controls less than strategy 's' (12 trials)" in str(info.value)
    with pytest.raises(ConfigError, match="controls.trials: sets the budget of the controls, but this config "
                                          "runs none"):
        _config(controls={"set": "none", "trials": 3})
    with pytest.raises(ConfigError, match=r"controls.set: expected one of 'auto', 'strong', 'none', got 'strongg'"):
        _config(controls="strongg")


def test_an_explicit_baseline_that_is_a_control_is_an_error_naming_both():
    with pytest.raises(ConfigError) as info:
        _config(baselines=[{"baseline": "BPR"}, {"name": "pooled", "baseline": "EASE", "pooled": True,
                                                 "tuning": {"trials": 9}}])
    assert ("baselines[1]: 'pooled' runs the same method as the control 'EASE (pooled)' that controls: strong "
            "adds (0 trials); remove baselines[1]") in str(info.value)
    with pytest.raises(ConfigError, match=r"baselines\[0\].name: 'EASE' is the name of a control"):
        _config(baselines=[{"baseline": "EASE", "params": {"reg_weight": 181.0}}])
    variant = _config(baselines=[{"name": "EASE (study)", "baseline": "EASE", "params": {"reg_weight": 181.0}}])
    assert variant["baselines"][0]["name"] == "EASE (study)" and len(control_methods(variant)) == 14


def test_the_resolved_config_loads_to_itself_and_refuses_edited_controls():
    config = _config(controls={"trials": 2})
    assert load_config(data=thaw(config)) == config  # the controls are not added twice
    edited = thaw(config)
    edited["baselines"][2]["tuning"]["trials"] = 40  # a control tuned apart from the others
    with pytest.raises(ConfigError, match=r"baselines\[2\].control: control entries are written by the "
                                          r"`controls` key, not by hand"):
        load_config(data=edited)


def test_controls_with_a_strategy_budget_keep_run_identities_of_the_same_hand_written_entry():
    """A control runs what the same hand-written entry runs: its run IDs and study names do not see the mark."""
    from xdplug.engine.plan import run_entry

    entry = {"baseline": "iALS", "pooled": True, "control": "strong", "tuning": {"trials": 3}}
    assert run_entry(entry) == {"baseline": "iALS", "pooled": True}
    assert control_methods({"baselines": [entry, {"baseline": "iALS"}]}) == ["iALS (pooled)"]
