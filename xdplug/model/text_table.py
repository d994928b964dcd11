"""Frozen item text vectors as a module: what a frozen text encoder builds and an artifact restores."""

from __future__ import annotations

import torch
from torch import nn


class TextTable(nn.Module):
    """Catalog text vectors as a non-trainable buffer; ``forward`` indexes rows.

    One class for the encoder that computes the vectors and for an artifact that
    restores them without the encoder, so their state dicts (``table``) match.
    """

    def __init__(self, vectors: torch.Tensor):
        super().__init__()
        self.register_buffer("table", vectors)
        self.out_dim = int(vectors.shape[1])

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        return self.table[items]
