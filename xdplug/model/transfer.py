"""The transferable model: item vector = fusion(encoders), user vector = pool(items).

A RecBole ``GeneralRecommender`` so that RecBole's trainer drives it like the
baselines. Items live in the catalog (both domains' items, aligned ones
sharing a row), so one model moves between domains: training on the source
and scoring the target are the same computation over different item rows.
The user vector is pooled from the user's items (inductive), which lets a
model trained on the source score target users it never saw; an optional
user-ID term helps where users overlap.

Item IDs that were never trained carry no signal: the fusion sees
``id_known = False`` for them and falls back to text, and ID dropout during
training teaches it to do so well.

A training step encodes only the catalog rows it reads (its users' items, the
source histories a target user vector reads, the negatives; all of the trained
domain's rows for a full softmax), so its cost grows with interactions, not with
users x items; ``loss: auto`` switches to a sampled softmax above
``sampling.SOFTMAX_MAX_ITEMS`` items (see :mod:`xdplug.model.sampling`).
"""

from __future__ import annotations

import logging
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..options import Bool, Choice, Float, Int, Str, split_declarations
from .batches import Histories, split_holdout
from .sampling import Proposal, accidental_hits, amp_dtype, autocast, resolve_loss, sampled_softmax

logger = logging.getLogger(__name__)


class ModelOptions:
    """Options of the transfer model (``strategies[i].params.model`` of the embedding family)."""

    kind = "model"
    name = "transfer"
    open_params = False
    #: the default search space of every embedding-family strategy (its components' spaces are added)
    search_space = {
        "params.model.learning_rate": {"type": "loguniform", "low": 1.0e-4, "high": 1.0e-2},
        "params.model.dim": {"type": "categorical", "choices": [32, 64, 128]},
        "params.model.weight_decay": {"type": "categorical", "choices": [0.0, 1.0e-6, 1.0e-5, 1.0e-4]},
    }
    _options, defaults = split_declarations({
        "dim": Int(64, 1, 4096),
        # the encoder (role "id") whose vectors are the ID part where the fusion reads IDs but the
        # strategy's encoder is a text encoder
        "id_encoder": Str("id"),
        # auto: full softmax over the trained domain's items up to sampling.SOFTMAX_MAX_ITEMS (20,000)
        # items, sampled_softmax above (shared negatives per batch, logQ-corrected, accidental hits masked)
        "loss": Choice("auto", ["softmax", "sampled_softmax", "bpr", "auto"]),
        "negatives": Int(256, 1, 1_000_000),  # sampled_softmax: negatives shared by a batch
        # proposal of sampled_softmax / bpr negatives: uniform, or popularity = (training count + 1)^sampler_alpha
        "negative_sampler": Choice("popularity", ["uniform", "popularity"]),
        "sampler_alpha": Float(0.75, 0, 2),
        "in_batch_negatives": Bool(False),  # sampled_softmax: one held-out positive per batch user joins the negatives
        # mixed precision of training steps: auto = bf16 autocast on CUDA devices with bf16, off on CPU
        "amp": Choice("auto", ["auto", "off", "bf16"]),
        "holdout": Float(0.25, 0, 1, high_open=True),  # fraction of a user's items held out as targets per step
        "pooling": Choice("mean", ["mean", "attention"]),
        "adaptor": Choice("linear", ["linear", "mlp"]),  # text vector -> model dimension
        "user_tower": Choice("linear", ["identity", "linear", "mlp"]),  # over the pooled vector
        "user_id": Bool(False),  # add a learned user-ID term (useful where users overlap)
        "id_dropout": Float(0.1, 0, 1, high_open=True),  # probability of hiding an item's ID part in training
        "item_bias": Bool(True),
        "temperature": Float(1.0, 0, 1000, low_open=True),
        "batch_users": Int(256, 1, 10_000_000),
        "epochs": Int(0, 0, 100_000),  # 0: use train.epochs
        "learning_rate": Float(0.0, 0, 10),  # 0: use train.learning_rate
        "weight_decay": Float(0.0, 0, 10),
        "input_dropout": Float(0.0, 0, 1, high_open=True),  # dropout on the pooled user vector
        # where users overlap, the target user vector also reads the user's full source-train history:
        # gate (source items pooled, a learned domain transform, added through a gate) or attention
        # (one attention pool over both histories); users without source history fall back to off
        "cross_domain_user": Choice("off", ["off", "gate", "attention"]),
    })


