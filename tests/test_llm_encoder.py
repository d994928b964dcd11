"""The ``llm`` text encoder on tiny randomly initialised causal LMs (Llama and Qwen2 architectures)
that the tests build and save: no weights can be downloaded here, and the encoder's contract does
not depend on what the weights learned."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from xdplug.errors import ConfigError
from xdplug_builtin.encoders.llm import LlmEncoder, weight_dtype

MOVIES = [
    "Toy Story (1995). Genres: Animation, Children's, Comedy.",
    "GoldenEye (1995). Genres: Action, Adventure, Thriller.",
    "Four Rooms",
    "Twelve Monkeys (1995). Genres: Drama, Sci-Fi. A story of time travel and a war to come, of love and of a movie.",
]
WORDS = ("the a of and to in movie film action drama comedy story love war time travel thriller adventure "
         "animation children's sci-fi genres toy goldeneye four rooms twelve monkeys 1995 ( ) . , : -").split()


def tiny_tokenizer(architecture: str):
    """A word-level tokenizer (``<s>``/``</s>``, lower-cased) for the Llama model; for Qwen2 a byte-level
    BPE trained on the test texts with Qwen's ``<|endoftext|>`` as EOS and padding, because
    transformers loads a qwen2 directory's tokenizer as Qwen2Tokenizer (byte-level BPE) whatever
    class its tokenizer_config names."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if architecture == "llama":
        vocab = {w: i for i, w in enumerate(["<pad>", "<unk>", "<s>", "</s>", *WORDS])}
        tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
        tok.normalizer = normalizers.Lowercase()
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>",
                                       bos_token="<s>", eos_token="</s>")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(MOVIES + [" ".join(WORDS)], trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>")


def save_tiny_causal_lm(folder: Path, architecture: str = "llama", seed: int = 0) -> Path:
    """A randomly initialised 2-layer causal LM (hidden size 32) and its tokenizer, saved as a Hugging
    Face model directory (config.json, model.safetensors, tokenizer.json)."""
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    tokenizer = tiny_tokenizer(architecture)
    config_cls, model_cls = {"llama": (LlamaConfig, LlamaForCausalLM), "qwen2": (Qwen2Config, Qwen2ForCausalLM)}[architecture]
    config = config_cls(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                        bos_token_id=tokenizer.bos_token_id)
    torch.manual_seed(seed)
    model_cls(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory) -> Path:
    return save_tiny_causal_lm(tmp_path_factory.mktemp("tiny-llama"), "llama")


@pytest.fixture(scope="module")
def tiny_qwen(tmp_path_factory) -> Path:
    return save_tiny_causal_lm(tmp_path_factory.mktemp("tiny-qwen2"), "qwen2", seed=1)


def enc(model: Path, **params) -> LlmEncoder:
    return LlmEncoder({"model": str(model), "cache": False, **params}, "strategies[0].params.encoder")


def run_alone(encoder: LlmEncoder, text: str) -> torch.Tensor:
    """The last layer's states of one text run by itself: no batch, no padding, no mask."""
    encoder._load(torch.device("cpu"))
    ids = encoder._tokenize([text])[0]
    with torch.inference_mode():
        return encoder._model(input_ids=torch.tensor([ids])).last_hidden_state[0]


# -- vectors ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("model", ["tiny_llm", "tiny_qwen"])
def test_vectors_have_the_hidden_size_and_are_deterministic(request, model):
    folder = request.getfixturevalue(model)
    x = enc(folder).encode(MOVIES)
    assert x.shape == (len(MOVIES), 32) and x.dtype == np.float32 and np.isfinite(x).all()
    assert np.abs(x - x[0]).max() > 1e-3  # texts get different vectors
    np.testing.assert_array_equal(enc(folder).encode(MOVIES), x)
    encoder = enc(folder)
    encoder._load()
    ids = encoder._tokenize(MOVIES[:1])[0]
    assert ids[-1] == encoder._tokenizer.eos_token_id
    if model == "tiny_qwen":  # Qwen's byte-level BPE: the text comes back exactly
        assert encoder._tokenizer.decode(ids[:-1]) == MOVIES[0]


def test_last_token_pooling_is_the_last_tokens_state_alone_and_in_a_padded_batch(tiny_llm):
    """Each text's vector is its own last token's state, whatever the other (longer or shorter) texts
    of its batch, and whatever padding side the tokenizer declares: batches are right-padded here."""
    encoder = enc(tiny_llm, batch_size=4)
    batched = encoder.encode(MOVIES)
    lengths = [len(ids) for ids in encoder._tokenize(MOVIES)]
    assert len(set(lengths)) == len(MOVIES)  # one batch of 4 rows, every row but the longest padded
    for i, text in enumerate(MOVIES):
        np.testing.assert_allclose(batched[i], run_alone(encoder, text)[-1].numpy(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(batched[i], enc(tiny_llm).encode([text])[0], rtol=1e-4, atol=1e-5)
    encoder._tokenizer.padding_side = "left"
    try:
        np.testing.assert_allclose(enc(tiny_llm, batch_size=4).encode(MOVIES), batched, rtol=1e-4, atol=1e-5)
    finally:
        encoder._tokenizer.padding_side = "right"


def test_mean_pooling_averages_the_texts_own_tokens(tiny_llm):
    mean = enc(tiny_llm, pooling="mean", batch_size=4).encode(MOVIES)
    last = enc(tiny_llm, batch_size=4).encode(MOVIES)
    assert np.abs(mean - last).max() > 1e-2
    encoder = enc(tiny_llm, pooling="mean")
    for i, text in enumerate(MOVIES):
        np.testing.assert_allclose(mean[i], run_alone(encoder, text).mean(0).numpy(), rtol=1e-4, atol=1e-5)


def test_eos_is_appended_and_max_length_counts_it(tiny_llm):
    encoder = enc(tiny_llm, max_length=5)
    encoder._load()
    eos = encoder._tokenizer.eos_token_id
    ids = encoder._tokenize(MOVIES)
    assert all(x[-1] == eos and len(x) <= 5 for x in ids) and max(len(x) for x in ids) == 5
    no_eos = enc(tiny_llm, append_eos=False)
    no_eos._load()
    assert all(x[-1] != eos for x in no_eos._tokenize(MOVIES))
    assert np.abs(no_eos.encode(MOVIES) - enc(tiny_llm).encode(MOVIES)).max() > 1e-3
    assert enc(tiny_llm, append_eos=False).encode([""]).shape == (1, 32)  # an empty text still has a vector


def test_instruction_is_prefixed_and_layer_picks_the_hidden_state(tiny_llm):
    plain = enc(tiny_llm).encode(MOVIES[:2])
    prompted = enc(tiny_llm, instruction="Represent this movie: ").encode(MOVIES[:2])
    np.testing.assert_allclose(prompted, enc(tiny_llm).encode(["Represent this movie: " + t for t in MOVIES[:2]]),
                               rtol=1e-5, atol=1e-6)
    assert np.abs(prompted - plain).max() > 1e-3
    embeddings = enc(tiny_llm, layer=0, pooling="mean").encode(MOVIES[:1])[0]
    encoder = enc(tiny_llm)
    encoder._load()
    table = encoder._model.get_input_embeddings().weight.detach().numpy()
    np.testing.assert_allclose(embeddings, table[encoder._tokenize(MOVIES[:1])[0]].mean(0), rtol=1e-5, atol=1e-6)
    # hidden state 2 of 2 layers is the last (transformers applies the final norm to it); 1 is not
    np.testing.assert_allclose(enc(tiny_llm, layer=2).encode(MOVIES[:2]), plain, rtol=1e-5, atol=1e-6)
    assert np.abs(enc(tiny_llm, layer=1).encode(MOVIES[:2]) - plain).max() > 1e-3


def test_bfloat16_weights_give_close_vectors(tiny_llm):
    fp32 = enc(tiny_llm).encode(MOVIES)
    bf16 = enc(tiny_llm, dtype="bfloat16").encode(MOVIES)
    assert bf16.dtype == np.float32
    cos = (fp32 * bf16).sum(1) / np.linalg.norm(fp32, axis=1) / np.linalg.norm(bf16, axis=1)
    assert cos.min() > 0.98 and np.abs(fp32 - bf16).max() > 0  # really computed in bf16


def test_weights_load_in_bf16_on_cuda_and_fp32_on_cpu():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert weight_dtype("auto", cpu) is torch.float32
    assert weight_dtype("auto", cuda, bf16_supported=True) is torch.bfloat16
    assert weight_dtype("auto", cuda, bf16_supported=False) is torch.float16
    assert weight_dtype("float32", cuda, bf16_supported=True) is torch.float32
    assert weight_dtype("bfloat16", cpu) is torch.bfloat16


def test_auto_device_follows_the_run_and_an_absent_gpu_is_refused(tiny_llm, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert enc(tiny_llm).resolve_device() == torch.device("cpu")
    assert enc(tiny_llm).resolve_device("cuda:0") == torch.device("cuda:0")  # auto: the run's device
    with pytest.raises(ConfigError, match="'cuda' but CUDA is not available") as err:
        enc(tiny_llm, device="cuda").resolve_device()
    assert err.value.path == "strategies[0].params.encoder.device"


def test_a_cpu_run_on_a_gpu_machine_loads_fp32_weights_only(tiny_llm, monkeypatch):
    """``device: auto`` follows the run's device: a run on the CPU of a CUDA machine loads (and caches)
    float32, never the bf16 copy the GPU would get."""
    from xdplug_builtin.encoders import bert

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    bert.clear_loaded_models()
    encoder = enc(tiny_llm, cache=True)
    encoder.embed(MOVIES, "cpu")
    assert list(bert._LOADED) == [f"llm:{encoder.model_id}:torch.float32"]
    assert "-float32-" in encoder._cache_space(torch.device("cpu")).directory.name
    assert "-bfloat16-" in encoder._cache_space().directory.name  # auto without a run device: the GPU


def test_a_hub_id_is_read_from_the_local_hugging_face_cache_only(tiny_llm, tmp_path, monkeypatch):
    import huggingface_hub.constants

    snapshot = tmp_path / "hub" / "models--tiny-org--tiny-llama" / "snapshots" / "0123abcd"
    shutil.copytree(tiny_llm, snapshot)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0123abcd")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    np.testing.assert_array_equal(enc("tiny-org/tiny-llama").encode(MOVIES), enc(tiny_llm).encode(MOVIES))
    with pytest.raises(ConfigError, match="no such model directory: 'tiny-org/other'.*"
                                          "no hub id of that name in the local Hugging Face cache"):
        enc("tiny-org/other").check_files()


def test_the_encoder_contract_holds(tiny_llm):
    from xdplug.testing import check_encoder

    module = check_encoder(LlmEncoder, {"model": str(tiny_llm), "cache": False, "normalize": True})
    assert module.out_dim == 32 and not list(module.parameters())  # frozen: a table of the catalog's vectors


# -- cache -----------------------------------------------------------------------------------------

def test_vectors_are_cached_per_model_and_options(tiny_llm, tiny_qwen):
    first = enc(tiny_llm, cache=True)
    x = first.encode(MOVIES)
    assert first.last_stats["encoded"] == len(MOVIES)
    again = enc(tiny_llm, cache=True)
    np.testing.assert_array_equal(again.encode(MOVIES), x)
    assert again.last_stats["cached"] == len(MOVIES) and again.last_stats["encoded"] == 0
    spaces = {enc(folder, cache=True, **opts)._cache_space().directory for folder, opts in [
        (tiny_llm, {}), (tiny_qwen, {}), (tiny_llm, {"pooling": "mean"}), (tiny_llm, {"layer": 1}),
        (tiny_llm, {"instruction": "Query: "}), (tiny_llm, {"append_eos": False}), (tiny_llm, {"max_length": 64}),
        (tiny_llm, {"dtype": "bfloat16"}),
    ]}
    assert len(spaces) == 8
    assert enc(tiny_llm, cache=True)._cache_space().directory.name.startswith("llama-")
    assert enc(tiny_llm, cache=True)._cache_space(torch.device("cuda")).directory != first._cache_space().directory


# -- refusals --------------------------------------------------------------------------------------

def test_a_directory_without_weights_is_refused_naming_it(tiny_llm, tmp_path):
    weightless = tmp_path / "no-weights"
    shutil.copytree(tiny_llm, weightless, ignore=shutil.ignore_patterns("*.safetensors"))
    with pytest.raises(ConfigError, match=rf"{weightless} is not a loadable causal-LM directory: it has no weights "
                                          r"\(\*\.safetensors or pytorch_model\*\.bin\); expected") as err:
        enc(weightless).check_files()
    assert err.value.path == "strategies[0].params.encoder.model"
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"it has no config.json, no weights .*, no tokenizer files \(tokenizer.json or "):
        enc(tmp_path / "empty").check_files()


@pytest.mark.parametrize("params, key, message", [
    ({"model": ""}, "model", "the llm encoder needs a model: a local Hugging Face causal-LM directory"),
    ({"model": "/nonexistent/qwen"}, "model", "no such model directory: '/nonexistent/qwen'"),
    ({"model": "no-such-org/no-such-model"}, "model", "no hub id of that name in the local Hugging Face cache"),
    ({"pooling": "cls"}, "pooling", "expected one of 'last', 'mean', got 'cls'"),
    ({"device": "tpu"}, "device", "'tpu' is not auto, cpu, cuda or cuda:N"),
])
def test_bad_options_are_refused_naming_them(tiny_llm, params, key, message):
    with pytest.raises(ConfigError, match=message) as err:
        LlmEncoder(params if "model" in params else {"model": str(tiny_llm), **params},
                   "strategies[0].params.encoder").check_files()
    assert err.value.path == f"strategies[0].params.encoder.{key}"


def test_options_are_checked_against_the_model(tiny_llm):
    with pytest.raises(ConfigError, match=r"3 but the model has 2 layers") as err:
        enc(tiny_llm, layer=3).encode(["x"])
    assert err.value.path == "strategies[0].params.encoder.layer"
    with pytest.raises(ConfigError, match="exceeds the model's 512 positions"):
        enc(tiny_llm, max_length=513).encode(["x"])


# -- end to end: a text baseline and a text strategy from a config ----------------------------------

def test_llm_serves_text_knn_and_a_text_strategy_from_a_config(tiny_llm, tiny_config):
    from xdplug.config import store_path
    from xdplug.engine.runner import run_benchmark
    from xdplug.store import RunStore

    encoder = {"model": str(tiny_llm), "pooling": "mean", "instruction": "Item: "}
    config = tiny_config(
        baselines=[{"baseline": "text-knn", "params": {"encoder": {"name": "llm", **encoder}}}],
        strategies=[{"name": "llm-text", "encoder": "llm", "fusion": "text", "adaptation": "target-only",
                     "params": {"encoder": encoder}}],
        train={"epochs": 1},
    )
    run_benchmark(config, progress=False)
    store = RunStore(store_path(config))
    try:
        runs = {r["method"]: r for r in store.runs()}
    finally:
        store.close()
    assert set(runs) == {"text-knn", "llm-text"}
    for run in runs.values():
        assert run["status"] == "done", run["error"]
        assert 0 <= run["metrics"]["test"]["ndcg@10"] <= 1


def test_a_weightless_directory_is_refused_when_the_config_is_read(tiny_llm, tiny_config, tmp_path):
    weightless = tmp_path / "qwen-without-weights"
    shutil.copytree(tiny_llm, weightless, ignore=shutil.ignore_patterns("*.safetensors"))
    with pytest.raises(ConfigError, match=rf"strategies\[0\]\.params\.encoder\.model: {weightless} is not a "
                                          "loadable causal-LM directory: it has no weights"):
        tiny_config(strategies=[{"encoder": "llm", "fusion": "text", "adaptation": "target-only",
                                 "params": {"encoder": {"model": str(weightless)}}}])
    with pytest.raises(ConfigError, match=rf"baselines\.text-knn\.params\.encoder\.model: {weightless} is not a"):
        tiny_config(baselines=[{"baseline": "text-knn", "params": {"encoder": {"name": "llm", "model": str(weightless)}}}])


def test_a_strategy_on_the_llm_is_exported_and_served_from_its_artifact(tiny_llm, fit_context, plugin_manager, tiny_config, tmp_path):
    from xdplug.artifact import write_artifact
    from xdplug.artifact.recommender import load_artifact
    from xdplug.model.strategy import fit_strategy

    registry, data = plugin_manager.registry, fit_context.data
    entry = {"name": "llm-text", "encoder": "llm", "fusion": "text", "adaptation": "target-only",
             "params": {"encoder": {"model": str(tiny_llm), "layer": 1}, "model": {"dim": 16}}}
    config = tiny_config(strategies=[entry], train={"epochs": 1})
    entry = config["strategies"][0]
    scorer = fit_strategy(entry, registry, fit_context)
    users = torch.arange(data.n_target_users)
    folder = write_artifact(tmp_path / "art", kind="strategy", method="llm-text", entry=entry, seed=0,
                            config=config, data=data, registry=registry, scorer=scorer)
    meta = json.loads((folder / "meta.json").read_text())
    encoder = LlmEncoder(entry["params"]["encoder"])
    assert meta["encoder"]["name"] == "llm" and meta["encoder"]["text_cache_key"] == encoder.cache_namespace
    assert "-layer1-" in encoder.cache_namespace
    rec = load_artifact(folder, registry=registry)
    assert torch.allclose(rec.score_users(users.numpy()).cpu(), scorer.score(users), atol=1e-5)
    assert len(rec.recommend(user=data.keys["target_users"][0], k=5)) == 5
