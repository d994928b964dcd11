"""``example-warmup``: a short source warm-up, then training on the target."""

from __future__ import annotations

from xdplug.components import Adaptation
from xdplug.errors import ConfigError


class Warmup(Adaptation):
    name = "example-warmup"
    description = "A few epochs on the source, then target training until validation stops improving (example plugin)"
    defaults = {"source_epochs": 2, "target_learning_rate": 0.0}

    def __init__(self, params: dict | None = None, path: str | None = None):
        super().__init__(params, path)
        if self.params["source_epochs"] < 1:
            raise ConfigError(f"{path or 'adaptation'}.source_epochs",
                              f"expected at least 1, got {self.params['source_epochs']!r}")

    def fit(self, session):
        # phase 1: the source only, validated on held-out source interactions,
        # so the warm-up never reads a target validation or test interaction
        session.train(["source"], phase="warmup", epochs=self.params["source_epochs"], validate_on="source")
        # phase 2: the target, early-stopped on the target's validation split
        session.train(["target"], phase="target", learning_rate=self.params["target_learning_rate"] or None)
