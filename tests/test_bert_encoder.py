"""The ``bert`` text encoder and its on-disk embedding cache (bundled MiniLM, CPU, tiny data)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

import xdplug.textcache as textcache
from xdplug.data.catalog import ItemCatalog
from xdplug.errors import ConfigError, XdplugError
from xdplug.textcache import TextEmbeddingCache
from xdplug_builtin.encoders import bert as bert_mod
from xdplug_builtin.encoders.bert import BertEncoder, default_model_dir, fit_whitening, model_identity

MOVIES = [
    "Toy Story (1995). Genres: Animation, Children's, Comedy.",
    "GoldenEye (1995). Genres: Action, Adventure, Thriller.",
    "Four Rooms (1995). Genres: Thriller.",
    "Get Shorty (1995). Genres: Action, Comedy, Drama.",
    "Copycat (1995). Genres: Crime, Drama, Thriller.",
    "Twelve Monkeys (1995). Genres: Drama, Sci-Fi.",
    "Babe (1995). Genres: Children's, Comedy, Drama.",
    "Dead Man Walking (1995). Genres: Drama.",
]


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    """Every test gets its own empty cache root."""
    monkeypatch.setenv("XDPLUG_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def enc(**params) -> BertEncoder:
    return BertEncoder({"device": "cpu", **params})


def catalog(texts: list[str]) -> ItemCatalog:
    n = len(texts)
    return ItemCatalog(
        keys=[f"i{i}" for i in range(n)], texts=list(texts),
        source_rows=np.arange(0, n // 2), target_rows=np.arange(n // 2, n),
    )


def cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def shards(home: Path) -> list[Path]:
    return sorted((home / "text-embeddings").rglob("shard-*.npz"))


# --------------------------------------------------------------------------- encode
def test_encode_shape_and_finite():
    x = enc().encode(MOVIES)
    assert x.shape == (len(MOVIES), 384) and x.dtype == np.float32
    assert np.isfinite(x).all() and (np.linalg.norm(x, axis=1) > 0).all()


def test_mean_and_cls_pooling_differ():
    mean = enc(pooling="mean", cache=False).encode(MOVIES[:2])
    cls = enc(pooling="cls", cache=False).encode(MOVIES[:2])
    assert mean.shape == cls.shape
    assert np.abs(mean - cls).max() > 1e-2


def test_identical_texts_identical_vectors_encoded_once():
    e = enc(cache=False)
    x = e.encode([MOVIES[0], MOVIES[1], MOVIES[0], MOVIES[0]])
    assert np.array_equal(x[0], x[2]) and np.array_equal(x[0], x[3])
    assert e.last_stats["encoded"] == 2 and e.last_stats["unique"] == 2


def test_result_does_not_depend_on_batching():
    texts = MOVIES + ["A much longer text about a film that nobody has ever seen, " * 3]
    a = enc(cache=False, batch_size=1).encode(texts)
    b = enc(cache=False).encode(texts)
    assert np.abs(a - b).max() < 1e-4


def test_similar_texts_are_closer_than_unrelated():
    a, b, c = enc().encode([
        "Toy Story (1995). Genres: Animation, Children's, Comedy.",
        "Toy Story 2 (1999). Genres: Animation, Children's, Comedy.",
        "Quarterly tax filing deadlines for small businesses.",
    ])
    assert cos(a, b) > cos(a, c) + 0.2


def test_bfloat16_autocast_on_cpu_is_close_to_float32():
    a = enc(cache=False).encode(MOVIES[:2])
    b = enc(cache=False, dtype="bfloat16").encode(MOVIES[:2])
    assert b.dtype == np.float32
    assert min(cos(x, y) for x, y in zip(a, b)) > 0.99


def test_normalize_gives_unit_vectors():
    x = enc(normalize=True).encode(MOVIES[:3])
    assert np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)


# --------------------------------------------------------------------------- cache
def test_second_encode_reads_everything_from_cache(home):
    first = enc()
    a = first.encode(MOVIES)
    assert first.last_stats["encoded"] == len(MOVIES) and first.last_stats["cached"] == 0
    assert len(shards(home)) == 1

    again = enc()  # a fresh encoder, as in a new run
    b = again.encode(MOVIES)
    assert again.last_stats["encoded"] == 0 and again.last_stats["cached"] == len(MOVIES)
    assert np.array_equal(a, b)
    assert len(shards(home)) == 1  # nothing written

    partial = enc()
    c = partial.encode(MOVIES[:3] + ["Heat (1995). Genres: Action, Crime, Thriller."])
    assert partial.last_stats["encoded"] == 1 and partial.last_stats["cached"] == 3
    assert np.array_equal(c[:3], a[:3])


def test_full_cache_hit_does_not_load_the_model():
    enc().encode(MOVIES[:2])
    bert_mod.clear_loaded_models()
    e = enc()
    e.encode(MOVIES[:2])
    assert e.last_stats["encoded"] == 0 and e._model is None


def test_loading_the_model_prints_no_transformers_progress_bar(capfd):
    """transformers' "Loading weights" bar would mix into the run's progress bar; its settings come back."""
    from transformers.utils import logging as hf_logging

    bert_mod.clear_loaded_models()
    bar, verbosity = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    enc().encode(MOVIES[:2])
    out, err = capfd.readouterr()
    assert "Loading weights" not in out + err and "it/s" not in err
    assert (hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()) == (bar, verbosity)


@pytest.mark.parametrize("change", [{"max_length": 16}, {"pooling": "cls"}])
def test_other_max_length_or_pooling_misses_the_cache(change):
    enc().encode(MOVIES[:3])
    other = enc(**change)
    other.encode(MOVIES[:3])
    assert other.last_stats["encoded"] == 3 and other.last_stats["cached"] == 0


def test_copied_model_directory_shares_the_cache(tmp_path):
    copy = tmp_path / "my-model"
    copy.mkdir()
    for f in default_model_dir().iterdir():
        if f.is_file():
            (copy / f.name).symlink_to(f)
    a = enc().encode(MOVIES[:2])
    e = enc(model=str(copy))
    assert e.model_id == enc().model_id
    assert np.array_equal(e.encode(MOVIES[:2]), a) and e.last_stats["encoded"] == 0


def test_model_identity_follows_files_not_path(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    (d / "config.json").write_text('{"model_type": "bert", "hidden_size": 8}')
    (d / "model.safetensors").write_bytes(bytes(range(256)) * 4096)
    first = model_identity(d)
    assert first.startswith("bert@")
    moved = tmp_path / "elsewhere"
    d.rename(moved)
    assert model_identity(moved) == first
    weights = bytearray((moved / "model.safetensors").read_bytes())
    weights[0] ^= 1  # same size, one byte changed (as after fine-tuning)
    (moved / "model.safetensors").write_bytes(bytes(weights))
    assert model_identity(moved) != first
    (moved / "config.json").write_text('{"model_type": "bert", "hidden_size": 16}')
    assert len({first, model_identity(moved)}) == 2


def test_interrupted_write_leaves_no_partial_file(home, monkeypatch):
    real_savez = textcache.write_npz

    def dying_savez(fh, arrays):
        real_savez(fh, arrays)  # bytes are on disk...
        raise KeyboardInterrupt("killed mid-write")  # ...but the write never completes

    monkeypatch.setattr(textcache, "write_npz", dying_savez)
    with pytest.raises(KeyboardInterrupt):
        enc().encode(MOVIES[:3])
    ns = list((home / "text-embeddings").iterdir())
    assert shards(home) == []
    assert not [p for d in ns for p in d.iterdir() if p.name.startswith(".tmp-")]

    monkeypatch.setattr(textcache, "write_npz", real_savez)
    e = enc()
    x = e.encode(MOVIES[:3])
    assert e.last_stats["encoded"] == 3 and np.isfinite(x).all()
    assert len(shards(home)) == 1


def test_cache_concurrent_writers_and_compaction(tmp_path, monkeypatch):
    monkeypatch.setattr(textcache, "COMPACT_AFTER", 4)
    root = tmp_path / "cache"
    writers = [TextEmbeddingCache(root).space("bert@abc", "mean", 64) for _ in range(3)]
    rng = np.random.default_rng(0)
    expected = {}
    for i in range(9):  # interleaved writers, each adding its own shard
        texts = [f"text {i}-{j}" for j in range(5)]
        vecs = rng.normal(size=(5, 4)).astype(np.float32)
        writers[i % 3].put(texts, vecs)
        expected.update(zip(texts, vecs))
    reader = TextEmbeddingCache(root).space("bert@abc", "mean", 64)
    texts = list(expected)
    found, vecs = reader.get(texts + ["never stored"])
    assert found[:-1].all() and not found[-1]
    assert np.array_equal(vecs[:-1], np.stack([expected[t] for t in texts]))
    assert len(list(reader.directory.glob("shard-*.npz"))) <= 5  # compacted on the way


def test_cache_lookup_of_thousands_is_fast(tmp_path):
    import time

    space = TextEmbeddingCache(tmp_path).space("bert@abc", "mean", 64)
    texts = [f"movie number {i}" for i in range(20000)]
    for k in range(4):
        part = texts[k * 5000:(k + 1) * 5000]
        space.put(part, np.ones((len(part), 384), np.float32) * k)
    start = time.perf_counter()
    found, vecs = TextEmbeddingCache(tmp_path).space("bert@abc", "mean", 64).get(texts)
    assert found.all() and vecs[-1, 0] == 3.0
    assert time.perf_counter() - start < 2.0


# --------------------------------------------------------------------------- build
def test_build_frozen_has_no_trainable_params_and_returns_rows():
    e = enc()
    module = e.build(catalog(MOVIES), torch.device("cpu"))
    assert module.out_dim == 384
    assert not [p for p in module.parameters() if p.requires_grad]
    rows = torch.tensor([3, 0, 3, 7])
    out = module(rows)
    assert out.shape == (4, 384)
    assert np.allclose(out.numpy(), e.encode([MOVIES[i] for i in rows.tolist()]), atol=1e-6)


def test_build_finetune_last_layer_trains_only_that_layer():
    e = enc(finetune_layers=1)
    module = e.build(catalog(MOVIES), torch.device("cpu"))
    assert module.out_dim == 384
    trainable = {n for n, p in module.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("bert.encoder.layer.5.") for n in trainable)
    module.train()
    out = module(torch.tensor([0, 2, 5]))
    assert out.shape == (3, 384) and out.requires_grad
    out.pow(2).sum().backward()
    for n, p in module.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all()
        else:
            assert p.grad is None
    assert any(p.grad.abs().sum() > 0 for p in module.parameters() if p.requires_grad)
    # before any step, the fine-tunable module agrees with the frozen vectors
    module.eval()
    with torch.no_grad():
        full = module(torch.arange(len(MOVIES)))
    assert np.abs(full.numpy() - e.encode(MOVIES)).max() < 1e-4


def test_whitening_gives_identity_covariance_on_the_catalog():
    texts = [f"Movie {i} ({1950 + i}). Genres: {g}." for i, g in
             enumerate(["Drama", "Comedy", "Action, Thriller", "Horror", "Romance, Drama"] * 8)]
    module = enc(whiten="whiten", whiten_dim=16).build(catalog(texts), torch.device("cpu"))
    assert module.out_dim == 16
    x = module(torch.arange(len(texts))).numpy().astype(np.float64)
    assert np.allclose(x.mean(0), 0, atol=1e-4)
    assert np.allclose(np.cov(x, rowvar=False), np.eye(16), atol=1e-3)

    full = enc(whiten="whiten").build(catalog(texts), torch.device("cpu"))
    assert full.out_dim <= len(texts) - 1  # directions without variance are dropped
    xf = full(torch.arange(len(texts))).numpy().astype(np.float64)
    assert np.allclose(np.cov(xf, rowvar=False), np.eye(full.out_dim), atol=1e-2)

    pca = enc(whiten="pca", whiten_dim=8).build(catalog(texts), torch.device("cpu"))
    cov = np.cov(pca(torch.arange(len(texts))).numpy().astype(np.float64), rowvar=False)
    assert np.allclose(cov, np.diag(np.diag(cov)), atol=1e-4)
    assert (np.diff(np.diag(cov)) <= 1e-6).all()  # decreasing variance


def test_fit_whitening_on_random_data():
    x = np.random.default_rng(1).normal(size=(500, 6)) @ np.diag([5, 3, 2, 1, 0.5, 0.1])
    mean, matrix = fit_whitening(x, "whiten")
    assert np.allclose(np.cov((x - mean) @ matrix, rowvar=False), np.eye(6), atol=1e-3)


# --------------------------------------------------------------------------- options
@pytest.mark.parametrize("key,value", [
    ("pooling", "max"), ("dtype", "fp8"), ("device", "tpu"), ("whiten", "zca"),
    ("max_length", 0), ("batch_size", -1), ("finetune_layers", -2), ("whiten_dim", -1),
])
def test_bad_option_raises_config_error_naming_it(key, value):
    with pytest.raises(ConfigError) as err:
        BertEncoder({key: value}, path="strategies[0].encoder")
    assert err.value.path == f"strategies[0].encoder.{key}"


def test_unknown_option_and_wrong_type_are_config_errors():
    with pytest.raises(ConfigError, match="poolng"):
        BertEncoder({"poolng": "mean"})
    with pytest.raises(ConfigError, match="max_length"):
        BertEncoder({"max_length": "64"})


def test_missing_model_directory_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"\.model.*no such model directory"):
        enc(model=str(tmp_path / "nope")).encode(["x"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="without config.json"):
        enc(model=str(tmp_path / "empty")).encode(["x"])


def test_hub_id_that_cannot_be_fetched_is_a_config_error(monkeypatch):
    import transformers
    import transformers.utils

    def offline(*args, **kwargs):
        raise OSError("We couldn't connect to 'https://huggingface.co'")

    monkeypatch.setattr(transformers.utils, "cached_file", offline)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", offline)
    with pytest.raises(XdplugError) as err:
        enc(model="sentence-transformers/all-MiniLM-L6-v2").encode(["x"])
    assert isinstance(err.value, ConfigError) and err.value.path.endswith(".model")
    assert "all-MiniLM-L6-v2" in str(err.value) and "local model directory" in str(err.value)


def test_option_values_checked_against_the_model():
    with pytest.raises(ConfigError, match="max_length"):
        enc(max_length=1024).encode(["x"])
    with pytest.raises(ConfigError, match="finetune_layers"):
        enc(finetune_layers=7).build(catalog(MOVIES), torch.device("cpu"))
    with pytest.raises(ConfigError, match="whiten"):
        BertEncoder({"finetune_layers": 1, "whiten": "pca"})
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="device"):
            BertEncoder({"device": "cuda"}).encode(["x"])


def test_encoder_contract():
    assert BertEncoder.name == "bert" and BertEncoder.role == "text" and BertEncoder.kind == "encoder"
    assert BertEncoder.description and "\n" not in BertEncoder.description
    assert os.environ.get("XDPLUG_HOME")  # the autouse fixture keeps the user's cache untouched
