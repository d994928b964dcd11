"""The transfer controls against direct computations: pooled EASE, text-knn, source-pop."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from xdplug.errors import ConfigError


def _scores(scorer, n_users: int) -> np.ndarray:
    return scorer.score(torch.arange(n_users)).cpu().numpy().astype(np.float64)


def _ease(x: sp.spmatrix, reg: float) -> np.ndarray:
    gram = (x.T @ x).toarray().astype(np.float64)
    gram[np.diag_indices_from(gram)] += reg
    p = np.linalg.inv(gram)
    b = p / -np.diag(p)
    np.fill_diagonal(b, 0.0)
    return b


def _pooled_matrices(data):
    """Target train rows, and the source's rows over target items (shared items only)."""
    n_t, n_i = data.n_target_users, data.n_target_items
    target = sp.csr_matrix((np.ones(len(data.target_train)), tuple(data.target_train.T)), shape=(n_t, n_i))
    to_target = np.full(data.n_source_items, -1)
    to_target[data.shared_items[:, 1]] = data.shared_items[:, 0]
    s = data.source_train[to_target[data.source_train[:, 1]] >= 0]
    source = sp.csr_matrix((np.ones(len(s)), (s[:, 0], to_target[s[:, 1]])), shape=(data.n_source_users, n_i))
    return target, source


def _baseline(name, params=None):
    from xdplug.plugins import make_plugin_manager

    return make_plugin_manager().registry.get("baseline", name)(params or {}, f"baselines.{name}")


@pytest.fixture(scope="module")
def _items_only_folder(tmp_path_factory):
    from xdplug.config import load_config
    from xdplug.data.prepare import prepare
    from xdplug.testing.synthetic import SyntheticRecipe

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDPLUG_HOME", str(tmp_path_factory.mktemp("items-only-home")))
        config = load_config(data={"dataset": {"recipe": "synthetic", "params": {"n_shared_users": 0}},
                                   "baselines": [{"baseline": "Pop"}]})
        return prepare(SyntheticRecipe(config["dataset"]["params"], "dataset.params"), config["dataset"], 0).folder


@pytest.fixture
def items_only_data(_items_only_folder):
    """Synthetic domains that share items and no users (the ``ml1m-ml100k`` shape)."""
    from xdplug.data.crossdomain import CrossDomainData

    data = CrossDomainData.load(_items_only_folder)
    assert len(data.shared_users) == 0 and len(data.shared_items) > 0
    return data


@pytest.fixture
def items_only_context(items_only_data, tmp_path):
    from xdplug.testing.contracts import make_fit_context

    return make_fit_context(items_only_data, tmp_path / "fit")


@pytest.mark.parametrize("weight", [None, 1.0, 0.1])
def test_pooled_ease_equals_numpy(plugin_manager, items_only_data, items_only_context, weight):
    """Source rows stacked under the target's, each source co-occurrence counted ``weight`` times."""
    data = items_only_data
    params = {"reg_weight": 50.0} if weight is None else {"reg_weight": 50.0, "source_weight": weight}
    scorer = _baseline("EASE", params).fit(items_only_context, pooled=True)
    target, source = _pooled_matrices(data)
    w = 1.0 if weight is None else weight
    b = _ease(sp.vstack([target, source * np.sqrt(w)]), 50.0)
    expected = target.toarray() @ b
    np.testing.assert_allclose(_scores(scorer, data.n_target_users), expected, rtol=2e-3, atol=2e-4)


def test_source_weight_changes_the_ranking_and_one_equals_plain_pooling(plugin_manager, items_only_data,
                                                                         items_only_context):
    fit_context = items_only_context
    n = items_only_data.n_target_users
    plain = _scores(_baseline("EASE", {"reg_weight": 50.0}).fit(fit_context, pooled=True), n)
    one = _scores(_baseline("EASE", {"reg_weight": 50.0, "source_weight": 1.0}).fit(fit_context, pooled=True), n)
    small = _scores(_baseline("EASE", {"reg_weight": 50.0, "source_weight": 0.01}).fit(fit_context, pooled=True), n)
    target_only = _scores(_baseline("EASE", {"reg_weight": 50.0}).fit(fit_context), n)
    np.testing.assert_allclose(one, plain, rtol=1e-4, atol=1e-5)
    # a tiny weight moves pooled EASE towards target-only EASE
    assert np.abs(small - target_only).mean() < np.abs(plain - target_only).mean() / 5


