"""ONNX Runtime for the ``bert`` encoder's frozen vectors (option ``runtime: onnx``).

Why: on the 2-core AMD EPYC CPU of the development machine, ONNX Runtime ran
the encoder's own padding-free, length-sorted batches 1.5-1.8x faster than
torch with two threads (1.2-1.3x with one), cosine to torch's vectors >= 0.9999998
(``bench/bench_encoder.py --onnx``; figures in bench/README.md). The gain is
in its fp32 kernels, so it depends on the CPU: measure before relying on it.

The model is exported once per model files and pooling (``torch.onnx.export``,
dynamic batch and sequence axes, pooling inside the graph) into the text cache
folder; later runs load the file. Needs the packages ``onnxruntime`` and
``onnx`` (the exporter writes through it): ``pip install 'xdplug[onnx]'``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from xdplug.api import ConfigError

from .bert import _pool

PACKAGES = ("onnxruntime", "onnx")
INSTALL = "pip install 'xdplug[onnx]' (or pip install onnxruntime onnx)"
OPSET = 17

def missing_packages() -> list[str]:
    """The packages ``runtime: onnx`` needs that cannot be imported here."""
    return [name for name in PACKAGES if importlib.util.find_spec(name) is None]


def check_options(p: dict, opt: str) -> None:
    """``runtime: onnx`` computes frozen fp32 vectors on the CPU, with its packages installed."""
    if p["finetune_layers"] > 0:
        raise ConfigError(opt, "'onnx' computes frozen vectors only; set finetune_layers: 0 or runtime: torch")
    if p["dtype"] not in ("auto", "float32"):
        raise ConfigError(opt, f"'onnx' runs float32; set dtype: auto or float32 (got {p['dtype']!r}) or runtime: torch")
    if p["device"].startswith("cuda"):
        raise ConfigError(opt, f"'onnx' runs on the CPU; set device: cpu or auto (got {p['device']!r}) or runtime: torch")
    missing = missing_packages()
    if missing:
        raise ConfigError(opt, f"'onnx' needs the package(s) {', '.join(missing)}, not installed: {INSTALL}")


class PooledTransformer(nn.Module):
    """The transformer and the encoder's pooling as one graph: ONNX Runtime returns pooled vectors."""

    def __init__(self, bert: nn.Module, pooling: str):
        super().__init__()
        self.bert, self.pooling = bert, pooling

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return _pool(hidden, attention_mask, self.pooling)


def graph_path(root: Path, model_id: str, pooling: str) -> Path:
    """Where the exported graph of (model files, pooling) lives under the text cache ``root``."""
    label = re.sub(r"[^A-Za-z0-9_.-]", "_", model_id.partition("@")[0])[:32] or "model"
    digest = hashlib.sha256(f"{model_id}\0{pooling}\0opset{OPSET}".encode()).hexdigest()[:16]
    return root / "onnx" / f"{label}-{digest}-{pooling}" / "model.onnx"


def export(model: nn.Module, pooling: str, path: Path) -> Path:
    """Write ``model`` + pooling to ``path`` unless it is there; atomic, so a killed export leaves nothing."""
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    ids = torch.full((2, 8), 1000, dtype=torch.long)
    axes = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"}, "pooled": {0: "batch"}}
    try:
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about shape-dependent branches
            torch.onnx.export(PooledTransformer(model, pooling).eval(), (ids, torch.ones_like(ids)), str(tmp),
                              input_names=["input_ids", "attention_mask"], output_names=["pooled"],
                              dynamic_axes=axes, opset_version=OPSET, dynamo=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def session(path: Path, threads: int):
    """An ONNX Runtime CPU session on ``path``: all graph optimisations, ``threads`` intra-op threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run(sess, input_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Pooled vectors ``float32 [rows, dim]`` of one padded batch (int64 ids and 0/1 mask)."""
    return sess.run(None, {"input_ids": input_ids, "attention_mask": mask.astype(np.int64)})[0]
