"""A transfer strategy = encoder + fusion + adaptation, built from the registries and fitted."""

from __future__ import annotations

import logging

import numpy as np
import torch

from ..components import resolve_params
from ..errors import ConfigError
from ..training import FitContext, recbole_data
from .linear import check_family, fit_item_item
from .session import TrainingSession
from .transfer import ModelOptions, TransferModel, _check_options

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


def build_strategy(entry: dict, registry, path: str):
    """Instantiate the strategy's components from a config entry (validates options)."""
    params = entry.get("params") or {}
    encoder_cls = registry.get("encoder", entry["encoder"], f"{path}.encoder")
    fusion_cls = registry.get("fusion", entry["fusion"], f"{path}.fusion")
    adaptation_cls = registry.get("adaptation", entry["adaptation"], f"{path}.adaptation")
    encoder = encoder_cls(params.get("encoder"), f"{path}.params.encoder")
    fusion = fusion_cls(params.get("fusion"), f"{path}.params.fusion")
    adaptation = adaptation_cls(params.get("adaptation"), f"{path}.params.adaptation")
    options = resolve_params(ModelOptions, params.get("model"), f"{path}.params.model")
    _check_options(options)
    if "text" in fusion.uses and encoder.role != "text":
        raise ConfigError(f"{path}.fusion", f"fusion {fusion.name!r} needs a text encoder, but encoder "
                          f"{encoder.name!r} provides {encoder.role!r} vectors")
    if options["family"] == "ease":
        check_family(adaptation.name, encoder.role, fusion.uses, path)
    return encoder, fusion, adaptation, options


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


def estimate_model_bytes(options: dict, n_items: int, n_users: int, text_dim: int, uses_id: bool) -> int:
    """A lower bound on what training the embedding model holds: weights with Adam's two moments
    and gradients (4 copies), plus the scores of one user batch over the catalog (3 copies)."""
    d = options["dim"]
    weights = n_items * (1 + d * uses_id) + text_dim * 2 * d + n_users * d * bool(options["user_id"]) + 4 * d * d
    scores = min(options["batch_users"], max(n_users, 1)) * n_items
    return 4 * (4 * weights + 3 * scores)


def check_memory(options: dict, data, text_dim: int, uses_id: bool, device: torch.device, path: str) -> None:
    """Refuse, before allocating anything, a model that cannot fit (``dim: 1000000`` would try for GBs)."""
    need = estimate_model_bytes(options, len(data.catalog), data.n_target_users + data.n_source_users,
                                text_dim, uses_id)
    free = available_memory(device)
    if free is not None and need > free:
        raise ConfigError(f"{path}.params.model", f"this model needs at least {need / 2**30:.1f} GiB "
                          f"(dim {options['dim']}, batch_users {options['batch_users']}, {len(data.catalog)} items) "
                          f"but {device} has {free / 2**30:.1f} GiB free; lower dim or batch_users")


def fit_strategy(entry: dict, registry, ctx: FitContext, path: str = "strategy") -> StrategyScorer:
    from recbole.utils import init_seed

    encoder, fusion, adaptation, options = build_strategy(entry, registry, path)
    data = ctx.data
    if adaptation.uses_source and len(data.source_train) == 0:
        raise ConfigError(f"{path}.adaptation", "needs source interactions, but the source domain is empty")
    if options["family"] == "ease":
        return fit_item_item(ctx, adaptation, options)
    init_seed(ctx.seed, True)
    from .transfer import _CLASS, _make_model_class

    check_memory(options, data, 384 if "text" in fusion.uses else 0, "id" in fusion.uses, ctx.device, path)
    model_class = _CLASS or _make_model_class()
    rb = recbole_data(ctx, model_class, {"train_neg_sample_args": None})
    text_module = encoder.build(data.catalog, ctx.device) if "text" in fusion.uses else None
    if text_module is not None:
        text_module = text_module.to(ctx.device)
    fusion_module = fusion.build(options["dim"])
    # users: target and source users of the same person share a user-ID row
    shared = dict(zip(data.shared_users[:, 1], data.shared_users[:, 0])) if len(data.shared_users) else {}
    target_rows = np.arange(data.n_target_users)
    extra = [u for u in range(data.n_source_users) if u not in shared]
    source_rows = np.empty(data.n_source_users, dtype=np.int64)
    for u, t in shared.items():
        source_rows[u] = t
    source_rows[extra] = data.n_target_users + np.arange(len(extra))
    id_module = None
    if "id" in fusion.uses:
        id_encoder = encoder if encoder.role == "id" else registry.get("encoder", "id", f"{path}.encoder")(
            {}, f"{path}.params.encoder")
        id_encoder.params["dim"] = id_encoder.params.get("dim") or options["dim"]
        if id_encoder.params["dim"] != options["dim"]:
            raise ConfigError(f"{path}.params.encoder.dim", f"must equal params.model.dim ({options['dim']})")
        id_module = id_encoder.build(data.catalog, ctx.device)
    model = TransferModel(rb.config, rb.dataset, data, text_module, id_module, fusion_module,
                          frozenset(fusion.uses), options, ctx.seed,
                          data.n_target_users + len(extra), {"target": target_rows, "source": source_rows})
    model.rb_to_user = np.zeros(rb.dataset.user_num, dtype=np.int64)
    model.rb_to_user[rb.user_ids] = np.arange(data.n_target_users)
    model.target_rb_items = rb.item_ids
    model = model.to(ctx.device)
    session = TrainingSession(ctx, model, rb.config, options, adaptation.uses_source, adaptation.uses_target)
    adaptation.fit(session)
    model.eval()
    return StrategyScorer(model, session)
