"""TrainingSession: the API adaptations use to train the transfer model in phases.

An adaptation is a schedule: it calls :meth:`TrainingSession.train` once per
phase (source pretraining, target training, joint training) with the losses
and parameters of that phase. Each phase runs RecBole's trainer with early
stopping on the evaluation's valid metric. Target phases validate on the
target's validation split; phases on the source alone validate on a held-out
slice of *source* interactions, so source pretraining never reads a target
validation or test interaction. ``xdplug update`` is one more phase of a session:
it adds the slice of new interactions it held out (:meth:`add_slice`) and trains
the users it names on it.
"""

from __future__ import annotations

import copy
import json
import logging
from typing import Callable, Iterable

import numpy as np
import torch

from ..context import FitContext
from ..evaluation import RankingResult, UserItems, rank_split, rank_users
from ..metrics import quick_metric
from ..recbole.trainer import fit_recbole
from ..version import __version__
from .batches import Histories, UserBatches
from .reuse import PhaseStore, code_digest, data_digest, digest, rng_state, set_rng_state

logger = logging.getLogger(__name__)

SOURCE_VALID_USERS = 1000
SOURCE_VALID_FRACTION = 0.2


class TransferScorer:
    """The transfer model's side of a session: the users a phase trains, the source-validation slice it
    holds out, and the validation score (target: the fixed split; source: the held-out slice).

    A model family with another model hands :class:`TrainingSession` its own object with the same three
    methods (``hold_out_source()``, ``train_users(domain)``, ``validate(on)``), so the adaptations'
    schedules run unchanged over any model.
    """

    def __init__(self, ctx: FitContext, model):
        self.ctx = ctx
        self.model = model
        self.source_valid = None

    # -- source validation slice ------------------------------------------------------
    def hold_out_source(self) -> None:
        data = self.ctx.data
        pairs = data.source_train
        rng = np.random.default_rng(self.ctx.seed + 101)
        counts = np.bincount(pairs[:, 0], minlength=data.n_source_users)
        eligible = np.flatnonzero(counts >= 5)
        chosen = rng.choice(eligible, size=min(SOURCE_VALID_USERS, len(eligible)), replace=False)
        chosen_mask = np.zeros(data.n_source_users, dtype=bool)
        chosen_mask[chosen] = True
        held = chosen_mask[pairs[:, 0]] & (rng.random(len(pairs)) < SOURCE_VALID_FRACTION)
        train_pairs, valid_pairs = pairs[~held], pairs[held]
        self.model.histories["source"] = Histories(train_pairs, data.n_source_users, data.catalog.source_rows)
        users, per_user = np.unique(valid_pairs[:, 0], return_counts=True)
        hist = self.model.histories["source"]
        # grouped by one stable sort (each user's items in pair order), not a scan of all pairs per user
        order = np.argsort(valid_pairs[:, 0], kind="stable")
        positives = UserItems(np.concatenate([[0], np.cumsum(per_user)]), valid_pairs[order, 1])
        masked = [hist.local_items[hist.indptr[u]:hist.indptr[u + 1]] for u in users]
        self.source_valid = users, positives, masked

    def train_users(self, domain: str) -> np.ndarray:
        """The rows a phase on ``domain`` batches (users with training items)."""
        return self.model.histories[domain].active_users()

    # -- validation -------------------------------------------------------------------
    def validate(self, on: str) -> float:
        model = self.model
        if on == "target":
            return validate_target(self.ctx, lambda u: model.score_users("target", u))
        users, positives, masked = self.source_valid
        return validate_users(self.ctx, lambda u: model.score_users("source", u), users, positives, masked,
                              self.ctx.data.n_source_items)


def validate_target(ctx: FitContext, score_fn) -> float:
    """The validation metric of ``score_fn`` on the target's fixed validation split."""
    metric, k = ctx.valid_metric
    result = rank_split(score_fn, ctx.data, "valid", [k], ctx.device, ctx.evaluation["user_groups"])
    return quick_metric(result, metric, k)


def validate_users(ctx: FitContext, score_fn, users, positives: UserItems, masked, n_items: int) -> float:
    """The validation metric of ``score_fn`` on held-out ``positives`` of ``users`` (a source slice)."""
    metric, k = ctx.valid_metric
    topk, _ = rank_users(score_fn, users, positives, masked, n_items, k, device=ctx.device)
    result = RankingResult(users=users, topk=topk, positives=positives, ks=[k], n_items=n_items,
                           train_counts=np.zeros(len(users)), item_popularity=np.zeros(n_items))
    return quick_metric(result, metric, k)


