"""The item-item family (``params.model.family: ease``): closed-form transfer through EASE's matrix.

EASE is the strongest single-domain peer on the MovieLens data, and a low-rank two-tower model
trails it wherever the target has data of its own. This family moves source knowledge into EASE's
full-rank item-item matrix ``B`` instead. It trains nothing: each adaptation that lists ``ease`` in
its ``families`` carries its own closed form (``Adaptation.closed_form(problem)``) over the
:class:`xdplug.api.ItemItemProblem` this family hands it; the solvers and the terms the options
below switch on live in ``xdplug/model/linear.py``. An artifact refits the closed form from its
stored data when it is loaded (deterministic, seconds).
"""

from __future__ import annotations

import copy

from xdplug.api import Adaptation, Choice, ConfigError, Float, Int, ItemItemProblem, ModelFamily, TuningStage


class ItemItemFamily(ModelFamily):
    name = "ease"
    description = "Closed-form item-item transfer: EASE's full-rank item-item matrix, each adaptation a closed form"
    export = "refit"
    defaults = {
        "reg_weight": Float(250.0, 0, 1e9, low_open=True),  # L2 weight of the target's item-item matrix
        "source_reg_weight": Float(1000.0, 0, 1e9, low_open=True),  # L2 weight of the source's matrix
        # weight of EASE's standardised scores in the sum with the filter / iALS terms; 0 = EASE left
        # out (not solved), as a staged search scores the other components alone
        "ease_weight": Float(1.0, 0, 1e6),
        # target-only / l2sp / joint: rank of GF-CF's low-pass filter over the (pooled) training matrix, added
        # to the EASE scores with filter_weight (both standardised); 0 = off
        "filter_rank": Int(0, 0, 4096),
        "filter_weight": Float(0.5, 0, 1e6),
        # the filter's singular vectors: auto = exact SVD up to 2e6 matrix entries, randomised (seeded)
        # above; exact = eigenvectors of the item Gram (dense solver only: items x items)
        "filter_solver": Choice("auto", ["auto", "exact"]),
        # joint: each user's source row divided by (its length / median length)^source_norm
        "source_norm": Float(0.0, 0, 2),
        # target-only / l2sp / joint: DAN's normalisation (Park et al., SIGIR 2025): the Gram matrix
        # weights each user's row by (its length / median)^-user_norm, and B becomes
        # D_I^item_norm B D_I^-item_norm (D_I: item degrees; DAN's alpha = 1 - item_norm); 0 = off
        "item_norm": Float(0.0, 0, 1),
        "user_norm": Float(0.0, 0, 2),
        # target-only / l2sp / joint: rank of an iALS factor model (the implicit package) over the
        # target users' (pooled) rows, its standardised scores added with factor_weight; 0 = off.
        # factor_reg: its L2 (implicit's parametrisation), factor_alpha: the confidence of an observed pair
        "factor_rank": Int(0, 0, 4096),
        "factor_weight": Float(0.25, 0, 1e6),
        "factor_reg": Float(1.0, 0, 1e6),
        "factor_alpha": Float(4.0, 0, 1e6, low_open=True),
        # dense item-item solution, or a sparse one (each item regressed on its `neighbors` strongest
        # co-occurring items, xdplug/model/sparse_item_item.py); auto = dense up to linear.MAX_ITEMS
        "solver": Choice("auto", ["auto", "dense", "sparse"]),
        "neighbors": Int(200, 1, 1_000_000),
    }
    #: EASE's own regularisation, target and source
    search_space = {
        "params.model.reg_weight": {"type": "loguniform", "low": 10.0, "high": 5000.0},
        "params.model.source_reg_weight": {"type": "loguniform", "low": 10.0, "high": 10000.0},
    }
    #: closed forms that pool the domains (``Adaptation.closed_form_pooled``): these replace the above (no
    #: source-only EASE to regularise); EASE's L2 and the low-pass filter / source-row terms,
    #: bench/user_overlap_study.py's ranges
    pooled_search_space = {
        "params.model.reg_weight": {"type": "loguniform", "low": 8.0, "high": 32768.0},
        "params.model.filter_rank": {"type": "int", "low": 8, "high": 256, "log": True},
        "params.model.filter_weight": {"type": "loguniform", "low": 0.05, "high": 3.2},
        "params.model.source_norm": {"type": "uniform", "low": 0.0, "high": 1.0},
    }

    #: staged tuning (``tuning.staged: true``): EASE with DAN's normalisation and the adaptation's lever
    #: (pooled: the source's weight and row normalisation; l2sp: the pull and the source EASE's L2), then
    #: the low-pass filter, then the iALS term, each alone; then the three weights on their stored
    #: validation scores. iALS's ranges are the iALS control's.
    ease_stage_space = {
        "params.model.reg_weight": {"type": "loguniform", "low": 8.0, "high": 32768.0},
        "params.model.user_norm": {"type": "uniform", "low": 0.0, "high": 1.0},
        "params.model.item_norm": {"type": "uniform", "low": 0.0, "high": 1.0},
    }
    pooled_ease_stage_space = {"params.model.source_norm": {"type": "uniform", "low": 0.0, "high": 1.0}}
    filter_stage_space = {"params.model.filter_rank": {"type": "int", "low": 2, "high": 512, "log": True}}
    #: the rank's choices reach past both edges the stage met (512 on ml1m-ml100k, 32 on user-overlap-full)
    factor_stage_space = {
        "params.model.factor_rank": {"type": "categorical", "choices": [16, 32, 64, 128, 256, 512, 1024]},
        "params.model.factor_reg": {"type": "loguniform", "low": 1.0e-3, "high": 1.0e4},
        "params.model.factor_alpha": {"type": "loguniform", "low": 0.1, "high": 1.0e4},
    }

    @classmethod
    def tuning_stages(cls, encoder, fusion, adaptation) -> list[TuningStage]:
        """EASE, the low-pass filter and the iALS term of the forms that train on the target (target-only,
        l2sp, joint); the ease stage also searches the adaptation's lever (and, for a prior, the source
        EASE's L2). zero-shot has no target rows to add terms over: EASE alone, not an ensemble."""
        if not adaptation.uses_target:
            return []
        ease = copy.deepcopy(cls.ease_stage_space)
        if adaptation.closed_form_pooled:
            ease.update(copy.deepcopy(cls.pooled_ease_stage_space))
        elif adaptation.uses_source:  # a prior: the source's EASE is solved with its own L2
            ease["params.model.source_reg_weight"] = copy.deepcopy(cls.search_space["params.model.source_reg_weight"])
        ease.update(copy.deepcopy(adaptation.closed_form_search_space))
        m = "params.model."
        return [
            TuningStage("ease", ease, {m + "ease_weight": 1.0, m + "filter_rank": 0, m + "factor_rank": 0},
                        m + "ease_weight", {m + "ease_weight": 0.0}),
            TuningStage("lowpass", copy.deepcopy(cls.filter_stage_space),
                        {m + "ease_weight": 0.0, m + "filter_weight": 1.0, m + "factor_rank": 0},
                        m + "filter_weight", {m + "filter_rank": 0}),
            TuningStage("ials", copy.deepcopy(cls.factor_stage_space),
                        {m + "ease_weight": 0.0, m + "filter_rank": 0, m + "factor_weight": 1.0},
                        m + "factor_weight", {m + "factor_rank": 0}),
        ]

    def check(self, strategy):
        if strategy.encoder.role != "id" or set(strategy.fusion.uses) != {"id"}:
            raise ConfigError(f"{strategy.path}.encoder", "params.model.family: ease is an item-ID model; use "
                              "encoder: id and fusion: id")
        if type(strategy.adaptation).closed_form is Adaptation.closed_form:
            raise ConfigError(f"{strategy.path}.adaptation", f"{strategy.adaptation.name!r} lists family ease "
                              "but implements no closed_form(problem)")

    @classmethod
    def strategy_space(cls, encoder, fusion, adaptation) -> dict:
        space = copy.deepcopy(cls.pooled_search_space if adaptation.closed_form_pooled else cls.search_space)
        space.update(copy.deepcopy(adaptation.closed_form_search_space))
        return space

    @classmethod
    def documented_spaces(cls, adaptations) -> dict:
        return {"model": copy.deepcopy(cls.search_space), "pooled_model": copy.deepcopy(cls.pooled_search_space),
                "stages": {"ease": copy.deepcopy(cls.ease_stage_space), "lowpass": copy.deepcopy(cls.filter_stage_space),
                           "ials": copy.deepcopy(cls.factor_stage_space)},
                "pooled_ease_stage": copy.deepcopy(cls.pooled_ease_stage_space),
                "adaptation": {a.name: copy.deepcopy(a.cls.closed_form_search_space) for a in adaptations
                               if a.cls.closed_form_search_space}}

    def fit(self, ctx, strategy):
        return strategy.adaptation.closed_form(ItemItemProblem(ctx, strategy.options, strategy.adaptation.name))
