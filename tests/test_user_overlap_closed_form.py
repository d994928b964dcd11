"""The closed-form ``joint`` where only users overlap (issue 19): pooled EASE + GF-CF's low-pass filter.

Against the pooled EASE baseline's scores and direct numpy computations on the synthetic
pair with users shared and no items shared.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from xdplug.errors import ConfigError
from xdplug.config import load_config
from xdplug.context import FitContext
from xdplug.data.prepare import prepare
from xdplug.model.strategy import fit_strategy
from xdplug.plugins import make_plugin_manager
from xdplug.testing.synthetic import SyntheticRecipe


@pytest.fixture(scope="module")
def registry():
    return make_plugin_manager().registry


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDPLUG_HOME", str(tmp_path_factory.mktemp("home")))
        cfg = load_config(data={"dataset": {"recipe": "synthetic"}, "baselines": [{"baseline": "Pop"}]})
        out = prepare(SyntheticRecipe({"n_shared_items": 0, "n_shared_users": 50}), cfg["dataset"], 7)
    assert len(out.shared_items) == 0 and len(out.shared_users) == 50
    return out


def make_ctx(data, tmp_path):
    cfg = load_config(data={"dataset": {"recipe": "synthetic"}, "baselines": [{"baseline": "Pop"}]})
    return FitContext(data=data, seed=3, device=torch.device("cpu"), train=cfg["train"],
                      evaluation=cfg["evaluation"], workdir=tmp_path)


def joint(source_weight=1.0, **model):
    return {"encoder": "id", "fusion": "id", "adaptation": "joint",
            "params": {"model": {"family": "ease", "reg_weight": 20.0, **model},
                       "adaptation": {"source_weight": source_weight, "target_weight": 1.0}}}


def all_scores(scorer, data) -> np.ndarray:
    return scorer.score(torch.arange(data.n_target_users)).numpy().astype(np.float64)


def blocks(data):
    """X_t (target train) and X_s (each target user's source-train history; zero row when none)."""
    xt = data.matrix("target", "train").astype(np.float64).toarray()
    to_target = np.full(data.n_source_users, -1)
    to_target[data.shared_users[:, 1]] = data.shared_users[:, 0]
    s = data.source_train[to_target[data.source_train[:, 0]] >= 0]
    xs = np.zeros((data.n_target_users, data.n_source_items))
    xs[to_target[s[:, 0]], s[:, 1]] = 1.0
    return xt, xs[:, xs.any(0)]


def pooled_ease(xt, xs, reg, w):
    x = np.hstack([xt, np.sqrt(w) * xs])
    p = np.linalg.inv(x.T @ x + reg * np.eye(x.shape[1]))
    b = p / -np.diag(p)
    np.fill_diagonal(b, 0.0)
    return (x @ b)[:, :xt.shape[1]]


@pytest.mark.parametrize("w", [1.0, 0.4])
def test_equals_the_pooled_ease_baseline(registry, data, tmp_path, w):
    """Filter off: the pooled EASE baseline (RecBole's EASE on the pooled data, source_weight w)."""
    strategy = all_scores(fit_strategy(joint(w), registry, make_ctx(data, tmp_path / "s")), data)
    params = {"reg_weight": 20.0} if w == 1.0 else {"reg_weight": 20.0, "source_weight": w}
    baseline = registry.get("baseline", "EASE")(params, "b").fit(make_ctx(data, tmp_path / "b"), pooled=True)
    expected = all_scores(baseline, data)
    assert np.abs(strategy - expected).max() < 1e-4 * np.abs(expected).max()
    xt, xs = blocks(data)
    assert np.allclose(strategy, pooled_ease(xt, xs, 20.0, w), atol=1e-5)


def low_pass(r, nt, k):
    du, di = r.sum(1), r.sum(0)
    inv = lambda d: np.where(d > 0, 1 / np.sqrt(np.maximum(d, 1e-12)), 0.0)  # noqa: E731
    _, _, vt = np.linalg.svd(inv(du)[:, None] * r * inv(di)[None, :])
    v = vt[:k].T
    return r @ (inv(di)[:, None] * v) @ (v[:nt].T * np.sqrt(di[:nt])[None, :])


@pytest.mark.parametrize("norm", [0.0, 0.5])
def test_filter_term_equals_numpy(registry, data, tmp_path, norm):
    """S = S_E / std(S_E) + beta * S_L / std(S_L), S_L the low-pass filter of [X_t, X_s] (numpy SVD)."""
    k, beta, w = 6, 0.7, 0.5
    got = all_scores(fit_strategy(joint(w, filter_rank=k, filter_weight=beta, source_norm=norm), registry,
                                  make_ctx(data, tmp_path)), data)
    xt, xs = blocks(data)
    lengths = xs.sum(1)
    med = np.median(lengths[lengths > 0])
    xs = xs * np.where(lengths > 0, (np.maximum(lengths, 1) / med) ** -norm, 0.0)[:, None]
    s_e = pooled_ease(xt, xs, 20.0, w)
    s_l = low_pass(np.hstack([xt, xs]), xt.shape[1], k)
    expected = s_e / s_e.std() + beta * s_l / s_l.std()
    assert np.abs(got - expected).max() < 1e-4 * np.abs(expected).max()


def test_randomised_filter_is_close_to_the_exact_one(registry, data, tmp_path, monkeypatch):
    from xdplug.model import linear

    exact = all_scores(fit_strategy(joint(0.5, filter_rank=6), registry, make_ctx(data, tmp_path / "e")), data)
    monkeypatch.setattr(linear, "DENSE_SVD_ENTRIES", 0)
    ctx = make_ctx(data, tmp_path / "r")
    randomised = all_scores(fit_strategy(joint(0.5, filter_rank=6), registry, ctx), data)
    assert np.abs(randomised - exact).max() < 0.02 * np.abs(exact).max()
    again = all_scores(fit_strategy(joint(0.5, filter_rank=6), registry, make_ctx(data, tmp_path / "r2")), data)
    assert np.array_equal(randomised, again)  # seeded


def test_exact_filter_solver_equals_the_dense_svd_above_its_size(registry, data, tmp_path, monkeypatch):
    """filter_solver: exact takes the Gram's eigenvectors where the size would pick the randomised SVD."""
    from xdplug.model import linear

    dense = all_scores(fit_strategy(joint(0.5, filter_rank=6), registry, make_ctx(data, tmp_path / "d")), data)
    monkeypatch.setattr(linear, "DENSE_SVD_ENTRIES", 0)
    exact = all_scores(fit_strategy(joint(0.5, filter_rank=6, filter_solver="exact"), registry,
                                    make_ctx(data, tmp_path / "x")), data)
    assert np.abs(exact - dense).max() < 1e-6 * np.abs(dense).max()
    with pytest.raises(ConfigError, match="params.model.filter_solver: exact eigendecomposes"):
        fit_strategy(joint(0.5, filter_rank=6, filter_solver="exact", solver="sparse"), registry,
                     make_ctx(data, tmp_path / "s"))


def test_target_only_filter(registry, data, tmp_path):
    entry = joint(filter_rank=5, filter_weight=0.3)
    entry["adaptation"] = "target-only"
    entry["params"]["adaptation"] = {}
    got = all_scores(fit_strategy(entry, registry, make_ctx(data, tmp_path)), data)
    xt, _ = blocks(data)
    p = np.linalg.inv(xt.T @ xt + 20.0 * np.eye(xt.shape[1]))
    b = p / -np.diag(p)
    np.fill_diagonal(b, 0.0)
    s_e, s_l = xt @ b, low_pass(xt, xt.shape[1], 5)
    assert np.abs(got - (s_e / s_e.std() + 0.3 * s_l / s_l.std())).max() < 1e-4 * np.abs(got).max()


def test_scores_change_with_and_only_with_the_users_source_history(registry, data, tmp_path):
    scorer = fit_strategy(joint(0.5, filter_rank=6), registry, make_ctx(data, tmp_path))
    nt = data.n_target_items
    before = all_scores(scorer, data)
    shared = data.shared_users[:, 0]
    has_source = [u for u in shared if scorer.rows[u, nt:].nnz]
    u, other = has_source[0], has_source[1]
    rows = scorer.rows.tolil()
    rows[u, nt:] = 0.0  # user u's source history is gone; their target history is kept
    scorer.rows = rows.tocsr()
    after = all_scores(scorer, data)
    assert not np.allclose(before[u], after[u])
    unchanged = np.ones(data.n_target_users, dtype=bool)
    unchanged[u] = False
    assert np.array_equal(before[unchanged], after[unchanged])
    assert scorer.rows[other, nt:].nnz
    # users without a source history: their scores read only their target row
    solo = np.setdiff1d(np.arange(data.n_target_users), shared)
    assert scorer.rows[solo][:, nt:].nnz == 0


def test_no_target_validation_or_test_interaction_is_input(registry, data, tmp_path):
    scorer = fit_strategy(joint(0.5, filter_rank=6, source_norm=0.5), registry, make_ctx(data, tmp_path / "a"))
    nt = data.n_target_items
    assert (scorer.rows[:, :nt] != data.matrix("target", "train")).nnz == 0
    # other validation/test interactions (here: none at all) give the very same model and scores
    emptied = dataclasses.replace(data, target_valid=data.target_valid[:0], target_test=data.target_test[:0])
    again = fit_strategy(joint(0.5, filter_rank=6, source_norm=0.5), registry, make_ctx(emptied, tmp_path / "b"))
    assert torch.equal(scorer.b, again.b)
    assert np.array_equal(all_scores(scorer, data), all_scores(again, emptied))


def test_history_scores_use_target_items_only(registry, data, tmp_path):
    scorer = fit_strategy(joint(0.5, filter_rank=6), registry, make_ctx(data, tmp_path))
    got = scorer.score_history([1, 3]).numpy()[0]
    assert np.allclose(got, scorer.b.numpy()[[1, 3]].sum(0))
    assert got.shape == (data.n_target_items,)


def test_the_shared_items_joint_is_unchanged_without_the_new_terms(registry, tmp_path_factory, tmp_path):
    """Where items are shared the closed form is the one of test_item_item (filter 0, norm 0)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDPLUG_HOME", str(tmp_path_factory.mktemp("home")))
        cfg = load_config(data={"dataset": {"recipe": "synthetic"}, "baselines": [{"baseline": "Pop"}]})
        items = prepare(SyntheticRecipe({}), cfg["dataset"], 7)
    scorer = fit_strategy(joint(0.5), registry, make_ctx(items, tmp_path))
    assert scorer.b.shape == (items.n_target_items, items.n_target_items)
    filtered = fit_strategy(joint(0.5, filter_rank=4, source_norm=0.5), registry, make_ctx(items, tmp_path / "f"))
    assert not torch.allclose(scorer.b, filtered.b)
    assert sp.issparse(filtered.rows)


def test_artifact_refits_and_recommends_like_the_fitted_strategy(registry, data, tmp_path):
    """export -> load (the closed form is refitted on the stored data, source kept) -> recommend."""
    import xdplug
    from xdplug.artifact import write_artifact

    entry = dict(joint(0.5, filter_rank=6, source_norm=0.5), name="ease-joint-lowpass")
    config = load_config(data={"name": "art", "dataset": {"recipe": "synthetic"}, "seeds": [3], "device": "cpu",
                               "baselines": [], "strategies": [entry]}, registry=registry)
    ctx = FitContext(data=data, seed=3, device=torch.device("cpu"), train=config["train"],
                     evaluation=config["evaluation"], workdir=tmp_path / "work")
    scorer = fit_strategy(entry, registry, ctx)
    path = write_artifact(tmp_path / "art", kind="strategy", method="ease-joint-lowpass", entry=entry, seed=3,
                          config=config, data=data, registry=registry, scorer=scorer, run_id="run-joint")
    rec = xdplug.load(path)
    users = np.arange(12)
    got = rec.score_users(users).numpy()
    assert np.allclose(got, scorer.score(torch.as_tensor(users)).numpy(), rtol=1e-5, atol=1e-5)
    top = rec.recommend(user=rec.users[0], k=5)
    assert len(top) == 5
    # a new user's history (target items only) scores as x B over the target rows
    train = data.target_train[data.target_train[:, 0] == 1, 1]
    by_history, _ = rec.score_history([rec.items[i] for i in train])
    assert np.allclose(by_history[0].numpy(), scorer.b.numpy()[train].sum(0), atol=1e-4)


def dan_pooled(xt, xs, reg, w, item_norm, user_norm):
    """Pooled EASE with DAN's normalisation, written out in numpy (the source block's L2 is reg / w)."""
    x = np.hstack([xt, xs])
    nt = xt.shape[1]
    lengths = np.maximum(x.sum(1), 1)
    weights = (lengths / np.median(lengths)) ** -user_norm
    reg_cols = np.concatenate([np.full(nt, reg), np.full(xs.shape[1], reg / w)])
    p = np.linalg.inv(x.T @ (weights[:, None] * x) + np.diag(reg_cols))
    b = p / -np.diag(p)
    np.fill_diagonal(b, 0.0)
    d = np.maximum(x.sum(0), 1) ** item_norm
    return (x @ (b * d[:, None] / d[None, :]))[:, :nt]


@pytest.mark.parametrize("item_norm,user_norm", [(0.3, 0.0), (0.0, 0.5), (0.25, 0.4)])
def test_dan_terms_equal_numpy(registry, data, tmp_path, item_norm, user_norm):
    """item_norm / user_norm: DAN's D_I^a B D_I^-a and (length / median)^-b row weights, against numpy."""
    got = all_scores(fit_strategy(joint(0.5, item_norm=item_norm, user_norm=user_norm), registry,
                                  make_ctx(data, tmp_path)), data)
    xt, xs = blocks(data)
    expected = dan_pooled(xt, xs, 20.0, 0.5, item_norm, user_norm)
    assert np.abs(got - expected).max() < 1e-4 * np.abs(expected).max()
    plain = pooled_ease(xt, xs, 20.0, 0.5)
    assert np.abs(got - plain).max() > 1e-3 * np.abs(plain).max()  # the terms do change the scores


