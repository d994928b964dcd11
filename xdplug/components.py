"""One documented base class per component kind.

A plugin provides a component by subclassing one of these classes, setting
``name`` and ``description``, and registering the class from the matching
``register_*`` hook. Options come from the config's ``params`` mapping and are
checked against ``defaults`` when the component is built, before any training:
an unknown key or a value of the wrong type is a :class:`ConfigError`.

The engine calls only the methods documented here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from .errors import ConfigError
from .options import Option, split_declarations

if TYPE_CHECKING:  # pragma: no cover - imports for type checkers only
    import numpy as np
    import torch

    from .data.catalog import ItemCatalog
    from .data.crossdomain import CrossDomainData
    from .data.raw import RawDomains
    from .evaluation import RankingResult
    from .context import FitContext
    from .model.linear import ItemItemProblem
    from .model.session import TrainingSession


KINDS = ("encoder", "fusion", "adaptation", "family", "evaluator", "baseline", "dataset")

#: the model family of a strategy whose ``params.model`` names none (and of an adaptation that declares none)
DEFAULT_FAMILY = "embedding"


def resolve_params(cls: type, params: dict | None, path: str) -> dict:
    """Merge ``params`` over ``cls.defaults``; reject unknown keys and values outside their declaration."""
    params = dict(params or {})
    merged = dict(cls.defaults)
    open_keys = getattr(cls, "open_params", False)
    options = declared_options(cls)
    for key, value in params.items():
        if key not in cls.defaults:
            if open_keys:
                merged[key] = value
                continue
            allowed = ", ".join(sorted(cls.defaults)) or "(none)"
            raise ConfigError(
                f"{path}.{key}", f"unknown option for {cls.kind} {cls.name!r}; allowed: {allowed}"
            )
        merged[key] = options[key].check(value, f"{path}.{key}")
    return merged


def declared_options(cls: type) -> dict[str, Option]:
    """The :class:`Option` of each of ``cls``'s options (plain defaults declare their type only)."""
    own = cls.__dict__.get("_options")
    if own is not None and set(own) == set(cls.defaults):
        return own
    options, _ = split_declarations(cls.defaults)
    return options


