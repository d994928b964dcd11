"""``example-sum``: the item vector is text + scale * ID, and text alone for untrained IDs."""

from __future__ import annotations

import torch
from torch import nn

from xdplug.api import Float, Fusion


class _Sum(nn.Module):
    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale

    def forward(self, text, ids, known):
        # torch.where, not ids * known: an untrained ID contributes no value and no gradient
        masked = torch.where(known.unsqueeze(-1), ids, torch.zeros_like(ids))
        return text + self.scale * masked


class SumFusion(Fusion):
    name = "example-sum"
    description = "text + id_scale * id; untrained IDs add nothing (example plugin)"
    uses = frozenset({"text", "id"})
    defaults = {"id_scale": Float(1.0, 0, 1000)}

    def build(self, dim):
        return _Sum(self.params["id_scale"])