@pytest.mark.parametrize("weight", [1.0, 0.05])
def test_pooled_itemknn_weights_the_source_rows(plugin_manager, items_only_data, items_only_context, weight):
    """RecBole's item cosine on [T; sqrt(w) S] (every neighbour kept, no shrink), scored from the target rows."""
    data = items_only_data
    target, source = _pooled_matrices(data)
    scorer = _baseline("ItemKNN", {"k": target.shape[1], "source_weight": weight}).fit(items_only_context, pooled=True)
    x = sp.vstack([target, source * np.sqrt(weight)]).toarray()
    gram, norm = x.T @ x, np.sqrt((x ** 2).sum(0))
    sim = gram / (np.outer(norm, norm) + 1e-6)
    np.fill_diagonal(sim, 0.0)
    np.testing.assert_allclose(_scores(scorer, data.n_target_users), target.toarray() @ sim, rtol=1e-4, atol=1e-5)


def test_source_weight_needs_pooling(tiny_config):
    with pytest.raises(ConfigError, match=r"baselines\[0\]\.params\.source_weight: weights the source's rows "
                                          r"of a pooled model; add pooled: true or drop it"):
        tiny_config(baselines=[{"baseline": "EASE", "params": {"source_weight": 0.1}}])


def test_source_weight_must_be_positive(tiny_config):
    with pytest.raises(ConfigError, match=r"baselines\[0\]\.params\.source_weight: expected a number in \(0, 1000000\] \(or null\), got 0\.0"):
        tiny_config(baselines=[{"baseline": "EASE", "pooled": True, "params": {"source_weight": 0.0}}])


def test_source_weight_is_an_option_of_the_gram_based_pooling(tiny_config):
    with pytest.raises(ConfigError, match=r"baselines\[0\]\.params\.source_weight: unknown option for baseline 'BPR'"):
        tiny_config(baselines=[{"baseline": "BPR", "pooled": True, "params": {"source_weight": 0.1}}])


def test_text_knn_equals_numpy(plugin_manager, synthetic_data, fit_context):
    """Score = mean cosine similarity of the item's text vector to the user's training items."""
    from xdplug_builtin.encoders.bert import BertEncoder

    data = synthetic_data
    scorer = _baseline("text-knn").fit(fit_context)
    vectors = BertEncoder({}, "encoder").encode(data.target_item_texts()).astype(np.float64)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    sim = vectors @ vectors.T
    expected = np.stack([sim[items].mean(0) if len(items) else np.zeros(len(sim))
                         for items in data.user_items("target", "train")])
    np.testing.assert_allclose(_scores(scorer, data.n_target_users), expected, rtol=1e-4, atol=1e-5)


def test_source_pop_equals_direct_counts(plugin_manager, items_only_data, items_only_context):
    fit_context = items_only_context
    data = items_only_data
    scores = _scores(_baseline("source-pop").fit(fit_context), data.n_target_users)
    counts = {}
    for _, item in data.source_train:
        counts[item] = counts.get(item, 0) + 1
    expected = np.zeros(data.n_target_items)
    for t, s in data.shared_items:
        expected[t] = counts.get(s, 0)
    assert (scores == expected[None, :]).all()


def test_text_knn_on_a_large_catalogue_keeps_the_same_neighbours_sparse(plugin_manager, fit_context, monkeypatch):
    """Above the dense limit the k nearest items are found block by block and kept sparse: the
    scores equal the dense path's; without a number of neighbours it refuses, naming the option."""
    from xdplug_builtin.baselines import controls

    n_users = fit_context.data.n_target_users
    dense = _scores(_baseline("text-knn", {"neighbors": 10}).fit(fit_context), n_users)
    monkeypatch.setattr(controls, "DENSE_MAX_ITEMS", 5)
    monkeypatch.setattr(controls, "BLOCK_ENTRIES", 7 * fit_context.data.n_target_items)  # 7 columns a block
    scorer = _baseline("text-knn", {"neighbors": 10}).fit(fit_context)
    assert sp.issparse(scorer.sim) and scorer.sim.nnz == 10 * fit_context.data.n_target_items
    np.testing.assert_allclose(_scores(scorer, n_users), dense, rtol=1e-5, atol=1e-6)
    history = [0, 3, 4]
    np.testing.assert_allclose(scorer.score_history(history).numpy().ravel(),
                               np.asarray(scorer.sim[history].mean(0)).ravel(), rtol=1e-6)
    with pytest.raises(ConfigError, match=r"baselines\.text-knn\.params\.neighbors: 0 keeps every item's "
                                          r"similarity to every other: \d+ target items need"):
        _baseline("text-knn").fit(fit_context)
