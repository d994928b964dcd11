"""Where users overlap: the target user vector reads the user's source history (``cross_domain_user``),
and the bridge adaptations (``emcdr``, ``ptupcdr``) map source user vectors to target ones.

On the synthetic fixture 50 of the 80 target users are also source users (``shared_users``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xdplug.artifact import write_artifact
from xdplug.artifact.format import copy_data
from xdplug.artifact.recommender import load_artifact
from xdplug.spec import build_strategy
from xdplug.model.strategy import build_model, fit_strategy
from xdplug.weights import seeded

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FAST = {"batch_users": 16, "dim": 16, "epochs": 2}


def strategy(adaptation="target-only", cross="off", encoder="id", fusion="id", **adaptation_params):
    return {"name": "s", "encoder": encoder, "fusion": fusion, "adaptation": adaptation,
            "params": {"model": {**FAST, "cross_domain_user": cross}, "adaptation": adaptation_params}}


def untrained(entry, data, registry):
    encoder, fusion, adaptation, options = build_strategy(entry, registry, "strategy")
    with seeded(0):
        model = build_model(encoder, fusion, options, registry, data, torch.device("cpu"), 0,
                            adaptation=adaptation)
    for domain in ("source", "target"):  # trained IDs (an untrained ID is a zero vector)
        model.mark_trained(domain)
    return model.eval()


def target_vectors(model, users):
    with torch.no_grad():
        vectors = model.item_vectors()
        hist = model.histories["target"]
        items, rows = hist.gather(users.numpy())
        return model.user_vectors("target", users, vectors, torch.as_tensor(items), torch.as_tensor(rows))


def with_source_history(data, source_train):
    return copy_data(data, source_train=source_train)


def shared_user_with_source(data, skip=0):
    counts = np.bincount(data.source_train[:, 0], minlength=data.n_source_users)
    pairs = [(t, s) for t, s in data.shared_users if counts[s] >= 2]
    return pairs[skip]


@pytest.mark.parametrize("cross", ["off", "gate", "attention"])
def test_target_user_vector_changes_when_and_only_when_its_source_history_does(cross, synthetic_data,
                                                                               plugin_manager):
    registry = plugin_manager.registry
    data = synthetic_data
    t, s = shared_user_with_source(data)
    users = torch.arange(data.n_target_users)
    base = target_vectors(untrained(strategy(cross=cross), data, registry), users)
    # drop one of user t's source items: only t's vector moves (and only when the option is on)
    drop = np.flatnonzero(data.source_train[:, 0] == s)[0]
    fewer = with_source_history(data, np.delete(data.source_train, drop, axis=0))
    changed = target_vectors(untrained(strategy(cross=cross), fewer, registry), users)
    moved = ~torch.isclose(base, changed, atol=1e-6).all(dim=1)
    if cross == "off":
        assert not moved.any()
    else:
        assert moved.tolist() == [u == t for u in range(data.n_target_users)]
    # target validation and test interactions are never input: changing them changes nothing
    rng = np.random.default_rng(0)
    other = copy_data(data, target_valid=np.stack([data.target_valid[:, 0], rng.permutation(data.target_valid[:, 1])], 1),
                      target_test=data.target_test[:0])
    assert torch.equal(base, target_vectors(untrained(strategy(cross=cross), other, registry), users))


def test_users_without_source_history_fall_back_to_their_target_history(synthetic_data, plugin_manager):
    data = synthetic_data
    shared = set(data.shared_users[:, 0].tolist())
    alone = torch.as_tensor([u for u in range(data.n_target_users) if u not in shared])
    model = untrained(strategy(cross="gate"), data, plugin_manager.registry)
    side = model.source_side(alone)
    assert not side["has"].any() and len(side["items"]) == 0
    # the gate closes: the vector is the off model's pooled target history through the same tower
    with torch.no_grad():
        vectors = model.item_vectors()
        items, rows = model.histories["target"].gather(alone.numpy())
        pooled = model.pool(vectors, torch.as_tensor(items), torch.as_tensor(rows), len(alone))
        assert torch.allclose(target_vectors(model, alone), model.user_tower(pooled))


@pytest.mark.parametrize("entry", [strategy("joint", cross="gate"), strategy("target-only", cross="attention"),
                                   strategy("emcdr"), strategy("ptupcdr")], ids=["gate", "attention", "emcdr", "ptupcdr"])
def test_training_reads_target_train_and_source_train_only(entry, fit_context, plugin_manager, monkeypatch):
    from xdplug.model.strategy import model_class

    data = fit_context.data
    cls = model_class()
    original = cls.user_vectors
    seen = {"target": set(), "source": set()}
    local_of = {int(r): i for i, r in enumerate(data.catalog.target_rows)}
    source_local_of = {int(r): i for i, r in enumerate(data.catalog.source_rows)}

    def spy(self, domain, users, vectors, items, rows):
        if domain == "target":
            u = users.cpu().numpy()
            seen["target"].update((int(u[r]), local_of[int(i)]) for i, r in zip(items.tolist(), rows.tolist()))
            if self.reads_source_history:
                side = self.source_side(users)
                ids = side["ids"].cpu().numpy()
                seen["source"].update((int(ids[r]), source_local_of[int(i)])
                                      for i, r in zip(side["items"].tolist(), side["rows"].tolist()))
        return original(self, domain, users, vectors, items, rows)

    monkeypatch.setattr(cls, "user_vectors", spy)
    fit_strategy(entry, plugin_manager.registry, fit_context)
    train = set(map(tuple, data.target_train.tolist()))
    held = set(map(tuple, data.target_valid.tolist())) | set(map(tuple, data.target_test.tolist()))
    assert seen["target"] and seen["target"] <= train and not seen["target"] & held
    assert seen["source"] and seen["source"] <= set(map(tuple, data.source_train.tolist()))


@pytest.mark.parametrize("adaptation", ["emcdr", "ptupcdr"])
def test_the_bridge_maps_only_users_present_in_both_domains(adaptation, synthetic_data, plugin_manager):
    data = synthetic_data
    # one shared user loses their whole source history: present in both by key, but nothing to map
    _, s_empty = shared_user_with_source(data, skip=1)
    data = with_source_history(data, data.source_train[data.source_train[:, 0] != s_empty])
    t_empty = int(data.shared_users[data.shared_users[:, 1] == s_empty, 0][0])
    model = untrained(strategy(adaptation, blend=1.0), data, plugin_manager.registry)
    users = torch.arange(data.n_target_users)
    bridged = target_vectors(model, users)
    model.user_bridge.active = False
    plain = target_vectors(model, users)
    moved = ~torch.isclose(bridged, plain, atol=1e-6).all(dim=1)
    counts = np.bincount(data.source_train[:, 0], minlength=data.n_source_users)
    both = {int(t) for t, s in data.shared_users if counts[s] > 0}
    assert t_empty not in both
    assert moved.tolist() == [u in both for u in range(data.n_target_users)]
    assert len(both) < data.n_target_users


@pytest.mark.parametrize("entry", [
    strategy("joint", cross="gate"),
    strategy("finetune", cross="attention", encoder="bert", fusion="gate"),
    strategy("emcdr", objective="mse", cold_below=3),
    strategy("emcdr", objective="ranking", tune="all"),
    strategy("ptupcdr", encoder="bert", fusion="gate"),
], ids=["gate-joint", "attention-text", "emcdr-mse", "emcdr-ranking", "ptupcdr-text"])
def test_strategies_train_export_and_recommend(entry, fit_context, plugin_manager, tiny_config, tmp_path):
    registry = plugin_manager.registry
    data = fit_context.data
    scorer = fit_strategy(entry, registry, fit_context)
    users = torch.arange(data.n_target_users)
    scores = scorer.score(users)
    assert torch.isfinite(scores).all()
    if entry["adaptation"] in ("emcdr", "ptupcdr"):
        assert [p["phase"] for p in scorer.session.phases] == ["source", "target", "bridge"]
    config = tiny_config(strategies=[entry])
    folder = write_artifact(tmp_path / "art", kind="strategy", method="s", entry=config["strategies"][0], seed=0,
                            config=config, data=data, registry=registry, scorer=scorer)
    rec = load_artifact(folder, registry=registry)
    assert torch.allclose(rec.score_users(users.numpy()).cpu(), scores, atol=1e-5)
    assert len(rec.recommend(user=data.keys["target_users"][0], k=5)) == 5
    # a new user: target items and source items both reach the vector
    target_only = rec.score_history(data.keys["target_items"][:3])[0]
    both = rec.score_history(data.keys["target_items"][:3] + data.keys["source_items"][-3:])[0]
    assert not torch.allclose(target_only, both)
    # a user known only in the source domain is served by ID: as a new user whose history is their source items
    targets = set(data.keys["target_users"])
    s = next(i for i, key in enumerate(data.keys["source_users"]) if key not in targets
             and (data.source_train[:, 0] == i).any())
    by_id = rec.recommend(user=data.keys["source_users"][s], k=5)
    items = [data.keys["catalog"][r] for r in data.catalog.source_rows[data.source_train[data.source_train[:, 0] == s, 1]]]
    assert by_id == rec.recommend(history=items, k=5) and len(by_id) == 5
