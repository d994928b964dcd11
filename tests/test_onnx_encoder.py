"""``runtime: onnx`` of the ``bert`` encoder: same vectors as torch, its own caches, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from xdplug.errors import ConfigError
from xdplug_builtin.encoders import bert_onnx
from xdplug_builtin.encoders.bert import BertEncoder

TEXTS = [
    "Toy Story (1995). Genres: Animation, Children's, Comedy.",
    "GoldenEye (1995). Genres: Action, Adventure, Thriller.",
    "Four Rooms (1995). Genres: Thriller.",
    "Twelve Monkeys (1995). Genres: Drama, Sci-Fi.",
    "Dead Man Walking (1995). Genres: Drama.",
    "Toy Story (1995). Genres: Animation, Children's, Comedy.",  # a duplicate
]

needs_onnx = pytest.mark.skipif(bool(bert_onnx.missing_packages()), reason="onnxruntime/onnx not installed")


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDPLUG_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@needs_onnx
@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_onnx_vectors_match_torch(pooling):
    # batch_size 2 over length-sorted texts: batches with and without padding
    torch_vec = BertEncoder({"device": "cpu", "cache": False, "pooling": pooling, "batch_size": 2}).encode(TEXTS)
    onnx_vec = BertEncoder({"device": "cpu", "cache": False, "pooling": pooling, "batch_size": 2,
                            "runtime": "onnx"}).encode(TEXTS)
    assert onnx_vec.shape == torch_vec.shape == (len(TEXTS), 384)
    assert cosine(onnx_vec, torch_vec).min() >= 0.999
    np.testing.assert_allclose(onnx_vec, torch_vec, atol=1e-4)
    np.testing.assert_array_equal(onnx_vec[0], onnx_vec[5])


@needs_onnx
def test_onnx_graph_and_vectors_cached_apart_from_torch(home):
    first = BertEncoder({"device": "cpu", "runtime": "onnx"})
    a = first.encode(TEXTS[:3])
    graphs = list((home / "text-embeddings" / "onnx").rglob("model.onnx"))
    assert len(graphs) == 1
    stamp = graphs[0].stat().st_mtime_ns
    second = BertEncoder({"device": "cpu", "runtime": "onnx"})  # a new run: vectors from the cache
    np.testing.assert_array_equal(second.encode(TEXTS[:3]), a)
    assert second.last_stats["encoded"] == 0 and second._model is None
    third = BertEncoder({"device": "cpu", "runtime": "onnx"})  # a new text: the exported graph is reused
    third.encode(TEXTS[3:5])
    assert third.last_stats["encoded"] == 2 and graphs[0].stat().st_mtime_ns == stamp
    torch_run = BertEncoder({"device": "cpu"})  # torch's vectors live in their own namespace
    torch_run.encode(TEXTS[:3])
    assert torch_run.last_stats["encoded"] == 3
    assert first._cache_space().directory != torch_run._cache_space().directory


def test_missing_package_error_names_option_and_install(monkeypatch):
    found = bert_onnx.importlib.util.find_spec
    monkeypatch.setattr(bert_onnx.importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnxruntime" else found(name, *a))
    with pytest.raises(ConfigError, match=r"runtime.*onnxruntime.*pip install 'xdplug\[onnx\]'"):
        BertEncoder({"runtime": "onnx"})
    BertEncoder({"runtime": "torch"})  # the default runtime needs neither package


@pytest.mark.parametrize("params, words", [
    ({"finetune_layers": 1}, "frozen vectors only"),
    ({"dtype": "bfloat16"}, "runs float32"),
    ({"device": "cuda"}, "runs on the CPU"),
])
def test_onnx_rejects_what_it_cannot_run(params, words):
    with pytest.raises(ConfigError, match=f"runtime.*{words}"):
        BertEncoder({"runtime": "onnx", **params})
