"""AlphaRec (text MLP + LightGCN + InfoNCE) and its LightGCN-InfoNCE ID control."""

from __future__ import annotations

import dataclasses
import zlib

import numpy as np
import pytest
import scipy.sparse as sp
import torch

FAST = {"epochs": 2, "batch_size": 128, "negatives": 16}


@pytest.fixture(autouse=True)
def _hashed_text(monkeypatch):
    """A deterministic stand-in for the language model (one random vector per distinct text): these
    tests are about what AlphaRec does with text vectors, and loading the encoder takes seconds."""
    def encode(ctx, texts, encoder_params, option):
        return np.stack([np.random.default_rng(zlib.crc32(t.encode())).standard_normal(24) for t in texts])

    monkeypatch.setattr("xdplug_builtin.baselines._text.encode_texts", encode)


def _baseline(name, params=None):
    from xdplug.plugins import make_plugin_manager

    return make_plugin_manager().registry.get("baseline", name)({**FAST, **(params or {})}, f"baselines.{name}")


def _scores(scorer, data) -> np.ndarray:
    return scorer.score(torch.arange(data.n_target_users)).cpu().numpy()


def _without_target_items(data, items: np.ndarray):
    """``data`` with ``items`` removed from the target's training interactions."""
    keep = ~np.isin(data.target_train[:, 1], items)
    return dataclasses.replace(data, target_train=data.target_train[keep], split_cache={})


def _with_item_text(data, item: int, text: str):
    texts = list(data.catalog.texts)
    texts[data.catalog.target_rows[item]] = text
    return dataclasses.replace(data, catalog=dataclasses.replace(data.catalog, texts=texts), split_cache={})


def test_propagation_equals_dense_numpy():
    """Layer mean of the symmetric-normalised bipartite adjacency, an empty user and item included."""
    from xdplug_builtin.baselines.alpharec import normalized_adjacency, propagate

    rng = np.random.default_rng(0)
    r = (rng.random((7, 5)) < 0.4).astype(np.float64)
    r[3], r[:, 2] = 0, 0  # a user and an item without interactions
    r[0, 0] = 2.0  # a repeated interaction counts once
    layers = 3
    h0 = rng.standard_normal((12, 4))
    got = propagate(normalized_adjacency(sp.csr_matrix(r)), torch.as_tensor(h0, dtype=torch.float32), layers)
    b = (r > 0).astype(np.float64)
    adj = np.block([[np.zeros((7, 7)), b], [b.T, np.zeros((5, 5))]])
    deg = adj.sum(1)
    dinv = np.where(deg > 0, 1 / np.sqrt(np.maximum(deg, 1)), 0.0)
    a = dinv[:, None] * adj * dinv[None, :]
    expected = sum(np.linalg.matrix_power(a, k) @ h0 for k in range(layers + 1)) / (layers + 1)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-6)
    # the empty nodes keep only their layer 0
    np.testing.assert_allclose(got.numpy()[[3, 7 + 2]], h0[[3, 7 + 2]] / (layers + 1), rtol=1e-6)


def test_info_nce_equals_numpy():
    from xdplug_builtin.baselines.alpharec import info_nce

    rng = np.random.default_rng(1)
    u, p, n = rng.standard_normal((6, 4)), rng.standard_normal((6, 4)), rng.standard_normal((9, 4))
    tau = 0.2
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    pos = np.exp((unit(u) * unit(p)).sum(1) / tau)
    neg = np.exp(unit(u) @ unit(n).T / tau).sum(1)
    expected = np.mean(-np.log(pos / (pos + neg)))
    got = info_nce(*(torch.as_tensor(x, dtype=torch.float64) for x in (u, p, n)), tau)
    assert float(got) == pytest.approx(expected, rel=1e-10)


def test_cold_item_is_scored_through_its_text(plugin_manager, synthetic_data, tmp_path):
    """An item without training interactions: AlphaRec's score for it follows its text, and only its score."""
    from xdplug.testing.contracts import make_fit_context

    absent = np.arange(0, synthetic_data.n_target_items, 5)
    cold = _without_target_items(synthetic_data, absent)
    item = int(absent[0])
    renamed = _with_item_text(cold, item, "A completely different film about deep sea volcanoes")
    fit = lambda data, name: _baseline(name).fit(make_fit_context(data, tmp_path / name))  # noqa: E731
    scorer = fit(cold, "AlphaRec")
    before, after = _scores(scorer, cold), _scores(fit(renamed, "AlphaRec"), renamed)
    assert scorer.item_known.all()
    assert np.abs(before[:, item] - after[:, item]).max() > 1e-3
    others = np.setdiff1d(np.arange(cold.n_target_items), [item])
    np.testing.assert_allclose(before[:, others], after[:, others], atol=1e-6)
    # every user ranks the absent items (not a tie)
    assert all(np.ptp(before[u, absent]) > 0 for u in range(cold.n_target_users))

    control = fit(cold, "LightGCN-InfoNCE")
    assert not control.item_known[absent].any() and control.item_known[np.setdiff1d(others, absent)].all()
    assert (_scores(control, cold)[:, absent] == 0).all()  # no representation: a constant 0 (cosine range [-1, 1])


@pytest.mark.parametrize("name", ["AlphaRec", "LightGCN-InfoNCE"])
def test_same_seed_same_scores(plugin_manager, synthetic_data, tmp_path, name):
    from xdplug.testing.contracts import make_fit_context

    runs = [_scores(_baseline(name).fit(make_fit_context(synthetic_data, tmp_path / str(s), seed=s)), synthetic_data)
            for s in (3, 3, 4)]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_bad_options_are_refused(plugin_manager):
    from xdplug.errors import ConfigError

    with pytest.raises(ConfigError, match=r"baselines\.AlphaRec\.tau: expected a number in \(0, 10\], got 0"):
        _baseline("AlphaRec", {"tau": 0})
    with pytest.raises(ConfigError, match=r"baselines\.LightGCN-InfoNCE\.layers: expected an integer in \[0, 8\]"):
        _baseline("LightGCN-InfoNCE", {"layers": 9})


def test_alpharec_baselines_pass_the_baseline_contract(plugin_manager, synthetic_data, tmp_path):
    from xdplug.testing import check_baseline

    for name in ("AlphaRec", "LightGCN-InfoNCE"):
        scorer = check_baseline(plugin_manager.registry.get("baseline", name), params=dict(FAST),
                                data=synthetic_data, workdir=tmp_path / name)
        assert scorer.score(torch.arange(3)).shape == (3, synthetic_data.n_target_items)
