"""The sequence family: the tower's causal mask, bf16 autocast choice, inductive scoring through text,
export -> recommend with a recent history, a strategy end to end from a config, and the interleaved
two-domain input on a hand-made timeline."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from xdplug.api import DatasetRecipe, RawDomain, RawDomains
from xdplug.config import load_config
from xdplug.data.prepare import prepare
from xdplug.errors import ConfigError
from xdplug.spec import resolve_strategy
from xdplug.testing.contracts import make_fit_context

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NEXT_ITEM = {"task": "next-item"}
TINY = {"family": "sequence", "dim": 16, "max_length": 10, "n_layers": 1, "inner_size": 32, "batch_users": 32}


def entry(adaptation="target-only", encoder="id", fusion="id", **model):
    return {"encoder": encoder, "fusion": fusion, "adaptation": adaptation, "params": {"model": {**TINY, **model}}}


def next_item_data(recipe=None, **protocol):
    from xdplug.testing.synthetic import SyntheticRecipe

    config = load_config(data={"dataset": {"recipe": "synthetic", "protocol": {**NEXT_ITEM, **protocol}},
                               "baselines": [{"baseline": "Pop"}]})
    return prepare(recipe or SyntheticRecipe({}, "dataset.params"), config["dataset"], 0)


def build(registry, data, spec):
    strategy = resolve_strategy(spec, registry, "strategy")
    model = strategy.family.build(strategy, data, torch.device("cpu"), 0)
    return model.eval()


# -- the tower ------------------------------------------------------------------------------------

def test_a_position_never_reads_a_later_item(xdplug_home, plugin_manager):
    data = next_item_data()
    model = build(plugin_manager.registry, data, entry(n_layers=2, dropout=0.0))
    model.id_known[:] = True
    with torch.no_grad():
        vectors = model.item_vectors()
        rows = torch.as_tensor([[3, 7, 1, 12, 5, 9, 20, 4]])
        before = model.hidden(vectors, rows)
        changed = rows.clone()
        changed[0, 5] = 30  # a later item replaced: positions 0..4 must not move
        after = model.hidden(vectors, changed)
    torch.testing.assert_close(before[:, :5], after[:, :5])
    assert not torch.allclose(before[:, 5:], after[:, 5:])


def test_bf16_autocast_on_cuda_only(monkeypatch):
    from xdplug.api import amp_dtype

    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert amp_dtype("auto", cuda) == torch.bfloat16 and amp_dtype("bf16", cuda) == torch.bfloat16
    assert amp_dtype("off", cuda) is None and amp_dtype("auto", cpu) is None and amp_dtype("bf16", cpu) is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert amp_dtype("auto", cuda) is None


def test_config_checks(tiny_config):
    config = tiny_config(dataset={"protocol": NEXT_ITEM}, baselines=[{"baseline": "Pop"}],
                         strategies=[{"name": "tower", **entry("finetune")}])
    assert config["strategies"][0]["params"]["model"]["family"] == "sequence"
    with pytest.raises(ConfigError, match=r"model family 'sequence' ranks for the next-item protocol"):
        tiny_config(strategies=[{"name": "tower", **entry()}])
    with pytest.raises(ConfigError, match=r"must be a multiple of n_heads \(3\)"):
        tiny_config(dataset={"protocol": NEXT_ITEM}, strategies=[{"name": "t", **entry(n_heads=3)}])


# -- inductive through text -----------------------------------------------------------------------

def test_an_item_absent_from_training_is_scored_through_its_text(xdplug_home, plugin_manager, tmp_path):
    from xdplug.model.strategy import fit_strategy

    data = next_item_data()
    unseen = 5  # a target item taken out of every training sequence (its valid/test targets stay)
    keep = data.target_train[:, 1] != unseen
    data = dataclasses.replace(data, target_train=data.target_train[keep],
                               times={**data.times, "target_train": data.times["target_train"][keep]},
                               sequence_cache={}, split_cache={})
    registry = plugin_manager.registry
    scorer = fit_strategy(entry(encoder="bert", fusion="gate"), registry, make_fit_context(data, tmp_path, epochs=1))
    model, row = scorer.model, int(data.catalog.target_rows[unseen])
    assert not bool(model.id_known[row]) and bool(scorer.item_known[unseen])
    inputs = data.sequences("test")
    users = torch.as_tensor([u for u in data.target_test[:, 0] if unseen not in inputs[u]][:8])
    before = scorer.score(users)
    with torch.no_grad():  # its untrained ID is noise: the scores must not read it
        model.item_id.weight[row] = torch.randn_like(model.item_id.weight[row]) * 10
    torch.testing.assert_close(scorer.score(users), before)
    with torch.no_grad():  # its text is what scores it
        model.text_encoder.table[row] = torch.randn_like(model.text_encoder.table[row])
    after = scorer.score(users)
    assert not torch.allclose(after[:, unseen], before[:, unseen])
    # (these users' inputs do not hold it: nothing else moves)
    torch.testing.assert_close(np.delete(after.numpy(), unseen, 1), np.delete(before.numpy(), unseen, 1))
    # an ID-only tower has nothing to score it with
    ids = fit_strategy(entry(), registry, make_fit_context(data, tmp_path / "ids", epochs=1))
    assert not ids.item_known[unseen]


# -- export -> recommend --------------------------------------------------------------------------

def test_export_and_recommend_with_a_recent_history(xdplug_home, plugin_manager, tmp_path):
    import xdplug
    from xdplug.artifact import write_artifact
    from xdplug.model.strategy import fit_strategy

    registry = plugin_manager.registry
    config = load_config(data={"name": "seq", "dataset": {"recipe": "synthetic", "protocol": NEXT_ITEM},
                               "seeds": [0], "strategies": [{"name": "tower", **entry()}], "controls": "none"},
                         registry=registry)
    data = prepare(registry.get("dataset", "synthetic")({}), config["dataset"], 0)
    spec = config["strategies"][0]
    scorer = fit_strategy(spec, registry, make_fit_context(data, tmp_path / "work", epochs=2))
    folder = write_artifact(tmp_path / "tower", kind="strategy", method="tower", entry=spec, seed=0, config=config,
                            data=data, registry=registry, scorer=scorer)
    rec = xdplug.load(folder)
    users = np.arange(10)
    # a known user is scored from their latest input, as in the benchmark's test ranking
    torch.testing.assert_close(rec.score_users(users), scorer.score(torch.as_tensor(users)))
    # a new user's history is read in the order given, most recent last
    history = [int(i) for i in data.sequences("test")[3][-4:]]
    keys = [rec.items[i] for i in history]
    got = rec.recommend(history=keys, k=5)
    top = torch.topk(scorer.score_history(history).masked_fill(
        torch.isin(torch.arange(data.n_target_items), torch.as_tensor(history)), -torch.inf), 5)
    assert [g["item"] for g in got] == [rec.items[i] for i in top.indices[0].tolist()]
    assert np.allclose([g["score"] for g in got], top.values[0].numpy(), rtol=1e-5, atol=1e-6)
    reverse = rec.recommend(history=keys[::-1], k=5)
    assert [g["score"] for g in reverse] != [g["score"] for g in got]  # the order is read
    assert not {g["item"] for g in got} & set(keys)


# -- end to end -----------------------------------------------------------------------------------

def test_a_pretrained_tower_runs_from_a_config(tiny_config, tmp_path):
    from xdplug.engine.runner import run_benchmark
    from xdplug.store import RunStore

    config = tiny_config(dataset={"protocol": NEXT_ITEM}, baselines=[{"baseline": "Pop"}],
                         strategies=[{"name": "tower-finetune", **entry("finetune")},
                                     {"name": "tower-freeze-text", **entry("freeze", "bert", "gate")}],
                         train={"epochs": 2})
    run_benchmark(config, progress=False)
    store = RunStore(tmp_path / "out" / "runs.sqlite") if (tmp_path / "out").exists() else None
    from xdplug.engine.plan import output_dir

    store = store or RunStore(output_dir(config) / "runs.sqlite")
    runs = {r["method"]: r for r in store.runs()}
    store.close()
    for name in ("tower-finetune", "tower-freeze-text"):
        assert runs[name]["status"] == "done", runs[name].get("error")
        assert 0.0 < runs[name]["metrics"]["test"]["ndcg@10"] <= 1.0
        assert [p["phase"] for p in runs[name]["curves"]][:1] == ["source"]


# -- the user's two domains interleaved -----------------------------------------------------------

class Timeline(DatasetRecipe):
    """Hand-made: user a's target events t1 t2 t3 t4 at times 1 3 5 7, source events s1..s4 at 2 4 6 8;
    user b has target events only (and a source event, so both domains have two users)."""

    name = "timeline"

    def load(self, cache_dir):
        target = pd.DataFrame({"user": ["a"] * 4 + ["b"] * 4, "item": ["t1", "t2", "t3", "t4", "t2", "t1", "t4", "t3"],
                               "rating": 5.0, "timestamp": [1.0, 3, 5, 7, 1, 2, 3, 4]})
        source = pd.DataFrame({"user": ["a"] * 4 + ["c"] * 2, "item": ["s1", "s2", "s3", "s4", "s1", "s2"],
                               "rating": 5.0, "timestamp": [2.0, 4, 6, 8, 1, 2]})

        def items(ids):
            return pd.DataFrame({"item": ids, "title": ids, "year": "2000", "genres": "drama"})

        return RawDomains(source=RawDomain("s", source, items(["s1", "s2", "s3", "s4"]), "source"),
                          target=RawDomain("t", target, items(["t1", "t2", "t3", "t4"]), "target"),
                          align_users="id", align_items="id")


def test_interleaved_input_on_a_hand_made_timeline(xdplug_home, plugin_manager):
    config = load_config(data={"dataset": {"recipe": "synthetic", "protocol": {
        **NEXT_ITEM, "min_user_inter": 0, "min_item_inter": 0, "min_rating": 0}}, "baselines": [{"baseline": "Pop"}]})
    data = prepare(Timeline({}, "dataset.params"), config["dataset"], 0)
    registry = plugin_manager.registry
    model = build(registry, data, entry(cross_domain="interleave", dropout=0.0))
    plain = build(registry, data, entry(dropout=0.0))
    for m in (model, plain):
        m.id_known[:] = True
    a = data.keys["target_users"].index("a")
    name = {int(r): k for r, k in enumerate(data.keys["catalog"])}

    def events(split):
        seqs = model.inputs(split)
        lo, hi = seqs.indptr[a], seqs.indptr[a + 1]
        return [name[int(r)].split("|")[-1] for r in seqs.indices[lo:hi]], seqs.domains[lo:hi].tolist()

    # the valid target t3 (time 5) reads t1 s1 t2 s2; the test target t4 (time 7) also t3 s3; s4 (time 8) never
    assert events("valid") == (["t1", "s1", "t2", "s2"], [0, 1, 0, 1])
    assert events("test") == (["t1", "s1", "t2", "s2", "t3", "s3"], [0, 1, 0, 1, 0, 1])
    assert model.domain_embedding is not None and plain.domain_embedding is None
    # the source events reach the interleaved tower's output, not the plain one's
    s3 = data.keys["catalog"].index(next(k for k in data.keys["catalog"] if k.endswith("s3")))
    users = torch.as_tensor([a])
    before, plain_before = model.score_split(users, "test"), plain.score_split(users, "test")
    with torch.no_grad():
        for m in (model, plain):
            m.item_id.weight[s3] = torch.linspace(-1, 1, m.item_id.weight.shape[1])
    assert not torch.allclose(model.score_split(users, "test"), before)
    torch.testing.assert_close(plain.score_split(users, "test"), plain_before)


def test_a_family_declares_its_tasks_and_how_it_is_rebuilt():
    from xdplug.components import ModelFamily
    from xdplug.errors import ComponentDefinitionError
    from xdplug.registry import Registry

    register = Registry().register_callback("family", "checker")
    with pytest.raises(ComponentDefinitionError, match=r"family 'odd': tasks must be a non-empty tuple"):
        register(type("Odd", (ModelFamily,), {"name": "odd", "description": "d", "tasks": ("sessions",)}))
    with pytest.raises(ComponentDefinitionError, match=r"export = 'state' needs build\(\) implemented"):
        register(type("Stateful", (ModelFamily,), {"name": "stateful", "description": "d", "export": "state"}))
    register(type("Fine", (ModelFamily,), {"name": "fine", "description": "d", "tasks": ("next-item",)}))
