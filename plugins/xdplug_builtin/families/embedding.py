"""The embedding family: item vector = fusion(encoders), user vector = pool(items), trained in phases.

The model itself is the core's transfer model (``xdplug.model.transfer``, built by
``build_model``, trained through ``TrainingSession``); this family declares its options and
default search space and fits it by running the adaptation's schedule.
"""

from __future__ import annotations

from xdplug.api import ModelFamily, ModelOptions, build_model, fit_transfer, id_part_encoder


class EmbeddingFamily(ModelFamily):
    name = "embedding"
    description = "The transfer model: fused item vectors, inductive user vectors, adaptations as training schedules"
    defaults = dict(ModelOptions._options)
    search_space = ModelOptions.search_space
    export = "state"

    def check(self, strategy):
        if "id" in strategy.fusion.uses and strategy.encoder.role != "id":  # the ID part beside a text encoder
            id_part_encoder(strategy.options, strategy.registry, strategy.path)

    def fit(self, ctx, strategy):
        return fit_transfer(ctx, strategy)

    def build(self, strategy, data, device, seed, **restore):
        return build_model(strategy.encoder, strategy.fusion, strategy.options, strategy.registry, data, device,
                           seed, path=strategy.path, adaptation=strategy.adaptation, **restore)