def test_dan_terms_with_the_filter_and_on_target_only(registry, data, tmp_path):
    got = all_scores(fit_strategy(joint(0.5, item_norm=0.2, user_norm=0.3, filter_rank=6, filter_weight=0.4),
                                  registry, make_ctx(data, tmp_path / "j")), data)
    xt, xs = blocks(data)
    s_e = dan_pooled(xt, xs, 20.0, 0.5, 0.2, 0.3)
    s_l = low_pass(np.hstack([xt, xs]), xt.shape[1], 6)
    expected = s_e / s_e.std() + 0.4 * s_l / s_l.std()
    assert np.abs(got - expected).max() < 1e-4 * np.abs(expected).max()
    entry = joint(item_norm=0.2, user_norm=0.3)
    entry["adaptation"], entry["params"]["adaptation"] = "target-only", {}
    got = all_scores(fit_strategy(entry, registry, make_ctx(data, tmp_path / "t")), data)
    expected = dan_pooled(xt, xt[:, :0], 20.0, 1.0, 0.2, 0.3)
    assert np.abs(got - expected).max() < 1e-4 * np.abs(expected).max()


def test_dan_terms_off_are_bit_identical(registry, data, tmp_path):
    default = fit_strategy(joint(0.5, filter_rank=6), registry, make_ctx(data, tmp_path / "a"))
    off = fit_strategy(joint(0.5, filter_rank=6, item_norm=0.0, user_norm=0.0), registry, make_ctx(data, tmp_path / "b"))
    assert torch.equal(default.b, off.b)


