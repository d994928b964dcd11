"""The closed-form item-item family (params.model.family: ease) against direct numpy computations."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from xdplug.config import load_config
from xdplug.data.prepare import prepare
from xdplug.errors import ConfigError, NotApplicableError
from xdplug.model.strategy import fit_strategy
from xdplug.plugins import make_plugin_manager
from xdplug.testing.synthetic import SyntheticRecipe
from xdplug.context import FitContext


@pytest.fixture(scope="module")
def registry():
    return make_plugin_manager().registry


def _prepared(tmp_path_factory, params=None, **dataset):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDPLUG_HOME", str(tmp_path_factory.mktemp("home")))
        cfg = load_config(data={"dataset": {"recipe": "synthetic", **dataset}, "baselines": [{"baseline": "Pop"}]})
        return prepare(SyntheticRecipe(params or {}), cfg["dataset"], 7)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return _prepared(tmp_path_factory)


def make_ctx(data, tmp_path):
    cfg = load_config(data={"dataset": {"recipe": "synthetic"}, "baselines": [{"baseline": "Pop"}]})
    return FitContext(data=data, seed=3, device=torch.device("cpu"), train=cfg["train"],
                      evaluation=cfg["evaluation"], workdir=tmp_path)


def entry(adaptation, model=None, **adaptation_params):
    return {"encoder": "id", "fusion": "id", "adaptation": adaptation,
            "params": {"model": {"family": "ease", "reg_weight": 20.0, "source_reg_weight": 30.0, **(model or {})},
                       "adaptation": adaptation_params}}


def matrices(data):
    n = data.n_target_items
    target = data.matrix("target", "train").astype(np.float64).toarray()
    to_target = np.full(data.n_source_items, -1)
    to_target[data.shared_items[:, 1]] = data.shared_items[:, 0]
    s = data.source_train[to_target[data.source_train[:, 1]] >= 0]
    source = sp.csr_matrix((np.ones(len(s)), (s[:, 0], to_target[s[:, 1]])),
                           shape=(data.n_source_users, n)).toarray()
    return target, source


def ease(gram, reg):
    p = np.linalg.inv(gram + reg * np.eye(len(gram)))
    b = p / -np.diag(p)
    np.fill_diagonal(b, 0)
    return b


def recovered_b(scorer, data):
    """B from the scorer: score the unit rows of every item."""
    rows = scorer.rows
    scorer.rows = sp.csr_matrix(np.eye(data.n_target_items))
    try:
        return scorer.score(torch.arange(data.n_target_items)).numpy().astype(np.float64)
    finally:
        scorer.rows = rows


def test_target_only_is_ease(registry, data, tmp_path):
    target, _ = matrices(data)
    scorer = fit_strategy(entry("target-only"), registry, make_ctx(data, tmp_path))
    scores = scorer.score(torch.arange(data.n_target_users)).numpy()
    np.testing.assert_allclose(scores, target @ ease(target.T @ target, 20.0), rtol=1e-4, atol=1e-5)


def test_zero_shot_uses_only_the_source(registry, data, tmp_path):
    target, source = matrices(data)
    b = recovered_b(fit_strategy(entry("zero-shot"), registry, make_ctx(data, tmp_path)), data)
    np.testing.assert_allclose(b, ease(source.T @ source, 30.0), rtol=1e-4, atol=1e-6)


def test_l2sp_closed_form_is_the_constrained_minimum(registry, data, tmp_path):
    """Stationarity: off the diagonal, (G + (reg + lambda) I) B = G + lambda B_s; diag(B) = 0."""
    target, source = matrices(data)
    gram, prior = target.T @ target, ease(source.T @ source, 30.0)
    lam = 50.0
    b = recovered_b(fit_strategy(entry("l2sp", weight=lam), registry, make_ctx(data, tmp_path)), data)
    assert np.abs(np.diag(b)).max() == 0
    residual = (gram + (20.0 + lam) * np.eye(len(gram))) @ b - (gram + lam * prior)
    np.fill_diagonal(residual, 0)
    assert np.abs(residual).max() < 1e-3 * np.abs(gram).max()
    # lambda -> 0 is target EASE, a huge lambda is the source's solution
    tiny = recovered_b(fit_strategy(entry("l2sp", weight=1e-9), registry, make_ctx(data, tmp_path)), data)
    np.testing.assert_allclose(tiny, ease(gram, 20.0), atol=1e-5)
    huge = recovered_b(fit_strategy(entry("l2sp", weight=1e9), registry, make_ctx(data, tmp_path)), data)
    np.testing.assert_allclose(huge, prior, atol=1e-4)


def test_joint_counts_source_cooccurrences_by_weight(registry, data, tmp_path):
    target, source = matrices(data)
    b = recovered_b(fit_strategy(entry("joint", source_weight=0.25), registry, make_ctx(data, tmp_path)), data)
    np.testing.assert_allclose(b, ease(target.T @ target + 0.25 * source.T @ source, 20.0), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("change, message", [
    ({"adaptation": "dann"}, "strategies[0].adaptation: 'dann' does not run in params.model.family: ease (it "
                             "declares families embedding); adaptations that do: joint, l2sp, target-only, zero-shot"),
    ({"encoder": "bert", "fusion": "gate"}, "strategies[0].encoder: params.model.family: ease is an item-ID model"),
])
def test_family_errors_name_the_key(registry, change, message):
    from xdplug.config import validate_components

    config = load_config(data={"dataset": {"recipe": "synthetic"}, "baselines": [],
                               "strategies": [{**entry("l2sp"), **change}]})
    with pytest.raises(ConfigError) as info:
        validate_components(config, registry)
    assert message in str(info.value)


def test_needs_shared_items(registry, tmp_path_factory, tmp_path):
    disjoint = _prepared(tmp_path_factory, {"n_shared_items": 0})
    assert len(disjoint.shared_items) == 0
    with pytest.raises(NotApplicableError, match="through items both domains share; these domains share none"):
        fit_strategy(entry("l2sp", weight=10.0), registry, make_ctx(disjoint, tmp_path))


TERMS = {"filter_rank": 5, "filter_weight": 0.7, "factor_rank": 6, "factor_weight": 0.5, "factor_reg": 0.5,
         "factor_alpha": 3.0}


def with_terms(target, s_e, filtered):
    """``S_E / std + 0.7 S_L / std + 0.5 S_F / std`` (TERMS): S_L the low-pass filter (rank 5) of ``filtered``
    scoring the target's rows (numpy SVD), S_F implicit's iALS fitted on the target's rows."""
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    du, di = filtered.sum(1), filtered.sum(0)
    inv = lambda v: np.where(v > 0, 1 / np.sqrt(np.maximum(v, 1e-12)), 0.0)  # noqa: E731
    v = np.linalg.svd(inv(du)[:, None] * filtered * inv(di)[None, :])[2][:TERMS["filter_rank"]].T
    s_l = target @ (inv(di)[:, None] * v) @ (v.T * np.sqrt(di)[None, :])
    with threadpool_limits(1, "blas"):
        als = AlternatingLeastSquares(factors=6, regularization=0.5, alpha=3.0, iterations=15, random_state=3,
                                      calculate_training_loss=False)
        als.fit(sp.csr_matrix(target.astype(np.float32)), show_progress=False)
    s_f = als.user_factors @ als.item_factors.T
    return s_e / s_e.std() + 0.7 * s_l / s_l.std() + 0.5 * s_f / s_f.std()


