"""The text paths for items no domain has seen: ``text-cf`` (text distilled from EASE) and ``text-gcn``."""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp
import torch


def _baseline(name, params=None):
    from xdplug.plugins import make_plugin_manager

    return make_plugin_manager().registry.get("baseline", name)(params or {}, f"baselines.{name}")


def _without_items(data, items: np.ndarray):
    """``data`` with ``items`` (target indices) removed from every training interaction, target and source."""
    cat = data.catalog
    rows = set(cat.target_rows[items].tolist())
    keep_t = ~np.isin(data.target_train[:, 1], items)
    keep_s = np.array([cat.source_rows[i] not in rows for i in data.source_train[:, 1]], dtype=bool)
    return dataclasses.replace(data, target_train=data.target_train[keep_t], source_train=data.source_train[keep_s],
                               split_cache={})


def test_text_cf_scores_items_absent_from_all_training(plugin_manager, synthetic_data, tmp_path):
    from xdplug.testing.contracts import make_fit_context

    data = synthetic_data
    absent = np.arange(0, data.n_target_items, 5)
    cold = _without_items(data, absent)
    scorer = _baseline("text-cf", {"neighbors": 0, "raw_neighbors": 0}).fit(make_fit_context(cold, tmp_path / "fit"))
    scores = scorer.score(torch.arange(cold.n_target_users)).cpu().numpy()
    assert np.isfinite(scores).all()
    assert scorer.item_known.all()
    active = [u for u, items in enumerate(cold.user_items("target", "train")) if len(items)]
    # every user with a history ranks the absent items (not a tie), from text alone
    assert all(np.ptp(scores[u, absent]) > 0 for u in active)


def _disagreeing_fixture(seed: int = 0):
    """Items in 4 collaborative clusters; text is dominated by an unrelated 4-way grouping and
    carries the collaborative cluster only in a weak direction."""
    rng = np.random.default_rng(seed)
    n_items, n_users, dim = 120, 600, 16
    collab = rng.integers(0, 4, n_items)
    nuisance = rng.integers(0, 4, n_items)
    basis = np.linalg.qr(rng.standard_normal((dim, dim)))[0]
    text = (3.0 * basis[nuisance] + 0.6 * basis[4 + collab] + 0.3 * rng.standard_normal((n_items, dim)))
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    taste = rng.integers(0, 4, n_users)
    like = (collab[None, :] == taste[:, None]) * 0.25 + 0.01
    inter = sp.csr_matrix((rng.random((n_users, n_items)) < like).astype(np.float64))
    return text, inter, collab


def test_projection_brings_cold_neighbours_closer_to_collaborative_ones():
    from xdplug_builtin.baselines.textcf import ease_matrix, fit_projection, with_bias

    text, inter, collab = _disagreeing_fixture()
    cold = np.arange(0, len(text), 4)
    warm = np.setdiff1d(np.arange(len(text)), cold)
    teacher = ease_matrix(inter[:, warm], 10.0)
    x = with_bias(text)
    w = fit_projection(x[warm], teacher, 1.0)

    def agreement(sim: np.ndarray, k: int = 10) -> float:
        """Share of a cold item's k nearest warm items that are in its collaborative cluster."""
        top = np.argsort(-sim, axis=1)[:, :k]
        return float((collab[warm][top] == collab[cold][:, None]).mean())

    raw = agreement(text[cold] @ text[warm].T)
    learned = agreement(x[cold] @ w @ x[warm].T)
    assert raw < 0.5  # text alone mostly disagrees with co-interaction
    assert learned > raw + 0.3, (raw, learned)


def test_projection_solves_its_normal_equations():
    from xdplug_builtin.baselines.textcf import fit_projection

    rng = np.random.default_rng(1)
    x, t = rng.standard_normal((30, 5)), rng.standard_normal((30, 30))
    w = fit_projection(x, t, 0.7)
    # gradient of ||t - x w x^T||^2 + mu ||w||^2 vanishes
    np.testing.assert_allclose(x.T @ x @ w @ x.T @ x + 0.7 * w, x.T @ t @ x, atol=1e-8)


def test_text_gcn_equals_dense_propagation(plugin_manager, synthetic_data, fit_context):
    """Layer means of the symmetric-normalised bipartite adjacency applied to [user text; item text]."""
    from xdplug_builtin.encoders.bert import BertEncoder

    data, layers = synthetic_data, 2
    scorer = _baseline("text-gcn", {"layers": layers}).fit(fit_context)
    e = BertEncoder({}, "encoder").encode(data.target_item_texts()).astype(np.float64)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    r = data.matrix("target", "train").toarray().astype(np.float64)
    r = (r > 0).astype(np.float64) if r.max() > 1 else r
    n_u, n_i = r.shape
    u0 = np.stack([e[row > 0].mean(0) if row.any() else np.zeros(e.shape[1]) for row in r])
    adj = np.zeros((n_u + n_i, n_u + n_i))
    adj[:n_u, n_u:], adj[n_u:, :n_u] = r, r.T
    deg = adj.sum(1)
    dinv = np.where(deg > 0, 1 / np.sqrt(np.where(deg > 0, deg, 1)), 0)
    a = dinv[:, None] * adj * dinv[None, :]
    h = np.vstack([u0, e])
    total, cur = h.copy(), h
    for _ in range(layers):
        cur = a @ cur
        total += cur
    total /= layers + 1
    expected = total[:n_u] @ total[n_u:].T
    got = scorer.score(torch.arange(n_u)).cpu().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_text_baselines_pass_the_baseline_contract(plugin_manager, synthetic_data, tmp_path):
    from xdplug.testing import check_baseline

    for name in ("text-cf", "text-gcn"):
        scorer = check_baseline(plugin_manager.registry.get("baseline", name), data=synthetic_data,
                                workdir=tmp_path / name)
        assert scorer.score(torch.arange(3)).shape == (3, synthetic_data.n_target_items)


