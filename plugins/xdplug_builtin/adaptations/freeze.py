"""``freeze``: pretrain on the source, then train only the parts that adapt to a new domain."""

from __future__ import annotations

import torch

from xdplug.api import Adaptation

from ._families import TRAINED


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
