"""A transfer strategy = encoder + fusion + adaptation in a model family, built from the registries and fitted.

:func:`fit_strategy` resolves the spec and hands it to its family (``ModelFamily.fit``);
:func:`fit_transfer` is the transfer model's fit (the embedding family's), :func:`build_model`
the one place that model is constructed.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import numpy as np
import torch

from ..context import FitContext
from ..errors import ConfigError
from ..recbole.dataset import training_config
from ..spec import build_strategy, resolve_strategy
from .session import TrainingSession

__all__ = ["StrategyScorer", "TrainingConfig", "build_model", "build_strategy", "check_memory", "fit_strategy",
           "fit_transfer", "item_parts", "model_class", "trainer_config"]

logger = logging.getLogger(__name__)


class StrategyScorer:
    """Scores target users over target items with a fitted transfer model."""

    def __init__(self, model, session: TrainingSession):
        self.model = model
        self.session = session
        known = model.id_known.cpu().numpy()[model.data.catalog.target_rows]
        # an item is learnable from text even when its ID was never trained
        self.item_known = known | bool(model.uses_text)

    def score(self, users: torch.Tensor) -> torch.Tensor:
        return self.model.score_users("target", users)


def available_memory(device: torch.device) -> int | None:
    """Bytes free for a model on ``device`` (None when unknown)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def estimate_model_bytes(options: dict, n_items: int, n_users: int, text_dim: int, uses_id: bool,
                         n_domain_items: int | None = None) -> int:
    """A lower bound on what training the embedding model holds: weights with Adam's two moments
    and gradients (4 copies), plus the scores of one user batch (3 copies) over the columns a step
    scores on the larger domain (``n_domain_items``, default the catalog): all of its items for the
    full softmax, the sampled candidates otherwise (``transfer.scored_columns``)."""
    from .transfer import scored_columns

    d = options["dim"]
    weights = n_items * (1 + d * uses_id) + text_dim * 2 * d + n_users * d * bool(options["user_id"]) + 4 * d * d
    columns = scored_columns(options, n_items if n_domain_items is None else n_domain_items)
    scores = min(options["batch_users"], max(n_users, 1)) * columns
    return 4 * (4 * weights + 3 * scores)


def check_memory(options: dict, data, text_dim: int, uses_id: bool, device: torch.device, path: str) -> None:
    """Refuse, before allocating anything, a model that cannot fit (``dim: 1000000`` would try for GBs)."""
    need = estimate_model_bytes(options, len(data.catalog), data.n_target_users + data.n_source_users,
                                text_dim, uses_id, max(data.n_target_items, data.n_source_items))
    free = available_memory(device)
    if free is not None and need > free:
        raise ConfigError(f"{path}.params.model", f"this model needs at least {need / 2**30:.1f} GiB "
                          f"(dim {options['dim']}, batch_users {options['batch_users']}, {len(data.catalog)} items) "
                          f"but {device} has {free / 2**30:.1f} GiB free; lower dim or batch_users")


def default_user_rows(data) -> tuple[dict[str, np.ndarray], int]:
    """User-ID rows of the transfer model: target users first; a source user shares the row of the
    target user they are (shared users), the others follow. Returns the rows and their count."""
    shared = dict(zip(data.shared_users[:, 1], data.shared_users[:, 0])) if len(data.shared_users) else {}
    target_rows = np.arange(data.n_target_users)
    extra = [u for u in range(data.n_source_users) if u not in shared]
    source_rows = np.empty(data.n_source_users, dtype=np.int64)
    for u, t in shared.items():
        source_rows[u] = t
    source_rows[extra] = data.n_target_users + np.arange(len(extra))
    return {"target": target_rows, "source": source_rows}, data.n_target_users + len(extra)


def build_model(encoder, fusion, options: dict, registry, data, device: torch.device, seed: int, rb=None, *,
                text_module=None, user_rows=None, n_union_users=None, path: str = "strategy", adaptation=None):
    """Construct the transfer model of a resolved strategy: the one place it is built.

    ``rb`` carries (``rb.config``) the RecBole ``Config`` training uses; without one (a
    model loaded to serve) a stub config. RecBole's counts come from a stub dataset
    either way: no RecBole ``Dataset`` is built for the transfer model. ``text_module``
    replaces the encoder's module (a frozen table restored from weights);
    ``user_rows``/``n_union_users`` the user-ID layout of an updated artifact;
    ``adaptation`` adds the model parts it declares (``Adaptation.model_parts``: a
    user bridge, for example), so a rebuilt artifact has them too.
    """
    from .transfer import TransferModel

    text_module, id_module, fusion_module = item_parts(encoder, fusion, options, registry, data, device,
                                                       text_module, path)
    if user_rows is None:
        user_rows, n_union_users = default_user_rows(data)
    config = rb.config if rb is not None else _stub_config(device)
    model = TransferModel(config, _StubDataset(data.n_target_users, data.n_target_items), data,
                          text_module if "text" in fusion.uses else None, id_module, fusion_module,
                          frozenset(fusion.uses), options, seed, int(n_union_users),
                          {k: np.asarray(v, dtype=np.int64) for k, v in user_rows.items()})
    # RecBole's IDs of the stub's counts (full_sort_predict): canonical index + 1, 0 is its [PAD]
    model.rb_to_user = np.maximum(np.arange(data.n_target_users + 1) - 1, 0)
    model.target_rb_items = np.arange(1, data.n_target_items + 1)
    for name, part in (adaptation.model_parts(model) if adaptation is not None else {}).items():
        model.add_module(name, part)
    return model.to(device)


