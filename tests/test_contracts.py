"""The shipped contract suites against the built-ins, and the contracts catching broken components."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from xdplug.components import Baseline, DatasetRecipe, Encoder, Evaluator, Fusion
from xdplug.data.raw import RawDomain, RawDomains
from xdplug.testing import (
    DatasetContract,
    EncoderContract,
    EvaluatorContract,
    FusionContract,
    check_adaptation,
    check_baseline,
    check_dataset,
    check_encoder,
    check_evaluator,
    check_fusion,
    synthetic_catalog,
    tiny_ranking_result,
)
from xdplug.testing.synthetic import SyntheticRecipe
from xdplug_builtin.encoders.id import IdEncoder
from xdplug_builtin.evaluators import (
    BeyondAccuracyEvaluator,
    ColdStartEvaluator,
    RankingEvaluator,
    SignificanceEvaluator,
)
from xdplug_builtin.fusions.fusions import ConcatFusion, GateFusion, IdOnlyFusion, TextOnlyFusion, WeightedFusion
from xdplug_datasets.movielens import ML100KGenres


# -- the built-ins, through the contract classes -----------------------------------------

class TestTextOnlyFusion(FusionContract):
    fusion_class = TextOnlyFusion


class TestIdOnlyFusion(FusionContract):
    fusion_class = IdOnlyFusion


class TestWeightedFusion(FusionContract):
    fusion_class = WeightedFusion


class TestWeightedFixedAlphaFusion(FusionContract):
    fusion_class = WeightedFusion
    params = {"alpha": 0.9, "learn_alpha": False}


class TestConcatFusion(FusionContract):
    fusion_class = ConcatFusion


class TestGateFusion(FusionContract):
    fusion_class = GateFusion


class TestIdEncoder(EncoderContract):
    encoder_class = IdEncoder
    params = {"dim": 16}


class TestRankingEvaluator(EvaluatorContract):
    evaluator_class = RankingEvaluator


class TestBeyondAccuracyEvaluator(EvaluatorContract):
    evaluator_class = BeyondAccuracyEvaluator


class TestColdStartEvaluator(EvaluatorContract):
    evaluator_class = ColdStartEvaluator


class TestSignificanceEvaluator(EvaluatorContract):
    evaluator_class = SignificanceEvaluator


class TestML100KGenres(DatasetContract):
    dataset_class = ML100KGenres


class TestML100KGenresDisjointUsers(DatasetContract):
    dataset_class = ML100KGenres
    params = {"users": "disjoint"}


class TestSyntheticRecipe(DatasetContract):
    dataset_class = SyntheticRecipe


COVERED = {
    "fusion": {TextOnlyFusion, IdOnlyFusion, WeightedFusion, ConcatFusion, GateFusion},
    "evaluator": {RankingEvaluator, BeyondAccuracyEvaluator, ColdStartEvaluator, SignificanceEvaluator},
}


@pytest.mark.parametrize("kind", sorted(COVERED))
def test_every_builtin_has_a_contract_test(plugin_manager, kind):
    builtin = {e.cls for e in plugin_manager.registry.all(kind) if e.plugin.startswith("builtin-")}
    assert builtin == COVERED[kind], "add a contract test class for the new built-in"


def test_builtin_adaptations_and_baselines_declare_their_contract(plugin_manager):
    """The static half of the contract (training them is other tests' business)."""
    registry = plugin_manager.registry
    for entry in registry.all("adaptation"):
        check_adaptation(entry.cls)
    for entry in registry.all("baseline"):
        check_baseline(entry.cls)


def test_synthetic_recipe_alignment():
    raw = check_dataset(SyntheticRecipe)
    assert (raw.align_users, raw.align_items) == ("id", "id")
    assert set(raw.source.items["item"]) & set(raw.target.items["item"])


def test_check_returns_what_it_checked():
    module = check_encoder(IdEncoder, {"dim": 8})
    assert module.out_dim == 8
    metrics = check_evaluator(RankingEvaluator)
    assert "ndcg@10" in metrics
    rows = check_evaluator(SignificanceEvaluator)
    assert {row["method"] for row in rows} == {"method-a", "method-b"}


# -- the contracts catch broken components ----------------------------------------------

class LeakyFusion(Fusion):
    name = "leaky"
    description = "lets untrained IDs through"

    def build(self, dim):
        class AlwaysIds(nn.Module):
            def forward(self, text, ids, known):
                return text + ids

        return AlwaysIds()


class StraightThroughFusion(Fusion):
    name = "straight-through"
    description = "masks the value but lets the gradient through (straight-through estimator)"

    def build(self, dim):
        class Scaled(nn.Module):
            def forward(self, text, ids, known):
                masked = torch.where(known.unsqueeze(-1), ids, torch.zeros_like(ids))
                return text + masked + (ids - ids.detach())

        return Scaled()


class WrongShapeFusion(Fusion):
    name = "wrong-shape"
    description = "concatenates without projecting"

    def build(self, dim):
        class Cat(nn.Module):
            def forward(self, text, ids, known):
                return torch.cat([text, torch.where(known.unsqueeze(-1), ids, 0 * text)], dim=1)

        return Cat()


def test_check_fusion_catches_an_id_leak():
    with pytest.raises(AssertionError, match="id_known=False changed with the ID tensor"):
        check_fusion(LeakyFusion)


def test_check_fusion_catches_a_gradient_leak():
    with pytest.raises(AssertionError, match="untrained IDs received a gradient"):
        check_fusion(StraightThroughFusion)


def test_check_fusion_catches_a_wrong_shape():
    with pytest.raises(AssertionError, match=r"returned shape \(12, 16\), expected \(12, 8\)"):
        check_fusion(WrongShapeFusion)


def test_check_fusion_catches_bad_uses():
    bad = type("BadUses", (GateFusion,), {"name": "bad-uses", "uses": frozenset({"text", "image"})})
    with pytest.raises(AssertionError, match="uses must be a non-empty subset"):
        check_fusion(bad)


@pytest.mark.parametrize("attrs, message", [
    ({"name": "", "description": "d"}, "set 'name'"),
    ({"name": "has space", "description": "d"}, "no whitespace"),
    ({"name": "x", "description": ""}, "set 'description'"),
    ({"name": "x", "description": "two\nlines"}, "one line"),
    ({"name": "x", "description": "d", "defaults": {"bad key": 1}}, "identifier-like"),
])
def test_check_component_catches_missing_metadata(attrs, message):
    with pytest.raises(AssertionError, match=message):
        check_fusion(type("Meta", (GateFusion,), attrs))


def test_check_catches_the_wrong_base_class():
    with pytest.raises(AssertionError, match="must subclass xdplug.components.Fusion"):
        check_fusion(IdEncoder)
    with pytest.raises(AssertionError, match="must subclass xdplug.components.Encoder"):
        check_encoder(Encoder)


def test_check_catches_options_that_accept_anything():
    sloppy = type("Sloppy", (GateFusion,), {"name": "sloppy", "open_params": True})
    check_fusion(sloppy)  # open on purpose: fine
    class Lenient(GateFusion):
        name = "lenient"

        def __init__(self, params=None, path=None):
            self.params = dict(params or {})

    with pytest.raises(AssertionError, match="unknown option was accepted|self.params lacks"):
        check_fusion(type("Lenient2", (Lenient,), {"defaults": {"alpha": 0.5}}))


class _Table(nn.Module):
    def __init__(self, n, dim, bad=None):
        super().__init__()
        self.out_dim = dim
        self.table = torch.randn(n, dim)
        self.bad = bad

    def forward(self, items):
        out = self.table[items]
        if self.bad == "nan":
            out = out.clone()
            out[0, 0] = float("nan")
        if self.bad == "batch":
            out = out - out.mean(0)  # depends on the other items of the batch
        if self.bad == "shape":
            out = out[:, :-1]
        return out


def _encoder(bad):
    return type(f"Enc_{bad}", (Encoder,), {"name": f"enc-{bad}", "description": "d",
                                           "build": lambda self, catalog, device: _Table(len(catalog), 4, bad)})


@pytest.mark.parametrize("bad, message", [("nan", "NaN or inf"), ("batch", "must not depend on which other items"),
                                          ("shape", r"expected \(\d+, 4\)")])
def test_check_encoder_catches(bad, message):
    with pytest.raises(AssertionError, match=message):
        check_encoder(_encoder(bad))


def test_check_encoder_needs_out_dim_and_a_role():
    no_dim = type("NoDim", (Encoder,), {"name": "no-dim", "description": "d",
                                        "build": lambda self, c, d: nn.Identity()})
    with pytest.raises(AssertionError, match="'out_dim'"):
        check_encoder(no_dim)
    with pytest.raises(AssertionError, match="role must be 'text' or 'id'"):
        check_encoder(type("Img", (IdEncoder,), {"name": "img", "role": "image"}))


def test_synthetic_catalog_is_the_union_of_both_domains():
    catalog = synthetic_catalog()
    assert len(catalog) == 60 + 40 - 12
    assert set(catalog.source_rows) & set(catalog.target_rows)
    assert all(text and not text.startswith("item ") for text in catalog.texts)


class NaNEvaluator(Evaluator):
    name = "nan"
    description = "returns NaN"

    def evaluate(self, result):
        return {"bad": float("nan")}


class MutatingEvaluator(Evaluator):
    name = "mutating"
    description = "sorts the ranking in place"

    def evaluate(self, result):
        result.topk.sort(axis=1)
        return {"ok": 1.0}


class ShortPerUser(RankingEvaluator):
    name = "short"

    def per_user(self, result):
        return {"x": np.zeros(3)}


@pytest.mark.parametrize("cls, message", [
    (NaNEvaluator, "metric 'bad' is not finite"),
    (MutatingEvaluator, "must not modify the RankingResult"),
    (ShortPerUser, r"per_user\['x'\] has shape \(3,\)"),
    (type("NoScope", (RankingEvaluator,), {"name": "no-scope", "scope": "global"}), "scope must be 'run' or 'report'"),
    (type("NoEvaluate", (Evaluator,), {"name": "no-evaluate", "description": "d"}), "implement evaluate"),
])
def test_check_evaluator_catches(cls, message):
    with pytest.raises(AssertionError, match=message):
        check_evaluator(cls)


def test_tiny_ranking_result_is_consistent():
    result = tiny_ranking_result()
    assert result.topk.shape == (12, 10)
    assert np.isin(result.topk_cold[result.topk_cold >= 0], result.cold_items).all()
    assert (result.item_popularity[result.cold_items] == 0).all()


def _recipe(**changes):
    def load(self, cache_dir):
        inter = pd.DataFrame({"user": ["u1", "u2"], "item": ["a", "b"], "rating": [5.0, 4.0]})
        items = pd.DataFrame({"item": ["a", "b"], "title": ["A", "B"]})
        fields = {"source": RawDomain("s", inter, items), "target": RawDomain("t", inter.copy(), items.copy()),
                  "text_fields": {"title": "title"}}
        fields.update(changes)
        return RawDomains(**fields)

    return type("Recipe", (DatasetRecipe,), {"name": "recipe", "description": "d", "load": load})


@pytest.mark.parametrize("changes, message", [
    ({"target": RawDomain("t", pd.DataFrame({"who": ["u"], "item": ["a"]}))}, "target.inter lacks column 'user'"),
    ({"source": RawDomain("s", pd.DataFrame({"user": ["u"], "item": ["a"], "rating": ["five"]}))},
     "rejected by the engine: .*expected numbers"),
    ({"source": RawDomain("s", pd.DataFrame({"user": [], "item": []}))}, "source.inter is empty"),
    ({"text_fields": {"title": "name"}}, "maps to column 'name'"),
    ({"align_items": "title"}, "align_items must be None, 'id' or 'key'"),
    ({"align_items": "key", "item_key_field": "isbn"}, "align_items='key' but source.items lacks 'isbn'"),
])
def test_check_dataset_catches(changes, message):
    check_dataset(_recipe())  # the unchanged recipe passes
    with pytest.raises(AssertionError, match=message):
        check_dataset(_recipe(**changes))


def test_check_dataset_needs_raw_domains():
    bad = type("Bad", (DatasetRecipe,), {"name": "bad", "description": "d", "load": lambda self, c: {"source": 1}})
    with pytest.raises(AssertionError, match="must return xdplug.data.raw.RawDomains"):
        check_dataset(bad)


class _BatchScorer:
    def __init__(self, n_items):
        self.n_items = n_items

    def score(self, users):
        return users.float().unsqueeze(1) * torch.ones(self.n_items) - users.float().mean()


class BatchDependentBaseline(Baseline):
    name = "batch-dependent"
    description = "scores depend on the batch"

    def fit(self, ctx, pooled=False):
        return _BatchScorer(ctx.data.n_target_items)


class WrongWidthBaseline(Baseline):
    name = "wrong-width"
    description = "scores the source's items"

    def fit(self, ctx, pooled=False):
        class Scorer:
            def score(self, users):
                return torch.zeros(len(users), ctx.data.n_source_items)

        return Scorer()


@pytest.mark.parametrize("cls, message", [
    (BatchDependentBaseline, "depend on the other users of the batch"),
    (WrongWidthBaseline, r"expected \(8, n_target_items=\d+\)"),
])
def test_check_baseline_catches(synthetic_data, tmp_path, cls, message):
    with pytest.raises(AssertionError, match=message):
        check_baseline(cls, data=synthetic_data, workdir=tmp_path)


def test_check_baseline_trains_a_builtin(synthetic_data, tmp_path, plugin_manager):
    scorer = check_baseline(plugin_manager.registry.get("baseline", "Pop"), data=synthetic_data, workdir=tmp_path)
    assert scorer.score(torch.arange(3)).shape == (3, synthetic_data.n_target_items)


def test_check_adaptation_flags():
    from xdplug_builtin.adaptations.controls import TargetOnly

    nothing = type("Nothing", (TargetOnly,), {"name": "nothing", "uses_target": False})
    with pytest.raises(AssertionError, match="cannot both be False"):
        check_adaptation(nothing)
    with pytest.raises(AssertionError, match="implement fit"):
        check_adaptation(type("NoFit", (TargetOnly.__mro__[1],), {"name": "no-fit", "description": "d"}))


# -- the pytest plugin, through pytester -------------------------------------------------

def test_contract_class_fails_a_broken_plugin_component(pytester):
    pytester.makepyfile(test_third_party="""
        import torch
        from torch import nn
        from xdplug.components import Fusion
        from xdplug.testing import FusionContract

        class Leaky(Fusion):
            name = "leaky"
            description = "adds the ID whatever id_known says"

            def build(self, dim):
                class M(nn.Module):
                    def forward(self, text, ids, known):
                        return text + ids
                return M()

        class TestLeaky(FusionContract):
            fusion_class = Leaky

        class TestUnset(FusionContract):
            pass
    """)
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*id_known=False changed with the ID tensor*",
                                 "*TestUnset: set the class attribute 'fusion_class'*"])


