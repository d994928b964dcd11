"""A source pretraining is computed once per key and reused (xdplug.model.reuse): two adaptations pretrain
once, another seed or model option pretrains again, a reused pretraining gives the same target metrics as
a computed one, a damaged entry is recomputed with a log line. Both trained families share the seam."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from xdplug.config import load_config
from xdplug.data.prepare import prepare
from xdplug.evaluation import rank_split
from xdplug.testing.contracts import make_fit_context

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TOWER = {"family": "sequence", "dim": 16, "max_length": 10, "n_layers": 1, "inner_size": 32, "batch_users": 32}


def entry(adaptation, family="sequence", **model):
    params = {**TOWER, **model} if family == "sequence" else {"dim": 16, **model}
    return {"encoder": "bert", "fusion": "gate", "adaptation": adaptation, "params": {"model": params}}


def synthetic(task, seed=0):
    from xdplug.testing.synthetic import SyntheticRecipe

    dataset = {"recipe": "synthetic"} if task == "general" else {"recipe": "synthetic",
                                                                 "protocol": {"task": "next-item"}}
    config = load_config(data={"dataset": dataset, "baselines": [{"baseline": "Pop"}]})
    return prepare(SyntheticRecipe({}, "dataset.params"), config["dataset"], seed)


@pytest.fixture
def count_source_phases(monkeypatch):
    """How many source phases were trained (not reused)."""
    from xdplug.model import session

    trained = []
    original = session.fit_recbole

    def counting(ctx, config, model, loader, validate, phase="train", **kw):
        trained.append(phase)
        return original(ctx, config, model, loader, validate, phase=phase, **kw)

    monkeypatch.setattr(session, "fit_recbole", counting)
    return lambda: trained.count("source")


def fit(registry, data, spec, tmp_path, name, seed=0, reuse=True, messages=None):
    from xdplug.model.strategy import fit_strategy

    ctx = make_fit_context(data, tmp_path / name, seed=seed, epochs=1)
    ctx.reuse_dir = tmp_path / "phases" if reuse else None
    if messages is not None:
        ctx.progress = messages.append
    scorer = fit_strategy(spec, registry, ctx)
    return scorer, ctx


def ranking(scorer, data):
    return rank_split(scorer.score, data, "test", [10], "cpu", [])


@pytest.mark.parametrize("family", ["sequence", "embedding"])
def test_adaptations_from_one_pretraining_pretrain_once(xdplug_home, plugin_manager, tmp_path, count_source_phases,
                                                        family):
    registry = plugin_manager.registry
    data = synthetic("next-item" if family == "sequence" else "general")
    fit(registry, data, entry("finetune", family), tmp_path, "finetune")
    assert count_source_phases() == 1
    messages = []
    _, ctx = fit(registry, data, entry("freeze", family), tmp_path, "freeze", messages=messages)
    fit(registry, data, entry("l2sp", family), tmp_path, "l2sp")
    assert count_source_phases() == 1  # freeze and l2sp started from finetune's pretraining
    assert any("phase source: reused from" in m for m in messages)
    assert [p["phase"] for p in ctx.curves][:1] == ["source"]  # the reused phase's curve is reported
    # LP-FT (finetune, first: freeze) starts from the same pretraining
    spec = {**entry("finetune", family), "params": {**entry("finetune", family)["params"],
                                                     "adaptation": {"first": "freeze"}}}
    _, ctx = fit(registry, data, spec, tmp_path, "lpft")
    assert count_source_phases() == 1
    assert list(dict.fromkeys(p["phase"] for p in ctx.curves)) == ["source", "target-adaptor", "target"]
    # another seed, another model option, or another family: computed again
    fit(registry, data, entry("freeze", family), tmp_path, "seed1", seed=1)
    assert count_source_phases() == 2
    fit(registry, data, entry("freeze", family, dim=8), tmp_path, "dim8")
    assert count_source_phases() == 3
    fit(registry, data, entry("freeze", family, learning_rate=0.005), tmp_path, "lr")
    assert count_source_phases() == 4


def test_a_reused_pretraining_gives_the_computed_runs_metrics(xdplug_home, plugin_manager, tmp_path,
                                                              count_source_phases):
    registry = plugin_manager.registry
    data = synthetic("next-item")
    fit(registry, data, entry("finetune"), tmp_path, "first")  # computes and stores the pretraining
    computed, _ = fit(registry, data, entry("l2sp"), tmp_path, "computed", reuse=False)
    reused, _ = fit(registry, data, entry("l2sp"), tmp_path, "reused")
    assert count_source_phases() == 2  # "first" and the run without reuse
    a, b = ranking(computed, data), ranking(reused, data)
    np.testing.assert_array_equal(a.topk, b.topk)
    for name in computed.model.state_dict():  # bit-identical weights after the target phase
        assert computed.model.state_dict()[name].equal(reused.model.state_dict()[name]), name


def test_a_damaged_entry_is_recomputed_with_a_log_line(xdplug_home, plugin_manager, tmp_path, count_source_phases,
                                                       caplog):
    registry = plugin_manager.registry
    data = synthetic("next-item")
    fit(registry, data, entry("finetune"), tmp_path, "first")
    [stored] = (tmp_path / "phases").glob("*.pt")
    stored.write_bytes(stored.read_bytes()[:100])  # cut short
    with caplog.at_level(logging.INFO, logger="xdplug"):
        fit(registry, data, entry("freeze"), tmp_path, "after-cut")
    assert count_source_phases() == 2
    assert f"reuse: ignored {stored} (unreadable" in caplog.text
    # an entry that needs pickled code to load is never run: ignored, recomputed
    import argparse
    import pickle

    import torch

    stored.write_bytes(pickle.dumps(argparse.Namespace(state={})))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="xdplug"):
        fit(registry, data, entry("freeze"), tmp_path, "pickled")
    assert count_source_phases() == 3 and f"reuse: ignored {stored} (unreadable" in caplog.text
    # a well-formed entry of another key (a file copied over) is not trusted
    content = torch.load(stored, weights_only=True)
    torch.save({**content, "key": "f" * 64}, stored)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="xdplug"):
        fit(registry, data, entry("freeze"), tmp_path, "other-key")
    assert count_source_phases() == 4 and f"reuse: ignored {stored} (its key differs)" in caplog.text
    fit(registry, data, entry("freeze"), tmp_path, "again")  # the recomputed entry is reused
    assert count_source_phases() == 4
