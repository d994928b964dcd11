"""Adaptations that align the domains' representations during joint training.

``dann`` trains a domain classifier on user vectors behind a gradient-reversal
layer, so the shared layers learn vectors the classifier cannot tell apart;
``mmd`` and ``coral`` penalise the distance between the source and target
user-vector distributions of each step directly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from xdplug.api import Adaptation, Choice, Float, Int


class GradientReversal(torch.autograd.Function):
    """Identity forward; multiplies the gradient by ``-scale`` backward."""

    @staticmethod
    def forward(ctx, x, scale: float):
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.scale * grad, None


def reverse_gradient(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    return GradientReversal.apply(x, scale)


def mmd(x: torch.Tensor, y: torch.Tensor, bandwidths=(0.5, 1.0, 2.0, 4.0, 8.0)) -> torch.Tensor:
    """Biased squared MMD with a sum of Gaussian kernels (bandwidths relative to the median distance)."""
    z = torch.cat([x, y])
    d2 = torch.cdist(z, z).pow(2)
    scale = d2.detach()[d2 > 0].median() if (d2 > 0).any() else torch.tensor(1.0, device=z.device)
    k = sum(torch.exp(-d2 / (b * scale)) for b in bandwidths)
    n = len(x)
    return k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean()


def coral(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """CORAL: squared Frobenius distance of the covariances, scaled by 1/(4 d^2)."""
    d = x.shape[1]
    cx = torch.cov(x.T)
    cy = torch.cov(y.T)
    return (cx - cy).pow(2).sum() / (4 * d * d)


class DANN(Adaptation):
    name = "dann"
    description = "Joint training plus a domain classifier on user vectors behind gradient reversal"
    defaults = {"weight": Float(0.1, 0, 1e6), "source_weight": Float(0.5, 0, 1e6), "hidden": Int(64, 1, 65536)}
    search_space = {"params.adaptation.weight": {"type": "loguniform", "low": 1.0e-3, "high": 1.0}}

    def fit(self, session):
        model = session.model
        dim = model.options["dim"]
        classifier = nn.Sequential(nn.Linear(dim, self.params["hidden"]), nn.ReLU(),
                                   nn.Linear(self.params["hidden"], 1)).to(model.id_known.device)
        model.add_module("domain_classifier", classifier)
        weight = self.params["weight"]

        def domain_loss(model, batch):
            s, t = batch["source"]["users"], batch["target"]["users"]
            feats = reverse_gradient(torch.cat([s, t]), 1.0)
            labels = torch.cat([torch.zeros(len(s)), torch.ones(len(t))]).to(feats.device)
            return weight * F.binary_cross_entropy_with_logits(classifier(feats).squeeze(-1), labels)

        session.train(["source", "target"], phase="joint", extra_losses=[domain_loss],
                      weights={"source": self.params["source_weight"]})


class MMDAlignment(Adaptation):
    name = "mmd"
    description = "Joint training plus kernel MMD between source and target user vectors (CORAL as an option)"
    defaults = {"weight": Float(0.1, 0, 1e6), "source_weight": Float(0.5, 0, 1e6), "kind": Choice("mmd", ["mmd", "coral"])}
    search_space = {"params.adaptation.weight": {"type": "loguniform", "low": 1.0e-3, "high": 10.0}}

    def fit(self, session):
        weight = self.params["weight"]
        distance = coral if self.params["kind"] == "coral" else mmd

        def align_loss(model, batch):
            return weight * distance(batch["source"]["users"], batch["target"]["users"])

        session.train(["source", "target"], phase="joint", extra_losses=[align_loss],
                      weights={"source": self.params["source_weight"]})


class CoralAlignment(MMDAlignment):
    name = "coral"
    description = "Joint training plus CORAL (covariance alignment) of source and target user vectors"
    defaults = {"weight": Float(1.0, 0, 1e6), "source_weight": Float(0.5, 0, 1e6), "kind": Choice("coral", ["mmd", "coral"])}
    search_space = {"params.adaptation.weight": {"type": "loguniform", "low": 1.0e-2, "high": 10.0}}
