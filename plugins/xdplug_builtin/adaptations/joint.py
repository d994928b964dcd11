"""``joint``: multi-task training on both domains at once; pooled EASE in the item-item family."""

from __future__ import annotations

from xdplug.api import Adaptation, Float

from ._families import FAMILIES


class Joint(Adaptation):
    name = "joint"
    description = "Multi-task training on both domains at once, one loss weight per domain"
    defaults = {"source_weight": Float(0.5, 0, 1e6), "target_weight": Float(1.0, 0, 1e6)}
    search_space = {"params.adaptation.source_weight": {"type": "uniform", "low": 0.1, "high": 1.0}}
    #: closed form: the source's weight in the pooled Gram matrix (the model's terms of a pooled closed
    #: form are the item-item family's pooled_search_space)
    closed_form_search_space = {"params.adaptation.source_weight": {"type": "loguniform", "low": 0.01, "high": 16.0}}
    closed_form_pooled = True
    families = FAMILIES

    def fit(self, session):
        session.train(["source", "target"], phase="joint",
                      weights={"source": self.params["source_weight"], "target": self.params["target_weight"]})

    def closed_form(self, problem):  # pooled EASE: a source co-occurrence counts source/target weight times
        return problem.pooled(float(self.params["source_weight"]) / float(self.params["target_weight"]))
