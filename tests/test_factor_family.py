"""The factor family: iALS as ``implicit`` fits it, collective factorisation, text priors, a run end to end."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from xdplug.api import Encoder, FactorBlock, FactorModel, TextMap, TextPrior, hookimpl


def _matrix(rows, cols, density, seed):
    m = sp.random(rows, cols, density=density, random_state=seed, format="csr")
    m.data[:] = 1.0
    return m


def test_one_block_is_implicits_exact_ials():
    """Same seed, no source, no prior: the factors of implicit's exact (Cholesky) solver, sweep for sweep."""
    from xdplug.api import fit_als

    m = _matrix(60, 40, 0.1, 1)
    ref = fit_als(m, 8, 0.5, 3.0, 5, 7, use_cg=False)
    model = FactorModel([FactorBlock(m, np.arange(40))], 40, 8, 0.5, 3.0).fit(5, 7)
    np.testing.assert_allclose(model.rows[0], ref.user_factors, atol=1e-5)
    np.testing.assert_allclose(model.shared, ref.item_factors, atol=1e-5)
    cg = fit_als(m, 8, 0.5, 3.0, 5, 7, use_cg=True)  # and implicit's conjugate-gradient solver, step for step
    model = FactorModel([FactorBlock(m, np.arange(40))], 40, 8, 0.5, 3.0, solver="cg").fit(5, 7)
    np.testing.assert_allclose(model.shared, cg.item_factors, atol=1e-4)
    assert np.abs(cg.item_factors - ref.item_factors).max() > 1e-3  # the two solvers differ: the test tells them apart


@pytest.mark.parametrize("use_cg", [False, True])
def test_the_family_target_only_is_implicits_ials(plugin_manager, fit_context, use_cg):
    from xdplug.api import fit_als
    from xdplug.model.strategy import fit_strategy

    entry = {"name": "f", "encoder": "id", "fusion": "id", "adaptation": "target-only",
             "params": {"model": {"family": "factor", "factors": 6, "regularization": 0.3, "alpha": 2.0,
                                  "iterations": 4, "use_cg": use_cg}}}
    scorer = fit_strategy(entry, plugin_manager.registry, fit_context)
    data = fit_context.data
    ref = fit_als(data.matrix("target", "train"), 6, 0.3, 2.0, 4, fit_context.seed, use_cg=use_cg)
    users = torch.arange(data.n_target_users)
    np.testing.assert_allclose(scorer.score(users).numpy(), ref.user_factors @ ref.item_factors.T, atol=5e-4)


def test_source_weight_zero_is_target_only_and_a_positive_weight_is_not(plugin_manager, fit_context):
    from xdplug.model.strategy import fit_strategy

    def scores(adaptation, **adapt):
        entry = {"name": "f", "encoder": "id", "fusion": "id", "adaptation": adaptation,
                 "params": {"model": {"family": "factor", "factors": 6, "iterations": 4, "regularization": 0.1},
                            "adaptation": adapt}}
        return fit_strategy(entry, plugin_manager.registry, fit_context).score(
            torch.arange(fit_context.data.n_target_users)).numpy()

    assert len(fit_context.data.shared_items)  # the synthetic domains share items
    target = scores("target-only")
    np.testing.assert_allclose(scores("joint", source_weight=0.0), target, atol=1e-6)
    assert np.abs(scores("joint", source_weight=1.0) - target).max() > 1e-2


