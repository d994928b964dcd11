"""The factor family (``params.model.family: factor``): iALS factors moved across domains.

Where the target is sparse a tuned iALS (Rendle et al. 2022) is the control to beat. This family
keeps its model, ``x_u . y_i`` fitted to every pair with weight ``alpha`` on an interaction and 1
elsewhere, and moves the source into it through the side the domains share (the items they both
list, or the users they both know; the core's :class:`xdplug.api.FactorModel` solves it):

* ``target-only``: iALS on the target alone (the family's own no-transfer control);
* ``joint``: collective factorisation (Singh and Gordon 2008): both domains' matrices share the
  factors of the shared side, the source's loss weighted by ``source_weight`` (0: target-only
  exactly); ``offset_reg`` > 0 gives the target its own offset on each shared factor;
* ``l2sp``: iALS fitted on the source first, then the target's shared factors pulled towards
  the source's with ``weight`` (L2-SP for factors);
* ``zero-shot`` (shared items): item factors from the source only; a target user's factor is
  solved from their target items against them;
* text priors, where the encoder gives text (``encoder: bert, fusion: gate``): the prior mean of
  an item's factor is ``W t_i``, ``t_i`` its frozen text vector and ``W`` refitted every sweep by
  ridge regression on the items with interactions (CTR, Wang and Blei 2011); ``text_weight`` is
  its strength. An item with no interaction in any domain gets its prior ``W t_i``.

Each adaptation that lists ``factor`` carries its form through ``closed_form(problem)``, the same
verbs the item-item family offers (``target``, ``source``, ``with_prior``, ``pooled``), over the
:class:`FactorProblem` below. Deterministic given the seed: an artifact refits it from its data.
"""

from __future__ import annotations

import copy

import numpy as np
import scipy.sparse as sp
import torch

from xdplug.api import (Adaptation, Bool, Choice, ConfigError, FactorBlock, FactorModel, FixedPrior, Float, Int,
                        ModelFamily, NotApplicableError, TextMap, TextPrior, TuningStage)

from ..baselines.ials import IALS


#: the core's share of a staged search's fits, the same for every strategy of the family: split by
#: parameter count, a strategy with two levers (text and a source) got a core one fit short of the
#: others' and a weaker iALS under its levers (ml1m-ml100k-sparse, 20 fits: 7 vs 8)
CORE_SHARE = 0.4