class Component:
    """Common ground of every component: a name, a one-line description, options."""

    kind: ClassVar[str] = ""
    #: the name configs use; unique per kind across all loaded plugins
    name: ClassVar[str] = ""
    #: one line shown by ``xdplug components``
    description: ClassVar[str] = ""
    #: option names with their default values, or :class:`xdplug.options.Option` declarations
    #: (type, bounds or choices); a plain default's type is the option's type. After class
    #: creation ``defaults`` holds plain values and :func:`declared_options` the declarations.
    defaults: ClassVar[dict[str, Any]] = {}
    #: accept keys beyond ``defaults`` (for components that pass options through, e.g. RecBole)
    open_params: ClassVar[bool] = False
    #: the default search space of this component's options when a config tunes it:
    #: ``{"params.<option>": distribution}`` for a baseline, ``{"params.<kind>.<option>": ...}``
    #: for an encoder, fusion or adaptation (see :mod:`xdplug.spaces`); checked at registration
    search_space: ClassVar[dict[str, dict]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "defaults" in cls.__dict__:
            cls._options, cls.defaults = split_declarations(cls.__dict__["defaults"])

    def __init__(self, params: dict | None = None, path: str | None = None):
        self.params = resolve_params(type(self), params, path or f"{self.kind}:{self.name}")

    def check_files(self) -> None:
        """Check, before a run starts, the files this component will read from this machine (a model
        directory, say): a missing one is a :class:`~xdplug.errors.ConfigError` naming the option.

        Called when a config is validated, not when an instance is built: an exported
        artifact is rebuilt from its spec where those files may be absent (a frozen text
        table serves without its model). Default: nothing to check.
        """

    def check_components(self, registry) -> None:
        """Check, when a config is validated, the other components this one reads by name from
        ``registry`` (a text baseline's encoder): an unknown or unfit one is a
        :class:`~xdplug.errors.ConfigError` naming the option. At fit time the component gets
        the same registry from ``ctx.registry``. Default: it reads none.
        """


class Encoder(Component):
    """Turns items into vectors.

    ``role`` says which part of the item vector the encoder feeds: ``"text"``
    (content that transfers across domains and reaches items no one has
    interacted with) or ``"id"`` (a learned vector per item ID).

    Optional: ``encode(texts: list[str]) -> np.ndarray`` of shape ``[len(texts), d]``, frozen
    vectors for a list of texts. Text encoders that can give such vectors implement it; the text
    baselines (``text-knn``, ``text-cf``, ``text-gcn``, ``AlphaRec``) read it for the encoder
    their ``params.encoder.name`` names, and refuse at config time one without it. There is
    no default here: a missing ``encode`` is the signal.
    """

    kind = "encoder"
    role: ClassVar[str] = "text"

    def build(self, catalog: ItemCatalog, device: torch.device) -> torch.nn.Module:
        """Return a module mapping item indices to vectors.

        The module's ``forward(items: LongTensor) -> FloatTensor[len(items), out_dim]``
        takes indices into ``catalog`` (the union of both domains' items) and it
        has an integer attribute ``out_dim``. Frozen encoders return a module
        without trainable parameters; fine-tuned ones expose theirs.
        """
        raise NotImplementedError


class Fusion(Component):
    """Combines the text part and the ID part of an item into one vector.

    ``uses`` names the parts the fusion reads (``{"text"}``, ``{"id"}`` or both).
    """

    kind = "fusion"
    uses: ClassVar[frozenset[str]] = frozenset({"text", "id"})

    def build(self, dim: int) -> torch.nn.Module:
        """Return a module ``forward(text, ids, id_known) -> FloatTensor[n, dim]``.

        ``text`` and ``ids`` are ``[n, dim]`` tensors (``None`` for a part the
        fusion does not use); ``id_known`` is a boolean ``[n]`` tensor that is
        ``False`` for items whose ID was never trained. For those items the
        result must not depend on ``ids``: an untrained ID carries no signal.
        """
        raise NotImplementedError


class Adaptation(Component):
    """How source knowledge reaches the target: a training schedule plus losses.

    ``uses_source`` is ``False`` only for the no-transfer control; ``uses_target``
    is ``False`` for zero-shot transfer (the model never sees target training
    interactions).
    """

    kind = "adaptation"
    uses_source: ClassVar[bool] = True
    uses_target: ClassVar[bool] = True
    #: the model families (``params.model.family``) this adaptation runs in, by name
    families: ClassVar[frozenset[str]] = frozenset({DEFAULT_FAMILY})
    #: the search space of this adaptation in a closed-form family (the item-item family), where its
    #: options act on the Gram-matrix scale; ``search_space`` is the embedding family's
    closed_form_search_space: ClassVar[dict[str, dict]] = {}
    #: its closed form pools both domains' rows into one Gram matrix (the family's pooled search space applies)
    closed_form_pooled: ClassVar[bool] = False

    def fit(self, session: TrainingSession) -> None:
        """Train ``session.model`` through one or more phases of ``session.train``."""
        raise NotImplementedError

    def closed_form(self, problem: ItemItemProblem):
        """Its closed form in a family that solves one: return a scorer from ``problem``. Each such family
        passes its own problem (the item-item family an :class:`~xdplug.model.linear.ItemItemProblem`;
        a factor family its own), with the verbs ``problem.target()``, ``problem.source()``,
        ``problem.with_prior(w)`` and ``problem.pooled(w)``; the item-item one also takes a ``B`` of its
        own through ``problem.scorer(b)``. ``closed_form_search_space`` is this method's search space."""
        raise NotImplementedError

    def model_parts(self, model) -> dict:
        """Modules this adaptation adds to the model when it is built (``{name: nn.Module}``), trained
        in ``fit`` and stored with the model's weights, so a loaded artifact scores the same.
        ``user_bridge`` is called on target user vectors: ``(model, u, vectors, side) -> u``."""
        return {}


@dataclass(frozen=True)
class Strategy:
    """A strategy resolved against the registry (``xdplug.spec.resolve_strategy``): what its family's
    ``check`` and ``fit`` get."""

    encoder: Encoder
    fusion: Fusion
    adaptation: Adaptation
    family: ModelFamily
    #: the family's options (``params.model``), with ``family`` itself
    options: dict
    registry: Any
    #: the config key path of the strategy, for error messages
    path: str


@dataclass(frozen=True)
class TuningStage:
    """One component of an ensemble strategy, as a staged search tunes it (``ModelFamily.tuning_stages``).

    A staged search fits the strategy with ``alone`` written over it (the other components switched
    off, this one at full weight) and searches ``space`` (this component's own parameters, the
    earlier stages' choices fixed); the blend stage then searches each component's ``weight`` (a
    parameter path) over the stored validation scores, and writes ``off`` where a component's
    weight is 0 (so the fitted blend does not compute it). A family whose stages refine one model
    (``ModelFamily.blends_stages = False``) has no blend: ``weight`` and ``off`` stay unset.
    """

    name: str
    space: dict
    alone: dict
    weight: str | None = None
    off: dict = field(default_factory=dict)
    #: the fraction of the method's fits this stage gets by default (None: by parameter count). A family
    #: fixes its core's share so strategies with more levers do not search a weaker core
    share: float | None = None


class ModelFamily(Component):
    """A model family: what a strategy's encoder, fusion and adaptation become, and how it is fitted.

    ``params.model.family`` names the family; the rest of ``params.model`` are its options
    (``defaults``) and ``search_space`` their default tuning ranges. A strategy runs in a family
    only where its adaptation lists the family's name in ``Adaptation.families``.
    """

    kind = "family"
    #: ``True``: a staged search's stages are components of an ensemble, weighed at the end on their
    #: stored scores; ``False``: they are successive refinements of one model (a core, then levers on
    #: top of it), and the result is the best stage's model, every earlier choice fixed (no blend)
    blends_stages: ClassVar[bool] = True
    #: how an artifact restores a fitted strategy of this family: ``"state"`` (the transfer model's
    #: weights are stored and loaded into ``model.strategy.build_model``'s model), ``"refit"``
    #: (training-free and deterministic: fitted again from the stored data at load) or ``None``
    export: ClassVar[str | None] = None
    #: the ``dataset.protocol.task`` values its strategies rank for (``xdplug.tasks``); a config asking a
    #: strategy of this family for another task is refused at validation. Under ``next-item`` its scorer
    #: has ``score_split(users, split)`` (see ``Baseline.fit``)
    tasks: ClassVar[tuple[str, ...]] = ("general",)

    def check(self, strategy: Strategy) -> None:
        """Configuration-time checks of a resolved strategy in this family (nothing is built): raise
        :class:`ConfigError` naming the key (``strategy.path``) for a combination the family cannot fit."""

    @classmethod
    def strategy_space(cls, encoder: type, fusion: type, adaptation: type) -> dict:
        """The default search space of a strategy of this family, from its components' classes: the
        family's ``search_space`` and each component's."""
        import copy

        space = copy.deepcopy(cls.search_space)
        for part in (encoder, fusion, adaptation):
            space.update(copy.deepcopy(part.search_space))
        return space

    @classmethod
    def documented_spaces(cls, adaptations: list) -> dict:
        """This family's default spaces as ``configs/search_spaces.yaml`` lists them (``adaptations``: the
        registry's adaptation entries)."""
        import copy

        return {"model": copy.deepcopy(cls.search_space)}

    def fit(self, ctx: FitContext, strategy: Strategy):
        """Fit ``strategy`` on ``ctx.data`` and return a scorer (the interface of ``Baseline.fit``'s)."""
        raise NotImplementedError

    def update_rows(self, ctx: FitContext, model, users: np.ndarray) -> tuple:
        """``xdplug update``'s fine-tuning on the grown data ``ctx.data``: the scorer its
        ``TrainingSession`` is handed (None: the transfer model's) and the rows a phase batches to
        train ``users``. Default: the users themselves."""
        return None, users

    @classmethod
    def tuning_stages(cls, encoder: type, fusion: type, adaptation: type) -> list[TuningStage]:
        """The components a staged search (``tuning.staged: true``) tunes one by one, in order, for a
        strategy of these component classes; empty (the default): its strategies are not ensembles."""
        return []

    @classmethod
    def blend(cls, scores: list, weights: list[float]):
        """The scores of the blend, from each component's stored scores when fitted alone (``[users,
        items]`` tensors over every target user) and the blend weights, exactly as this family's
        fitted strategy with those weights scores. Default: each component divided by the spread of
        its scores over all target users, times its weight, summed."""
        total = None
        for part, weight in zip(scores, weights):
            term = part * (float(weight) / (float(part.double().std(correction=0)) + 1e-12))
            total = term if total is None else total + term
        return total

    def build(self, strategy: Strategy, data: CrossDomainData, device: torch.device, seed: int, **restore):
        """The untrained model of ``strategy`` on ``data`` (``export = "state"``: an artifact loads its
        weights into it). ``restore`` carries what an artifact stored about the layout (``text_module``,
        ``user_rows``, ``n_union_users``); a family ignores what it does not read. The model serves an
        artifact through ``item_vectors()``, ``score_users("target", users, vectors=...)``,
        ``new_user_vector(vectors, catalog_rows)`` and ``scores_against(u, vectors, rows)``; a model whose
        ``reads_order`` is True gets a history's rows in the order given (oldest first), others sorted.
        """
        raise NotImplementedError


class Evaluator(Component):
    """Turns rankings into metrics.

    ``scope = "run"`` evaluators see one run's rankings and return flat metrics;
    ``scope = "report"`` evaluators see every finished run of a report and
    return rows for a comparison table (significance tests, for example).
    """

    kind = "evaluator"
    #: ``"run"`` or ``"report"``; anything else is refused at registration
    scope: ClassVar[str] = "run"
    #: report scope: the keys of each comparison row, in display order. ``method``,
    #: ``reference`` and ``metric`` come first; the report shows every other key as a column
    row_keys: ClassVar[tuple[str, ...]] = ("method", "reference", "metric")
    #: report scope: the row keys holding p-values behind the report's significance markers
    #: (the larger one counts); empty: the rows mark nothing
    p_value_keys: ClassVar[tuple[str, ...]] = ()
    #: run scope: the direction of each metric family it emits (``{"gini": "lower"}``): ``"higher"`` or
    #: ``"lower"`` is better. The report marks a column's best and orders methods by it; a family no
    #: evaluator declares is higher-is-better (accuracy)
    directions: ClassVar[dict[str, str]] = {}
    #: run scope: the slices its metric names carry after ``|`` (``ndcg@10|cold items``): label ->
    #: one line saying which users or items the slice holds. A label followed by a group
    #: (``users 1-5``) is that label's slice, one group of it
    slices: ClassVar[dict[str, str]] = {}
    #: run scope: the label (one of ``slices``) of the slice ranked among cold items only: the report
    #: tests it against a reference of its own (``evaluation.cold_reference``, else the best baseline
    #: on it) and the verdict gives it its own sentence; None: it has none
    cold_slice: ClassVar[str | None] = None

    def evaluate(self, result: RankingResult) -> dict[str, float]:
        """Return ``{metric_name: value}`` for one run (``scope = "run"``)."""
        raise NotImplementedError

    def per_user(self, result: RankingResult) -> dict[str, np.ndarray]:
        """Return per-user values ``{metric_name: array[n_users]}`` (optional)."""
        return {}

    def compare(self, runs: list[dict], reference: str) -> list[dict]:
        """Return comparison rows of every method against ``reference`` (``scope = "report"``)."""
        raise NotImplementedError


class Baseline(Component):
    """A classic collaborative-filtering control, trained on the target split.

    ``needs_shared_ids`` says the baseline only applies where the domains share
    item or user IDs (pooled CF); the runner records it as not applicable
    otherwise instead of inventing a number.
    """

    kind = "baseline"
    needs_shared_ids: ClassVar[bool] = False
    #: can be trained on pooled source + target interactions (``pooled: true``)
    supports_pooling: ClassVar[bool] = False
    #: extra search-space dimensions of the pooled baseline (``pooled: true``)
    pooled_search_space: ClassVar[dict[str, dict]] = {}
    #: the ``dataset.protocol.task`` values it ranks for (``xdplug.tasks``); a config asking it for
    #: another task is refused at validation. Under ``next-item`` a scorer whose ranking depends on
    #: the user's recent items has ``score_split(users, split)``, see :meth:`fit`
    tasks: ClassVar[tuple[str, ...]] = ("general",)
    #: how ``xdplug export`` restores the fitted baseline from an artifact: ``"state"`` (the
    #: artifact stores :meth:`export_state`; loading calls :meth:`restore`), ``"refit"`` (loading
    #: calls :meth:`fit` again on the stored data: only for training-free, deterministic
    #: baselines) or ``None`` (it cannot be exported)
    export: ClassVar[str | None] = None

    def fit(self, ctx: FitContext, pooled: bool = False):
        """Train on ``ctx.data`` and return a scorer.

        ``pooled`` asks for the naive transfer control: the same model trained
        on the source's interactions stacked under the target's training rows.

        The scorer has ``score(users: LongTensor) -> FloatTensor[len(users), n_target_items]``
        over the target's canonical item indices, and an optional boolean
        ``item_known`` array telling which target items it could learn about.
        A scorer that can rank for a new user given only their target items has
        ``score_history(items: list[int]) -> FloatTensor[1, n_target_items]``
        (``xdplug recommend --history``).

        Under ``dataset.protocol.task: next-item`` the input of a user depends on the split
        ranked (validation targets follow the training sequence, test targets follow it and
        the validation target): a scorer that reads it has
        ``score_split(users: LongTensor, split: str) -> FloatTensor[len(users), n_target_items]``,
        which the ranking calls with ``"valid"`` or ``"test"``; the inputs are
        ``ctx.data.sequences(split)``. ``score(users)`` then scores from the latest history.
        """
        raise NotImplementedError

    def export_state(self, scorer) -> dict[str, torch.Tensor]:
        """The tensors that restore ``scorer`` (``export = "state"``); saved with ``torch.save``."""
        raise NotImplementedError

    def restore(self, ctx: FitContext, state: dict[str, torch.Tensor], pooled: bool = False):
        """A scorer rebuilt on ``ctx.data`` from :meth:`export_state`'s tensors, without training."""
        raise NotImplementedError


class DatasetRecipe(Component):
    """Prepares the raw source and target domains of a cross-domain benchmark."""

    kind = "dataset"

    def origin(self) -> str:
        """One line saying where the files come from (shown by ``xdplug datasets``)."""
        return ""

    def load(self, cache_dir: str) -> RawDomains:
        """Return the raw domains (interactions and item tables) and how they align."""
        raise NotImplementedError

    @classmethod
    def update_columns(cls, params: dict) -> dict[str, dict[str, str]]:
        """The target's own column names under ``params``, for ``xdplug update``'s files.

        ``{"interactions": {role: column}, "items": {field: column}}`` with roles
        ``user``, ``item``, ``rating``, ``timestamp`` and, for the item table,
        ``item`` (its ID column) and the text template's fields. New interactions
        and item tables are then accepted in the names the user's files have.
        Read from ``params`` alone (the files need not exist where an artifact is
        updated). Default: none, the standard names.
        """
        return {"interactions": {}, "items": {}}