def test_dan_terms_are_refused_where_they_have_no_closed_form(registry, data, tmp_path):
    from xdplug.errors import ConfigError

    with pytest.raises(ConfigError, match=r"user_norm.*\(set user_norm: 0\)"):
        entry = joint(user_norm=0.2)
        entry["adaptation"], entry["params"]["adaptation"] = "zero-shot", {}
        fit_strategy(entry, registry, make_ctx(data, tmp_path))


def test_factor_term_equals_implicit_on_the_pooled_rows(registry, data, tmp_path):
    """factor_rank: S_E / std(S_E) + factor_weight * U V[t]^T / std, iALS fitted by implicit directly."""
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    opts = dict(factor_rank=8, factor_weight=0.6, factor_reg=0.5, factor_alpha=3.0, item_norm=0.2, user_norm=0.3)
    scorer = fit_strategy(joint(0.5, **opts), registry, make_ctx(data, tmp_path))
    got = all_scores(scorer, data)
    xt, xs = blocks(data)
    # iALS's random start depends on the column order: the scorer's rows are [X_t, X_s] with the source
    # columns in the pooled matrix's order (a permutation of blocks()' order)
    rows = scorer.rows.toarray()
    assert np.array_equal(rows[:, :xt.shape[1]], xt)
    assert sorted(map(tuple, rows[:, xt.shape[1]:].T)) == sorted(map(tuple, xs.T))
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(factors=8, regularization=0.5, alpha=3.0, iterations=15, random_state=3,
                                        calculate_training_loss=False)
        model.fit(sp.csr_matrix(rows.astype(np.float32)), show_progress=False)
    s_f = model.user_factors @ model.item_factors[:xt.shape[1]].T
    s_e = dan_pooled(xt, xs, 20.0, 0.5, 0.2, 0.3)
    expected = s_e / s_e.std() + 0.6 * s_f / s_f.std()
    assert np.abs(got - expected).max() < 1e-3 * np.abs(expected).max()
    # a new user's factor is solved from their items: the term is not additive over items
    one, two, both = (scorer.score_history(h).numpy()[0] for h in ([1], [3], [1, 3]))
    assert not np.allclose(both, one + two, atol=1e-4)
    b_part = scorer.b.numpy()[[1, 3]].sum(0)
    assert np.allclose(both - b_part, model.recalculate_user(0, sp.csr_matrix(
        (np.ones(2, dtype=np.float32), ([0, 0], [1, 3])), shape=(1, xt.shape[1] + xs.shape[1])))
        @ scorer.factors.items.numpy(), atol=1e-4)


def test_factor_term_off_and_refused(registry, data, tmp_path):
    default = fit_strategy(joint(0.5), registry, make_ctx(data, tmp_path / "a"))
    assert default.factors is None
    from xdplug.errors import ConfigError

    entry = joint(factor_rank=4)
    entry["adaptation"], entry["params"]["adaptation"] = "zero-shot", {}
    with pytest.raises(ConfigError, match=r"factor_rank: DAN's normalisation and the iALS term are terms of the forms "
                                          r"that train on the target \(target-only, l2sp, joint\); 'zero-shot' has none"):
        fit_strategy(entry, registry, make_ctx(data, tmp_path / "b"))