def test_contrastive_projection_brings_cold_neighbours_closer_to_collaborative_ones():
    """The trained projection (no cold item in any training row) reorders a cold item's nearest warm
    items towards its collaborative cluster, where raw text mostly disagrees."""
    from xdplug_builtin.baselines.textcf import fit_contrastive

    text, inter, collab = _disagreeing_fixture()
    cold = np.arange(0, len(text), 4)
    warm = np.setdiff1d(np.arange(len(text)), cold)
    seen = inter.tolil()
    seen[:, cold] = 0
    f, bias = fit_contrastive(text, [(seen.tocsr(), 1.0)], tau=0.1, epochs=30, lr=0.01, anchor=0.0, batch=128, seed=0)
    assert f.shape == text.shape and bias.shape == (1, text.shape[1])
    np.testing.assert_allclose(np.linalg.norm(f, axis=1), 1.0, rtol=1e-6)

    def agreement(sim: np.ndarray, k: int = 10) -> float:
        top = np.argsort(-sim, axis=1)[:, :k]
        return float((collab[warm][top] == collab[cold][:, None]).mean())

    raw = agreement(text[cold] @ text[warm].T)
    learned = agreement(f[cold] @ f[warm].T)
    assert raw < 0.5
    assert learned > raw + 0.3, (raw, learned)


def test_half_split_keeps_both_halves_non_empty_and_normalised():
    from xdplug_builtin.baselines.textcf import half_split

    m = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 1, 1, 1], [0, 1, 0, 1]], dtype=float))
    for seed in range(20):
        inp, tgt = half_split(m, np.random.default_rng(seed))
        np.testing.assert_allclose(inp.sum(1), 1.0, rtol=1e-6)
        np.testing.assert_allclose(tgt.sum(1), 1.0, rtol=1e-6)
        assert not ((inp > 0) & (tgt > 0)).any()
        np.testing.assert_array_equal((inp > 0) | (tgt > 0), m.toarray() > 0)


def test_contrastive_text_cf_scores_absent_items_and_is_seeded(plugin_manager, synthetic_data, tmp_path):
    from xdplug.testing.contracts import make_fit_context

    data = synthetic_data
    absent = np.arange(0, data.n_target_items, 5)
    cold = _without_items(data, absent)
    params = {"projection": "contrastive", "epochs": 3, "batch": 16}

    def fit(seed: int, name: str) -> np.ndarray:
        scorer = _baseline("text-cf", params).fit(make_fit_context(cold, tmp_path / name, seed=seed))
        return scorer.score(torch.arange(cold.n_target_users)).cpu().numpy()

    first, again, other = fit(1, "a"), fit(1, "b"), fit(2, "c")
    assert np.isfinite(first).all()
    active = [u for u, items in enumerate(cold.user_items("target", "train")) if len(items)]
    assert all(np.ptp(first[u, absent]) > 0 for u in active)
    np.testing.assert_array_equal(first, again)  # same seed, same scores
    assert not np.array_equal(first[:, absent], other[:, absent])  # the seed drives the training


def test_text_cf_rejects_an_unknown_projection(plugin_manager):
    import pytest

    from xdplug.errors import ConfigError

    with pytest.raises(ConfigError, match="projection"):
        _baseline("text-cf", {"projection": "svd"})


def test_text_cf_refuses_a_catalogue_its_dense_matrices_cannot_hold(plugin_manager, fit_context, monkeypatch):
    """Not applicable, with the sizes and the memory they need, instead of an allocation error
    (or the OOM killer) halfway through."""
    import pytest

    from xdplug.errors import NotApplicableError
    from xdplug_builtin.baselines import textcf

    data = fit_context.data
    need = textcf.dense_bytes(data.n_target_users, data.n_target_items, len(data.catalog))
    assert need >= 8 * data.n_target_users * data.n_target_items  # at least the scores themselves
    monkeypatch.setattr(textcf, "machine_bytes", lambda: need)  # 60 % of it is too little
    with pytest.raises(NotApplicableError, match=rf"{data.n_target_users} users, {data.n_target_items} target "
                                                 rf"items and {len(data.catalog)} catalog items need about \d+ GiB, "
                                                 r"more than 60% of this machine's \d+ GiB"):
        _baseline("text-cf").fit(fit_context)
    monkeypatch.setattr(textcf, "machine_bytes", lambda: 2 * need)
    assert _baseline("text-cf").fit(fit_context).scores.shape == (data.n_target_users, data.n_target_items)
