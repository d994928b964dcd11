"""The text baselines read their encoder through the plugin registry: a third-party encoder with
role ``text`` and an ``encode(texts)`` serves ``text-knn`` (and the others) by ``params.encoder.name``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xdplug.api import ConfigError, Encoder, Int, hookimpl

NAME = "test-char-bigrams"


def char_bigrams(texts: list[str], dim: int) -> np.ndarray:
    """``[len(texts), dim]`` counts of character bigrams, each bucketed by its code points
    (deterministic, unlike ``hash``), so texts that differ only in digits still differ."""
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for row, text in enumerate(texts):
        for a, b in zip(text, text[1:]):
            out[row, (31 * ord(a) + ord(b)) % dim] += 1.0
    return out


class CharBigrams(Encoder):
    name = NAME
    role = "text"
    description = "Character-bigram counts (a third-party text encoder in a test)"
    defaults = {"dim": Int(97, 1, 4096)}

    def encode(self, texts: list[str]) -> np.ndarray:
        return char_bigrams(texts, self.params["dim"])


class NoVectors(Encoder):
    name = "test-no-vectors"
    role = "text"
    description = "A text encoder without encode() (a text baseline cannot read it)"


class ThirdParty:
    @hookimpl
    def register_encoders(self, register):
        register(CharBigrams)
        register(NoVectors)


@pytest.fixture
def third_party(register_plugin, plugin_manager):
    """The test plugin registered in this test's manager (unregistered after the test)."""
    register_plugin(ThirdParty(), name="third-party-text")
    return plugin_manager


def text_knn(plugin_manager, params: dict):
    """text-knn built and checked against the manager's registry (what validating a config does)."""
    baseline = plugin_manager.registry.get("baseline", "text-knn")(params, "baselines.text-knn")
    baseline.check_components(plugin_manager.registry)
    return baseline


@pytest.mark.parametrize("k", [0, 10])
def test_a_registered_encoder_serves_text_knn(third_party, synthetic_data, tmp_path, k):
    from xdplug.testing.contracts import make_fit_context

    data, dim = synthetic_data, 61
    scorer = text_knn(third_party, {"neighbors": k, "encoder": {"name": NAME, "dim": dim}}).fit(
        make_fit_context(data, tmp_path / "fit", registry=third_party.registry))

    # text-knn by hand: cosine of the encoder's vectors; with k, each item's (column's) k most
    # similar items kept, itself included; scored by the mean over the user's training items
    e = char_bigrams(data.target_item_texts(), dim).astype(np.float64)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    sim = e @ e.T
    if k:
        order = np.sort(sim, axis=0)[::-1]
        assert (order[k - 1] - order[k]).min() > 1e-3  # no near tie at the cut: the kept items are defined
        sim = np.where(sim >= order[k - 1][None, :], sim, 0.0)
        assert ((sim != 0).sum(0) == k).all()
    r = data.matrix("target", "train").toarray().astype(np.float64)
    expected = r / np.maximum(r.sum(1, keepdims=True), 1) @ sim
    got = scorer.score(torch.arange(data.n_target_users)).cpu().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert np.ptp(expected) > 0.1  # the vectors matter: not a flat score


def test_the_encoder_options_reach_the_encoder(third_party):
    from xdplug_builtin.baselines._text import text_encoder

    encoder = text_encoder(third_party.registry, {"name": NAME, "dim": 7}, "baselines.text-knn.params.encoder")
    assert type(encoder) is CharBigrams and encoder.params == {"dim": 7}
    with pytest.raises(ConfigError) as err:
        text_encoder(third_party.registry, {"name": NAME, "dim": 0}, "baselines.text-knn.params.encoder")
    assert "baselines.text-knn.params.encoder" in str(err.value) and "dim" in str(err.value)


def test_an_id_encoder_is_refused_when_the_baseline_is_checked(third_party):
    with pytest.raises(ConfigError) as err:
        text_knn(third_party, {"encoder": {"name": "id"}})
    assert err.value.path == "baselines.text-knn.params.encoder.name"
    assert "'id' is not a text encoder a baseline can use" in str(err.value)
    assert "encoder 'id' has role 'id'" in str(err.value)
    assert f"expected one of bert, llm, {NAME}, wordllama (" in str(err.value)


def test_an_unknown_name_lists_the_encoders_that_qualify(third_party):
    with pytest.raises(ConfigError) as err:
        text_knn(third_party, {"encoder": {"name": "gpt"}})
    assert err.value.path == "baselines.text-knn.params.encoder.name"
    # the third-party one is listed; id (role id) and test-no-vectors (no encode) are not
    assert f"expected one of bert, llm, {NAME}, wordllama (no plugin registers an encoder 'gpt';" in str(err.value)


def test_a_text_encoder_without_encode_is_refused(third_party):
    with pytest.raises(ConfigError, match=r"encoder 'test-no-vectors' has no encode\(texts\) method") as err:
        text_knn(third_party, {"encoder": {"name": "test-no-vectors"}})
    assert err.value.path == "baselines.text-knn.params.encoder.name"


def test_the_registry_is_read_when_the_baseline_is_checked(third_party):
    assert text_knn(third_party, {"encoder": {"name": NAME}}).params["encoder"]["name"] == NAME
    third_party.unregister("third-party-text")
    with pytest.raises(ConfigError, match=f"no plugin registers an encoder '{NAME}'; "):
        text_knn(third_party, {"encoder": {"name": NAME}})


def test_a_config_naming_an_id_encoder_fails_when_read(third_party, tiny_config):
    with pytest.raises(ConfigError, match=r"baselines\.text-knn\.params\.encoder\.name: 'id' is not a text encoder"):
        tiny_config(baselines=[{"baseline": "text-knn", "params": {"encoder": {"name": "id"}}}])
