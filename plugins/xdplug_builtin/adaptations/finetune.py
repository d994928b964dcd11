"""``finetune``: pretrain on the source, then train everything on the target.

``first: freeze`` is LP-FT (Kumar et al., ICLR 2022, "Fine-tuning can distort pretrained features"):
a first target phase trains only the parts that adapt to a new domain (text adaptor, IDs, biases:
``freeze``'s step, UniSRec's parameter-efficient one), then every weight is fine-tuned from there, so
the new domain's fresh parts do not pull the pretrained layers with random gradients at the start.
"""

from __future__ import annotations

from xdplug.api import Adaptation, Choice, Float

from ._families import TRAINED


class Finetune(Adaptation):
    name = "finetune"
    description = "Pretrain on the source, then train everything on the target"
    families = TRAINED
    defaults = {"target_learning_rate": Float(0.0, 0, 10, help="0: the phase's own learning rate"),
                "first": Choice("none", ["none", "freeze"], help="freeze: train the adaptor and ID parts on "
                                "the target first, then everything (LP-FT)")}
    search_space = {"params.adaptation.target_learning_rate": {"type": "loguniform", "low": 1.0e-4, "high": 1.0e-2}}

    def fit(self, session):
        from .freeze import adaptor_and_id_parameters

        session.train(["source"], phase="source", validate_on="source")
        if self.params["first"] == "freeze":
            session.train(["target"], phase="target-adaptor", parameters=adaptor_and_id_parameters(session.model))
        session.train(["target"], phase="target", learning_rate=self.params["target_learning_rate"] or None)
