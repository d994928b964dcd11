"""The example plugin's own tests: the shipped contract suites plus one behaviour test each.

``xdplug.testing`` is a pytest plugin installed with xdplug, so its fixtures
(``synthetic_data``, ``plugin_manager``, ``tiny_config`` ...) need no import.
"""

from __future__ import annotations

import numpy as np
import torch

from xdplug.testing import (
    AdaptationContract,
    BaselineContract,
    DatasetContract,
    EncoderContract,
    EvaluatorContract,
    FusionContract,
    synthetic_catalog,
    tiny_ranking_result,
)
from xdplug_example.adaptation import Warmup
from xdplug_example.baseline import RandomBaseline
from xdplug_example.dataset import ExampleSynthetic
from xdplug_example.encoder import HashedBagOfWords
from xdplug_example.evaluator import Novelty
from xdplug_example.fusion import SumFusion


# -- the contracts: one subclass per component -------------------------------------------

class TestHashedBagOfWords(EncoderContract):
    encoder_class = HashedBagOfWords
    params = {"dim": 64}


class TestSumFusion(FusionContract):
    fusion_class = SumFusion


class TestWarmup(AdaptationContract):
    adaptation_class = Warmup
    params = {"source_epochs": 1}


class TestRandomBaseline(BaselineContract):
    baseline_class = RandomBaseline


class TestNovelty(EvaluatorContract):
    evaluator_class = Novelty


class TestExampleSynthetic(DatasetContract):
    dataset_class = ExampleSynthetic


# -- behaviour beyond the contracts -------------------------------------------------------

def test_items_sharing_words_are_closer():
    module = HashedBagOfWords({"dim": 512}).build(synthetic_catalog(), torch.device("cpu"))
    vectors = module(torch.arange(len(module.table)))
    texts = synthetic_catalog().texts
    space = [i for i, t in enumerate(texts) if "Space Adventure" in t]
    crime = [i for i, t in enumerate(texts) if "Crime Thriller" in t]
    same = float(vectors[space[0]] @ vectors[space[1]])
    other = float(vectors[space[0]] @ vectors[crime[0]])
    assert same > other


def test_novelty_prefers_rare_items():
    result = tiny_ranking_result()
    rare_first = result.item_popularity.argsort()[: result.topk.shape[1]]
    popular_first = result.item_popularity.argsort()[::-1][: result.topk.shape[1]]
    novelty = Novelty()
    rare = novelty.evaluate(_with_topk(result, rare_first))["novelty@5"]
    popular = novelty.evaluate(_with_topk(result, popular_first))["novelty@5"]
    assert rare > popular


def _with_topk(result, row):
    import dataclasses

    return dataclasses.replace(result, topk=np.tile(row, (len(result.users), 1)))


def test_random_baseline_is_seeded(fit_context):
    first = RandomBaseline().fit(fit_context).score(torch.arange(4))
    again = RandomBaseline().fit(fit_context).score(torch.arange(4))
    other = RandomBaseline({"seed_offset": 1}).fit(fit_context).score(torch.arange(4))
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_components_are_registered_under_the_plugin(plugin_manager):
    registry = plugin_manager.registry
    for kind, name in [("encoder", "example-hashed-bow"), ("fusion", "example-sum"),
                       ("adaptation", "example-warmup"), ("evaluator", "example-novelty"),
                       ("baseline", "example-random"), ("dataset", "example-synthetic")]:
        assert registry.entries[kind][name].plugin == "example"
