"""Staged tuning of an ensemble (issue 31 item 3): each component alone, then the blend weights on
stored validation scores, within the controls' budget; the blend is never worse than its best part."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from xdplug.config import load_config, store_path
from xdplug.context import FitContext
from xdplug.data.prepare import prepare
from xdplug.engine.runner import run_benchmark
from xdplug.errors import ConfigError
from xdplug.model.strategy import fit_strategy
from xdplug.spec import family_class
from xdplug.stages import default_split
from xdplug.store import RunStore
from xdplug.testing.synthetic import SyntheticRecipe

pytestmark = pytest.mark.usefixtures("one_torch_thread")

USERS_SHARED = {"recipe": "synthetic", "params": {"n_shared_items": 0, "n_shared_users": 50}}


def joint(**tuning):
    return {"name": "ensemble", "encoder": "id", "fusion": "id", "adaptation": "joint",
            "params": {"model": {"family": "ease"}}, "tuning": tuning}


def meta_and_runs(config):
    store = RunStore(store_path(config))
    try:
        return store.get_meta("tuning"), {r["method"]: r for r in store.runs()}
    finally:
        store.close()


def test_a_staged_search_spends_the_budget_by_stage_and_never_blends_below_its_best_component(tiny_config):
    small = {"params.model.factor_rank": {"type": "categorical", "choices": [2, 4, 8]},
             "params.model.filter_rank": {"type": "int", "low": 2, "high": 16}}
    config = tiny_config(dataset=USERS_SHARED, baselines=[],
                         strategies=[joint(trials=6, staged=True, blend_trials=8, space=small)])
    run_benchmark(config, progress=False)
    meta, runs = meta_and_runs(config)
    tu = meta["ensemble"]
    stages = tu["staged"]["stages"]
    assert [s["name"] for s in stages] == ["ease", "lowpass", "ials"]
    # the controls' budget, in fits: every stage's fits add up to it; the blend only weighs stored scores
    assert tu["budget"] == 6 and sum(s["budget"] for s in stages) == 6
    assert len([r for r in tu["trials"] if r["stage"] != "weights"]) == 6
    assert tu["staged"]["weights"]["budget"] == 8 and tu["staged"]["weights"]["trials"] == 8
    best_component = max(s["best_value"] for s in stages)
    assert tu["best_value"] >= best_component
    # each component alone in the blend (stored scores) scores as its stage's best fit did
    for s in stages:
        assert tu["staged"]["weights"]["alone"][s["name"]] == pytest.approx(s["best_value"], abs=1e-6)
    # the grid run is the chosen blend: its validation value is the blend search's
    assert runs["ensemble"]["metrics"]["valid"]["ndcg@10"] == pytest.approx(tu["best_value"], abs=1e-6)
    for path, value in tu["chosen"].items():
        node = runs["ensemble"]["spec"]
        for part in path.split(".")[:-1]:
            node = node[part]
        assert node[path.split(".")[-1]] == value
    # a later stage searched with the earlier stages' choices fixed; the report sees every stage's space
    assert set(tu["space"]) == {p for s in stages for p in s["space"]}
    # a second run resumes every stage's study and the blend's: no new trial, the same choice
    run_benchmark(config, progress=False, force=True)
    again, _ = meta_and_runs(config)
    assert again["ensemble"]["chosen"] == tu["chosen"] and len(again["ensemble"]["trials"]) == len(tu["trials"])


def test_the_blend_of_stored_scores_is_what_the_fitted_blend_scores(plugin_manager, tmp_path):
    """The identity the blend search rests on: ``ModelFamily.blend`` of each component's scores alone
    equals the family's fitted strategy with those weights."""
    registry = plugin_manager.registry
    cfg = load_config(data={"dataset": {"recipe": "synthetic"}, "baselines": [{"baseline": "Pop"}]})
    data = prepare(SyntheticRecipe(USERS_SHARED["params"]), cfg["dataset"], 7)
    ctx = FitContext(data=data, seed=3, device=torch.device("cpu"), train=cfg["train"],
                     evaluation=cfg["evaluation"], workdir=tmp_path)
    base = {"reg_weight": 20.0, "user_norm": 0.3, "filter_rank": 6, "factor_rank": 4, "factor_reg": 0.1}
    entry = joint()
    stages = family_class(entry, registry).tuning_stages(*(registry.get(k, entry[k]) for k in
                                                           ("encoder", "fusion", "adaptation")))

    def scores(model: dict) -> torch.Tensor:
        e = dict(entry, params={"model": {"family": "ease", **base, **model}})
        return fit_strategy(e, registry, ctx).score(torch.arange(data.n_target_users))

    parts = [scores({k.rsplit(".", 1)[1]: v for k, v in s.alone.items()}) for s in stages]
    weights = [0.7, 0.2, 0.4]
    fitted = scores({"ease_weight": 0.7, "filter_weight": 0.2, "factor_weight": 0.4})
    blended = family_class(entry, registry).blend(parts, weights)
    assert np.allclose(blended.numpy(), fitted.numpy(), atol=1e-4)
    # EASE left out is not solved, and nothing left at all is refused
    with pytest.raises(ConfigError, match="ease_weight"):
        scores({"ease_weight": 0.0, "filter_rank": 0, "factor_rank": 0})