def scored_columns(options: dict, n_domain_items: int) -> int:
    """Score columns one training step computes per user row on a domain of ``n_domain_items`` items:
    every item for the full softmax, the positive and the shared (plus in-batch) negatives for the
    sampled softmax, a positive and a negative for BPR (what ``strategy.estimate_model_bytes`` needs)."""
    options = {**ModelOptions.defaults, **options}
    loss = resolve_loss(options, n_domain_items)
    if loss == "softmax":
        return n_domain_items
    if loss == "bpr":
        return 2
    return 1 + options["negatives"] + (options["batch_users"] if options["in_batch_negatives"] else 0)


def _check_options(options: dict) -> None:
    """Check already-resolved options again (a model built from a stored spec, not a config)."""
    for key, option in ModelOptions._options.items():
        option.check(options.get(key, option.default), f"params.model.{key}")


def text_adaptor(text_dim: int, dim: int, kind: str) -> nn.Module:
    """The text vector -> model dimension map (``adaptor``: ``linear`` or ``mlp``)."""
    if kind == "linear":
        return nn.Linear(text_dim, dim)
    return nn.Sequential(nn.Linear(text_dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))


class FusedItems:
    """Item vectors from the model's parts: ``fusion(adaptor(text_encoder(rows)), item_id(rows), id_known)``.

    Shared by every model over the catalog's fused item vectors (the transfer model, a family's
    sequence model): it reads ``text_encoder``, ``adaptor``, ``item_id``, ``fusion``, ``uses_text``,
    ``uses_id``, ``id_known`` (a boolean buffer over catalog rows), ``n_catalog`` and
    ``options["id_dropout"]``.
    """

    def item_vectors(self, rows: torch.Tensor | None = None, train: bool = False) -> torch.Tensor:
        """Fused vectors of catalog ``rows`` (all rows when None)."""
        device = self.id_known.device
        if rows is None:
            rows = torch.arange(self.n_catalog, device=device)
        text = self.adaptor(self.text_encoder(rows)) if self.uses_text else None
        ids = self.item_id(rows) if self.uses_id else None
        known = self.id_known[rows]
        if train and self.uses_id and self.options["id_dropout"] > 0:
            # drawn over the whole catalog, then indexed: the same random stream whichever rows are encoded
            keep = torch.rand(self.n_catalog, device=device) >= self.options["id_dropout"]
            known = known & keep[rows]
        return self.fusion(text, ids, known)


