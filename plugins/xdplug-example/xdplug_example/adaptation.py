"""``example-warmup``: a short source warm-up, then training on the target."""

from __future__ import annotations

from xdplug.api import Adaptation, Float, Int


class Warmup(Adaptation):
    name = "example-warmup"
    description = "A few epochs on the source, then target training until validation stops improving (example plugin)"
    defaults = {"source_epochs": Int(2, 1, 10_000),
                "target_learning_rate": Float(0.0, 0, 10, help="0: the config's train.learning_rate")}

    def fit(self, session):
        # phase 1: the source only, validated on held-out source interactions,
        # so the warm-up never reads a target validation or test interaction
        session.train(["source"], phase="warmup", epochs=self.params["source_epochs"], validate_on="source")
        # phase 2: the target, early-stopped on the target's validation split
        session.train(["target"], phase="target", learning_rate=self.params["target_learning_rate"] or None)