def item_parts(encoder, fusion, options: dict, registry, data, device: torch.device, text_module=None,
               path: str = "strategy") -> tuple:
    """The modules of fused item vectors: ``(text_module, id_module, fusion_module)`` (``None`` for a part the
    fusion does not read). ``text_module`` replaces the encoder's (a frozen table restored from weights)."""
    if "text" in fusion.uses and text_module is None:
        text_module = encoder.build(data.catalog, device)
    if text_module is not None:
        text_module = text_module.to(device)
    fusion_module = fusion.build(options["dim"])
    id_module = None
    if "id" in fusion.uses:
        id_encoder = encoder if encoder.role == "id" else id_part_encoder(options, registry, path)
        id_encoder.params["dim"] = id_encoder.params.get("dim") or options["dim"]
        if id_encoder.params["dim"] != options["dim"]:
            raise ConfigError(f"{path}.params.encoder.dim", f"must equal params.model.dim ({options['dim']})")
        id_module = id_encoder.build(data.catalog, device)
    return text_module if "text" in fusion.uses else None, id_module, fusion_module


def trainer_config(ctx: FitContext):
    """RecBole's trainer ``Config`` a :class:`TrainingSession` runs phases with (epochs, learning rate,
    early stopping, device; no RecBole dataset is built)."""
    return training_config(ctx, model_class(), {"train_neg_sample_args": None})


def id_part_encoder(options: dict, registry, path: str):
    """The encoder ``params.model.id_encoder`` names (role ``"id"``), which builds the ID part beside a text encoder."""
    where = f"{path}.params.model.id_encoder"
    cls = registry.get("encoder", options["id_encoder"], where)
    if cls.role != "id":
        raise ConfigError(where, f"encoder {cls.name!r} gives {cls.role!r} vectors; the ID part needs an encoder "
                          "with role 'id'")
    return cls({}, where)


class TrainingConfig(NamedTuple):
    """What :func:`build_model` reads of ``rb``: RecBole's ``Config`` (``recbole.dataset.training_config``)."""

    config: object


class _StubDataset:
    """What RecBole's ``GeneralRecommender.__init__`` reads from a dataset: the counts."""

    def __init__(self, n_users: int, n_items: int):
        self.counts = {"user_id": n_users + 1, "item_id": n_items + 1}  # RecBole counts its [PAD] row

    def num(self, field: str) -> int:
        return self.counts[field]


def _stub_config(device) -> dict:
    return {"USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "NEG_PREFIX": "neg_", "device": device}


def fit_strategy(entry: dict, registry, ctx: FitContext, path: str = "strategy"):
    """Fit a strategy entry on ``ctx``: its family's ``fit`` (a scorer)."""
    strategy = resolve_strategy(entry, registry, path)
    if strategy.adaptation.uses_source and len(ctx.data.source_train) == 0:
        raise ConfigError(f"{path}.adaptation", "needs source interactions, but the source domain is empty")
    return strategy.family.fit(ctx, strategy)


def fit_transfer(ctx: FitContext, strategy) -> StrategyScorer:
    """Build the transfer model of a resolved strategy and train it through the adaptation's ``fit``."""
    from recbole.utils import init_seed

    encoder, fusion, adaptation, options = strategy.encoder, strategy.fusion, strategy.adaptation, strategy.options
    registry, path, data = strategy.registry, strategy.path, ctx.data
    init_seed(ctx.seed, True)
    rb = TrainingConfig(trainer_config(ctx))
    init_seed(ctx.seed, True)  # where RecBole's Dataset was once loaded: the model's draws stay the same
    # the text module first: its width, not a guess, goes into the memory check made before the model exists
    text_module = encoder.build(data.catalog, ctx.device) if "text" in fusion.uses else None
    check_memory(options, data, text_module.out_dim if text_module is not None else 0, "id" in fusion.uses,
                 ctx.device, path)
    model = build_model(encoder, fusion, options, registry, data, ctx.device, ctx.seed, rb, path=path,
                        adaptation=adaptation, text_module=text_module)
    session = TrainingSession(ctx, model, rb.config, options, adaptation.uses_source, adaptation.uses_target)
    adaptation.fit(session)
    model.eval()
    return StrategyScorer(model, session)


def model_class():
    """The transfer model's class (a RecBole ``GeneralRecommender``, made on first use)."""
    from .transfer import _CLASS, _make_model_class

    return _CLASS or _make_model_class()