def _make_model_class():
    from recbole.model.abstract_recommender import GeneralRecommender
    from recbole.utils import InputType

    class TransferModel(GeneralRecommender, FusedItems):
        input_type = InputType.POINTWISE

        def __init__(self, config, dataset, data, text_encoder, id_encoder,
                     fusion_module: nn.Module, fusion_uses: frozenset, options: dict,
                     seed: int, n_union_users: int, user_rows: dict[str, np.ndarray]):
            super().__init__(config, dataset)
            _check_options(options)
            self.options = {**ModelOptions.defaults, **options}  # options stored before an option existed
            self.data = data
            d = options["dim"]
            n_items = len(data.catalog)
            self.n_catalog = n_items
            self.uses_text = "text" in fusion_uses
            self.uses_id = "id" in fusion_uses
            self.text_encoder = text_encoder if self.uses_text else None
            if self.uses_text:
                self.adaptor = text_adaptor(text_encoder.out_dim, d, options["adaptor"])
            self.item_id = id_encoder if self.uses_id else None
            self.fusion = fusion_module
            self.item_bias = nn.Parameter(torch.zeros(n_items)) if options["item_bias"] else None
            tower = options["user_tower"]
            if tower == "linear":
                self.user_tower = nn.Linear(d, d)
            elif tower == "mlp":
                self.user_tower = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, d))
            else:
                self.user_tower = nn.Identity()
            if options["pooling"] == "attention":
                self.attention = nn.Linear(d, 1)
            self.user_id = nn.Embedding(n_union_users, d) if options["user_id"] else None
            if self.user_id is not None:
                nn.init.zeros_(self.user_id.weight)
            self.user_rows = {k: torch.as_tensor(v, dtype=torch.long) for k, v in user_rows.items()}
            self.register_buffer("id_known", torch.zeros(n_items, dtype=torch.bool))
            self.histories = {
                "target": Histories(data.target_train, data.n_target_users, data.catalog.target_rows),
                "source": Histories(data.source_train, data.n_source_users, data.catalog.source_rows),
            }
            self.domain_rows = {"target": torch.as_tensor(data.catalog.target_rows),
                                "source": torch.as_tensor(data.catalog.source_rows)}
            self.domain_weight = {"source": 1.0, "target": 1.0}
            self.rng = np.random.default_rng(seed)
            self.negative_rng = np.random.default_rng([seed, 1])  # its own stream: softmax steps draw none
            self._proposals: dict[str, tuple[Histories, Proposal]] = {}
            #: during a training step: catalog row -> row of the step's vectors (None: the whole catalog)
            self.step_lookup: torch.Tensor | None = None
            #: the last candidate vectors gathered outside training (see ``candidates``)
            self._candidate_cache: tuple | None = None
            self._plans: dict[str, dict] = {}  # during a training step: each domain's domain_step
            self.extra_losses: list[Callable] = []
            self.last_batch: dict = {}
            self.dropout = nn.Dropout(options["input_dropout"])
            self.cross_mode = options.get("cross_domain_user", "off")
            self._source_side = None  # (target -> source user, full source-train histories), on first use
            if self.cross_mode != "off":
                self.cross_transform = nn.Linear(d, d)  # source-domain vectors -> target user space
                if self.cross_mode == "gate":
                    self.cross_gate = nn.Linear(2 * d, d)
                else:
                    self.cross_attention = nn.Linear(d, 1)
                    self.cross_domain_bias = nn.Parameter(torch.zeros(2))  # target, source

        @property
        def reads_source_history(self) -> bool:
            """Do target scores read the user's source history (an artifact then keeps the source)?"""
            return self.cross_mode != "off" or getattr(self, "user_bridge", None) is not None

        # -- item and user vectors ------------------------------------------------------
        def local(self, item_rows: torch.Tensor) -> torch.Tensor:
            """Catalog rows -> rows of the vectors a training step encoded (the same rows outside a step)."""
            return item_rows if self.step_lookup is None else self.step_lookup[item_rows]

        def pool(self, vectors: torch.Tensor, items: torch.Tensor, rows: torch.Tensor, n_rows: int) -> torch.Tensor:
            """Pool item vectors per batch row (mean or attention)."""
            d = vectors.shape[1]
            if self.options["pooling"] == "mean":
                # rows are sorted (histories are gathered user by user): one fused kernel
                counts = torch.bincount(rows, minlength=n_rows)
                offsets = torch.cumsum(counts, 0) - counts
                return F.embedding_bag(items, vectors, offsets, mode="mean")
            item_vecs = vectors[items]
            if len(items):
                logits = self.attention(item_vecs).squeeze(-1)
                logits = logits - logits.max()
                weights = torch.exp(logits)
                denom = torch.zeros(n_rows, device=vectors.device, dtype=weights.dtype).index_add_(0, rows, weights)
                weights = weights / denom[rows].clamp_min(1e-12)
            else:
                counts = torch.bincount(rows, minlength=n_rows).clamp_min(1).float()
                weights = 1.0 / counts[rows]
            pooled = torch.zeros(n_rows, d, device=vectors.device, dtype=vectors.dtype)
            return pooled.index_add_(0, rows, item_vecs * weights.unsqueeze(-1))

        def user_vectors(self, domain: str, users: torch.Tensor, vectors: torch.Tensor,
                         items: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
            """User vectors of ``users`` from their ``items`` (catalog rows) at batch ``rows``."""
            pooled = self.pool(vectors, self.local(items), rows, len(users))
            side = None
            if domain == "target" and self.reads_source_history:
                side = self.source_side(users)
                if self.step_lookup is not None:
                    side = {**side, "items": self.local(side["items"])}
            if side is not None and self.cross_mode != "off":
                pooled = self.cross_pool(pooled, vectors, self.local(items), rows, side)
            u = self.user_tower(self.dropout(pooled))
            if self.user_id is not None:
                u = u + self.user_id(self.user_rows[domain].to(users.device)[users])
            if side is not None and getattr(self, "user_bridge", None) is not None:
                u = self.user_bridge(self, u, vectors, side)
            return u

        # -- the user's other domain (users present in both) -----------------------------------
        def source_side(self, users: torch.Tensor) -> dict:
            """The full source-train history of target ``users`` (the same people in the source):
            ``items`` (catalog rows) and their batch ``rows``, the source user index ``ids`` (-1: not
            in the source), ``has`` (a non-empty source history), and the users' target-train counts."""
            if self._source_side is None:
                t2s = np.full(self.data.n_target_users, -1, dtype=np.int64)
                if len(self.data.shared_users):
                    t2s[self.data.shared_users[:, 0]] = self.data.shared_users[:, 1]
                # the full source train: the session's source-validation slice is source train too
                self._source_side = (t2s, Histories(self.data.source_train, self.data.n_source_users,
                                                    self.data.catalog.source_rows))
            t2s, hist = self._source_side
            u_np = users.cpu().numpy()
            ids = np.where(u_np < len(t2s), t2s[np.minimum(u_np, len(t2s) - 1)], -1)
            present = np.flatnonzero(ids >= 0)
            items, sub_rows = hist.gather(ids[present])
            has = np.zeros(len(ids), dtype=bool)
            has[present] = hist.lengths(ids[present]) > 0
            device = users.device
            return {"items": torch.as_tensor(items, device=device),
                    "rows": torch.as_tensor(present[sub_rows], device=device),
                    "ids": torch.as_tensor(ids, device=device), "has": torch.as_tensor(has, device=device),
                    "target_counts": torch.as_tensor(self.histories["target"].lengths(np.minimum(
                        u_np, self.histories["target"].n_users - 1)), device=device)}

        def cross_pool(self, pooled: torch.Tensor, vectors: torch.Tensor, items: torch.Tensor,
                       rows: torch.Tensor, side: dict) -> torch.Tensor:
            """The pooled target history combined with the user's source history (``cross_domain_user``)."""
            n = len(pooled)
            if self.cross_mode == "gate":
                s = self.cross_transform(self.pool(vectors, side["items"], side["rows"], n))
                g = torch.sigmoid(self.cross_gate(torch.cat([pooled, s], dim=1)))
                return pooled + side["has"].unsqueeze(1).to(pooled.dtype) * g * s
            # attention over both histories, source items through the domain transform
            item_vecs = torch.cat([vectors[items], self.cross_transform(vectors[side["items"]])])
            all_rows = torch.cat([rows, side["rows"]])
            if len(all_rows) == 0:
                return pooled
            domain = torch.cat([torch.zeros(len(rows), dtype=torch.long, device=all_rows.device),
                                torch.ones(len(side["rows"]), dtype=torch.long, device=all_rows.device)])
            logits = self.cross_attention(item_vecs).squeeze(-1) + self.cross_domain_bias[domain]
            weights = torch.exp(logits - logits.max())
            denom = torch.zeros(n, device=pooled.device, dtype=weights.dtype).index_add_(0, all_rows, weights)
            weights = weights / denom[all_rows].clamp_min(1e-12)
            weighted = item_vecs * weights.unsqueeze(-1)
            out = torch.zeros(pooled.shape, device=pooled.device, dtype=weighted.dtype)
            return out.index_add_(0, all_rows, weighted)

        def source_user_vectors(self, side: dict, vectors: torch.Tensor) -> torch.Tensor:
            """The users' source-domain user vectors from their full source-train history (zeros: none)."""
            ids = side["ids"].clamp_min(0)
            s = self.user_tower(self.pool(vectors, side["items"], side["rows"], len(ids)))
            if self.user_id is not None:
                known = (side["ids"] >= 0).unsqueeze(1).to(s.dtype)
                s = s + known * self.user_id(self.user_rows["source"].to(ids.device)[ids])
            return s * side["has"].unsqueeze(1).to(s.dtype)

        def new_user_vector(self, vectors: torch.Tensor, item_rows: torch.Tensor) -> torch.Tensor:
            """The vector of a new user given only their items (catalog rows of either domain)."""
            device = vectors.device

            def first_row(k: int) -> torch.Tensor:
                return torch.zeros(k, dtype=torch.long, device=device)

            if not self.reads_source_history:
                return self.user_tower(self.pool(vectors, item_rows, first_row(len(item_rows)), 1))
            is_target = torch.isin(item_rows, self.domain_rows["target"].to(device))
            t_items, s_items = item_rows[is_target], item_rows[~is_target]
            side = {"items": s_items, "rows": first_row(len(s_items)),
                    "ids": torch.full((1,), -1, dtype=torch.long, device=device),
                    "has": torch.tensor([len(s_items) > 0], device=device),
                    "target_counts": torch.tensor([len(t_items)], device=device)}
            pooled = self.pool(vectors, t_items, first_row(len(t_items)), 1)
            if self.cross_mode != "off":
                pooled = self.cross_pool(pooled, vectors, t_items, first_row(len(t_items)), side)
            u = self.user_tower(pooled)
            if getattr(self, "user_bridge", None) is not None:
                u = self.user_bridge(self, u, vectors, side)
            return u

        def candidates(self, vectors: torch.Tensor, item_rows: torch.Tensor) -> torch.Tensor:
            """The vectors of catalog ``item_rows``, gathered once per (vectors, rows) outside training.

            Serving scores every request against the same loaded vectors; at 10^5 items the
            gather cost 16 ms of a 32 ms call. The cache holds the tensors it was made from (so
            their memory cannot be reused by others) and their versions (an in-place change misses).
            """
            if torch.is_grad_enabled() or self.step_lookup is not None:
                return vectors[self.local(item_rows)]
            cache = self._candidate_cache
            if (cache is None or cache[0] is not vectors or cache[1] is not item_rows
                    or cache[2] != (vectors._version, item_rows._version)):
                cache = (vectors, item_rows, (vectors._version, item_rows._version), vectors[item_rows])
                self._candidate_cache = cache
            return cache[3]

        def scores_against(self, users_vec: torch.Tensor, vectors: torch.Tensor, item_rows: torch.Tensor) -> torch.Tensor:
            """Scores of user vectors against catalog ``item_rows``."""
            s = users_vec @ self.candidates(vectors, item_rows).T / self.options["temperature"]
            if self.item_bias is not None:
                s = s + self.item_bias[item_rows]
            return s

        # -- training ---------------------------------------------------------------------
        def mark_trained(self, domain: str) -> None:
            """Items with training interactions in ``domain`` now have trained IDs."""
            hist = self.histories[domain]
            self.id_known[torch.as_tensor(np.unique(hist.items), device=self.id_known.device)] = True

        def proposal(self, domain: str) -> Proposal:
            """The domain's negative proposal, from its current training histories."""
            hist = self.histories[domain]
            cached = self._proposals.get(domain)
            if cached is None or cached[0] is not hist:
                counts = np.bincount(hist.local_items, minlength=len(self.domain_rows[domain]))
                cached = (hist, Proposal(counts, self.options["negative_sampler"], self.options["sampler_alpha"],
                                         self.id_known.device))
                self._proposals[domain] = cached
            return cached[1]

        def domain_step(self, domain: str, users: torch.Tensor) -> dict:
            """A domain's part of a step before any vector exists: the users' input/held-out split, the
            loss, the negatives, and ``encode``, the catalog rows the step reads."""
            device = self.id_known.device
            u_np = users.cpu().numpy()
            local, rows = self.histories[domain].gather(u_np, local=True)
            target = split_holdout(rows, len(u_np), self.options["holdout"], self.rng)
            domain_rows = self.domain_rows[domain].to(device)
            step = {"local": local, "rows": rows, "target": target, "loss": resolve_loss(self.options, len(domain_rows))}
            if step["loss"] == "softmax":
                encode = [domain_rows]
            else:
                k = int(target.sum()) if step["loss"] == "bpr" else self.options["negatives"]
                step["negatives"] = torch.as_tensor(self.proposal(domain).draw(k, self.negative_rng), device=device)
                encode = [domain_rows[torch.as_tensor(local, device=device)], domain_rows[step["negatives"]]]
            if domain == "target" and self.reads_source_history:
                encode.append(self.source_side(users.to(device))["items"])
            step["encode"] = torch.cat(encode)
            return step

        def domain_loss(self, domain: str, users: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
            """The ranking loss of ``users`` of ``domain`` (the step's plan; a new one outside a step)."""
            step = self._plans.get(domain) or self.domain_step(domain, users)
            local, rows, target = step["local"], step["rows"], step["target"]
            device = vectors.device
            domain_rows = self.domain_rows[domain].to(device)
            inp_local = torch.as_tensor(local[~target], device=device)
            inp_rows = torch.as_tensor(rows[~target], device=device)
            u = self.user_vectors(domain, users, vectors, domain_rows[inp_local], inp_rows)
            self.last_batch[domain] = {"users": u, "rows": domain_rows, "ids": users}
            t_rows = torch.as_tensor(rows[target], device=device)
            t_items = torch.as_tensor(local[target], device=device)
            if len(t_rows) == 0:
                return u.sum() * 0.0
            n_t = torch.bincount(t_rows, minlength=len(users)).clamp_min(1).float()
            if step["loss"] == "softmax":
                logits = self.scores_against(u, vectors, domain_rows)
                # known input items are not candidates, exactly as in the evaluation
                logits = logits.index_put((inp_rows, inp_local), torch.tensor(-1e9, device=device))
                logp = F.log_softmax(logits, dim=1)
                per = -logp[t_rows, t_items]
                return (per / n_t[t_rows]).sum() / (n_t > 0).sum().clamp_min(1)
            pos_rows = domain_rows[t_items]
            pos = (u[t_rows] * vectors[self.local(pos_rows)]).sum(-1) / self.options["temperature"]
            if self.item_bias is not None:
                pos = pos + self.item_bias[pos_rows]
            neg_local = step["negatives"]
            if step["loss"] == "bpr":  # one negative per held-out item
                neg_rows = domain_rows[neg_local]
                neg = (u[t_rows] * vectors[self.local(neg_rows)]).sum(-1) / self.options["temperature"]
                if self.item_bias is not None:
                    neg = neg + self.item_bias[neg_rows]
                return -F.logsigmoid(pos - neg).mean()
            candidates, n_batch = neg_local, 0
            if self.options["in_batch_negatives"]:  # the first held-out item of every user in the batch
                first = torch.ones(len(t_rows), dtype=torch.bool, device=device)
                first[1:] = t_rows[1:] != t_rows[:-1]
                candidates, n_batch = torch.cat([neg_local, t_items[first]]), int(first.sum())
            correction = self.proposal(domain).log_expected(candidates, len(neg_local), n_batch)
            neg = self.scores_against(u, vectors, domain_rows[candidates]) - correction
            user_hits, pos_hits = accidental_hits(candidates, t_items, t_rows, inp_local, inp_rows, len(users))
            # weighted as the full softmax: each user the same, its held-out items share its weight
            weight = 1.0 / n_t[t_rows] / (n_t > 0).sum().clamp_min(1)
            return sampled_softmax(pos, neg, t_rows, user_hits, pos_hits, weight)

        def calculate_loss(self, interaction):
            """One step's loss; only the catalog rows the step reads are encoded (every row when an
            extra loss sets ``full_vectors``, e.g. one scoring every target item)."""
            device = self.id_known.device
            domains = [d for d in ("source", "target") if d in interaction.interaction]
            try:
                self._plans = {d: self.domain_step(d, interaction[d]) for d in domains}
                rows = None
                if not any(getattr(extra, "full_vectors", False) for extra in self.extra_losses):
                    rows = torch.unique(torch.cat([plan["encode"] for plan in self._plans.values()]))
                    rows = None if len(rows) == self.n_catalog else rows  # all of them: in catalog order
                with autocast(amp_dtype(self.options["amp"], device), device):
                    vectors = self.item_vectors(rows, train=True).float()
                    if rows is not None:
                        self.step_lookup = torch.full((self.n_catalog,), -1, dtype=torch.long, device=device)
                        self.step_lookup[rows] = torch.arange(len(rows), device=device)
                    self.last_batch = {"vectors": vectors, "item_rows": torch.arange(
                        self.n_catalog, device=device) if rows is None else rows}
                    total = 0.0
                    for domain in domains:
                        loss = self.domain_loss(domain, interaction[domain], vectors)
                        total = total + self.domain_weight[domain] * loss
                    for extra in self.extra_losses:
                        total = total + extra(self, self.last_batch)
            finally:
                self.step_lookup, self._plans = None, {}
            return total

        # -- scoring ----------------------------------------------------------------------
        @torch.no_grad()
        def score_users(self, domain: str, users: torch.Tensor, item_rows: torch.Tensor | None = None,
                        vectors: torch.Tensor | None = None) -> torch.Tensor:
            """Scores of ``users`` (canonical indices of ``domain``) over that domain's items."""
            device = self.id_known.device
            if vectors is None:
                vectors = self.item_vectors()
            hist = self.histories[domain]
            items, rows = hist.gather(users.cpu().numpy())
            u = self.user_vectors(domain, users.to(device), vectors, torch.as_tensor(items, device=device),
                                  torch.as_tensor(rows, device=device))
            if item_rows is None:
                item_rows = self.domain_rows[domain].to(device)
            return self.scores_against(u, vectors, item_rows)

        def score_with_grad(self, domain: str, users: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
            hist = self.histories[domain]
            device = vectors.device
            items, rows = hist.gather(users.cpu().numpy())
            u = self.user_vectors(domain, users, vectors, torch.as_tensor(items, device=device),
                                  torch.as_tensor(rows, device=device))
            return self.scores_against(u, vectors, self.domain_rows[domain].to(device))

        def score_history(self, item_rows_hist: list[np.ndarray], candidate_rows: torch.Tensor) -> torch.Tensor:
            """Scores for ad-hoc users given only their histories (catalog rows)."""
            device = self.id_known.device
            vectors = self.item_vectors()
            items = np.concatenate(item_rows_hist) if item_rows_hist else np.zeros(0, dtype=np.int64)
            rows = np.repeat(np.arange(len(item_rows_hist)), [len(h) for h in item_rows_hist])
            if self.reads_source_history:
                u = torch.cat([self.new_user_vector(vectors, torch.as_tensor(h, dtype=torch.long, device=device))
                               for h in item_rows_hist])
                return self.scores_against(u, vectors, candidate_rows.to(device))
            u = self.user_tower(self.pool(vectors, torch.as_tensor(items, device=device),
                                          torch.as_tensor(rows, device=device), len(item_rows_hist)))
            return self.scores_against(u, vectors, candidate_rows.to(device))

        def predict(self, interaction):
            raise NotImplementedError("use full_sort_predict; xdplug evaluates with full-sort ranking")

        def full_sort_predict(self, interaction):
            """RecBole entry point: rows are RecBole target user IDs, columns RecBole item IDs."""
            rb_users = interaction[self.USER_ID].cpu().numpy()
            users = torch.as_tensor(self.rb_to_user[rb_users], device=self.id_known.device)
            scores = self.score_users("target", users)
            out = torch.full((len(users), self.n_items), -torch.inf, device=scores.device)
            out[:, torch.as_tensor(self.target_rb_items, device=scores.device)] = scores
            return out.view(-1)

    return TransferModel


_CLASS = None


def TransferModel(*args, **kwargs):  # noqa: N802 - a factory that looks like the class
    """Build the transfer model (the class is created lazily to keep RecBole imports out of start-up)."""
    global _CLASS
    if _CLASS is None:
        _CLASS = _make_model_class()
    return _CLASS(*args, **kwargs)