def test_default_split_follows_the_parameter_counts():
    assert default_split(30, [5, 1, 3]) == [15, 5, 10]
    assert sum(default_split(7, [5, 1, 3])) == 7 and min(default_split(3, [5, 1, 3])) == 1
    assert default_split(5, [0, 2]) == [1, 4]  # nothing to search: one fit of its written values


def test_a_declared_share_fixes_a_stages_fits_whatever_the_others_search():
    # the factor family's core (3 parameters, 40 %): the same 8 of 20 fits with one lever or two
    assert default_split(20, [3, 1, 3], [0.4, None, None]) == [8, 4, 8]
    assert default_split(20, [3, 2, 3], [0.4, None, None]) == [8, 5, 7]
    assert default_split(20, [3, 2, 3]) == [7, 6, 7]  # by parameter count the core lost a fit
    assert default_split(3, [3, 2, 3], [0.4, None, None]) == [1, 1, 1]  # every stage keeps one fit
    assert sum(default_split(7, [3, 2, 3], [0.9, None, None])) == 7


def test_stage_shares_are_checked():
    from xdplug.components import TuningStage
    from xdplug.stages import stage_problems

    space = {"params.model.a": {"type": "uniform", "low": 0.0, "high": 1.0}}
    assert stage_problems([TuningStage("a", space, {}, share=0.4)], blend=False) == []
    assert any("share must be a fraction" in p for p in stage_problems([TuningStage("a", space, {}, share=1.5)],
                                                                       blend=False))
    halves = [TuningStage("a", space, {}, share=0.5), TuningStage("b", dict(space), {}, share=0.5)]
    assert any("add up to 1 or more" in p for p in stage_problems(halves, blend=False))


@pytest.mark.parametrize("tuning, match", [
    ({"trials": 6, "staged": True, "stages": {"ease": 3, "knn": 3}}, r"stages\.knn.*declares: ease, lowpass, ials"),
    ({"trials": 6, "staged": True, "stages": {"ease": 3, "lowpass": 2}}, r"splits 5 fits.*add up to 6"),
    ({"trials": 2, "staged": True}, r"2 fits cannot tune 3 components"),
    ({"trials": 6, "staged": True, "start": "config"}, r"start: config does not apply"),
    ({"trials": 6, "staged": True, "blend_trials": 2}, r"blend_trials.*at least 4"),
    ({"trials": 6, "stages": {"ease": 6}}, r"stages.*add staged: true"),
    ({"trials": 6, "staged": True, "space": {"params.model.dim": {"type": "int", "low": 8, "high": 64}}},
     r"params.model.dim"),
    ({"trials": 6, "staged": True, "space": {"params.model.neighbors": {"type": "int", "low": 8, "high": 64}}},
     r"parameter of no stage"),
])
def test_bad_staged_configs_are_named(tiny_config, tuning, match):
    with pytest.raises(ConfigError, match=match):
        tiny_config(dataset=USERS_SHARED, strategies=[joint(**tuning)])