def test_a_text_prior_pulls_a_rare_item_and_a_new_item_gets_its_prior():
    rng = np.random.default_rng(0)
    m = _matrix(80, 30, 0.2, 3).tolil()
    m[:, 28] = 0
    m[5, 28] = 1.0  # item 28: one interaction
    m[:, 29] = 0  # item 29: none in any block
    m = m.tocsr()
    text = rng.normal(size=(30, 5))

    def fit(weight):
        prior = TextPrior(text, weight, 1.0)
        model = FactorModel([FactorBlock(m, np.arange(30))], 30, 4, 0.1, 2.0, shared_priors=[prior]).fit(8, 0)
        return model, prior

    distances = []
    for weight in (0.01, 1.0, 100.0):
        model, prior = fit(weight)
        mean = prior.text @ prior.w
        distances.append(np.linalg.norm(model.shared[28] - mean[28]))
        np.testing.assert_allclose(model.shared[29], mean[29])  # the new item: exactly its prior W t
        assert np.abs(model.shared[29]).max() > 0
    assert distances[0] > distances[1] > distances[2]
    assert distances[2] < 0.5 * distances[0]


def test_a_shared_text_map_regresses_both_domains_items():
    """Users shared: two blocks of item rows meet the same user factors; one TextMap fits W on the warm
    items of both (the ridge regression of their stacked factors), and the target's item with no
    interaction gets exactly W t from it."""
    rng = np.random.default_rng(1)
    target, source = _matrix(12, 40, 0.1, 6).tolil(), _matrix(60, 40, 0.25, 7)
    target[11, :] = 0  # a target item nobody took
    target = target.tocsr()
    t_text, s_text = rng.normal(size=(12, 6)), rng.normal(size=(60, 6))
    shared = TextMap(2.0)
    priors = [TextPrior(t_text, 5.0, 2.0, shared), TextPrior(s_text, 5.0, 2.0, shared)]
    model = FactorModel([FactorBlock(target, np.arange(40), 1.0, [priors[0]]),
                         FactorBlock(source, np.arange(40), 1.0, [priors[1]])], 40, 4, 0.1, 2.0).fit(6, 0)
    for prior, rows, warm in zip(priors, model.rows, model.row_warm):
        prior.fit_map(rows, warm)  # both read at the final factors
    x = np.vstack([priors[0].text[model.row_warm[0]], priors[1].text[model.row_warm[1]]])
    y = np.vstack([model.rows[0][model.row_warm[0]], model.rows[1][model.row_warm[1]]])
    w = np.linalg.solve(x.T @ x + 2.0 * np.eye(x.shape[1]), x.T @ y)
    np.testing.assert_allclose(priors[1].w, w, rtol=1e-8, atol=1e-10)
    assert not model.row_warm[0][11]
    alone = TextPrior(t_text, 5.0, 2.0)
    alone.fit_map(model.rows[0], model.row_warm[0])
    assert np.abs(alone.w - w).max() > 1e-3  # the target's 11 items alone give another map
    # the cold item's factor is its prior mean under the map of the last sweep
    mean, _ = priors[0].terms(12, model.rows[0], model.row_warm[0])
    refit = FactorModel([FactorBlock(target, np.arange(40), 1.0, [priors[0]]),
                         FactorBlock(source, np.arange(40), 1.0, [priors[1]])], 40, 4, 0.1, 2.0)
    refit.init(0)
    refit.shared = model.shared
    refit.rows = [r.copy() for r in model.rows]
    refit.solve_rows()
    np.testing.assert_allclose(refit.rows[0][11], priors[0].text[11] @ priors[0].w, atol=1e-10)
    with pytest.raises(ValueError, match=r"a shared TextMap has ridge 2\.0; this prior asks for 3\.0"):
        TextPrior(t_text, 5.0, 3.0, shared)


def test_a_shared_side_offset_is_solved_with_the_shared_factors():
    """The joint 2k system reaches the minimum over (v, d) of its objective: a sweep from the fixed point
    leaves it there, and a very large offset_reg is the plain collective fit."""
    t, s = _matrix(40, 30, 0.15, 4), _matrix(50, 30, 0.2, 5)
    blocks = [FactorBlock(t, np.arange(30)), FactorBlock(s, np.arange(30), 0.5)]
    plain = FactorModel(blocks, 30, 4, 0.2, 2.0).fit(30, 1)
    stiff = FactorModel(blocks, 30, 4, 0.2, 2.0, offset_reg=1e9).fit(30, 1)
    np.testing.assert_allclose(stiff.block_columns(0), plain.block_columns(0), atol=1e-5)
    loose = FactorModel(blocks, 30, 4, 0.2, 2.0, offset_reg=0.1).fit(30, 1)
    assert np.abs(loose.offset).max() > 1e-2


