"""``example-hashed-bow``: a hashed bag-of-words text encoder (frozen, no model download).

Each word of an item's text is hashed into one of ``dim`` buckets with a
random sign (the "hashing trick"); the item vector is the L2-normalised sum.
Items that share words get similar vectors, so it transfers across domains
through text like the ``bert`` encoder does, only cruder and instant.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np
import torch
from torch import nn

from xdplug.api import Bool, Encoder, Int

_WORD = re.compile(r"[0-9a-z]+")


def tokens(text: str, bigrams: bool = False) -> list[str]:
    words = _WORD.findall(text.lower())
    if bigrams:
        words = words + [f"{a} {b}" for a, b in zip(words, words[1:])]
    return words


def hashed_bow(texts: list[str], dim: int, bigrams: bool = False, seed: int = 0) -> np.ndarray:
    """``[len(texts), dim]`` float32: signed hashed word counts, each row L2-normalised."""
    salt = seed.to_bytes(8, "little", signed=False)
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for row, text in enumerate(texts):
        for token in tokens(text, bigrams):
            digest = int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8, salt=salt).digest(), "little")
            out[row, digest % dim] += 1.0 if (digest >> 63) & 1 else -1.0
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.maximum(norms, 1e-12)


class _Lookup(nn.Module):
    """Catalog row -> precomputed vector. A buffer, not a parameter: the encoder is frozen."""

    def __init__(self, table: torch.Tensor):
        super().__init__()
        self.register_buffer("table", table)
        self.out_dim = int(table.shape[1])

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        return self.table[items]


class HashedBagOfWords(Encoder):
    name = "example-hashed-bow"
    role = "text"
    description = "Hashed bag-of-words of the item text (signed hashing trick, L2-normalised; example plugin)"
    # declared once: the engine refuses a value outside these ranges when the config is validated
    defaults = {"dim": Int(256, 1, 65536), "bigrams": Bool(False), "seed": Int(0, 0, 2**63 - 1)}

    def build(self, catalog, device):
        table = hashed_bow(catalog.texts, self.params["dim"], self.params["bigrams"], self.params["seed"])
        return _Lookup(torch.as_tensor(table)).to(device)