def test_staged_is_refused_where_there_is_no_ensemble(tiny_config):
    zero_shot = dict(joint(trials=4, staged=True), adaptation="zero-shot")
    with pytest.raises(ConfigError, match=r"strategies\[0\]\.tuning\.staged.*declares no components"):
        tiny_config(strategies=[zero_shot])
    with pytest.raises(ConfigError, match=r"baselines\[1\]\.tuning\.staged"):
        tiny_config(baselines=[{"baseline": "Pop"}, {"baseline": "EASE", "tuning": {"trials": 4, "staged": True}}])
    # the global switch stages what has stages and leaves the rest flat
    config = tiny_config(strategies=[zero_shot | {"tuning": {}}], tuning={"trials": 4, "staged": True})
    assert config["tuning"]["staged"] is True


def test_stages_are_part_of_the_search_identity(tiny_config, plugin_manager):
    from xdplug.engine.tuning import method_tuning

    a = tiny_config(dataset=USERS_SHARED, strategies=[joint(trials=6, staged=True)])
    b = tiny_config(dataset=USERS_SHARED, strategies=[joint(trials=6, staged=True, stages={"ease": 4, "lowpass": 2})])
    ta, tb = (method_tuning(c, "strategy", c["strategies"][0], "strategies[0]", plugin_manager.registry) for c in (a, b))
    assert ta.identity() != tb.identity()
    assert [s.stage.name for s in tb.staged.stages] == ["ease", "lowpass"]
    assert dataclasses.replace(ta, staged=None).identity() != ta.identity()


def test_the_report_flags_stage_values_at_their_edges_and_shows_the_split():
    from xdplug.report.edges import describe_flag, tuning_edges
    from xdplug.report.tables import budget_text, convergence

    rank = {"params.model.factor_rank": {"type": "categorical", "choices": [32, 64, 128, 256, 512]}}
    reg = {"params.model.reg_weight": {"type": "loguniform", "low": 8.0, "high": 32768.0}}
    tu = {"budget": 6, "space": {**reg, **rank},
          "chosen": {"params.model.reg_weight": 300.0, "params.model.factor_rank": 0},  # the blend left iALS out
          "trials": [*({"number": i, "value": 0.1 + 0.1 * (i == 4), "stage": "ease"} for i in range(5)),
                     {"number": 0, "value": 0.3, "stage": "ials"}, {"number": 0, "value": 0.35, "stage": "weights"}],
          "staged": {"stages": [{"name": "ease", "budget": 2, "space": reg, "chosen": {"params.model.reg_weight": 300.0}},
                                {"name": "ials", "budget": 4, "space": rank,
                                 "chosen": {"params.model.factor_rank": 512}}],
                     "weights": {"budget": 64}}}
    flags = tuning_edges({"ensemble": tu})["ensemble"]
    assert [(f["stage"], f["param"], f["edge"]) for f in flags] == [("ials", "params.model.factor_rank", "high")]
    assert describe_flag(flags[0]).startswith("stage ials: params.model.factor_rank = 512 (high edge")
    assert budget_text(tu) == "6 fits (ease 2, ials 4) + 64 blend evaluations of stored scores"
    assert budget_text({"budget": 30}) == "30 trials"
    assert convergence(tu) == ("ease: still improving (best at trial 5 of 5); ials: converged; weights: converged")


