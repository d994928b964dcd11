"""The sparse EASE solver (xdplug/model/sparse_item_item.py), the family's ``solver``/``neighbors``
options and the NeighborEASE baseline, against dense numpy EASE."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from xdplug.config import load_config
from xdplug.context import FitContext
from xdplug.data.prepare import prepare
from xdplug.errors import ConfigError
from xdplug.model import linear
from xdplug.model.sparse_item_item import pruned_gram, scores_std, sparse_ease
from xdplug.model.strategy import fit_strategy
from xdplug.plugins import make_plugin_manager
from xdplug.testing.synthetic import SyntheticRecipe


def ease(gram, reg):
    p = np.linalg.inv(gram + np.diag(np.broadcast_to(reg, len(gram))))
    b = p / -np.diag(p)
    np.fill_diagonal(b, 0)
    return b


def random_binary(users, items, density, seed):
    x = sp.random(users, items, density=density, random_state=seed, format="csr")
    x.data[:] = 1.0
    return x


def clustered(users=600, items=300, clusters=6, per_user=12, seed=0):
    """Users who mostly pick popular items of their own cluster: structure a neighbourhood can find."""
    rng = np.random.default_rng(seed)
    item_cluster = rng.integers(0, clusters, items)
    pop = rng.zipf(1.5, items).astype(float)
    rows, cols = [], []
    for u in range(users):
        c = rng.integers(0, clusters)
        mine = np.flatnonzero(item_cluster == c)
        pick = rng.choice(mine, size=min(per_user, len(mine)), replace=False, p=pop[mine] / pop[mine].sum())
        noise = rng.integers(0, items, 2)
        cols += [*pick, *noise]
        rows += [u] * (len(pick) + len(noise))
    x = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(users, items))
    x.data[:] = 1.0
    return x


def test_all_neighbours_is_dense_ease():
    x = random_binary(300, 60, 0.1, 1)
    gram = (x.T @ x).toarray()
    np.testing.assert_allclose(sparse_ease(x, 5.0, 59).toarray(), ease(gram, 5.0), atol=1e-12)
    # more neighbours than items is the same
    np.testing.assert_allclose(sparse_ease(x, 5.0, 1000).toarray(), ease(gram, 5.0), atol=1e-12)


def test_per_item_reg_and_columns_subset_are_dense_ease_columns():
    x = random_binary(200, 40, 0.15, 2)
    reg = np.random.default_rng(0).uniform(1, 10, 40)
    b = sparse_ease(x, reg, 39, columns=np.arange(15))
    assert b.shape == (40, 15)
    np.testing.assert_allclose(b.toarray(), ease((x.T @ x).toarray(), reg)[:, :15], atol=1e-12)


def test_prior_is_the_l2sp_closed_form():
    x = random_binary(200, 40, 0.15, 3)
    gram = (x.T @ x).toarray()
    prior = sp.random(40, 40, density=0.2, random_state=4, format="lil")
    prior.setdiag(0)
    reg, w = 5.0, 7.0
    p = np.linalg.inv(gram + (reg + w) * np.eye(40))
    c = p @ (gram + w * prior.toarray())
    expected = c - p * (np.diag(c) / np.diag(p))[None, :]
    np.fill_diagonal(expected, 0)
    got = sparse_ease(x, reg, 39, prior=prior.tocsc(), prior_weight=w).toarray()
    np.testing.assert_allclose(got, expected, atol=1e-12)


def test_pruned_gram_keeps_at_most_k_per_column():
    x = random_binary(400, 120, 0.08, 5)
    gram = (x.T @ x).toarray()
    np.fill_diagonal(gram, 0)
    pruned = pruned_gram(x, 7, block_entries=500)  # several blocks
    hubs = np.argsort(-np.asarray(x.sum(0)).ravel(), kind="stable")[:len(pruned.hubs)]
    np.testing.assert_array_equal(pruned.hubs, np.sort(hubs))
    np.testing.assert_allclose(pruned.hub_gram, gram[np.ix_(pruned.hubs, pruned.hubs)])
    m = pruned.matrix()
    assert np.diff(m.indptr).max() <= 7
    np.testing.assert_allclose(pruned.diagonal, np.asarray(x.sum(0)).ravel())
    for j in range(120):  # each column keeps its 7 largest co-occurrences
        kept = m[:, [j]].toarray().ravel()
        assert np.all(kept[kept != 0] == gram[kept != 0, j])
        assert np.sort(kept)[-7:].sum() == np.sort(gram[:, j])[-7:].sum()
    assert np.diff(sparse_ease(x, 5.0, 7).indptr).max() <= 7


@pytest.mark.parametrize("hubs", [300, 100])
def test_pruned_solution_ranks_like_dense_ease(hubs):
    """40 neighbours of 300 items; G[N_j, N_j] exact (300 hubs) or among the 100 most frequent only."""
    from xdplug.model.sparse_item_item import solve_neighborhoods

    x = clustered()
    dense = x @ ease((x.T @ x).toarray(), 10.0)
    sparse = (x @ solve_neighborhoods(pruned_gram(x, 40, hub_entries=hubs * hubs), 10.0)).toarray()
    seen = x.toarray() > 0
    dense[seen], sparse[seen] = -np.inf, -np.inf
    top_d, top_s = np.argsort(-dense, 1)[:, :10], np.argsort(-sparse, 1)[:, :10]
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(top_d, top_s)])
    assert overlap > 0.8, overlap


def test_scores_std_matches_the_dense_scores():
    x = random_binary(150, 50, 0.1, 6)
    b = sparse_ease(x, 5.0, 10)
    assert scores_std(x, b=b) == pytest.approx(float(np.asarray((x @ b).toarray()).std()), rel=1e-9)
    rng = np.random.default_rng(1)
    left, right = rng.standard_normal((50, 4)), rng.standard_normal((4, 30))
    assert scores_std(x, low_rank=(left, right)) == pytest.approx(float((x @ left @ right).std()), rel=1e-9)


# -- the closed-form family's solver option ----------------------------------------------------------

@pytest.fixture(scope="module")
def registry():
    return make_plugin_manager().registry


def _prepared(tmp_path_factory, params=None):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDPLUG_HOME", str(tmp_path_factory.mktemp("home")))
        cfg = load_config(data={"dataset": {"recipe": "synthetic"}, "baselines": [{"baseline": "Pop"}]})
        return prepare(SyntheticRecipe(params or {}), cfg["dataset"], 7)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return _prepared(tmp_path_factory)


@pytest.fixture(scope="module")
def user_data(tmp_path_factory):
    return _prepared(tmp_path_factory, {"n_shared_items": 0, "n_shared_users": 50})


def make_ctx(data, tmp_path):
    cfg = load_config(data={"dataset": {"recipe": "synthetic"}, "baselines": [{"baseline": "Pop"}]})
    return FitContext(data=data, seed=3, device=torch.device("cpu"), train=cfg["train"],
                      evaluation=cfg["evaluation"], workdir=tmp_path)


def entry(adaptation, model=None, **adaptation_params):
    return {"encoder": "id", "fusion": "id", "adaptation": adaptation,
            "params": {"model": {"family": "ease", "reg_weight": 20.0, "source_reg_weight": 30.0, **(model or {})},
                       "adaptation": adaptation_params}}


def scores(scorer, data):
    return scorer.score(torch.arange(data.n_target_users)).numpy().astype(np.float64)


@pytest.mark.parametrize("adaptation, model, params", [
    ("target-only", {}, {}),
    ("target-only", {"filter_rank": 8, "filter_weight": 0.7}, {}),
    ("zero-shot", {}, {}),
    ("l2sp", {}, {"weight": 50.0}),
    ("joint", {"source_norm": 0.5, "filter_rank": 8}, {"source_weight": 0.25}),
    # DAN's terms and the iALS term: what a staged search of target-only / joint samples, at any catalogue size
    ("target-only", {"item_norm": 0.3, "user_norm": 0.5, "factor_rank": 6, "factor_weight": 0.5}, {}),
    ("joint", {"item_norm": 0.2, "user_norm": 0.4, "filter_rank": 8, "factor_rank": 6}, {"source_weight": 0.25}),
    ("joint", {"ease_weight": 0.0, "factor_rank": 6}, {"source_weight": 0.25}),
    ("l2sp", {"item_norm": 0.2, "user_norm": 0.4, "filter_rank": 8, "factor_rank": 6}, {"weight": 50.0}),
])
def test_sparse_solver_with_all_neighbours_is_the_dense_solution(registry, data, tmp_path, adaptation, model,
                                                                   params):
    ctx = make_ctx(data, tmp_path)
    dense = fit_strategy(entry(adaptation, {**model, "solver": "dense"}, **params), registry, ctx)
    sparse = fit_strategy(entry(adaptation, {**model, "solver": "sparse", "neighbors": 100_000}, **params),
                          registry, make_ctx(data, tmp_path))
    assert type(sparse).__name__ == "SparseItemItemScorer"
    np.testing.assert_allclose(scores(sparse, data), scores(dense, data), rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(sparse.item_known, dense.item_known)
    items = [0, 3, 5]
    np.testing.assert_allclose(sparse.score_history(items).numpy(), dense.score_history(items).numpy(),
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("model", [
    {"source_norm": 0.3, "filter_rank": 6},
    {"source_norm": 0.3, "item_norm": 0.2, "user_norm": 0.4, "factor_rank": 6, "factor_weight": 0.7},
])
def test_sparse_joint_over_shared_users_is_the_dense_solution(registry, user_data, tmp_path, model):
    dense = fit_strategy(entry("joint", {**model, "solver": "dense"}, source_weight=0.5), registry,
                         make_ctx(user_data, tmp_path))
    sparse = fit_strategy(entry("joint", {**model, "solver": "sparse", "neighbors": 100_000}, source_weight=0.5),
                          registry, make_ctx(user_data, tmp_path))
    np.testing.assert_allclose(scores(sparse, user_data), scores(dense, user_data), rtol=1e-4, atol=1e-5)
    items = [0, 3, 5]
    np.testing.assert_allclose(sparse.score_history(items).numpy(), dense.score_history(items).numpy(),
                               rtol=1e-4, atol=1e-5)


def test_auto_is_dense_up_to_the_limit_and_sparse_above(registry, data, tmp_path, monkeypatch):
    assert type(fit_strategy(entry("target-only"), registry, make_ctx(data, tmp_path))).__name__ == "ItemItemScorer"
    monkeypatch.setattr(linear, "MAX_ITEMS", data.n_target_items - 1)
    scorer = fit_strategy(entry("target-only", {"neighbors": 5}), registry, make_ctx(data, tmp_path))
    assert type(scorer).__name__ == "SparseItemItemScorer"
    assert np.diff(scorer.b.tocsc().indptr).max() <= 5
    with pytest.raises(ConfigError, match=r"params.model.solver: dense keeps a \d+ x \d+ item-item matrix; "
                                          r"above \d+ items use solver: sparse \(or auto\)"):
        fit_strategy(entry("target-only", {"solver": "dense"}), registry, make_ctx(data, tmp_path))


@pytest.mark.parametrize("model, message", [
    ({"solver": "lu"}, "strategies[0].params.model.solver"),
    ({"neighbors": 0}, "strategies[0].params.model.neighbors"),
])
def test_solver_options_are_checked(registry, model, message):
    from xdplug.config import validate_components

    config = load_config(data={"dataset": {"recipe": "synthetic"}, "baselines": [],
                               "strategies": [entry("target-only", model)]})
    with pytest.raises(ConfigError) as info:
        validate_components(config, registry)
    assert message in str(info.value)


# -- the NeighborEASE baseline ----------------------------------------------------------------------

def _neighbor_ease(params=None):
    from xdplug.plugins import make_plugin_manager

    return make_plugin_manager().registry.get("baseline", "NeighborEASE")(params or {}, "baselines.NeighborEASE")


@pytest.mark.parametrize("pooled", [False, True])
def test_neighbor_ease_contract(plugin_manager, synthetic_data, pooled, tmp_path):
    from xdplug.plugins import make_plugin_manager
    from xdplug.testing.contracts import check_baseline

    cls = make_plugin_manager().registry.get("baseline", "NeighborEASE")
    check_baseline(cls, {"neighbors": 10}, data=synthetic_data, workdir=tmp_path, pooled=pooled)


def test_neighbor_ease_search_space_fits_the_options(plugin_manager, tiny_config):
    tiny_config(baselines=[{"baseline": "NeighborEASE", "tuning": {"trials": 2}},
                           {"baseline": "NeighborEASE", "pooled": True, "params": {"source_weight": 0.5},
                            "tuning": {"trials": 2}}])


def test_neighbor_ease_with_all_neighbours_is_ease(plugin_manager, synthetic_data, fit_context):
    data = synthetic_data
    x = data.matrix("target", "train").astype(np.float64).toarray()
    scorer = _neighbor_ease({"reg_weight": 30.0, "neighbors": data.n_target_items}).fit(fit_context)
    got = scorer.score(torch.arange(data.n_target_users)).numpy().astype(np.float64)
    np.testing.assert_allclose(got, x @ ease(x.T @ x, 30.0), rtol=1e-4, atol=1e-6)
    # pooled, source rows weighted: the same solution as pooled EASE (its Gram is G_t + w G_s)
    pooled = _neighbor_ease({"reg_weight": 30.0, "neighbors": 100_000, "source_weight": 0.3})
    from xdplug.api import pooled_matrix

    matrix, rows, cols = pooled_matrix(fit_context, 0.3)
    xp = matrix.sqrt().toarray()
    expected = xp[rows] @ ease(xp.T @ xp, 30.0)[:, cols]
    got = pooled.fit(fit_context, pooled=True).score(torch.arange(data.n_target_users)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
