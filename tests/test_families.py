"""A third party adds a model family and an adaptation with a closed form: no name of them in the core.

The plugin below registers the ``item-popularity`` family (scores every user with the items'
training counts, the source's added with the family's ``source_weight`` where the adaptation
uses the source) and the ``blend`` adaptation, which runs in it and carries its own closed form in
the item-item family: ``B = (1 - mix) EASE(G_t) + mix EASE(G_s)``. Both run through the grid,
export and recommend like the built-ins.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from xdplug.api import Adaptation, ConfigError, Float, ModelFamily, ease_matrix, hookimpl

CORE = Path(__file__).resolve().parents[1] / "xdplug"


class PopularityScorer:
    def __init__(self, counts: np.ndarray):
        self.counts = torch.as_tensor(counts, dtype=torch.float32)
        self.item_known = counts > 0

    def score(self, users: torch.Tensor) -> torch.Tensor:
        return self.counts.expand(len(users), -1).clone()

    def score_history(self, items: list[int]) -> torch.Tensor:
        return self.counts[None, :].clone()


class ItemPopularity(ModelFamily):
    name = "item-popularity"
    description = "Every user gets the items' training counts (the source's weighted in)"
    defaults = {"source_weight": Float(0.5, 0, 100)}
    search_space = {"params.model.source_weight": {"type": "uniform", "low": 0.0, "high": 1.0}}
    export = "refit"

    def check(self, strategy):
        if strategy.encoder.role != "id":
            raise ConfigError(f"{strategy.path}.encoder", "item-popularity counts item IDs; use an id encoder")

    def fit(self, ctx, strategy):
        data = ctx.data
        counts = np.bincount(data.target_train[:, 1], minlength=data.n_target_items).astype(np.float64)
        if strategy.adaptation.uses_source and len(data.shared_items):
            source = np.bincount(data.source_train[:, 1], minlength=data.n_source_items)
            counts[data.shared_items[:, 0]] += self.params["source_weight"] * source[data.shared_items[:, 1]]
        return PopularityScorer(counts)


class Blend(Adaptation):
    name = "blend"
    description = "Closed form: a blend of the target's and the source's EASE matrices"
    families = frozenset({"ease", "item-popularity"})
    defaults = {"mix": Float(0.5, 0, 1)}
    closed_form_search_space = {"params.adaptation.mix": {"type": "uniform", "low": 0.0, "high": 1.0}}

    def closed_form(self, problem):
        target, source = problem.target_matrix(), problem.source_matrix()
        b_t = ease_matrix((target.T @ target).toarray(), problem.options["reg_weight"])
        b_s = ease_matrix((source.T @ source).toarray(), problem.options["source_reg_weight"])
        return problem.scorer((1 - self.params["mix"]) * b_t + self.params["mix"] * b_s)


class FamilyPlugin:
    @hookimpl
    def register_families(self, register):
        register(ItemPopularity)

    @hookimpl
    def register_adaptations(self, register):
        register(Blend)


BLEND = {"name": "blend-ease", "encoder": "id", "fusion": "id", "adaptation": "blend",
         "params": {"model": {"family": "ease", "reg_weight": 20.0, "source_reg_weight": 30.0},
                    "adaptation": {"mix": 0.25}}}
POPULARITY = {"name": "popularity", "encoder": "id", "fusion": "id", "adaptation": "blend",
              "params": {"model": {"family": "item-popularity"}}}


@pytest.fixture
def family_plugin(register_plugin):
    return register_plugin(FamilyPlugin(), name="family-plugin")


def test_the_core_names_neither(family_plugin):
    for file in CORE.rglob("*.py"):
        text = file.read_text()
        assert "item-popularity" not in text and '"blend"' not in text, file


def test_blend_is_its_closed_form(family_plugin, plugin_manager, synthetic_data, fit_context):
    from xdplug.model.strategy import fit_strategy

    data = synthetic_data
    scorer = fit_strategy(BLEND, plugin_manager.registry, fit_context)
    x = np.zeros((data.n_target_users, data.n_target_items))
    x[data.target_train[:, 0], data.target_train[:, 1]] = 1
    to_target = dict(zip(data.shared_items[:, 1], data.shared_items[:, 0]))
    xs = np.zeros((data.n_source_users, data.n_target_items))
    for u, i in data.source_train:
        if i in to_target:
            xs[u, to_target[i]] = 1

    def ease_np(g, reg):
        p = np.linalg.inv(g + reg * np.eye(len(g)))
        b = -p / np.diag(p)
        np.fill_diagonal(b, 0)
        return b

    b = 0.75 * ease_np(x.T @ x, 20.0) + 0.25 * ease_np(xs.T @ xs, 30.0)
    users = torch.arange(data.n_target_users)
    np.testing.assert_allclose(scorer.score(users).numpy(), x @ b, rtol=1e-4, atol=1e-5)


def test_family_and_adaptation_checks_name_the_key(family_plugin, tiny_config):
    with pytest.raises(ConfigError, match=r"strategies\[0\]\.adaptation: 'dann' does not run in params\.model\."
                                           r"family: item-popularity .*adaptations that do: blend"):
        tiny_config(strategies=[dict(POPULARITY, adaptation="dann")])
    with pytest.raises(ConfigError, match=r"strategies\[0\]\.params\.model\.reg_weight: unknown option for family "
                                           r"'item-popularity'; allowed: source_weight"):
        tiny_config(strategies=[dict(POPULARITY, params={"model": {"family": "item-popularity",
                                                                    "reg_weight": 1.0}})])
    with pytest.raises(ConfigError, match=r"strategies\[0\]\.encoder: item-popularity counts item IDs"):
        tiny_config(strategies=[dict(POPULARITY, encoder="bert", fusion="text")])


def test_grid_tuning_export_and_recommend(family_plugin, tiny_config, run_config, tmp_path):
    from xdplug.artifact import export_run, load_artifact

    config = tiny_config(strategies=[BLEND, dict(POPULARITY, tuning={"trials": 2})])
    runs = run_config(config)
    for method in ("blend-ease", "popularity"):
        run = runs[(method, 0)]
        assert run["status"] == "done", run["error"]
        assert 0 < run["metrics"]["test"]["ndcg@10"] <= 1
    # the tuned family searched its own option (its search_space), and the run stores the value it chose
    assert 0 <= runs[("popularity", 0)]["spec"]["params"]["model"]["source_weight"] <= 1
    for method in ("blend-ease", "popularity"):
        folder, report = export_run(config, method, seed=0, out=tmp_path / method)
        assert report["reproduction"]["match"] and report["roundtrip"]["topk_match"]
        rec = load_artifact(folder)
        user = rec.ids["users"][0]
        recs = rec.recommend(user=user, k=3)
        assert len(recs) == 3 and all(r["item"] in rec.ids["items"] for r in recs)


def test_the_id_part_comes_from_the_encoder_params_model_id_encoder_names(plugin_manager):
    from xdplug.spec import resolve_strategy

    entry = {"encoder": "bert", "fusion": "gate", "adaptation": "target-only",
             "params": {"model": {"id_encoder": "bert"}}}
    with pytest.raises(ConfigError, match=r"s\.params\.model\.id_encoder: encoder 'bert' gives 'text' vectors; "
                                           r"the ID part needs an encoder with role 'id'"):
        resolve_strategy(entry, plugin_manager.registry, "s")
    entry["params"]["model"]["id_encoder"] = "id"
    assert resolve_strategy(entry, plugin_manager.registry, "s").options["id_encoder"] == "id"


def test_the_adaptation_contract_fits_a_closed_form_only_adaptation(synthetic_data):
    """Blend lists no embedding family: the contract fits it in the first installed family it lists (ease)."""
    from xdplug.testing import check_adaptation

    scorer = check_adaptation(Blend, {"mix": 0.5}, data=synthetic_data)
    assert type(scorer).__name__ == "ItemItemScorer"
