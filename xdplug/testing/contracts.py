"""Contract checks for components: what the engine relies on, asserted cheaply.

Each ``check_<kind>(cls)`` raises :class:`AssertionError` with a message
naming the component and the broken rule, and returns something useful to
look at further (the built module, the instance, the loaded data). They use
no pytest API, so they work in a notebook too.

The ``<Kind>Contract`` classes wrap them as pytest test methods. A plugin's
test suite subclasses one per component (optuna's storage-test pattern)::

    from xdplug.testing import FusionContract

    class TestSumFusion(FusionContract):
        fusion_class = SumFusion

The methods of ``AdaptationContract`` and ``BaselineContract`` that train use
the ``synthetic_data`` and ``tmp_path`` fixtures; ``xdplug.testing``'s pytest
plugin provides the first (it is installed with xdplug).

Importing this module imports neither torch nor RecBole; the checks do.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

from ..components import (DEFAULT_FAMILY, Adaptation, Baseline, Component, DatasetRecipe, Encoder, Evaluator, Fusion,
                          ModelFamily, resolve_params)
from ..errors import ConfigError
from ..tasks import check_tasks_declaration
from .synthetic import synthetic_catalog, tiny_ranking_result  # noqa: F401 - part of the contract API

__all__ = [
    "AdaptationContract",
    "BaselineContract",
    "DatasetContract",
    "EncoderContract",
    "EvaluatorContract",
    "FusionContract",
    "check_adaptation",
    "check_baseline",
    "check_component",
    "check_dataset",
    "check_encoder",
    "check_evaluator",
    "check_family",
    "check_fusion",
    "make_fit_context",
    "synthetic_catalog",
    "tiny_ranking_result",
]


def _expect(condition: Any, message: str) -> None:
    # explicit raises, not ``assert``: the checks must hold under ``python -O``
    # and read the same without pytest's assertion rewriting
    if not condition:
        raise AssertionError(message)


def _label(cls: type) -> str:
    return f"{getattr(cls, 'kind', '?')} {getattr(cls, 'name', '') or cls.__name__!r} ({cls.__module__}.{cls.__qualname__})"


# -- common ground ----------------------------------------------------------------------


def check_component(cls: type, base: type[Component], params: dict | None = None) -> Component:
    """Check what every component kind shares; return an instance built from ``params``.

    The class subclasses ``base`` (not ``base`` itself), has a one-line
    ``description`` and a ``name`` without whitespace, and its ``defaults``
    work with :func:`xdplug.components.resolve_params`: no options gives the
    defaults back, passing every default explicitly is accepted, and an
    unknown option is a :class:`ConfigError` (unless ``open_params``).
    """
    _expect(isinstance(cls, type), f"expected a class, got {cls!r}")
    _expect(issubclass(cls, base) and cls is not base,
            f"{cls.__qualname__} must subclass xdplug.components.{base.__name__}")
    label = _label(cls)
    _expect(cls.kind == base.kind, f"{label}: kind is {cls.kind!r}; do not override 'kind'")
    _expect(isinstance(cls.name, str) and cls.name.strip(), f"{label}: set 'name', the name configs use")
    _expect(not any(ch.isspace() for ch in cls.name), f"{label}: 'name' must contain no whitespace")
    _expect(isinstance(cls.description, str) and cls.description.strip(),
            f"{label}: set 'description', one line shown by `xdplug components`")
    _expect("\n" not in cls.description.strip(), f"{label}: 'description' must be one line")
    _expect(isinstance(cls.defaults, dict), f"{label}: 'defaults' must be a dict of option -> default")
    for key in cls.defaults:
        _expect(isinstance(key, str) and key.isidentifier(),
                f"{label}: option name {key!r} must be an identifier-like string")
    path = f"contract:{cls.name}"
    resolved = resolve_params(cls, None, path)
    _expect(resolved == cls.defaults, f"{label}: resolve_params(cls, None) must give the defaults back")
    try:
        resolve_params(cls, dict(cls.defaults), path)
    except ConfigError as exc:
        raise AssertionError(f"{label}: its own defaults are rejected as options: {exc}") from None
    if not cls.open_params:
        try:
            resolve_params(cls, {"__not_an_option__": 1}, path)
        except ConfigError:
            pass
        else:
            raise AssertionError(f"{label}: an unknown option was accepted; set open_params only on purpose")
    instance = cls(params, path)
    _expect(isinstance(instance.params, dict), f"{label}: __init__ must keep the resolved options in self.params")
    for key in cls.defaults:
        _expect(key in instance.params, f"{label}: self.params lacks option {key!r}")
    return instance


def _overrides(cls: type, base: type, method: str) -> bool:
    return getattr(cls, method) is not getattr(base, method)


# -- small inputs (in .synthetic) -------------------------------------------------------


def _per_user_ranking(result) -> dict:
    """recall, ndcg, hit at every K per user: what the runner stores for report evaluators."""
    import numpy as np

    hits = result.hits()
    n_pos = result.positive_counts()
    out = {}
    for k in result.ks:
        h = hits[:, :k]
        disc = 1.0 / np.log2(np.arange(2, k + 2))
        idcg = np.array([disc[: min(p, k)].sum() for p in n_pos])
        out[f"recall@{k}"] = h.sum(1) / np.maximum(n_pos, 1)
        out[f"ndcg@{k}"] = (h * disc[: h.shape[1]]).sum(1) / np.maximum(idcg, 1e-12)
        out[f"hit@{k}"] = h.any(1).astype(float)
    return out


def make_fit_context(data, workdir: str | Path, seed: int = 0, device: str = "cpu", registry=None, **train):
    """A :class:`~xdplug.training.FitContext` on ``data`` with small training settings.

    ``train`` overrides ``train.*`` config values (``epochs=1`` by default). ``registry`` is the one the
    context hands to components that read another one; without it, a fresh one of the installed plugins.
    """
    from ..plugins import installed_registry

    import torch

    from ..config import load_config
    from ..context import FitContext

    settings = {"epochs": 1, "batch_size": 256, "eval_batch_size": 512, "stopping_step": 1, **train}
    config = load_config(data={
        "baselines": [{"baseline": "contract"}],
        "train": settings,
        "evaluation": {"ks": [5, 10], "valid_metric": "ndcg@10", "user_groups": [5, 10],
                       "evaluators": ["ranking"]},
    })
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    return FitContext(data=data, seed=seed, device=torch.device(device), train=config["train"],
                      evaluation=config["evaluation"], workdir=workdir, registry=installed_registry(registry))


def _check_scorer(label: str, scorer, data) -> Any:
    import numpy as np
    import torch

    _expect(callable(getattr(scorer, "score", None)), f"{label}: fit must return a scorer with score(users)")
    n_users = min(8, data.n_target_users)
    users = torch.arange(n_users)
    with torch.no_grad():
        scores = scorer.score(users)
        again = scorer.score(users)
        part = scorer.score(users[2:5])
    _expect(isinstance(scores, torch.Tensor) and scores.is_floating_point(),
            f"{label}: score(users) must return a float tensor, got {type(scores).__name__}")
    _expect(tuple(scores.shape) == (n_users, data.n_target_items),
            f"{label}: score(users) returned shape {tuple(scores.shape)}, expected "
            f"({n_users}, n_target_items={data.n_target_items})")
    _expect(not torch.isnan(scores).any(), f"{label}: score(users) returned NaN")
    _expect(torch.equal(scores.cpu(), again.cpu()), f"{label}: scoring the same users twice gave different scores")
    _expect(torch.allclose(scores[2:5].cpu(), part.cpu(), atol=1e-5),
            f"{label}: a user's scores depend on the other users of the batch; the engine scores in batches")
    known = getattr(scorer, "item_known", None)
    if known is not None:
        known = np.asarray(known)
        _expect(known.shape == (data.n_target_items,),
                f"{label}: item_known has shape {known.shape}, expected ({data.n_target_items},)")
    return scores


# -- encoders ---------------------------------------------------------------------------


def check_encoder(cls: type, params: dict | None = None, catalog=None, device: str = "cpu"):
    """An encoder's module maps catalog rows to ``[n, out_dim]`` finite floats, row by row.

    ``catalog`` defaults to :func:`synthetic_catalog`. Returns the built module.
    """
    import torch

    encoder = check_component(cls, Encoder, params)
    label = _label(cls)
    _expect(cls.role in ("text", "id"), f"{label}: role must be 'text' or 'id', got {cls.role!r}")
    _expect(_overrides(cls, Encoder, "build"), f"{label}: implement build(catalog, device)")
    catalog = catalog if catalog is not None else synthetic_catalog()
    n = len(catalog)
    module = encoder.build(catalog, torch.device(device))
    _expect(isinstance(module, torch.nn.Module), f"{label}: build must return a torch.nn.Module")
    out_dim = getattr(module, "out_dim", None)
    _expect(isinstance(out_dim, int) and not isinstance(out_dim, bool) and out_dim > 0,
            f"{label}: the module needs a positive integer attribute 'out_dim', got {out_dim!r}")
    module.eval()
    with torch.no_grad():
        everything = module(torch.arange(n, device=device))
        some = module(torch.tensor([n - 1, 0, n - 1], device=device))
    _expect(isinstance(everything, torch.Tensor) and everything.is_floating_point(),
            f"{label}: forward must return a float tensor")
    _expect(tuple(everything.shape) == (n, out_dim),
            f"{label}: forward on {n} items returned shape {tuple(everything.shape)}, expected ({n}, {out_dim})")
    _expect(bool(torch.isfinite(everything).all()), f"{label}: forward returned NaN or inf")
    _expect(torch.allclose(some, everything[[n - 1, 0, n - 1]], atol=1e-5),
            f"{label}: an item's vector must not depend on which other items are in the batch")
    return module


# -- fusions ----------------------------------------------------------------------------


def check_fusion(cls: type, params: dict | None = None, dim: int = 8, n: int = 12, seed: int = 0):
    """A fusion returns ``[n, dim]`` and never lets an untrained ID through.

    For rows with ``id_known = False``: changing the ID tensor changes none of
    their outputs, changing *their* IDs changes no output at all, and no
    gradient reaches their IDs. Returns the built module.
    """
    import torch

    fusion = check_component(cls, Fusion, params)
    label = _label(cls)
    uses = set(cls.uses)
    _expect(uses and uses <= {"text", "id"}, f"{label}: uses must be a non-empty subset of {{'text', 'id'}}, got {uses}")
    _expect(_overrides(cls, Fusion, "build"), f"{label}: implement build(dim)")
    torch.manual_seed(seed)
    module = fusion.build(dim)
    _expect(isinstance(module, torch.nn.Module), f"{label}: build must return a torch.nn.Module")
    module.eval()  # dropout off: the checks compare outputs
    gen = torch.Generator().manual_seed(seed)
    text = torch.randn(n, dim, generator=gen) if "text" in uses else None
    ids = torch.randn(n, dim, generator=gen) if "id" in uses else None
    known = torch.arange(n) % 3 != 0  # rows 0, 3, 6, ... are untrained
    out = module(text, ids, known)
    _expect(isinstance(out, torch.Tensor) and out.is_floating_point(), f"{label}: forward must return a float tensor")
    _expect(tuple(out.shape) == (n, dim), f"{label}: forward returned shape {tuple(out.shape)}, expected ({n}, {dim})")
    _expect(bool(torch.isfinite(out).all()), f"{label}: forward returned NaN or inf")
    for all_known in (torch.ones(n, dtype=torch.bool), torch.zeros(n, dtype=torch.bool)):
        edge = module(text, ids, all_known)
        _expect(tuple(edge.shape) == (n, dim) and bool(torch.isfinite(edge).all()),
                f"{label}: forward must work when every ID is known and when none is")
    if ids is None:
        return module
    unknown = ~known
    with torch.no_grad():
        before = module(text, ids, known)
        other = ids + 10 * torch.randn(n, dim, generator=gen)
        changed_all = module(text, other, known)
        only_unknown = torch.where(unknown.unsqueeze(-1), other, ids)
        changed_unknown = module(text, only_unknown, known)
    _expect(torch.allclose(before[unknown], changed_all[unknown], atol=1e-6),
            f"{label}: the output of an item with id_known=False changed with the ID tensor; "
            "an untrained ID must not reach the item's vector (mask it with torch.where)")
    _expect(torch.allclose(before, changed_unknown, atol=1e-6),
            f"{label}: changing the IDs of untrained items changed the output")
    ids_grad = ids.clone().requires_grad_(True)
    text_grad = text.clone().requires_grad_(True) if text is not None else None
    weights = torch.randn(n, dim, generator=gen)
    (module(text_grad, ids_grad, known) * weights).sum().backward()
    grad = ids_grad.grad
    _expect(grad is None or bool((grad[unknown] == 0).all()),
            f"{label}: untrained IDs received a gradient; mask them with torch.where before using them")
    return module


# -- adaptations ------------------------------------------------------------------------


def check_adaptation(cls: type, params: dict | None = None, data=None, workdir: str | Path | None = None,
                     seed: int = 0):
    """An adaptation declares what it trains on and the model families it runs in, and implements
    ``fit(session)`` where it runs in the default (embedding) family.

    With ``data`` (a prepared :class:`CrossDomainData`, e.g. the
    ``synthetic_data`` fixture) it also fits a small strategy
    ``id + id + <this adaptation>`` in the default family when it lists it (one epoch per
    phase; the phases are checked), else in the first family it lists among the installed
    ones, and checks the scorer. Returns the scorer (or the instance without data).
    """
    adaptation = check_component(cls, Adaptation, params)
    label = _label(cls)
    for flag in ("uses_source", "uses_target"):
        _expect(isinstance(getattr(cls, flag), bool), f"{label}: {flag} must be a bool")
    _expect(cls.uses_source or cls.uses_target, f"{label}: uses_source and uses_target cannot both be False")
    families = cls.families  # a set of names: checked when it registers (below, with data)
    _expect(DEFAULT_FAMILY not in families or _overrides(cls, Adaptation, "fit"), f"{label}: implement fit(session)")
    if data is None:
        return adaptation
    from ..model.strategy import fit_strategy
    from ..plugins import make_plugin_manager
    from ..registry import Registry
    from .synthetic import PlainIdEncoder, PlainIdFusion

    registry = Registry()
    registry.register_callback("encoder", "contract")(PlainIdEncoder)
    registry.register_callback("fusion", "contract")(PlainIdFusion)
    registry.register_callback("adaptation", "contract")(cls)
    for family in make_plugin_manager().registry.all("family"):  # the installed families (embedding: built in)
        registry.register_callback("family", family.plugin)(family.cls)
    family = DEFAULT_FAMILY if DEFAULT_FAMILY in families else min(families & set(registry.names("family")),
                                                                        default=min(families))
    model = {"dim": 16, "batch_users": 64} if family == DEFAULT_FAMILY else {"family": family}
    entry = {"encoder": "id", "fusion": "id", "adaptation": cls.name,
             "params": {"adaptation": dict(params or {}), "model": model}}
    with tempfile.TemporaryDirectory(prefix="xdplug-contract-") as tmp:
        ctx = make_fit_context(data, workdir or tmp, seed=seed, registry=registry)
        scorer = fit_strategy(entry, registry, ctx, path=f"contract:{cls.name}")
        if family != DEFAULT_FAMILY:  # a family of its own (a closed form, say): no training phases to check
            _check_scorer(label, scorer, data)
            return scorer
        phases = scorer.session.phases
        _expect(phases, f"{label}: fit(session) must train at least one phase through session.train")
        for phase in phases:
            _expect(cls.uses_source or "source" not in phase["domains"],
                    f"{label}: declares uses_source = False but phase {phase['phase']!r} trains on the source")
            _expect(cls.uses_target or "target" not in phase["domains"],
                    f"{label}: declares uses_target = False but phase {phase['phase']!r} trains on the target")
        _check_scorer(label, scorer, data)
    return scorer


# -- model families ---------------------------------------------------------------------


def check_family(cls: type, params: dict | None = None, components: tuple | None = None):
    """A model family declares how an artifact restores it and implements ``fit(ctx, strategy)``;
    its ``search_space`` names its own options (``params.model.OPTION``). With ``components``
    (encoder, fusion, adaptation classes) its ``tuning_stages`` for them are well formed: unique
    names, valid spaces of parameter paths, a blend weight that no stage searches. Returns an instance."""
    from ..stages import stage_problems

    family = check_component(cls, ModelFamily, params)
    label = _label(cls)
    _expect(cls.export in ("state", "refit", None), f"{label}: export must be 'state', 'refit' or None")
    _expect(_overrides(cls, ModelFamily, "fit"), f"{label}: implement fit(ctx, strategy)")
    for param in cls.search_space:
        _expect(param.startswith("params.model.") and param.rpartition(".")[2] in cls.defaults,
                f"{label}: search_space path {param!r} is not params.model.<one of its options>")
    problems = stage_problems(cls.tuning_stages(*components) if components else [], cls.blends_stages)
    _expect(not problems, f"{label}: {'; '.join(problems)}")
    return family


# -- baselines --------------------------------------------------------------------------


def check_baseline(cls: type, params: dict | None = None, data=None, workdir: str | Path | None = None,
                   seed: int = 0, pooled: bool = False):
    """A baseline declares its needs and ``fit(ctx)`` returns a well-behaved scorer.

    With ``data`` it trains on it (one epoch) and checks the scorer: a float
    ``[users, n_target_items]`` tensor without NaN, the same scores when asked
    twice, a user's scores independent of the batch, ``item_known`` (if
    present) one flag per target item. Returns the scorer (or the instance).
    """
    baseline = check_component(cls, Baseline, params)
    label = _label(cls)
    for flag in ("needs_shared_ids", "supports_pooling"):
        _expect(isinstance(getattr(cls, flag), bool), f"{label}: {flag} must be a bool")
    problem = check_tasks_declaration(getattr(cls, "tasks", None))
    _expect(problem is None, f"{label}: tasks {problem}")
    _expect(_overrides(cls, Baseline, "fit"), f"{label}: implement fit(ctx, pooled=False)")
    if data is None:
        return baseline
    _expect(not pooled or cls.supports_pooling, f"{label}: pooled=True but supports_pooling is False")
    with tempfile.TemporaryDirectory(prefix="xdplug-contract-") as tmp:
        ctx = make_fit_context(data, workdir or tmp, seed=seed)
        scorer = baseline.fit(ctx, pooled=pooled)
        _check_scorer(label, scorer, data)
    return scorer


# -- evaluators -------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    import numpy as np

    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def check_evaluator(cls: type, params: dict | None = None, result=None):
    """A ``run`` evaluator maps a RankingResult to finite floats; a ``report`` one returns rows.

    ``result`` defaults to :func:`tiny_ranking_result`. Returns the metrics
    (scope ``run``) or the comparison rows (scope ``report``).
    """
    import copy

    import numpy as np

    evaluator = check_component(cls, Evaluator, params)
    label = _label(cls)
    _expect(cls.scope in ("run", "report"), f"{label}: scope must be 'run' or 'report', got {cls.scope!r}")
    result = result if result is not None else tiny_ranking_result()
    if cls.scope == "run":
        _expect(_overrides(cls, Evaluator, "evaluate"), f"{label}: implement evaluate(result)")
        pristine = copy.deepcopy(result)
        metrics = evaluator.evaluate(result)
        _expect(isinstance(metrics, dict) and metrics, f"{label}: evaluate must return a non-empty dict")
        for key, value in metrics.items():
            _expect(isinstance(key, str), f"{label}: metric name {key!r} is not a string")
            _expect(_is_number(value), f"{label}: metric {key!r} is {value!r}, not a float")
            _expect(math.isfinite(float(value)), f"{label}: metric {key!r} is not finite: {value!r}")
        per_user = evaluator.per_user(result)
        _expect(isinstance(per_user, dict), f"{label}: per_user must return a dict")
        for key, values in per_user.items():
            values = np.asarray(values)
            _expect(values.shape == (len(result.users),),
                    f"{label}: per_user[{key!r}] has shape {values.shape}, expected ({len(result.users)},)")
        _expect(np.array_equal(pristine.topk, result.topk) and np.array_equal(pristine.users, result.users),
                f"{label}: evaluating must not modify the RankingResult")
        return metrics
    _expect(_overrides(cls, Evaluator, "compare"), f"{label}: implement compare(runs, reference)")
    runs = []
    for method, offset in (("reference", 0), ("method-a", 10), ("method-b", 20)):
        for seed in (1, 2):
            res = tiny_ranking_result(seed=seed + offset, ks=(5, 10))
            runs.append({"run_id": f"{method}-{seed}", "method": method, "seed": seed, "status": "done",
                         "users": res.users, "per_user": _per_user_ranking(res),
                         "metrics": {"test": {}, "valid": {}}})
    rows = evaluator.compare(runs, "reference")
    _expect(isinstance(rows, list) and all(isinstance(row, dict) for row in rows),
            f"{label}: compare must return a list of dicts (table rows)")
    _expect(isinstance(evaluator.compare(runs, "no-such-method"), list),
            f"{label}: compare with a reference that has no run must return a list, not raise")
    return rows


# -- dataset recipes --------------------------------------------------------------------


def check_dataset(cls: type, params: dict | None = None, cache_dir: str | Path | None = None):
    """A recipe's ``load`` returns :class:`RawDomains` the engine accepts.

    Both domains have interactions with ``user`` and ``item`` columns (numeric
    ``rating``/``timestamp`` when present) and an item table with ``item``;
    the alignment modes are known and their fields exist; every text field
    is a column of an item table. Returns the raw domains.
    """
    import pandas as pd

    from ..data.raw import RawDomain, RawDomains, validate_inter

    recipe = check_component(cls, DatasetRecipe, params)
    label = _label(cls)
    _expect(_overrides(cls, DatasetRecipe, "load"), f"{label}: implement load(cache_dir)")
    origin = recipe.origin()
    _expect(isinstance(origin, str) and "\n" not in origin.strip(), f"{label}: origin() must return one line")
    with tempfile.TemporaryDirectory(prefix="xdplug-contract-") as tmp:
        raw = recipe.load(str(cache_dir or tmp))
    _expect(isinstance(raw, RawDomains), f"{label}: load must return xdplug.data.raw.RawDomains, got {type(raw).__name__}")
    _expect(raw.align_users in (None, "id"), f"{label}: align_users must be None or 'id', got {raw.align_users!r}")
    _expect(raw.align_items in (None, "id", "key"),
            f"{label}: align_items must be None, 'id' or 'key', got {raw.align_items!r}")
    columns: set[str] = set()
    for role in ("source", "target"):
        domain = getattr(raw, role)
        _expect(isinstance(domain, RawDomain), f"{label}: {role} must be a RawDomain")
        _expect(isinstance(domain.inter, pd.DataFrame), f"{label}: {role}.inter must be a pandas DataFrame")
        for column in ("user", "item"):
            _expect(column in domain.inter.columns,
                    f"{label}: {role}.inter lacks column {column!r}; it has {list(domain.inter.columns)}")
        _expect(len(domain.inter) > 0, f"{label}: {role}.inter is empty")
        try:
            validate_inter(domain.inter, domain.origin or f"{role} domain")
        except Exception as exc:
            raise AssertionError(f"{label}: {role}.inter is rejected by the engine: {exc}") from None
        _expect(isinstance(domain.items, pd.DataFrame) and "item" in domain.items.columns,
                f"{label}: {role}.items must be a DataFrame with an 'item' column")
        if raw.align_items == "key":
            _expect(raw.item_key_field in domain.items.columns,
                    f"{label}: align_items='key' but {role}.items lacks {raw.item_key_field!r}")
        columns |= set(domain.items.columns)
    for placeholder, field in raw.text_fields.items():
        _expect(field in columns, f"{label}: text field {placeholder!r} maps to column {field!r}, "
                                  "which neither item table has")
    return raw


# -- contract test cases ----------------------------------------------------------------


def _required(owner: object, attribute: str) -> type:
    cls = getattr(owner, attribute)
    _expect(cls is not None, f"{type(owner).__name__}: set the class attribute {attribute!r} to the class under test")
    return cls


class EncoderContract:
    """Subclass as ``class TestMyEncoder(EncoderContract): encoder_class = MyEncoder``."""

    encoder_class: type | None = None
    #: options the encoder is built with
    params: dict | None = None

    def test_encoder_contract(self):
        check_encoder(_required(self, "encoder_class"), self.params)


class FusionContract:
    """Subclass as ``class TestMyFusion(FusionContract): fusion_class = MyFusion``."""

    fusion_class: type | None = None
    params: dict | None = None

    def test_fusion_contract(self):
        check_fusion(_required(self, "fusion_class"), self.params)


class AdaptationContract:
    """Subclass as ``class TestMyAdaptation(AdaptationContract): adaptation_class = MyAdaptation``.

    ``test_adaptation_fits`` trains on the ``synthetic_data`` fixture (a few
    seconds); set ``fit_on_synthetic = False`` to skip it.
    """

    adaptation_class: type | None = None
    params: dict | None = None
    fit_on_synthetic: bool = True

    def test_adaptation_contract(self):
        check_adaptation(_required(self, "adaptation_class"), self.params)

    def test_adaptation_fits(self, request, tmp_path):
        if not self.fit_on_synthetic:
            import pytest

            pytest.skip("fit_on_synthetic = False")
        data = request.getfixturevalue("synthetic_data")
        check_adaptation(_required(self, "adaptation_class"), self.params, data=data, workdir=tmp_path)


class BaselineContract:
    """Subclass as ``class TestMyBaseline(BaselineContract): baseline_class = MyBaseline``."""

    baseline_class: type | None = None
    params: dict | None = None
    fit_on_synthetic: bool = True

    def test_baseline_contract(self):
        check_baseline(_required(self, "baseline_class"), self.params)

    def test_baseline_fits(self, request, tmp_path):
        if not self.fit_on_synthetic:
            import pytest

            pytest.skip("fit_on_synthetic = False")
        data = request.getfixturevalue("synthetic_data")
        check_baseline(_required(self, "baseline_class"), self.params, data=data, workdir=tmp_path)


class EvaluatorContract:
    """Subclass as ``class TestMyEvaluator(EvaluatorContract): evaluator_class = MyEvaluator``."""

    evaluator_class: type | None = None
    params: dict | None = None

    def test_evaluator_contract(self):
        check_evaluator(_required(self, "evaluator_class"), self.params)


class DatasetContract:
    """Subclass as ``class TestMyRecipe(DatasetContract): dataset_class = MyRecipe``.

    ``load`` runs with a temporary cache directory.
    """

    dataset_class: type | None = None
    params: dict | None = None

    def test_dataset_contract(self, tmp_path):
        check_dataset(_required(self, "dataset_class"), self.params, cache_dir=tmp_path)