def dan_weights(rows, user_norm):
    lengths = np.maximum(rows.sum(1), 1)
    return (lengths / np.median(lengths)) ** -user_norm


def dan_items(b, rows, item_norm):
    d = np.maximum(rows.sum(0), 1) ** item_norm
    return b * d[:, None] / d[None, :]


def test_joint_over_shared_items_with_dan_filter_and_ials_terms(registry, data, tmp_path):
    """Where items are shared, joint's DAN, low-pass and iALS terms against numpy and implicit directly:
    DAN over the stacked rows [X_t; X_s] (G_t + w G_s, row weights and item degrees of both), the filter
    of the stacked rows, the iALS term on the target's rows alone."""
    w = 0.4
    model = {"item_norm": 0.3, "user_norm": 0.5, **TERMS}
    scorer = fit_strategy(entry("joint", model, source_weight=w), registry, make_ctx(data, tmp_path))
    got = scorer.score(torch.arange(data.n_target_users)).numpy().astype(np.float64)
    target, source = matrices(data)
    stacked = np.vstack([target, source])
    weights = dan_weights(stacked, 0.5) * np.r_[np.ones(len(target)), np.full(len(source), w)]
    s_e = target @ dan_items(ease(stacked.T @ (weights[:, None] * stacked), 20.0), stacked, 0.3)
    expected = with_terms(target, s_e, stacked)
    assert np.abs(got - expected).max() < 1e-3 * np.abs(expected).max()
    # without the terms it is the plain pooled Gram (test above); zero-shot trains on no target row to add them to
    with pytest.raises(ConfigError, match=r"params.model.factor_rank: DAN's normalisation and the iALS term are terms "
                                          r"of the forms that train on the target \(target-only, l2sp, joint\); "
                                          r"'zero-shot' has none \(set factor_rank: 0\)"):
        fit_strategy(entry("zero-shot", {"factor_rank": 4}), registry, make_ctx(data, tmp_path))


def test_l2sp_with_dan_filter_and_ials_terms(registry, data, tmp_path):
    """l2sp's terms: DAN over the target's rows around the prior, the filter and the iALS term of the target's rows."""
    lam = 50.0
    model = {"item_norm": 0.3, "user_norm": 0.5, **TERMS}
    scorer = fit_strategy(entry("l2sp", model, weight=lam), registry, make_ctx(data, tmp_path))
    got = scorer.score(torch.arange(data.n_target_users)).numpy().astype(np.float64)
    target, source = matrices(data)
    gram = target.T @ (dan_weights(target, 0.5)[:, None] * target)
    p = np.linalg.inv(gram + (20.0 + lam) * np.eye(len(gram)))
    c = p @ (gram + lam * ease(source.T @ source, 30.0))
    b = c - p * (np.diag(c) / np.diag(p))[None, :]
    np.fill_diagonal(b, 0.0)
    expected = with_terms(target, target @ dan_items(b, target, 0.3), target)
    assert np.abs(got - expected).max() < 1e-3 * np.abs(expected).max()
