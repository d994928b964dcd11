"""A whole xdplug plugin in one file: a model family and an adaptation with its own closed form.

``item-popularity`` (a model family) scores every user with the items' training counts; where the
strategy's adaptation uses the source, the source's counts of the shared items are added with the
family's ``source_weight``. ``blend`` (an adaptation) runs in that family and in the built-in
item-item family, where it carries its closed form: ``B = (1 - mix) EASE(G_t) + mix EASE(G_s)``.
Nothing in xdplug names either: they reach the grid, tuning, export, recommend and update through
the registry, like the built-ins.

Use it without packaging (a test, a notebook)::

    from xdplug.plugins import make_plugin_manager
    import one_file_plugin

    plugins = make_plugin_manager()
    plugins.register(one_file_plugin, name="one-file")
    run_benchmark(config, plugins)          # or xdplug.cli.main([...], plugins=plugins)

or install it: a ``pyproject.toml`` beside it with ``py-modules = ["one_file_plugin"]`` and the
entry point ``[project.entry-points.xdplug] one-file = "one_file_plugin"``. The packaged example
(``plugins/xdplug-example``) shows one component of every kind, one module each.
"""

from __future__ import annotations

import numpy as np
import torch

from xdplug.api import Adaptation, ConfigError, Float, ModelFamily, ease_matrix, hookimpl


class PopularityScorer:
    """The family's fitted model: one score per target item, the same for every user."""

    def __init__(self, counts: np.ndarray):
        self.counts = torch.as_tensor(counts, dtype=torch.float32)
        self.item_known = counts > 0

    def score(self, users: torch.Tensor) -> torch.Tensor:
        return self.counts.expand(len(users), -1).clone()

    def score_history(self, items: list[int]) -> torch.Tensor:
        return self.counts[None, :].clone()


class ItemPopularity(ModelFamily):
    name = "item-popularity"
    description = "Every user gets the items' training counts (the source's weighted in)"
    defaults = {"source_weight": Float(0.5, 0, 100)}
    search_space = {"params.model.source_weight": {"type": "uniform", "low": 0.0, "high": 1.0}}
    #: training-free and deterministic: an artifact stores the data and fits it again when loaded
    export = "refit"

    def check(self, strategy):
        if strategy.encoder.role != "id":
            raise ConfigError(f"{strategy.path}.encoder", "item-popularity counts item IDs; use an id encoder")

    def fit(self, ctx, strategy):
        data = ctx.data
        counts = np.bincount(data.target_train[:, 1], minlength=data.n_target_items).astype(np.float64)
        if strategy.adaptation.uses_source and len(data.shared_items):
            source = np.bincount(data.source_train[:, 1], minlength=data.n_source_items)
            counts[data.shared_items[:, 0]] += self.params["source_weight"] * source[data.shared_items[:, 1]]
        return PopularityScorer(counts)


class Blend(Adaptation):
    name = "blend"
    description = "Closed form: a blend of the target's and the source's EASE matrices"
    families = frozenset({"ease", "item-popularity"})
    defaults = {"mix": Float(0.5, 0, 1)}
    closed_form_search_space = {"params.adaptation.mix": {"type": "uniform", "low": 0.0, "high": 1.0}}

    def closed_form(self, problem):
        target, source = problem.target_matrix(), problem.source_matrix()
        b_t = ease_matrix((target.T @ target).toarray(), problem.options["reg_weight"])
        b_s = ease_matrix((source.T @ source).toarray(), problem.options["source_reg_weight"])
        return problem.scorer((1 - self.params["mix"]) * b_t + self.params["mix"] * b_s)


@hookimpl
def register_families(register):
    register(ItemPopularity)


@hookimpl
def register_adaptations(register):
    register(Blend)
