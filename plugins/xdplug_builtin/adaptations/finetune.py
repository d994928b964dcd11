"""``finetune``: pretrain on the source, then train everything on the target."""

from __future__ import annotations

from xdplug.api import Adaptation, Float

from ._families import TRAINED


class Finetune(Adaptation):
    name = "finetune"
    description = "Pretrain on the source, then train everything on the target"
    families = TRAINED
    defaults = {"target_learning_rate": Float(0.0, 0, 10, help="0: the phase's own learning rate")}
    search_space = {"params.adaptation.target_learning_rate": {"type": "loguniform", "low": 1.0e-4, "high": 1.0e-2}}

    def fit(self, session):
        session.train(["source"], phase="source", validate_on="source")
        session.train(["target"], phase="target", learning_rate=self.params["target_learning_rate"] or None)
