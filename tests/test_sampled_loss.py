"""A training step's cost: only the rows it reads are encoded; the sampled softmax (logQ, accidental hits)
stands in for the full softmax above ``SOFTMAX_MAX_ITEMS``; mixed precision only on CUDA."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from xdplug.errors import ConfigError
from xdplug.model import sampling, transfer
from xdplug.model.sampling import Proposal, accidental_hits, amp_dtype, resolve_loss, sampled_softmax
from xdplug.spec import build_strategy
from xdplug.model.strategy import build_model
from xdplug.model.transfer import scored_columns
from xdplug.weights import seeded

pytestmark = pytest.mark.usefixtures("one_torch_thread")

EMPTY = torch.zeros(0, dtype=torch.long)


# -- the loss and its gradient ----------------------------------------------------------------

def partition_gradient_cosines(seed: int, corrections=("logq", "none"), n_items=500, dim=16, rows=32,
                               negatives=32, draws=40) -> dict[str, float]:
    """Cosine between the full softmax's gradient of log Z (over user and item vectors) and the mean
    sampled-softmax one, under a popularity proposal (power-law counts), with and without logQ."""
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    counts = np.floor(1000.0 / np.arange(1, n_items + 1))[rng.permutation(n_items)]
    items = (0.5 * torch.randn(n_items, dim, generator=gen)).requires_grad_()
    users = (0.5 * torch.randn(rows, dim, generator=gen)).requires_grad_()
    pos = torch.as_tensor(rng.choice(n_items, size=rows, p=counts / counts.sum()))
    t_rows, weight = torch.arange(rows), torch.full((rows,), 1.0 / rows)

    def grad(loss):
        users.grad = items.grad = None
        loss.backward()
        return torch.cat([users.grad.flatten(), items.grad.flatten()])

    pos_logit = lambda: (users * items[pos]).sum(-1)  # noqa: E731
    g_pos = grad(-(pos_logit() * weight).sum())  # the positive's part: the same in both losses
    full = grad((-F.log_softmax(users @ items.T, 1)[t_rows, pos] * weight).sum()) - g_pos
    proposal = Proposal(counts, "popularity", 0.75)
    out = {}
    for name in corrections:
        total = torch.zeros_like(full)
        for _ in range(draws):
            neg = torch.as_tensor(proposal.draw(negatives, rng))
            logits = users @ items[neg].T
            if name == "logq":
                logits = logits - proposal.log_expected(neg, negatives)
            user_hits, pos_hits = accidental_hits(neg, pos, t_rows, EMPTY, EMPTY, rows)
            total += grad(sampled_softmax(pos_logit(), logits, t_rows, user_hits, pos_hits, weight))
        out[name] = F.cosine_similarity(total / draws - g_pos, full, dim=0).item()
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_logq_points_the_sampled_gradient_where_the_full_softmax_does(seed):
    cos = partition_gradient_cosines(seed)
    assert cos["logq"] > 0.85, cos
    # uncorrected, popular negatives are pushed down too hard: a clearly worse direction
    assert cos["logq"] > cos["none"] + 0.05, cos


def test_sampled_softmax_with_every_item_once_under_uniform_q_is_the_full_softmax():
    torch.manual_seed(0)
    scores = torch.randn(4, 10)
    pos = torch.tensor([1, 3, 3, 9])
    proposal = Proposal(np.ones(10), "uniform", 0.75)
    candidates = torch.arange(10)
    rows = torch.arange(4)
    neg = scores - proposal.log_expected(candidates, 10)  # log(10 * 1/10) = 0: no shift
    user_hits, pos_hits = accidental_hits(candidates, pos, rows, EMPTY, EMPTY, 4)
    loss = sampled_softmax(scores[rows, pos], neg, rows, user_hits, pos_hits, torch.full((4,), 0.25))
    assert loss.item() == pytest.approx(F.cross_entropy(scores, pos).item(), rel=1e-6)


def dense_hits(user_hits, pos_hits, t_rows):
    hits = user_hits[t_rows].clone()
    hits[pos_hits] = True
    return hits


def test_accidental_hits_are_masked():
    candidates = torch.tensor([3, 5, 3, 7, 9])
    t_items, t_rows = torch.tensor([5, 9, 7]), torch.tensor([0, 0, 1])  # user 0 holds out 5 and 9, user 1 holds 7
    inp_items, inp_rows = torch.tensor([3, 8, 9]), torch.tensor([0, 1, 1])  # inputs: user 0 has 3, user 1 8 and 9
    user_hits, pos_hits = accidental_hits(candidates, t_items, t_rows, inp_items, inp_rows, 2)
    assert user_hits.tolist() == [[True, False, True, False, False], [False, False, False, False, True]]
    hits = dense_hits(user_hits, pos_hits, t_rows)
    assert hits.tolist() == [[True, True, True, False, False],   # 5: its positive; both 3s: an input
                             [True, False, True, False, True],   # 9: its positive; both 3s: an input
                             [False, False, False, True, True]]  # 7: its positive; 9: an input
    # a masked candidate counts for nothing: the loss is that of the unmasked columns alone
    torch.manual_seed(0)
    pos, neg, weight = torch.tensor([0.5, 0.1, -0.2]), 3 * torch.randn(2, 5), torch.tensor([1.0, 0.5, 2.0])
    expected = sum(weight[i] * (torch.logsumexp(torch.cat([pos[i:i + 1], neg[t_rows[i]][~hits[i]]]), 0) - pos[i])
                   for i in range(3))
    loss = sampled_softmax(pos, neg, t_rows, user_hits, pos_hits, weight)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_popularity_proposal_and_its_correction():
    counts = np.array([0, 1, 3, 15])
    proposal = Proposal(counts, "popularity", 0.5)
    q = np.sqrt(counts + 1.0) / np.sqrt(counts + 1.0).sum()  # the +1 keeps an unseen item drawable
    draws = np.bincount(proposal.draw(200_000, np.random.default_rng(0)), minlength=4) / 200_000
    assert np.allclose(draws, q, atol=0.005)
    cand = torch.tensor([0, 3])
    assert torch.allclose(proposal.log_expected(cand, 8), torch.log(8 * torch.tensor(q[[0, 3]], dtype=torch.float32)))
    # with in-batch positives: the mixture's expected draws (p = training popularity)
    mixed = proposal.log_expected(cand, 8, 4)
    assert torch.allclose(mixed, torch.log(torch.tensor(8 * q[[0, 3]] + 4 * counts[[0, 3]] / 19, dtype=torch.float32)))
    assert Proposal(counts, "uniform", 0.5).draw(1000, np.random.default_rng(0)).max() == 3


# -- which loss, how many columns ----------------------------------------------------------------

def test_auto_is_the_full_softmax_up_to_the_threshold_and_sampled_above():
    n = sampling.SOFTMAX_MAX_ITEMS
    assert resolve_loss({"loss": "auto"}, n) == "softmax"
    assert resolve_loss({"loss": "auto"}, n + 1) == "sampled_softmax"
    assert resolve_loss({"loss": "softmax"}, 10 * n) == "softmax"
    assert transfer.ModelOptions.defaults["loss"] == "auto"
    assert scored_columns({}, 1000) == 1000
    assert scored_columns({}, n + 1) == 1 + 256
    assert scored_columns({"negatives": 64, "in_batch_negatives": True, "batch_users": 32}, n + 1) == 1 + 64 + 32
    assert scored_columns({"loss": "bpr"}, 1000) == 2


def test_bad_sampler_options_are_named(plugin_manager):
    registry = plugin_manager.registry
    for key, value, expected in (("negative_sampler", "zipf", "one of 'uniform', 'popularity'"),
                                 ("sampler_alpha", 3.0, r"in \[0, 2\]"), ("amp", "fp16", "one of 'auto', 'off', 'bf16'")):
        entry = {"encoder": "id", "fusion": "id", "adaptation": "target-only", "params": {"model": {key: value}}}
        with pytest.raises(ConfigError, match=rf"params\.model\.{key}.*{expected}"):
            build_strategy(entry, registry, "strategy")


# -- what one step encodes --------------------------------------------------------------------

def model_of(data, registry, adaptation="target-only", **model):
    entry = {"encoder": "id", "fusion": "id", "adaptation": adaptation,
             "params": {"model": {"batch_users": 16, "dim": 8, **model}}}
    encoder, fusion, adaptation_, options = build_strategy(entry, registry, "strategy")
    with seeded(0):
        m = build_model(encoder, fusion, options, registry, data, torch.device("cpu"), 0, adaptation=adaptation_)
    m.mark_trained("target")
    return m.train()


def one_step(model, users, extra=None):
    """The loss of one target step and the catalog rows the ID encoder saw."""
    from recbole.data.interaction import Interaction

    seen = []
    hook = model.item_id.register_forward_hook(lambda mod, args, out: seen.append(args[0].clone()))
    model.rng = np.random.default_rng(5)
    model.negative_rng = np.random.default_rng(6)
    model.extra_losses = [extra] if extra else []
    try:
        with seeded(1):
            loss = model.calculate_loss(Interaction({"target": users}))
    finally:
        hook.remove()
    return loss, torch.cat(seen)


def test_a_target_step_encodes_the_target_rows_only(synthetic_data, plugin_manager):
    data = synthetic_data
    model = model_of(data, plugin_manager.registry)
    users = torch.arange(12)
    loss, seen = one_step(model, users)
    target_rows = set(data.catalog.target_rows.tolist())
    assert len(data.catalog) > len(target_rows), "the fixture needs source-only rows"
    assert set(seen.tolist()) == target_rows and len(seen) == len(target_rows)  # full softmax: the domain's rows
    # the loss is the one of every catalog row encoded (an extra loss asking for them, adding nothing)
    everything = lambda model, batch: batch["vectors"].sum() * 0.0  # noqa: E731
    everything.full_vectors = True
    full_loss, full_seen = one_step(model, users, everything)
    assert len(full_seen) == len(data.catalog)
    assert full_loss.item() == pytest.approx(loss.item(), rel=1e-6)


def test_a_sampled_step_encodes_the_batch_items_and_negatives_only(synthetic_data, plugin_manager):
    data = synthetic_data
    model = model_of(data, plugin_manager.registry, loss="sampled_softmax", negatives=4)
    users = torch.arange(3)
    loss, seen = one_step(model, users)
    items, _ = model.histories["target"].gather(users.numpy())
    seen = set(seen.tolist())
    assert set(items.tolist()) <= seen and len(seen) <= len(set(items.tolist())) + 4
    assert seen <= set(data.catalog.target_rows.tolist()) and torch.isfinite(loss)
    loss.backward()
    trained = set(model.item_id.weight.grad.abs().sum(1).nonzero().flatten().tolist())
    assert trained and trained <= seen


def test_a_target_step_reading_source_histories_encodes_them(synthetic_data, plugin_manager):
    data = synthetic_data
    model = model_of(data, plugin_manager.registry, cross_domain_user="attention")
    model.mark_trained("source")
    users = torch.as_tensor(data.shared_users[:8, 0])
    _, seen = one_step(model, users)
    side = set(model.source_side(users)["items"].tolist())
    assert side and side <= set(seen.tolist())
    source_only = set(range(len(data.catalog))) - set(data.catalog.target_rows.tolist())
    assert set(seen.tolist()) & source_only <= side  # the other domain's rows only where a user read them


def test_auto_switches_a_large_domain_to_the_sampled_softmax(synthetic_data, plugin_manager, monkeypatch):
    data = synthetic_data
    model = model_of(data, plugin_manager.registry)
    monkeypatch.setattr(sampling, "SOFTMAX_MAX_ITEMS", data.n_target_items - 1)
    step = model.domain_step("target", torch.arange(5))
    assert step["loss"] == "sampled_softmax" and len(step["negatives"]) == 256
    monkeypatch.setattr(sampling, "SOFTMAX_MAX_ITEMS", data.n_target_items)
    assert model.domain_step("target", torch.arange(5))["loss"] == "softmax"


# -- mixed precision -------------------------------------------------------------------------

def test_amp_is_bf16_on_cuda_with_bf16_and_never_on_cpu(monkeypatch):
    for amp in ("auto", "bf16", "off"):
        assert amp_dtype(amp, torch.device("cpu")) is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert amp_dtype("auto", torch.device("cuda")) is torch.bfloat16
    assert amp_dtype("off", torch.device("cuda")) is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert amp_dtype("auto", torch.device("cuda")) is None


@pytest.mark.parametrize("adaptation, model", [
    ("target-only", {"pooling": "attention", "cross_domain_user": "attention", "loss": "sampled_softmax",
                     "negatives": 8, "in_batch_negatives": True}),
    ("ptupcdr", {"cross_domain_user": "gate", "user_tower": "mlp"})], ids=["attention-sampled", "bridge-softmax"])
def test_cpu_steps_never_autocast_and_an_autocast_step_trains(adaptation, model, synthetic_data, plugin_manager,
                                                              monkeypatch):
    data = synthetic_data
    model = model_of(data, plugin_manager.registry, adaptation, **model)
    model.mark_trained("source")
    users = torch.as_tensor(data.shared_users[:8, 0])
    states = []

    def spy(model, batch):
        states.append(torch.is_autocast_enabled("cpu"))
        return batch["vectors"].sum() * 0.0

    one_step(model, users, spy)
    assert states == [False]
    # the step's dtypes hold under autocast (what a CUDA step runs): the loss is finite and trains
    monkeypatch.setattr(transfer, "amp_dtype", lambda amp, device: torch.bfloat16)
    loss, _ = one_step(model, users, spy)
    assert states[-1] is True and torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(model.item_id.weight.grad).all() and model.item_id.weight.grad.abs().sum() > 0
