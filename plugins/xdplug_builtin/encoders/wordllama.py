"""The ``wordllama`` text encoder: WordLlama's static token embeddings, mean-pooled.

A second packaged text encoder next to ``bert``, so a report can show what the encoder
itself does. WordLlama (``wordllama`` on PyPI) is no transformer: it is one table of token
vectors (Llama-2 tokenizer, 32000 x 256) distilled from the concatenated token-embedding
layers of large LLMs, and a text's vector is the mean of its tokens' rows. The pinned
``wordllama==0.3.3.post0`` wheel ships those weights and the tokenizer, so it works with no
network (later releases need numpy 2, which RecBole forbids).

The vectors are computed here with ``tokenizers`` and ``safetensors`` from the wheel's
files rather than through ``wordllama``'s own loader: that one looks for the tokenizer only
in ``~/.cache`` (and downloads it otherwise) and importing the package configures the root
logger. The pooling is WordLlama's own (``WordLlamaInference.avg_pool``: the mean over the
text's tokens, no special tokens, no truncation; an empty text gets a zero vector).

Vectors are not cached on disk: encoding is a table look-up (ML-1M's 3,900 movie texts in
well under a second), cheaper than hashing the texts for a cache.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from xdplug.api import Bool, Choice, ConfigError, Encoder, TextTable

logger = logging.getLogger(__name__)

PACKAGE = "wordllama"
REQUIREMENT = "wordllama==0.3.3.post0"
WEIGHTS = "weights/l2_supercat_256.safetensors"
TOKENIZER = "tokenizers/l2_supercat_tokenizer_config.json"
#: matryoshka dims the shipped 256-d file holds: each is its leading columns
DIMS = (64, 128, 256)

#: (tokenizer, embedding table) by file path, loaded once per process and shared (read-only)
_LOADED: dict[str, tuple] = {}


def package_dir() -> Path:
    """The installed ``wordllama`` package directory (found without importing the package)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(PACKAGE)
    return Path(next(iter(spec.submodule_search_locations)))


class WordLlamaEncoder(Encoder):
    """Mean of WordLlama's static token vectors (l2_supercat), truncated to ``dim`` (matryoshka)."""

    name = "wordllama"
    role = "text"
    description = "WordLlama static token embeddings (l2_supercat, mean-pooled; not a transformer), offline, fast on CPU"
    defaults = {
        "dim": Choice(256, DIMS, help="leading columns kept (matryoshka truncation of the 256-d table)"),
        "normalize": Bool(False, help="L2-normalise output vectors"),
    }

    def __init__(self, params: dict | None = None, path: str | None = None):
        self._path = path or f"{self.kind}:{self.name}"
        super().__init__(params, self._path)
        self.last_stats: dict = {"encoded": 0, "seconds": 0.0}

    @property
    def dim(self) -> int:
        return int(self.params["dim"])

    def check_files(self) -> None:
        """The WordLlama package and its weight and tokenizer files are there before a run starts."""
        try:
            root = package_dir()
        except (FileNotFoundError, ImportError, ValueError):
            raise ConfigError(self._path, f"the wordllama encoder needs the package {PACKAGE} "
                              f"(pip install '{REQUIREMENT}')") from None
        for file in (root / WEIGHTS, root / TOKENIZER):
            if not file.is_file():
                raise ConfigError(self._path, f"{file} is missing; reinstall {REQUIREMENT}")

    def _load(self) -> tuple:
        """The tokenizer and the full 256-d token table, loaded once per process."""
        try:
            root = package_dir()
        except (FileNotFoundError, ImportError, ValueError):
            raise ConfigError(self._path, f"the wordllama encoder needs the package {PACKAGE} "
                              f"(pip install '{REQUIREMENT}')") from None
        weights, tokenizer_file = root / WEIGHTS, root / TOKENIZER
        loaded = _LOADED.get(str(weights))
        if loaded is not None:
            return loaded
        try:
            from safetensors import safe_open
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_file(str(tokenizer_file))
            tokenizer.no_padding()
            tokenizer.no_truncation()
            with safe_open(str(weights), framework="np", device="cpu") as fh:
                table = np.ascontiguousarray(fh.get_tensor("embedding.weight"), dtype=np.float32)
        except Exception as exc:  # noqa: BLE001 - missing file, corrupt JSON or safetensors header, ...
            raise ConfigError(self._path, f"cannot load WordLlama's weights and tokenizer from {root} "
                              f"({type(exc).__name__}: {exc}); reinstall {REQUIREMENT}") from exc
        if table.ndim != 2 or table.shape[1] < max(DIMS):
            raise ConfigError(self._path, f"{weights} holds a {table.shape} table, expected [vocab, {max(DIMS)}]; "
                              f"reinstall {REQUIREMENT}")
        loaded = _LOADED[str(weights)] = (tokenizer, torch.from_numpy(table))
        logger.info("loaded WordLlama l2_supercat (%d tokens x %d) from %s", table.shape[0], table.shape[1], root)
        return loaded

    def embed(self, texts: list[str], device: str | torch.device | None = None) -> np.ndarray:
        """Raw pooled vectors ``float32 [len(texts), dim]`` (not normalised); ``device`` is unused (CPU)."""
        start = time.perf_counter()
        tokenizer, table = self._load()
        texts = [str(t) for t in texts]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if texts:
            ids = [enc.ids for enc in tokenizer.encode_batch(texts, add_special_tokens=False)]
            lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
            flat = torch.from_numpy(np.concatenate([np.asarray(x, dtype=np.int64) for x in ids]
                                                   + [np.zeros(0, dtype=np.int64)]))
            flat.clamp_(0, table.shape[0] - 1)  # as WordLlama does for ids beyond the table
            offsets = torch.from_numpy(np.concatenate([[0], np.cumsum(lengths)[:-1]]))
            with torch.no_grad():  # empty bags (empty texts) come back as zeros, as in WordLlama
                pooled = nn.functional.embedding_bag(flat, table[:, : self.dim], offsets, mode="mean")
            out[:] = pooled.numpy()
        self.last_stats = {"encoded": len(texts), "seconds": time.perf_counter() - start}
        return out

    def encode(self, texts: list[str]) -> np.ndarray:
        """Frozen vectors ``float32 [len(texts), dim]`` (L2-normalised if ``normalize``)."""
        out = self.embed(texts)
        if self.params["normalize"]:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    def build(self, catalog, device) -> nn.Module:
        """Frozen: a buffer of every catalog text's vector (the same module ``bert`` builds)."""
        x = self.encode(list(catalog.texts))
        return TextTable(torch.from_numpy(np.ascontiguousarray(x)).to(torch.device(device)))
