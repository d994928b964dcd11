"""Adaptations that are schedules: which domain trains when, and what may change.

All of them run in the sequence family too (``params.model.family: sequence``: the same phases over
a sequence tower). Four of them also run in the item-item family (``params.model.family: ease``) and carry their
closed form there (``closed_form(problem)``, ``xdplug.api.ItemItemProblem``).
"""

from __future__ import annotations

import torch

from xdplug.api import Adaptation, Float

#: the transfer model, the closed-form item-item family and the next-item sequence tower
BOTH = frozenset({"embedding", "ease", "sequence"})
#: the trained families (a schedule of phases, no closed form)
TRAINED = frozenset({"embedding", "sequence"})


class TargetOnly(Adaptation):
    name = "target-only"
    description = "No transfer: train on the target only (the no-transfer control)"
    uses_source = False
    families = BOTH

    def fit(self, session):
        session.train(["target"], phase="target")

    def closed_form(self, problem):
        return problem.target()  # the EASE baseline


class ZeroShot(Adaptation):
    name = "zero-shot"
    description = "Train on the source only, score the target with no target training"
    uses_target = False
    families = BOTH

    def fit(self, session):
        session.train(["source"], phase="source", validate_on="source")

    def closed_form(self, problem):
        return problem.source()  # the source's EASE over the shared items


class Finetune(Adaptation):
    name = "finetune"
    description = "Pretrain on the source, then train everything on the target"
    families = TRAINED
    defaults = {"target_learning_rate": Float(0.0, 0, 10, help="0: the phase's own learning rate")}
    search_space = {"params.adaptation.target_learning_rate": {"type": "loguniform", "low": 1.0e-4, "high": 1.0e-2}}

    def fit(self, session):
        session.train(["source"], phase="source", validate_on="source")
        session.train(["target"], phase="target", learning_rate=self.params["target_learning_rate"] or None)


def adaptor_and_id_parameters(model) -> list[torch.nn.Parameter]:
    """The parts that adapt a pretrained model to a new domain: text adaptor, IDs, biases."""
    params = []
    for name in ("adaptor", "item_id", "user_id"):
        module = getattr(model, name, None)
        if module is not None:
            params += list(module.parameters())
    if model.item_bias is not None:
        params.append(model.item_bias)
    return params


class Freeze(Adaptation):
    name = "freeze"
    description = "Pretrain on the source, then train only the text adaptor and ID parts on the target"
    families = TRAINED

    def fit(self, session):
        session.train(["source"], phase="source", validate_on="source")
        session.train(["target"], phase="target", parameters=adaptor_and_id_parameters(session.model))


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
    families = BOTH

    def fit(self, session):
        session.train(["source"], phase="source", validate_on="source")
        anchor = session.snapshot()
        weight = self.params["weight"]
        session.train(["target"], phase="target",
                      extra_losses=[lambda model, batch: weight * l2sp_penalty(model, anchor)])

    def closed_form(self, problem):
        return problem.with_prior(float(self.params["weight"]))  # target EASE pulled towards the source's


class Joint(Adaptation):
    name = "joint"
    description = "Multi-task training on both domains at once, one loss weight per domain"
    defaults = {"source_weight": Float(0.5, 0, 1e6), "target_weight": Float(1.0, 0, 1e6)}
    search_space = {"params.adaptation.source_weight": {"type": "uniform", "low": 0.1, "high": 1.0}}
    #: closed form: the source's weight in the pooled Gram matrix (the model's terms of a pooled closed
    #: form are the item-item family's pooled_search_space)
    closed_form_search_space = {"params.adaptation.source_weight": {"type": "loguniform", "low": 0.01, "high": 16.0}}
    closed_form_pooled = True
    families = BOTH

    def fit(self, session):
        session.train(["source", "target"], phase="joint",
                      weights={"source": self.params["source_weight"], "target": self.params["target_weight"]})

    def closed_form(self, problem):  # pooled EASE: a source co-occurrence counts source/target weight times
        return problem.pooled(float(self.params["source_weight"]) / float(self.params["target_weight"]))