def test_the_item_item_family_declares_well_formed_stages(plugin_manager):
    from xdplug.testing import check_family

    registry = plugin_manager.registry
    family = registry.get("family", "ease")
    parts = {name: registry.get("adaptation", name) for name in ("joint", "target-only", "l2sp", "zero-shot")}
    for name, adaptation in parts.items():
        check_family(family, components=(registry.get("encoder", "id"), registry.get("fusion", "id"), adaptation))
    ids = (registry.get("encoder", "id"), registry.get("fusion", "id"))
    joint_ease = family.tuning_stages(*ids, parts["joint"])[0].space
    assert "params.adaptation.source_weight" in joint_ease and "params.model.source_norm" in joint_ease
    assert "params.adaptation.source_weight" not in family.tuning_stages(*ids, parts["target-only"])[0].space
    l2sp_ease = family.tuning_stages(*ids, parts["l2sp"])[0].space  # the pull and the source EASE's L2
    assert {"params.adaptation.weight", "params.model.source_reg_weight", "params.model.user_norm"} <= set(l2sp_ease)
    assert "params.model.source_norm" not in l2sp_ease
    assert family.tuning_stages(*ids, parts["zero-shot"]) == []  # no target rows: EASE alone, not an ensemble


def test_malformed_stages_are_named():
    from xdplug.components import TuningStage
    from xdplug.stages import stage_problems

    good = TuningStage("a", {"params.model.x": {"type": "uniform", "low": 0.0, "high": 1.0}}, {}, "params.model.w", {})
    assert stage_problems([good]) == []
    problems = stage_problems([good, good, TuningStage("b", {"params.model.w": {"type": "uniform", "low": 1, "high": 0}},
                                                        {"model.x": 0}, "params.model.x", {})])
    assert any("repeat" in p for p in problems) and any("low < high" in p for p in problems)
    assert any("'model.x', not a parameter path" in p for p in problems)
    assert any("weight 'params.model.x' is also searched" in p for p in problems)
    refine = TuningStage("c", {}, {})
    assert stage_problems([refine], blend=False) == [] and stage_problems([good], blend=False) == [
        "stage 'a' has a blend weight, but the family's stages refine one model"]
    assert stage_problems([refine]) == ["stage 'c' has no blend weight, but the family blends its stages"]


FACTOR_JOINT = {"name": "factor-joint", "encoder": "id", "fusion": "id", "adaptation": "joint",
                "params": {"model": {"family": "factor", "factors": 8, "iterations": 3}}}
SOURCE_WEIGHT = "params.adaptation.source_weight"


def test_a_refining_family_returns_its_best_stage_never_worse_than_its_core(tiny_config):
    """The factor family's stages refine one model (its iALS core, then the transfer levers): no blend,
    the budget split adds up to the controls', and the result is never worse on validation than the core."""
    config = tiny_config(baselines=[], strategies=[dict(FACTOR_JOINT, tuning={
        "trials": 5, "staged": True, "stages": {"core": 3, "transfer": 2}})])
    run_benchmark(config, progress=False)
    meta, runs = meta_and_runs(config)
    tu = meta["factor-joint"]
    stages = tu["staged"]["stages"]
    assert [s["name"] for s in stages] == ["core", "transfer"]
    assert tu["budget"] == 5 and [s["budget"] for s in stages] == [3, 2] and len(tu["trials"]) == 5
    assert "weights" not in tu["staged"] and {r["stage"] for r in tu["trials"]} == {"core", "transfer"}
    assert set(stages[0]["space"]) == {"params.model.regularization", "params.model.alpha"}  # factors: written
    assert set(stages[1]["space"]) == {SOURCE_WEIGHT}
    core, transfer = (s["best_value"] for s in stages)
    assert tu["best_value"] == max(core, transfer) >= core
    chosen = tu["chosen"]
    assert chosen[SOURCE_WEIGHT] == (0.0 if tu["staged"]["result"] == "core" else stages[1]["chosen"][SOURCE_WEIGHT])
    assert {p: chosen[p] for p in stages[0]["chosen"]} == stages[0]["chosen"]  # the core stays as chosen
    # the grid run fits the chosen model: its validation value is the winning stage's best trial's
    assert runs["factor-joint"]["metrics"]["valid"]["ndcg@10"] == pytest.approx(tu["best_value"], abs=1e-6)
    run_benchmark(config, progress=False, force=True)  # resumes: no new trial, the same choice
    again, _ = meta_and_runs(config)
    assert again["factor-joint"]["chosen"] == chosen and len(again["factor-joint"]["trials"]) == 5


