"""Fusions: how the text part and the ID part of an item become one vector.

Every fusion obeys one rule (checked by ``xdplug.testing.check_fusion``): for
an item whose ID was never trained (``id_known`` False) the output does not
depend on the ID vector at all, so an untrained ID cannot reach a cold item's
score. Such items fall back to their text part.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from xdplug.api import Bool, Float, Fusion, Int


def _masked_ids(ids: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    # torch.where, not multiplication: no value and no gradient from unknown IDs
    return torch.where(known.unsqueeze(-1), ids, torch.zeros_like(ids))


class _TextOnly(nn.Module):
    def forward(self, text, ids, known):
        return text


class _IdOnly(nn.Module):
    def forward(self, text, ids, known):
        return _masked_ids(ids, known)


class TextOnlyFusion(Fusion):
    name = "text"
    description = "Text part only: items are their (adapted) text vectors"
    uses = frozenset({"text"})

    def build(self, dim):
        return _TextOnly()


class IdOnlyFusion(Fusion):
    name = "id"
    description = "ID part only: classic CF item vectors (untrained IDs are zero)"
    uses = frozenset({"id"})

    def build(self, dim):
        return _IdOnly()


class _Weighted(nn.Module):
    def __init__(self, alpha: float, learn: bool):
        super().__init__()
        logit = math.log(alpha / (1 - alpha)) if 0 < alpha < 1 else (8.0 if alpha >= 1 else -8.0)
        self.alpha_logit = nn.Parameter(torch.tensor(logit), requires_grad=learn)

    @property
    def alpha(self) -> torch.Tensor:
        return torch.sigmoid(self.alpha_logit)

    def forward(self, text, ids, known):
        mixed = self.alpha * text + (1 - self.alpha) * _masked_ids(ids, known)
        return torch.where(known.unsqueeze(-1), mixed, text)


class WeightedFusion(Fusion):
    name = "weighted"
    description = "alpha * text + (1 - alpha) * id, alpha fixed or learned; text alone for untrained IDs"
    defaults = {"alpha": Float(0.5, 0, 1), "learn_alpha": Bool(True)}
    search_space = {"params.fusion.alpha": {"type": "uniform", "low": 0.0, "high": 1.0}}

    def build(self, dim):
        return _Weighted(self.params["alpha"], self.params["learn_alpha"])


class _Concat(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(2 * dim + 1, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, text, ids, known):
        flag = known.float().unsqueeze(-1)
        return text + self.mlp(torch.cat([text, _masked_ids(ids, known), flag], dim=-1))


class ConcatFusion(Fusion):
    name = "concat"
    description = "Concatenate text and ID (plus an ID-known flag) through an MLP, residual on text"
    defaults = {"hidden": Int(0, 0, 65536, help="0: the model dimension")}

    def build(self, dim):
        return _Concat(dim, self.params["hidden"] or 2 * dim)


class _Gate(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.gate = nn.Linear(2 * dim, 1)
        nn.init.zeros_(self.gate.weight)

    def forward(self, text, ids, known):
        masked = _masked_ids(ids, known)
        g = torch.sigmoid(self.gate(torch.cat([text, masked], dim=-1)))
        # an untrained ID gets gate 1: the item is its text
        g = torch.where(known.unsqueeze(-1), g, torch.ones_like(g))
        return g * text + (1 - g) * masked


class GateFusion(Fusion):
    name = "gate"
    description = "Learned per-item gate between text and ID; untrained IDs gate fully to text"

    def build(self, dim):
        return _Gate(dim)