class TrainingSession:
    def __init__(self, ctx: FitContext, model, config, options: dict, uses_source: bool, uses_target: bool,
                 scorer=None):
        """``scorer``: the model family's side of the session (:class:`TransferScorer`'s methods); the
        transfer model's by default."""
        self.ctx = ctx
        self.model = model
        self.config = config
        self.options = options
        self.uses_source = uses_source
        self.uses_target = uses_target
        self.phases: list[dict] = []
        self.scorer = scorer if scorer is not None else TransferScorer(ctx, model)
        #: held-out slices a phase can validate on besides the target's split and the source's: name ->
        #: (domain, users, positives, masked items)
        self.slices: dict[str, tuple] = {}
        if uses_source:
            self.scorer.hold_out_source()

    def add_slice(self, name: str, domain: str, users: np.ndarray, positives, masked: list) -> None:
        """A held-out slice of ``domain`` to validate phases on (``validate_on=name``): ``users``,
        their held-out ``positives`` (one array per user, or :class:`UserItems`) and the items
        ranked out for each (``masked``). An empty slice validates nothing: the phase keeps its
        last epoch."""
        self.slices[name] = (domain, np.asarray(users, dtype=np.int64), positives, masked)

    def validate(self, on: str) -> float:
        """The validation score of the model now, on ``"target"``, ``"source"`` or an added slice."""
        if on not in self.slices:
            return self.scorer.validate(on)
        domain, users, positives, masked = self.slices[on]
        n_items = self.ctx.data.n_source_items if domain == "source" else self.ctx.data.n_target_items
        return validate_users(self.ctx, lambda u: self.model.score_users(domain, u), users, positives, masked,
                              n_items)

    # -- phases -----------------------------------------------------------------------
    def train(self, domains: Iterable[str] = ("target",), *, phase: str | None = None,
              epochs: int | None = None, learning_rate: float | None = None,
              parameters: Iterable[torch.nn.Parameter] | None = None,
              extra_losses: list[Callable] | None = None, weights: dict[str, float] | None = None,
              validate_on: str | None = None, users: dict[str, np.ndarray] | None = None) -> dict:
        """Train on ``domains`` until validation stops improving; keep the best state.

        :param extra_losses: callables ``(model, batch) -> loss`` added to each step;
            ``batch`` holds the step's item ``vectors`` (of the catalog rows ``item_rows`` the step
            encoded; a loss with ``full_vectors = True`` gets every row) and per-domain ``users`` vectors.
        :param parameters: the parameters to optimise (default: every trainable one).
        :param validate_on: ``"target"`` (default when the target is trained), ``"source"`` or the
            name of a slice added with :meth:`add_slice`.
        :param users: the users each domain trains (default: every user with a history there).
        """
        domains = tuple(domains)
        if "target" in domains and not self.uses_target:
            raise RuntimeError("this adaptation declared uses_target = False but trains on the target")
        if "source" in domains and not self.uses_source:
            raise RuntimeError("this adaptation declared uses_source = False but trains on the source")
        phase = phase or "+".join(domains)
        validate_on = validate_on or ("target" if "target" in domains else "source")
        if validate_on == "target" and not self.uses_target:
            validate_on = "source"
        model = self.model
        # a plain source pretraining on a fresh model: its result depends on nothing an adaptation chose
        reusable = (domains == ("source",) and validate_on == "source" and not self.phases and parameters is None
                    and not extra_losses and not weights and users is None and self.ctx.reuse_dir is not None)
        for domain in domains:
            model.mark_trained(domain)
        model.domain_weight = {"source": 1.0, "target": 1.0, **(weights or {})}
        model.extra_losses = list(extra_losses or [])
        users = {d: users[d] if users is not None else self.scorer.train_users(d) for d in domains}
        loader = UserBatches(users, self.options["batch_users"], self.ctx.seed + len(self.phases))
        cfg = self.config.final_config_dict
        cfg["epochs"] = epochs or self.options["epochs"] or self.ctx.train["epochs"]
        empty = validate_on in self.slices and not len(self.slices[validate_on][1])
        cfg["eval_step"] = cfg["epochs"] + 1 if empty else self.ctx.train["eval_step"]  # empty: keep the last epoch
        cfg["learning_rate"] = learning_rate or self.options["learning_rate"] or self.ctx.train["learning_rate"]
        cfg["weight_decay"] = self.options["weight_decay"]
        params = [p for p in (parameters if parameters is not None else model.parameters()) if p.requires_grad]
        if not reusable:
            return self._fit(phase, domains, loader, validate_on, params)
        key = self._phase_key(phase, domains, validate_on, len(loader))
        store = PhaseStore(self.ctx.reuse_dir, self.ctx.log)
        with store.claim(key):
            entry = store.load(key, model)
            if entry is not None:
                return self._restore(entry, store.path(key))
            start = len(self.ctx.curves)
            record = self._fit(phase, domains, loader, validate_on, params)
            try:
                store.save(key, {"state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                                 "record": record, "curves": self.ctx.curves[start:],
                                 "rng": rng_state(model, self.ctx.device)})
            except OSError as exc:  # a full or read-only disk costs the reuse, never the run
                self.ctx.log(f"reuse: could not store the {phase} phase in {store.folder} ({exc})")
            return record

    def _fit(self, phase: str, domains: tuple, loader, validate_on: str, params: list) -> dict:
        model = self.model
        self.ctx.log(f"phase {phase}: {len(loader)} batches/epoch, validating on {validate_on}")
        start = len(self.ctx.curves)
        trainer = fit_recbole(self.ctx, self.config, model, loader, lambda: self.validate(validate_on),
                              phase=phase, params=params)
        for point in self.ctx.curves[start:]:  # the report draws only target-validated curves
            point["validated_on"] = validate_on
        model.extra_losses = []
        record = {"phase": phase, "domains": list(domains), "best_epoch": trainer.best_epoch,
                  "best_valid": float(trainer.best_valid_score), "validate_on": validate_on,
                  "learning_problem": trainer.learning_problem}
        self.phases.append(record)
        return record

    # -- reuse of a source pretraining (xdplug.model.reuse) ---------------------------------------------
    def _phase_key(self, phase: str, domains: tuple, validate_on: str, n_batches: int) -> str:
        """Everything the phase's result depends on: initial weights, options, train block, data, random
        states, device, code."""
        ctx, cfg = self.ctx, self.config.final_config_dict
        return digest({
            "model": f"{type(self.model).__module__}.{type(self.model).__qualname__}",
            "state": self.model.state_dict(), "options": json.dumps(self.options, sort_keys=True, default=repr),
            "train": json.dumps(ctx.train, sort_keys=True, default=repr), "valid_metric": ctx.valid_metric,
            "trainer": {k: repr(cfg.get(k)) for k in ("epochs", "eval_step", "learning_rate", "weight_decay",
                                                    "stopping_step", "clip_grad_norm", "learner")},
            "phase": [phase, list(domains), validate_on, n_batches], "seed": ctx.seed,
            "device": ctx.device.type, "data": data_digest(ctx.data), "rng": rng_state(self.model, ctx.device),
            "code": code_digest(self.model, self.scorer), "versions": [__version__, torch.__version__, np.__version__]})

    def _restore(self, entry: dict, path) -> dict:
        """The phase as computed: its best weights, record, curve and the random states after it."""
        model = self.model
        device = next(iter(model.state_dict().values())).device
        model.load_state_dict({k: v.to(device) for k, v in entry["state"].items()})
        set_rng_state(model, self.ctx.device, entry["rng"])
        model.extra_losses = []
        record = dict(entry["record"])
        self.ctx.curves.extend(dict(point) for point in entry["curves"])
        self.ctx.log(f"phase {record['phase']}: reused from {path} (best epoch {record['best_epoch']}, "
                     f"valid {record['best_valid']:.4f})")
        self.phases.append(record)
        return record

    def snapshot(self) -> dict[str, torch.Tensor]:
        """A detached copy of the current trainable weights (for L2-SP and friends)."""
        return {n: p.detach().clone() for n, p in self.model.named_parameters() if p.requires_grad}

    def frozen_copy(self):
        """A frozen copy of the model (a teacher); shares the data, not the weights."""
        self.model.last_batch = {}  # step tensors are graph nodes; a teacher needs none of them
        memo = {id(self.model.data): self.model.data}
        teacher = copy.deepcopy(self.model, memo)
        for p in teacher.parameters():
            p.requires_grad_(False)
        teacher.eval()
        return teacher