class HashedText(Encoder):
    """A text encoder for tests: hashed bag of words (no model to load)."""

    name = "hashed-text"
    description = "test: hashed bag-of-words text vectors"
    role = "text"

    def encode(self, texts):
        out = np.zeros((len(texts), 16))
        for row, text in enumerate(texts):
            for word in text.lower().split():
                out[row, zlib.crc32(word.encode()) % 16] += 1.0
        return out


class HashedTextPlugin:
    @hookimpl
    def register_encoders(self, register):
        register(HashedText)


FACTOR = {"name": "factor-joint", "encoder": "id", "fusion": "id", "adaptation": "joint",
          "params": {"model": {"family": "factor", "factors": 8, "iterations": 3}}}
TEXT = {"name": "factor-text", "encoder": "hashed-text", "fusion": "gate", "adaptation": "l2sp",
        "params": {"model": {"family": "factor", "factors": 8, "iterations": 3}}}


def test_config_checks_name_the_key(register_plugin, tiny_config):
    from xdplug.api import ConfigError

    register_plugin(HashedTextPlugin(), name="hashed-text")
    with pytest.raises(ConfigError, match=r"strategies\[0\]\.adaptation: 'dann' does not run in params\.model\."
                                           r"family: factor"):
        tiny_config(strategies=[dict(FACTOR, adaptation="dann")])
    with pytest.raises(ConfigError, match=r"strategies\[0\]\.fusion: .*factor learns a factor per item ID"):
        tiny_config(strategies=[dict(TEXT, fusion="text")])
    with pytest.raises(ConfigError, match=r"strategies\[0\]\.fusion: 'id' ignores the text of 'hashed-text'"):
        tiny_config(strategies=[dict(TEXT, fusion="id")])


def test_grid_tuning_export_and_recommend(register_plugin, plugin_manager, tiny_config, run_config, tmp_path):
    from xdplug.artifact import export_run, load_artifact

    register_plugin(HashedTextPlugin(), name="hashed-text")
    config = tiny_config(strategies=[dict(FACTOR, tuning={"trials": 2}), TEXT])
    runs = run_config(config)
    for method in ("factor-joint", "factor-text"):
        run = runs[(method, 0)]
        assert run["status"] == "done", run["error"]
        assert 0 < run["metrics"]["test"]["ndcg@10"] <= 1
    tuned = runs[("factor-joint", 0)]["spec"]["params"]
    assert 0.01 <= tuned["adaptation"]["source_weight"] <= 16 and tuned["model"]["factors"] in (8, 32, 64, 128, 256, 512)
    for method in ("factor-joint", "factor-text"):
        folder, report = export_run(config, method, seed=0, out=tmp_path / method, registry=plugin_manager.registry)
        assert report["reproduction"]["match"] and report["roundtrip"]["topk_match"]
        rec = load_artifact(folder, registry=plugin_manager.registry)
        recs = rec.recommend(user=rec.ids["users"][0], k=3)
        assert len(recs) == 3 and all(r["item"] in rec.ids["items"] for r in recs)


@pytest.fixture
def users_shared(tmp_path):
    """The synthetic pair with 50 users shared and no items shared, and a FitContext on it."""
    from xdplug.config import load_config
    from xdplug.data.prepare import prepare
    from xdplug.testing.contracts import make_fit_context
    from xdplug.testing.synthetic import SyntheticRecipe

    cfg = load_config(data={"dataset": {"recipe": "synthetic"}, "baselines": [{"baseline": "Pop"}]})
    data = prepare(SyntheticRecipe({"n_shared_items": 0, "n_shared_users": 50}), cfg["dataset"], 7)
    assert len(data.shared_items) == 0 and len(data.shared_users) == 50
    return make_fit_context(data, tmp_path / "fit", seed=3)