def test_the_refine_stage_rescales_the_fixed_core_and_never_loses_to_it(tiny_config):
    """Three stages by default: refine searches only its own scales over the core and the levers as chosen;
    the result is the best stage's model, never worse on validation than the core."""
    config = tiny_config(baselines=[], strategies=[dict(FACTOR_JOINT, tuning={"trials": 6, "staged": True})])
    run_benchmark(config, progress=False)
    meta, runs = meta_and_runs(config)
    tu = meta["factor-joint"]
    stages = tu["staged"]["stages"]
    assert [s["name"] for s in stages] == ["core", "transfer", "refine"] and sum(s["budget"] for s in stages) == 6
    refine = [r for r in tu["trials"] if r["stage"] == "refine"]
    assert refine and all(set(r["params"]) == {"params.model.reg_scale", "params.model.alpha_scale",
                                                "params.model.nu"} for r in refine)
    values = [s["best_value"] for s in stages]
    assert tu["best_value"] == max(values) >= values[0]
    winner = tu["staged"]["result"]
    assert ("params.model.reg_scale" in tu["chosen"]) == (winner == "refine")
    assert runs["factor-joint"]["metrics"]["valid"]["ndcg@10"] == pytest.approx(tu["best_value"], abs=1e-6)


@pytest.mark.parametrize("values, result", [((0.30, 0.25), "core"), ((0.30, 0.30), "core"), ((0.30, 0.31), "transfer")])
def test_a_refined_result_is_the_best_stage_with_its_levers(values, result):
    """Transfer worse than (or tied with) the core: the core with every lever off, the model stage 1 scored."""
    from types import SimpleNamespace

    from xdplug.components import TuningStage
    from xdplug.engine.staged import StagedSearch
    from xdplug.stages import PlannedStage

    reg = "params.model.regularization"
    stages = (PlannedStage(TuningStage("core", {}, {SOURCE_WEIGHT: 0.0}), {}, 3),
              PlannedStage(TuningStage("transfer", {}, {}), {}, 2))
    search = StagedSearch({}, SimpleNamespace(staged=SimpleNamespace(stages=stages)), "sqlite://")
    search.results = [{"chosen": {reg: 5.0}, "best_value": values[0], "study": "a"},
                      {"chosen": {SOURCE_WEIGHT: 0.1}, "best_value": values[1], "study": "b"}]
    out = search._refined()
    assert out["staged"]["result"] == result and out["best_value"] == max(values)
    assert out["chosen"] == {reg: 5.0, SOURCE_WEIGHT: 0.0 if result == "core" else 0.1}


def test_the_factor_family_declares_a_core_then_its_transfer_levers(plugin_manager, tiny_config):
    from xdplug.testing import check_family

    registry = plugin_manager.registry
    family = registry.get("family", "factor")
    assert family.blends_stages is False
    ids = (registry.get("encoder", "id"), registry.get("fusion", "id"))
    joint_stages = family.tuning_stages(*ids, registry.get("adaptation", "joint"))
    check_family(family, components=(*ids, registry.get("adaptation", "joint")))
    assert [s.name for s in joint_stages] == ["core", "transfer", "refine"]
    assert set(joint_stages[0].space) == {"params.model.factors", "params.model.regularization", "params.model.alpha"}
    assert joint_stages[0].alone == {SOURCE_WEIGHT: 0.0} and set(joint_stages[1].space) == {SOURCE_WEIGHT}
    # refine: the core's L2 and alpha rescaled and nu, nothing written over the earlier choices
    assert set(joint_stages[2].space) == {"params.model.reg_scale", "params.model.alpha_scale", "params.model.nu"}
    assert joint_stages[2].alone == {}
    # the core's share is the family's, so a strategy with text and a source searches the same core
    text_joint = family.tuning_stages(registry.get("encoder", "bert"), registry.get("fusion", "gate"),
                                      registry.get("adaptation", "joint"))
    assert joint_stages[0].share == text_joint[0].share == 0.4 and len(text_joint[1].space) == 2
    # iALS alone (no lever): core then refine, the no-transfer twin of the levered strategies
    twin = family.tuning_stages(*ids, registry.get("adaptation", "target-only"))
    assert [s.name for s in twin] == ["core", "refine"] and twin[0].alone == {}
    assert twin[0].space == joint_stages[0].space and twin[1].space == joint_stages[2].space
    with pytest.raises(ConfigError, match=r"strategies\[0\]\.tuning\.blend_trials: .*no blend"):
        tiny_config(strategies=[dict(FACTOR_JOINT, tuning={"trials": 4, "staged": True, "blend_trials": 8})])