class FactorFamily(ModelFamily):
    name = "factor"
    description = ("iALS factors across domains: shared factors (collective), L2-SP towards the source's, "
                   "a target offset, text priors on item factors")
    export = "refit"
    defaults = {
        "factors": Int(128, 1, 4096, help="factor dimension"),
        "regularization": Float(0.01, 0, 1e6, help="L2 on every factor (iALS's parametrisation)"),
        "alpha": Float(1.0, 0, 1e6, low_open=True, help="weight of an observed pair (an unobserved one: 1)"),
        "iterations": Int(15, 1, 1000, help="ALS sweeps"),
        "use_cg": Bool(True, help="3 conjugate-gradient steps per row and sweep, as implicit (false: exact solves)"),
        "nu": Float(0.0, 0, 4, help="frequency-scaled L2 (Rendle et al. 2022): reg x (count / mean)^nu"),
        "offset_reg": Float(0.0, 0, 1e9, help="joint: L2 of the target's own offset on the shared factors (0: none)"),
        "text_weight": Float(1.0, 0, 1e9, help="text encoders: strength of the text prior on item factors"),
        "text_ridge": Float(1.0, 0, 1e9, low_open=True, help="L2 of the text map W's ridge regression"),
        "text_map": Choice("shared", ["shared", "domain"], help="joint over shared users: one text map W fitted on "
                           "both domains' items (shared) or one per domain"),
        "reg_scale": Float(1.0, 0, 1e6, low_open=True, help="multiplies regularization (a staged search's refine "
                           "stage re-tunes the core's L2 with the levers on)"),
        "alpha_scale": Float(1.0, 0, 1e6, low_open=True, help="multiplies alpha (the refine stage, as reg_scale)"),
    }
    #: the iALS control's space, read from it (``params.X`` -> ``params.model.X``), so the two search alike
    search_space = {f"params.model.{path.removeprefix('params.')}": copy.deepcopy(dist)
                    for path, dist in IALS.search_space.items()}
    #: added where the encoder gives text: the prior's strength
    text_search_space = {"params.model.text_weight": {"type": "loguniform", "low": 1.0e-2, "high": 1.0e4}}
    #: the refine stage (staged tuning, after the levers): the core's L2 and alpha rescaled around their
    #: choice, and the frequency scaling of the L2 (Rendle et al. 2022); neutral (1, 1, 0): the transfer stage.
    #: A source or a text prior changes how much each factor is determined by data, so the core's
    #: regularisation, chosen with the levers off, is rarely the best one with them on.
    refine_search_space = {"params.model.reg_scale": {"type": "loguniform", "low": 0.1, "high": 10.0},
                           "params.model.alpha_scale": {"type": "loguniform", "low": 0.1, "high": 10.0},
                           "params.model.nu": {"type": "uniform", "low": 0.0, "high": 1.0}}

    def check(self, strategy):
        uses, role = set(strategy.fusion.uses), strategy.encoder.role
        if "id" not in uses:
            raise ConfigError(f"{strategy.path}.fusion", "params.model.family: factor learns a factor per item ID; "
                              "use fusion: id (no text) or a fusion of text and id (gate: text priors)")
        if "text" in uses and (role != "text" or not callable(getattr(strategy.encoder, "encode", None))):
            raise ConfigError(f"{strategy.path}.encoder", f"the factor family's text priors read frozen text vectors; "
                              f"{strategy.encoder.name!r} has role {role!r} and no encode(texts)")
        if "text" not in uses and role != "id":
            raise ConfigError(f"{strategy.path}.fusion", f"{strategy.fusion.name!r} ignores the text of "
                              f"{strategy.encoder.name!r}; use a fusion of text and id (gate) or encoder: id")
        if type(strategy.adaptation).closed_form is Adaptation.closed_form:
            raise ConfigError(f"{strategy.path}.adaptation", f"{strategy.adaptation.name!r} lists family factor "
                              "but implements no closed_form(problem)")

    @classmethod
    def strategy_space(cls, encoder, fusion, adaptation) -> dict:
        text = cls.text_search_space if encoder.role == "text" and "text" in fusion.uses else {}
        return copy.deepcopy({**cls.search_space, **text, **adaptation.closed_form_search_space})

    #: staged tuning (``tuning.staged: true``) refines one model: its iALS core first (the transfer
    #: levers at 0: the target-only model, searched over the iALS control's space), then only the
    #: levers (the source's weight, the text prior's strength) with the core fixed, then ``refine``:
    #: the core's L2 and alpha rescaled (and nu) with the levers fixed. Tuned together, 4-5 parameters
    #: overfit 10-20 trials; the core alone is what the iALS control tunes.
    blends_stages = False

    @classmethod
    def tuning_stages(cls, encoder, fusion, adaptation) -> list[TuningStage]:
        """``core`` (factors, regularisation, alpha; every transfer lever at 0), ``transfer`` (the
        adaptation's weight and the text prior's strength), then ``refine`` (:attr:`refine_search_space`).
        With no lever (``target-only``, ``encoder: id``: the levered strategies' no-transfer twin) there is
        no transfer stage: core, then refine, so the twin is tuned like them with the same fits.
        ``tuning.stages: {core: .., transfer: ..}`` keeps the first two only."""
        space = cls.strategy_space(encoder, fusion, adaptation)
        levers = {p: r for p, r in space.items() if p not in cls.search_space}
        core = {p: r for p, r in space.items() if p in cls.search_space}
        return [TuningStage("core", core, {p: 0.0 for p in levers}, share=CORE_SHARE),
                *([TuningStage("transfer", levers, {})] if levers else []),
                TuningStage("refine", copy.deepcopy(cls.refine_search_space), {})]

    @classmethod
    def documented_spaces(cls, adaptations) -> dict:
        return {"model": copy.deepcopy(cls.search_space), "text": copy.deepcopy(cls.text_search_space),
                "refine": copy.deepcopy(cls.refine_search_space),
                "adaptation": {a.name: copy.deepcopy(a.cls.closed_form_search_space) for a in adaptations
                               if "factor" in a.cls.families and a.cls.closed_form_search_space}}

    def fit(self, ctx, strategy):
        text = "text" in strategy.fusion.uses
        return strategy.adaptation.closed_form(FactorProblem(ctx, strategy.options, strategy.adaptation.name,
                                                             strategy.encoder if text else None))


class FactorScorer:
    """Scores = a target user's factor dotted with every target item's factor."""

    def __init__(self, users: np.ndarray, items: np.ndarray, item_known: np.ndarray, device, history):
        self.users = torch.as_tensor(users, dtype=torch.float32, device=device)
        self.items = torch.as_tensor(items, dtype=torch.float32, device=device)
        self.item_known = item_known
        self._history = history

    def score(self, users: torch.Tensor) -> torch.Tensor:
        return self.users[users.to(self.users.device)] @ self.items.T

    def score_history(self, items: list[int]) -> torch.Tensor:
        """A new user's scores: their factor solved from their target items (one exact half-step)."""
        row = sp.csr_matrix((np.ones(len(items)), (np.zeros(len(items), dtype=int), items)),
                            shape=(1, self.items.shape[0]))
        user = torch.as_tensor(self._history(row), dtype=torch.float32, device=self.items.device)
        return user @ self.items.T


