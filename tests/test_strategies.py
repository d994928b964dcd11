"""Transfer strategies on the tiny synthetic fixture: mechanics and end-to-end training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xdplug.config import load_config
from xdplug.data.prepare import prepare
from xdplug.errors import ConfigError
from xdplug.model.strategy import fit_strategy
from xdplug.plugins import make_plugin_manager
from xdplug.testing.synthetic import SyntheticRecipe
from xdplug.context import FitContext
from xdplug.metrics import quick_metric
from xdplug.evaluation import rank_split

ADAPTATIONS = ["target-only", "zero-shot", "finetune", "freeze", "l2sp", "joint", "dann", "mmd",
               "coral", "consistency"]
FAST = {"batch_users": 16, "dim": 16, "epochs": 4}


@pytest.fixture(scope="module")
def registry():
    return make_plugin_manager().registry


def _prepared(tmp_path_factory, **dataset):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDPLUG_HOME", str(tmp_path_factory.mktemp("home")))
        cfg = load_config(data={"dataset": {"recipe": "synthetic", **dataset}, "baselines": [{"baseline": "Pop"}]})
        return prepare(SyntheticRecipe({}), cfg["dataset"], 7)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return _prepared(tmp_path_factory)


@pytest.fixture(scope="module")
def cold_data(tmp_path_factory):
    return _prepared(tmp_path_factory, cold_items={"fraction": 0.25, "new_in_source": True})


def make_ctx(data, tmp_path, epochs=4):
    cfg = load_config(data={"dataset": {"recipe": "synthetic"}, "baselines": [{"baseline": "Pop"}],
                            "train": {"epochs": epochs, "learning_rate": 0.01, "stopping_step": 3},
                            "evaluation": {"ks": [5, 10], "valid_metric": "ndcg@10"}})
    return FitContext(data=data, seed=3, device=torch.device("cpu"), train=cfg["train"],
                      evaluation=cfg["evaluation"], workdir=tmp_path)


def strategy(adaptation, encoder="id", fusion="id", model=None, **params):
    return {"encoder": encoder, "fusion": fusion, "adaptation": adaptation,
            "params": {"model": {**FAST, **(model or {})}, **params}}


@pytest.mark.parametrize("adaptation", ADAPTATIONS)
def test_every_adaptation_trains_and_scores(adaptation, registry, data, tmp_path):
    ctx = make_ctx(data, tmp_path)
    scorer = fit_strategy(strategy(adaptation), registry, ctx)
    scores = scorer.score(torch.arange(5))
    assert scores.shape == (5, data.n_target_items)
    assert torch.isfinite(scores).all()
    phases = [p["phase"] for p in scorer.session.phases]
    cls = registry.get("adaptation", adaptation)
    assert ("source" in phases or "joint" in phases) == cls.uses_source
    assert ctx.curves, "every phase records its training curve"
    # each point says which split validated it: the report draws only the target's
    on = {p["phase"]: p["validate_on"] for p in scorer.session.phases}
    assert all(point["validated_on"] == on[point["phase"]] for point in ctx.curves)


def test_text_strategy_beats_random_on_fixture(registry, data, tmp_path):
    ctx = make_ctx(data, tmp_path, epochs=15)
    scorer = fit_strategy(strategy("joint", encoder="bert", fusion="gate"), registry, ctx)
    result = rank_split(scorer.score, data, "test", [10], "cpu", [5])
    rng = np.random.default_rng(0)
    random = rank_split(lambda u: torch.as_tensor(rng.random((len(u), data.n_target_items))),
                        data, "test", [10], "cpu", [5])
    assert quick_metric(result, "ndcg", 10) > quick_metric(random, "ndcg", 10)


def test_gradient_reversal_flips_gradient_sign():
    from xdplug_builtin.adaptations.alignment import reverse_gradient

    x = torch.randn(4, 3, requires_grad=True)
    (reverse_gradient(x, 0.5) * torch.arange(3.0)).sum().backward()
    assert torch.allclose(x.grad, -0.5 * torch.arange(3.0).expand(4, 3))


def test_mmd_is_zero_for_identical_samples_and_grows_with_shift():
    from xdplug_builtin.adaptations.alignment import coral, mmd

    torch.manual_seed(0)
    x = torch.randn(64, 8)
    assert mmd(x, x.clone()).item() == pytest.approx(0.0, abs=1e-6)
    near, far = mmd(x, torch.randn(64, 8) + 0.5).item(), mmd(x, torch.randn(64, 8) + 3.0).item()
    assert 0 < near < far
    assert coral(x, x.clone()).item() == pytest.approx(0.0, abs=1e-9)
    assert coral(x, 3 * torch.randn(64, 8)).item() > coral(x, torch.randn(64, 8)).item()


def test_l2sp_penalty_pulls_towards_pretrained_weights():
    from xdplug_builtin.adaptations.l2sp import l2sp_penalty

    model = torch.nn.Linear(3, 2)
    anchor = {n: p.detach().clone() for n, p in model.named_parameters()}
    assert l2sp_penalty(model, anchor).item() == 0.0
    with torch.no_grad():
        model.weight.add_(1.0)
    before = (model.weight - anchor["weight"]).norm().item()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = l2sp_penalty(model, anchor)
    assert loss.item() == pytest.approx(6.0)
    loss.backward()
    optimizer.step()
    assert (model.weight - anchor["weight"]).norm().item() < before


def test_finetune_starts_from_pretrained_weights(registry, data, tmp_path, monkeypatch):
    from xdplug.model.session import TrainingSession

    states = []
    original = TrainingSession.train

    def recording(self, domains=("target",), **kwargs):
        states.append((tuple(domains), {k: v.detach().clone() for k, v in self.model.state_dict().items()}))
        record = original(self, domains, **kwargs)
        states.append(("after", {k: v.detach().clone() for k, v in self.model.state_dict().items()}))
        return record

    monkeypatch.setattr(TrainingSession, "train", recording)
    fit_strategy(strategy("finetune"), registry, make_ctx(data, tmp_path))
    (first, start), (_, after_source), (second, target_start), _ = states
    assert first == ("source",) and second == ("target",)
    assert any(not torch.equal(start[k], after_source[k]) for k in start if k.startswith("item_id"))
    for key in after_source:
        assert torch.equal(after_source[key], target_start[key]), key


def test_zero_shot_never_trains_on_target(registry, data, tmp_path, monkeypatch):
    from xdplug.model import transfer

    seen = []
    model_class = transfer._CLASS or transfer._make_model_class()
    original = model_class.domain_loss

    def spy(self, domain, users, vectors):
        seen.append(domain)
        return original(self, domain, users, vectors)

    monkeypatch.setattr(model_class, "domain_loss", spy)
    fit_strategy(strategy("zero-shot"), registry, make_ctx(data, tmp_path))
    assert seen and set(seen) == {"source"}


@pytest.mark.parametrize("adaptation", ["target-only", "finetune"])
def test_untrained_id_never_reaches_a_cold_items_score(adaptation, registry, cold_data, tmp_path):
    data = cold_data
    ctx = make_ctx(data, tmp_path)
    scorer = fit_strategy(strategy(adaptation, encoder="bert", fusion="gate"), registry, ctx)
    model = scorer.model
    cold_rows = torch.as_tensor(data.catalog.target_rows[data.cold_items])
    assert len(cold_rows) and not model.id_known[cold_rows].any(), "cold items have no trained ID"
    users = torch.arange(6)
    before = model.score_users("target", users)[:, torch.as_tensor(data.cold_items)]
    with torch.no_grad():
        model.item_id.weight[cold_rows] = torch.randn(len(cold_rows), model.item_id.weight.shape[1]) * 100
    after = model.score_users("target", users)[:, torch.as_tensor(data.cold_items)]
    assert torch.equal(before, after)
    assert not scorer.item_known[data.cold_items].all() or model.uses_text


@pytest.mark.parametrize("fusion", ["weighted", "concat", "gate", "id"])
def test_fusions_ignore_untrained_ids(fusion, registry):
    module = registry.get("fusion", fusion)({}).build(8)
    text, ids = torch.randn(5, 8), torch.randn(5, 8, requires_grad=True)
    known = torch.tensor([True, False, True, False, False])
    out = module(text, ids, known)
    out.sum().backward()
    assert torch.all(ids.grad[~known] == 0)
    other = module(text, ids.detach() + 10, known)
    assert torch.allclose(out[~known], other[~known])


def test_bad_strategy_options_are_named(registry, data, tmp_path):
    ctx = make_ctx(data, tmp_path)
    with pytest.raises(ConfigError, match=r"params\.model\.loss"):
        fit_strategy(strategy("target-only", model={"loss": "hinge"}), registry, ctx)
    with pytest.raises(ConfigError, match="needs a text encoder"):
        fit_strategy(strategy("target-only", encoder="id", fusion="gate"), registry, ctx)
    with pytest.raises(ConfigError, match=r"unknown option"):
        fit_strategy(strategy("target-only", model={"dimension": 3}), registry, ctx)


@pytest.mark.parametrize("loss", ["bpr", "sampled_softmax"])
def test_other_losses_train(loss, registry, data, tmp_path):
    scorer = fit_strategy(strategy("target-only", model={"loss": loss, "negatives": 8,
                                                         "pooling": "attention", "user_tower": "mlp"}),
                          registry, make_ctx(data, tmp_path))
    assert torch.isfinite(scorer.score(torch.arange(3))).all()