def test_the_factor_twin_without_levers_spends_the_same_fits_on_core_then_refine(tiny_config, plugin_manager):
    """``target-only`` with ``encoder: id`` staged: the core's share, the rest to refine (no empty transfer
    stage), every fit spent, the result never worse than the core; a lever to add has no stage to join."""
    from xdplug.engine.tuning import method_tuning

    twin = dict(FACTOR_JOINT, name="factor", adaptation="target-only")
    big = tiny_config(baselines=[], strategies=[dict(twin, tuning={"trials": 20, "staged": True})])
    mt = method_tuning(big, "strategy", big["strategies"][0], "strategies[0]", plugin_manager.registry)
    assert [(s.stage.name, s.trials) for s in mt.staged.stages] == [("core", 8), ("refine", 12)]
    config = tiny_config(baselines=[], strategies=[dict(twin, tuning={"trials": 5, "staged": True})])
    run_benchmark(config, progress=False)
    meta, runs = meta_and_runs(config)
    tu = meta["factor"]
    stages = tu["staged"]["stages"]
    assert [(s["name"], s["budget"]) for s in stages] == [("core", 2), ("refine", 3)] and len(tu["trials"]) == 5
    assert tu["best_value"] == max(s["best_value"] for s in stages) >= stages[0]["best_value"]
    assert runs["factor"]["metrics"]["valid"]["ndcg@10"] == pytest.approx(tu["best_value"], abs=1e-6)
    with pytest.raises(ConfigError, match=r"strategies\[0\]\.tuning\.levers: .*has none \(stages: core, refine\)"):
        tiny_config(strategies=[dict(twin, tuning={"trials": 5, "staged": True, "levers": OFFSET})])


def test_core_levers_tune_the_core_with_a_lever_on_and_keep_it_in_the_result(tiny_config, plugin_manager):
    """``core_levers: {source_weight: 1}``: the core's fits are the pooled model (same trial parameters
    as the target-only core, other values), the search has its own identity, and a core result keeps
    the lever at 1 (the model its best trial fitted), never worse on validation than the core."""
    from xdplug.engine.tuning import method_tuning

    split = {"trials": 5, "staged": True, "stages": {"core": 3, "transfer": 2}}
    metas = {}
    for levers in (None, {SOURCE_WEIGHT: 1.0}):
        tuning = dict(split, **({"core_levers": levers} if levers else {}))
        config = tiny_config(dataset=USERS_SHARED, baselines=[], strategies=[dict(FACTOR_JOINT, tuning=tuning)])
        run_benchmark(config, progress=False)
        metas[bool(levers)] = meta_and_runs(config)[0]["factor-joint"]
        mt = method_tuning(config, "strategy", config["strategies"][0], "strategies[0]", plugin_manager.registry)
        assert mt.staged.stages[0].stage.alone == {SOURCE_WEIGHT: 1.0 if levers else 0.0}
        assert ("core_levers" in mt.identity()["staged"]) == bool(levers)
    off, on = ([t for t in metas[k]["trials"] if t["stage"] == "core"] for k in (False, True))
    assert off[0]["params"] == on[0]["params"]  # the same sampler's first core parameters ...
    assert off[0]["value"] != pytest.approx(on[0]["value"], abs=1e-9)  # ... fitted with the source on
    tu = metas[True]
    core = tu["staged"]["stages"][0]["best_value"]
    assert tu["best_value"] >= core
    if tu["staged"]["result"] == "core":
        assert tu["chosen"][SOURCE_WEIGHT] == 1.0