def test_users_shared_the_user_factors_are_shared(register_plugin, plugin_manager, users_shared):
    from xdplug.api import NotApplicableError
    from xdplug.model.strategy import fit_strategy

    register_plugin(HashedTextPlugin(), name="hashed-text")
    ctx = users_shared
    users = torch.arange(ctx.data.n_target_users)

    def fit(adaptation, encoder="id", fusion="id", **adapt):
        entry = {"name": "f", "encoder": encoder, "fusion": fusion, "adaptation": adaptation,
                 "params": {"model": {"family": "factor", "factors": 6, "iterations": 4, "regularization": 0.1},
                            "adaptation": adapt}}
        return fit_strategy(entry, plugin_manager.registry, ctx)

    target = fit("target-only").score(users).numpy()
    np.testing.assert_allclose(fit("joint", source_weight=0.0).score(users).numpy(), target, atol=1e-6)
    joint = fit("joint", source_weight=1.0)
    assert np.abs(joint.score(users).numpy() - target).max() > 1e-2
    assert fit("l2sp", weight=10.0).score(users).shape == target.shape
    text = fit("joint", encoder="hashed-text", fusion="gate", source_weight=1.0)
    assert np.abs(text.score(users).numpy() - joint.score(users).numpy()).max() > 1e-3
    history = joint.score_history([0, 1, 2])
    assert history.shape == (1, ctx.data.n_target_items) and torch.isfinite(history).all()
    with pytest.raises(NotApplicableError, match="zero-shot through items"):
        fit("zero-shot")


def test_the_solver_with_a_source_of_weight_zero_is_target_only_ials():
    """Collective factorisation at source weight 0 in the solver itself (the family fits that case as
    target-only directly): the target's factors are those of the target block alone."""
    target, source = _matrix(50, 30, 0.15, 3), _matrix(80, 45, 0.1, 4)
    cols = np.concatenate([np.arange(30), 30 + np.arange(15)])[np.random.default_rng(0).permutation(45)]
    alone = FactorModel([FactorBlock(target, np.arange(30))], 30, 6, 0.5, 2.0).fit(4, 9)
    both = FactorModel([FactorBlock(target, np.arange(30)), FactorBlock(source, cols, 0.0)], 45, 6, 0.5, 2.0).fit(4, 9)
    np.testing.assert_allclose(both.rows[0] @ both.shared[:30].T, alone.rows[0] @ alone.shared.T, atol=1e-5)
    weighted = FactorModel([FactorBlock(target, np.arange(30)), FactorBlock(source, cols, 1.0)], 45, 6, 0.5, 2.0).fit(4, 9)
    assert np.abs(weighted.rows[0] @ weighted.shared[:30].T - alone.rows[0] @ alone.shared.T).max() > 1e-2


def test_the_refine_scales_multiply_the_cores_l2_and_alpha(plugin_manager, fit_context):
    """reg_scale and alpha_scale (the refine stage's parameters) are the core's L2 and alpha multiplied:
    the same model as writing the products; at 1 (their default) nothing changes."""
    from xdplug.model.strategy import fit_strategy

    def scores(**model):
        entry = {"name": "f", "encoder": "id", "fusion": "id", "adaptation": "joint",
                 "params": {"model": {"family": "factor", "factors": 6, "iterations": 4, **model},
                            "adaptation": {"source_weight": 0.5}}}
        return fit_strategy(entry, plugin_manager.registry, fit_context).score(
            torch.arange(fit_context.data.n_target_users)).numpy()

    scaled = scores(regularization=0.2, alpha=3.0, reg_scale=4.0, alpha_scale=0.5)
    np.testing.assert_allclose(scaled, scores(regularization=0.8, alpha=1.5), atol=1e-6)
    assert np.abs(scaled - scores(regularization=0.2, alpha=3.0)).max() > 1e-2