class FactorProblem:
    """What an adaptation's ``closed_form`` gets in the factor family: the forms below each return a scorer.

    The shared side is the items both domains list (users shared only: the users), in one index space:
    the target's entities first, then the source's own. ``encoder``: a text encoder for the item priors.
    """

    def __init__(self, ctx, options: dict, label: str, encoder=None):
        self.ctx, self.options, self.label, self.encoder = ctx, options, label, encoder
        data = ctx.data
        self.by_items = len(data.shared_items) > 0
        self.by_users = not self.by_items and len(data.shared_users) > 0
        self._text: dict[str, np.ndarray] = {}

    # -- the forms ---------------------------------------------------------------------------------
    def target(self):
        """iALS on the target's training matrix (with text priors where the encoder gives text)."""
        self._refuse_offset()
        data = self.ctx.data
        if self.by_users:
            return self._fit([self._target_block()], data.n_target_users)
        return self._fit([self._target_block()], data.n_target_items)

    def pooled(self, weight: float):
        """Collective factorisation: the source's matrix shares the shared side's factors, its loss x ``weight``.
        Weight 0 with no offset and no text prior is target-only iALS exactly, and is fitted as such (a
        staged search's core stage fits it: the source's million interactions would change nothing)."""
        self._shared_or_refuse()
        if weight == 0 and not self.options["offset_reg"] and (self.encoder is None or not self.options["text_weight"]):
            return self.target()
        text_map = self._text_map()
        return self._fit([self._target_block(text_map=text_map), self._source_block(weight, text_map)],
                         self._n_shared(), offset_reg=self.options["offset_reg"])

    def with_prior(self, weight: float):
        """iALS on the source, then the target's shared factors pulled towards the source's with ``weight``."""
        self._refuse_offset()
        self._shared_or_refuse()
        source = self._model([self._source_block(1.0)], self._n_shared()).fit(self._iterations, self.ctx.seed)
        prior = FixedPrior(source.shared, weight, np.flatnonzero(source.shared_warm))
        return self._fit([self._target_block()], self._n_shared(), shared_priors=[prior])

    def source(self):
        """Zero-shot over shared items: item factors from the source alone; a target user's factor solved
        from their target items against them."""
        self._refuse_offset()
        if not self.by_items:
            raise NotApplicableError("params.model.family factor scores a target user with zero-shot through items "
                                     "both domains share; these domains share none")
        return self._fit([self._target_block(0.0), self._source_block(1.0)], self._n_shared(), fold_in=True)

    # -- the blocks ---------------------------------------------------------------------------------
    @property
    def _iterations(self) -> int:
        return int(self.options["iterations"])

    def _n_shared(self) -> int:
        data = self.ctx.data
        if self.by_items:
            return data.n_target_items + len(self._source_only("items"))
        return data.n_target_users + len(self._source_only("users"))

    def _source_only(self, kind: str) -> np.ndarray:
        data = self.ctx.data
        pairs = data.shared_items if kind == "items" else data.shared_users
        n = data.n_source_items if kind == "items" else data.n_source_users
        mask = np.ones(n, dtype=bool)
        mask[pairs[:, 1]] = False
        return np.flatnonzero(mask)

    def _source_columns(self, kind: str) -> np.ndarray:
        """The shared index of each source item (users)."""
        data = self.ctx.data
        pairs = data.shared_items if kind == "items" else data.shared_users
        n_target = data.n_target_items if kind == "items" else data.n_target_users
        cols = np.full(data.n_source_items if kind == "items" else data.n_source_users, -1)
        cols[pairs[:, 1]] = pairs[:, 0]
        only = self._source_only(kind)
        cols[only] = n_target + np.arange(len(only))
        return cols

    def _target_block(self, weight: float = 1.0, text_map: TextMap | None = None) -> FactorBlock:
        data = self.ctx.data
        m = data.matrix("target", "train").astype(np.float64).tocsr()
        if self.by_users:  # rows: target items (their own factors), columns: the shared users
            return FactorBlock(m.T.tocsr(), np.arange(data.n_target_users), weight,
                               self._item_priors("target", text_map))
        return FactorBlock(m, np.arange(data.n_target_items), weight)

    def _source_block(self, weight: float, text_map: TextMap | None = None) -> FactorBlock:
        m = self.ctx.data.matrix("source", "train").astype(np.float64).tocsr()
        if self.by_users:
            return FactorBlock(m.T.tocsr(), self._source_columns("users"), weight,
                               self._item_priors("source", text_map))
        return FactorBlock(m, self._source_columns("items"), weight)

    # -- text priors ------------------------------------------------------------------------------
    def _text_vectors(self, domain: str) -> np.ndarray:
        """Unit-length frozen text vectors of a domain's items (canonical order)."""
        if domain not in self._text:
            data = self.ctx.data
            texts = [data.catalog.texts[r] for r in data.catalog.rows(domain)]
            v = np.asarray(self.encoder.encode(texts), dtype=np.float64)
            self._text[domain] = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        return self._text[domain]

    def _text_prior(self, vectors: np.ndarray, text_map: TextMap | None = None) -> TextPrior:
        return TextPrior(vectors, self.options["text_weight"], self.options["text_ridge"], text_map)

    def _item_priors(self, domain: str, text_map: TextMap | None = None) -> list:
        return [self._text_prior(self._text_vectors(domain), text_map)] if self.encoder is not None else []

    def _text_map(self) -> TextMap | None:
        """Joint over shared users: both domains' items sit in the users' factor space, so one map
        (``text_map: shared``) learns from the source's many items as well as the target's few."""
        if self.encoder is None or not self.by_users or self.options["text_map"] != "shared":
            return None
        return TextMap(self.options["text_ridge"])

    def _shared_item_priors(self, n_shared: int) -> list:
        """Items shared: one text prior over the shared side (the target's items, then the source's own)."""
        if self.encoder is None or self.by_users:
            return []
        target = self._text_vectors("target")
        if n_shared == len(target):
            return [self._text_prior(target)]
        own = self._text_vectors("source")[self._source_only("items")]
        return [self._text_prior(np.vstack([target, own]))]

    # -- fitting -----------------------------------------------------------------------------------
    def _model(self, blocks, n_shared: int, shared_priors=(), offset_reg: float = 0.0) -> FactorModel:
        o = self.options
        return FactorModel(blocks, n_shared, int(o["factors"]), o["regularization"] * o["reg_scale"],
                           o["alpha"] * o["alpha_scale"], nu=o["nu"],
                           shared_priors=list(shared_priors) + self._shared_item_priors(n_shared),
                           offset_reg=offset_reg, solver="cg" if o["use_cg"] else "exact", dtype=torch.float32)

    def _fit(self, blocks, n_shared: int, shared_priors=(), offset_reg: float = 0.0, fold_in: bool = False):
        data = self.ctx.data
        self.ctx.log(f"factor {self.label}: {self.options['factors']} factors, {self._iterations} sweeps over "
                     f"{' + '.join(str(b.matrix.nnz) for b in blocks)} interactions, shared side "
                     f"{'users' if self.by_users else 'items'} ({n_shared})")
        model = self._model(blocks, n_shared, shared_priors, offset_reg).fit(self._iterations, self.ctx.seed)
        target = data.matrix("target", "train").astype(np.float64).tocsr()
        if self.by_users:  # users are the shared side, items the target block's rows
            users, items = model.block_columns(0), model.rows[0]
            known = model.row_warm[0] | bool(self.encoder is not None)

            def history(row):
                return _fold_in_user(model, row, items)
        else:
            items = model.block_columns(0)
            users = model.fold_in(target, 0) if fold_in else model.rows[0]
            known = model.shared_warm[:data.n_target_items] | bool(self.encoder is not None)

            def history(row):
                return model.fold_in(row, 0)
        return FactorScorer(users, items, np.asarray(known), self.ctx.device, history)

    def _refuse_offset(self):
        if self.options["offset_reg"]:
            raise ConfigError("params.model.offset_reg", f"the target's offset on shared factors is a term of joint; "
                              f"{self.label!r} has none (set offset_reg: 0)")

    def _shared_or_refuse(self):
        if not (self.by_items or self.by_users):
            raise NotApplicableError("params.model.family factor moves factors through items or users both domains "
                                     "share; these domains share neither")


def _fold_in_user(model: FactorModel, row: sp.csr_matrix, items: np.ndarray) -> np.ndarray:
    """Users shared: a new user's factor from their target items against the target items' factors."""
    helper = FactorModel([FactorBlock(row, np.arange(row.shape[1]))], row.shape[1], model.k, model.reg, model.alpha,
                         model.unobserved, solver="exact")
    helper.shared = items
    return helper.fold_in(row, 0)
