"""``l2sp``: fine-tune with a pull towards the pretrained weights; in the item-item family, the target's
EASE pulled towards the source's solution."""

from __future__ import annotations

import torch

from xdplug.api import Adaptation, Float

from ._families import FAMILIES


def l2sp_penalty(model, anchor: dict[str, torch.Tensor]) -> torch.Tensor:
    """Sum of squared distances of the parameters from their pretrained values."""
    total = 0.0
    for name, param in model.named_parameters():
        if name in anchor and param.requires_grad:
            total = total + (param - anchor[name]).pow(2).sum()
    return total


class L2SP(Adaptation):
    name = "l2sp"
    description = "Fine-tune with lambda * ||theta_t - theta_s||^2 towards the pretrained weights"
    defaults = {"weight": Float(0.01, 0, 1e9)}
    search_space = {"params.adaptation.weight": {"type": "loguniform", "low": 1.0e-4, "high": 1.0}}
    #: closed form: the pull towards the source's EASE solution, on the Gram-matrix scale
    closed_form_search_space = {"params.adaptation.weight": {"type": "loguniform", "low": 1.0, "high": 10000.0}}
    families = FAMILIES

    def fit(self, session):
        session.train(["source"], phase="source", validate_on="source")
        anchor = session.snapshot()
        weight = self.params["weight"]
        session.train(["target"], phase="target",
                      extra_losses=[lambda model, batch: weight * l2sp_penalty(model, anchor)])

    def closed_form(self, problem):
        return problem.with_prior(float(self.params["weight"]))  # target EASE pulled towards the source's