def test_pytest_plugin_fixtures(pytester):
    pytester.makepyfile(test_fixtures="""
        import os
        from xdplug import hookimpl, plugins
        from xdplug.components import Fusion

        def test_home(xdplug_home):
            assert os.environ["XDPLUG_HOME"] == str(xdplug_home) and xdplug_home.is_dir()

        def test_manager_is_fresh(plugin_manager):
            assert plugin_manager is not plugins.make_plugin_manager()
            assert "synthetic" in plugin_manager.registry.names("dataset")

        def test_register_plugin(plugin_manager, register_plugin):
            class Mine(Fusion):
                name = "mine"
                description = "d"

            class Plugin:
                @hookimpl
                def register_fusions(self, register):
                    register(Mine)

            register_plugin(Plugin(), name="mine-plugin")
            assert plugin_manager.registry.entries["fusion"]["mine"].plugin == "mine-plugin"

        def test_registered_plugin_is_gone(plugin_manager):
            assert "mine" not in plugin_manager.registry.names("fusion")

        def test_tiny_config(tiny_config):
            config = tiny_config(strategies=[{"encoder": "id", "fusion": "id", "adaptation": "joint"}],
                                 overrides=["train.epochs=1"])
            assert config["dataset"]["recipe"] == "synthetic" and config["train"]["epochs"] == 1
            assert config["baselines"] == [{"baseline": "Pop"}]

        def test_synthetic_data(synthetic_data):
            assert synthetic_data.n_target_items > 0 and len(synthetic_data.shared_users)
    """)
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=6)