@pytest.mark.parametrize("levers, match", [
    ({"params.model.alpha": 1.0}, r"core_levers\.params\.model\.alpha: is not a lever stage 'core' switches off"),
    ({SOURCE_WEIGHT: "one"}, r"core_levers\.params\.adaptation\.source_weight: expected a number"),
    ([1.0], r"core_levers: expected a mapping"),
])
def test_bad_core_levers_are_named(tiny_config, levers, match):
    tuning = {"trials": 4, "staged": True, "core_levers": levers}
    with pytest.raises(ConfigError, match=match):
        tiny_config(dataset=USERS_SHARED, strategies=[dict(FACTOR_JOINT, tuning=tuning)])
    with pytest.raises(ConfigError, match=r"core_levers: applies to stages that refine one model"):
        tiny_config(dataset=USERS_SHARED, strategies=[joint(trials=6, staged=True, core_levers={"params.model.filter_rank": 8})])
    with pytest.raises(ConfigError, match=r"^tuning\.core_levers: .*strategy's own tuning block"):
        tiny_config(dataset=USERS_SHARED, strategies=[dict(FACTOR_JOINT, tuning={"trials": 4, "staged": True})],
                    tuning={"core_levers": {SOURCE_WEIGHT: 1.0}})
    with pytest.raises(ConfigError, match=r"core_levers: applies to a staged search only"):
        tiny_config(dataset=USERS_SHARED, strategies=[dict(FACTOR_JOINT, tuning={"trials": 4, "core_levers": {SOURCE_WEIGHT: 1.0}})])


OFFSET = {"params.model.offset_reg": {"type": "loguniform", "low": 0.01, "high": 1.0e4}}


def test_levers_join_the_levers_stage_only_and_are_checked(tiny_config, plugin_manager):
    """``tuning.levers``: a further option searched with the family's levers (the core keeps its default)."""
    from xdplug.engine.tuning import method_tuning

    tuning = {"trials": 9, "staged": True, "levers": OFFSET}
    config = tiny_config(dataset=USERS_SHARED, strategies=[dict(FACTOR_JOINT, tuning=tuning)])
    mt = method_tuning(config, "strategy", config["strategies"][0], "strategies[0]", plugin_manager.registry)
    core, transfer, refine = mt.staged.stages
    assert set(transfer.space) == {SOURCE_WEIGHT, *OFFSET} and not set(OFFSET) & (set(core.space) | set(refine.space))
    # the core's 40 % share (4 of 9), the other 5 by parameter count + 1: transfer 2 + 1, refine 3 + 1
    assert (core.trials, transfer.trials, refine.trials) == (4, 2, 3)
    plain = tiny_config(dataset=USERS_SHARED, strategies=[dict(FACTOR_JOINT, tuning={"trials": 9, "staged": True})])
    assert method_tuning(plain, "strategy", plain["strategies"][0], "strategies[0]",
                         plugin_manager.registry).identity() != mt.identity()
    for levers, match in [
        ({SOURCE_WEIGHT: OFFSET["params.model.offset_reg"]}, r"levers\.params\.adaptation\.source_weight: is already searched"),
        ({"params.model.nope": OFFSET["params.model.offset_reg"]}, r"levers\.params\.model\.nope: no such option"),
        ({"params.model.offset_reg": {"type": "loguniform", "low": 0.0, "high": 1.0}}, r"levers\.params\.model\.offset_reg"),
    ]:
        with pytest.raises(ConfigError, match=match):
            tiny_config(dataset=USERS_SHARED, strategies=[dict(FACTOR_JOINT, tuning=dict(tuning, levers=levers))])
    written = dict(FACTOR_JOINT, params={"model": {**FACTOR_JOINT["params"]["model"], "offset_reg": 1.0}})
    with pytest.raises(ConfigError, match=r"levers\.params\.model\.offset_reg: is written by the entry"):
        tiny_config(dataset=USERS_SHARED, strategies=[dict(written, tuning=tuning)])
    with pytest.raises(ConfigError, match=r"tuning\.levers: applies to stages that refine one model"):
        tiny_config(dataset=USERS_SHARED, strategies=[joint(trials=6, staged=True, levers=OFFSET)])
