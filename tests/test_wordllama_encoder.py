"""The ``wordllama`` text encoder (static token embeddings shipped in the pinned wheel) and the
text baselines reading it through ``params.encoder.name``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xdplug.errors import ConfigError
from xdplug.testing import EncoderContract, check_baseline
from xdplug_builtin.encoders.wordllama import WordLlamaEncoder

MOVIES = [
    "Toy Story (1995). Genres: Animation, Children's, Comedy.",
    "GoldenEye (1995). Genres: Action, Adventure, Thriller.",
    "Four Rooms (1995). Genres: Thriller.",
    "Twelve Monkeys (1995). Genres: Drama, Sci-Fi.",
]


def cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


class TestWordLlamaEncoder(EncoderContract):
    encoder_class = WordLlamaEncoder


class TestWordLlamaEncoderTruncated(EncoderContract):
    encoder_class = WordLlamaEncoder
    params = {"dim": 64, "normalize": True}


def test_vectors_have_the_shipped_dim_and_are_deterministic():
    x = WordLlamaEncoder().encode(MOVIES)
    assert x.shape == (len(MOVIES), 256) and x.dtype == np.float32 and np.isfinite(x).all()
    assert np.abs(x).max() > 1e-3  # real weights, not zeros
    # the same texts give the same bits, alone, reordered or batched with others
    again = WordLlamaEncoder().encode(MOVIES[::-1] + ["something else"])
    np.testing.assert_array_equal(again[: len(MOVIES)][::-1], x)
    np.testing.assert_array_equal(WordLlamaEncoder().encode(MOVIES[1:2])[0], x[1])


def test_pooling_is_the_mean_of_the_token_rows():
    from xdplug_builtin.encoders import wordllama

    enc = WordLlamaEncoder()
    tokenizer, table = enc._load()
    ids = tokenizer.encode(MOVIES[0], add_special_tokens=False).ids
    np.testing.assert_allclose(enc.encode(MOVIES[:1])[0], table.numpy()[ids].mean(0), rtol=1e-5, atol=1e-7)
    assert wordllama._LOADED  # loaded once per process, shared by every instance
    assert np.array_equal(WordLlamaEncoder().encode([""]), np.zeros((1, 256), dtype=np.float32))


def test_similar_texts_are_closer_than_unrelated():
    x = WordLlamaEncoder().encode([
        "A thrilling action movie with car chases and explosions.",
        "An action film full of explosions and high-speed car chases.",
        "A recipe for sourdough bread with a long cold fermentation.",
    ])
    assert cos(x[0], x[1]) > cos(x[0], x[2]) + 0.1


@pytest.mark.parametrize("dim", [64, 128])
def test_truncation_keeps_the_leading_columns(dim):
    full = WordLlamaEncoder().encode(MOVIES)
    short = WordLlamaEncoder({"dim": dim}).encode(MOVIES)
    assert short.shape == (len(MOVIES), dim)
    np.testing.assert_allclose(short, full[:, :dim], rtol=1e-6, atol=1e-7)
    unit = WordLlamaEncoder({"dim": dim, "normalize": True}).encode(MOVIES)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-5)


def test_build_is_a_frozen_table_of_the_catalog_vectors():
    from xdplug.testing import synthetic_catalog

    catalog = synthetic_catalog()
    module = WordLlamaEncoder({"dim": 128}).build(catalog, torch.device("cpu"))
    assert module.out_dim == 128 and not list(module.parameters())
    np.testing.assert_array_equal(module(torch.tensor([2])).numpy()[0],
                                  WordLlamaEncoder({"dim": 128}).encode([catalog.texts[2]])[0])


@pytest.mark.parametrize("params, key, message", [
    ({"dim": 100}, "dim", "expected one of 64, 128, 256, got 100"),
    ({"dim": 512}, "dim", "expected one of 64, 128, 256, got 512"),
    ({"normalize": "yes"}, "normalize", "expected true or false"),
    ({"pooling": "mean"}, "pooling", "unknown option for encoder 'wordllama'; allowed: dim, normalize"),
])
def test_bad_option_is_refused_naming_it(params, key, message):
    with pytest.raises(ConfigError, match=message) as err:
        WordLlamaEncoder(params, "strategies[1].params.encoder")
    assert err.value.path == f"strategies[1].params.encoder.{key}"


def test_missing_package_is_one_clear_error(monkeypatch):
    from xdplug_builtin.encoders import wordllama

    def absent():
        raise FileNotFoundError("wordllama")

    monkeypatch.setattr(wordllama, "package_dir", absent)
    with pytest.raises(ConfigError, match=r"needs the package wordllama.*pip install 'wordllama==0\.3\.3\.post0'"):
        WordLlamaEncoder().encode(["x"])


# -- the text baselines with encoder name wordllama -------------------------------------------

def _baseline(plugin_manager, name, params):
    return plugin_manager.registry.get("baseline", name)(params, f"baselines.{name}")


def test_text_knn_with_wordllama_is_mean_cosine_of_the_history(plugin_manager, synthetic_data, fit_context):
    data = synthetic_data
    scorer = _baseline(plugin_manager, "text-knn", {"encoder": {"name": "wordllama", "dim": 128}}).fit(fit_context)
    e = WordLlamaEncoder({"dim": 128}).encode(data.target_item_texts()).astype(np.float64)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    r = data.matrix("target", "train").toarray().astype(np.float64)
    expected = r / np.maximum(r.sum(1, keepdims=True), 1) @ (e @ e.T)
    got = scorer.score(torch.arange(data.n_target_users)).cpu().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["text-knn", "text-cf", "text-gcn"])
def test_text_baselines_run_with_wordllama(plugin_manager, synthetic_data, tmp_path, name):
    scorer = check_baseline(plugin_manager.registry.get("baseline", name), {"encoder": {"name": "wordllama"}},
                            data=synthetic_data, workdir=tmp_path / name)
    scores = scorer.score(torch.arange(3)).cpu().numpy()
    assert scores.shape == (3, synthetic_data.n_target_items) and np.isfinite(scores).all()


def test_encoder_name_defaults_to_bert(plugin_manager):
    from xdplug_builtin.baselines._text import text_encoder
    from xdplug_builtin.encoders.bert import BertEncoder

    registry = plugin_manager.registry
    assert type(text_encoder(registry, {}, "baselines.text-knn.params.encoder")) is BertEncoder
    assert type(text_encoder(registry, {"name": "wordllama", "dim": 64}, "x")) is WordLlamaEncoder


@pytest.mark.parametrize("name", ["gpt", 3])
def test_unknown_encoder_name_is_refused(plugin_manager, fit_context, name):
    with pytest.raises(ConfigError, match=r"is not a text encoder a baseline can use; expected one of bert, llm, wordllama") as err:
        _baseline(plugin_manager, "text-knn", {"encoder": {"name": name}}).fit(fit_context)
    assert err.value.path == "baselines.text-knn.params.encoder.name"


def test_the_other_encoders_options_are_refused_naming_the_path(plugin_manager, fit_context):
    with pytest.raises(ConfigError, match="unknown option for encoder 'wordllama'") as err:
        _baseline(plugin_manager, "text-cf", {"encoder": {"name": "wordllama", "pooling": "cls"}}).fit(fit_context)
    assert err.value.path == "baselines.text-cf.params.encoder.pooling"


@pytest.mark.parametrize("baseline", ["text-knn", "text-cf", "text-gcn", "AlphaRec"])
def test_text_baselines_refuse_a_bad_encoder_when_the_config_is_read(tiny_config, baseline):
    """The encoder's name and options are checked with the config, before any run starts."""
    with pytest.raises(ConfigError, match=rf"baselines\.{baseline}\.params\.encoder\.name: 'nope' is not a text "
                                          r"encoder a baseline can use; expected one of bert, llm, wordllama"):
        tiny_config(baselines=[{"baseline": baseline, "params": {"encoder": {"name": "nope"}}}])
    with pytest.raises(ConfigError, match=rf"baselines\.{baseline}\.params\.encoder\.dim"):
        tiny_config(baselines=[{"baseline": baseline, "params": {"encoder": {"name": "wordllama", "dim": 100}}}])
