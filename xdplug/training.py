"""Training through RecBole's trainer, with xdplug's validation and in-memory best state.

Every trainable method (RecBole baselines and transfer strategies alike) is
trained by :class:`XTrainer`, a RecBole ``Trainer`` whose validation step is
xdplug's own full-sort evaluation on the fixed target split, so early
stopping uses the same evaluator and candidate set for every method. The best
validation state is kept in memory: RecBole's reload of its own checkpoint
(``torch.load`` without ``weights_only``) is never used.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from .config import parse_metric
from .data.crossdomain import CrossDomainData
from .evaluation import RankingResult, rank_users

logger = logging.getLogger(__name__)


@dataclass
class FitContext:
    """What a method needs to train: the data, the seed, the device and the run's settings."""

    data: CrossDomainData
    seed: int
    device: torch.device
    train: dict
    evaluation: dict
    workdir: Path
    #: per-epoch records {"phase", "epoch", "loss", "valid", "seconds"}; the point of a phase's
    #: best validation epoch (the state kept) also has ``"best": True``
    curves: list = field(default_factory=list)
    progress: Callable[[str], None] | None = None
    tensorboard_dir: Path | None = None

    def log(self, message: str) -> None:
        if self.progress:
            self.progress(message)
        logger.info(message)

    @property
    def valid_metric(self) -> tuple[str, int]:
        return parse_metric(self.evaluation["valid_metric"])


# -- evaluation on the fixed split ----------------------------------------------------


def split_users(data: CrossDomainData, split: str):
    """Users with held-out positives in ``split``, their positives and their masked items (cached)."""
    cache = data.__dict__.setdefault("_split_cache", {})
    if split not in cache:
        cache[split] = _split_users(data, split)
    return cache[split]


def _split_users(data: CrossDomainData, split: str):
    train = data.user_items("target", "train")
    held = data.user_items("target", split)
    masked = train
    if split == "test":  # as RecBole: the test ranking also excludes validation items
        valid = data.user_items("target", "valid")
        masked = [np.union1d(a, b) for a, b in zip(train, valid)]
    users = np.array([u for u in range(data.n_target_users) if len(held[u])], dtype=np.int64)
    return users, [held[u] for u in users], [masked[u] for u in users], np.array([len(train[u]) for u in users])


def rank_split(score_fn, data: CrossDomainData, split: str, ks: list[int], device, user_groups,
               item_known=None, batch_size: int = 1024) -> RankingResult:
    users, positives, masked, counts = split_users(data, split)
    cold = data.cold_items if len(data.cold_items) else None
    topk, topk_cold = rank_users(score_fn, users, positives, masked, data.n_target_items, max(ks),
                                 batch_size=batch_size, device=device, cold_items=cold)
    return RankingResult(users=users, topk=topk, positives=positives, ks=list(ks),
                         n_items=data.n_target_items, train_counts=counts,
                         item_popularity=data.target_item_popularity, user_groups=list(user_groups),
                         cold_items=cold, topk_cold=topk_cold, item_known=item_known)


def quick_metric(result: RankingResult, metric: str, k: int) -> float:
    """One mean metric for early stopping (the ``ranking`` evaluator computes the full set)."""
    hits = result.hits()[:, :k]
    pos = result.positive_counts()
    if metric == "ndcg":
        disc = 1.0 / np.log2(np.arange(2, k + 2))
        dcg = (hits * disc).sum(1)
        idcg = np.array([disc[: min(p, k)].sum() for p in pos])
        return float(np.mean(dcg / idcg))
    if metric == "recall":
        return float(np.mean(hits.sum(1) / pos))
    if metric == "hit":
        return float(np.mean(hits.any(1)))
    if metric == "precision":
        return float(np.mean(hits.sum(1) / k))
    if metric == "mrr":
        first = np.where(hits.any(1), hits.argmax(1) + 1, np.inf)
        return float(np.mean(np.where(np.isfinite(first), 1.0 / first, 0.0)))
    raise ValueError(metric)


# -- RecBole datasets from prepared data ------------------------------------------------


@dataclass
class RecboleData:
    config: object
    dataset: object
    train_loader: object
    #: RecBole user id per canonical target user
    user_ids: np.ndarray
    #: RecBole item id per canonical target item
    item_ids: np.ndarray
    #: RecBole item id per catalog row (pooled datasets) or None
    extra: dict = field(default_factory=dict)


def _write_atomic(folder: Path, name: str, users: list[str], items: list[str],
                  all_users: list[str], all_items: list[str], weights=1.0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"user_id:token": users, "item_id:token": items, "rating:float": weights}).to_csv(
        folder / f"{name}.inter", sep="\t", index=False)
    # listing every user and item makes RecBole give each an ID, also those without training rows
    pd.DataFrame({"user_id:token": all_users}).to_csv(folder / f"{name}.user", sep="\t", index=False)
    pd.DataFrame({"item_id:token": all_items}).to_csv(folder / f"{name}.item", sep="\t", index=False)


def recbole_data(ctx: FitContext, model, values: dict, pooled: bool = False,
                 domain: str = "target", source_weight: float | None = None) -> RecboleData:
    """A RecBole dataset and train loader over the target training split.

    ``pooled`` stacks the source's interactions under the target's: items that
    align share a column, users that align share a row (their source history
    becomes extra item columns), everything else is added as new rows/columns.
    ``source_weight`` (pooled only) loads a ``rating`` column that is 1 for
    target rows and this weight for source rows, for models that read it.
    """
    from recbole.data.dataloader import TrainDataLoader
    from recbole.data.dataset import Dataset
    from recbole.sampler import Sampler
    from recbole.utils import init_seed

    from .recbole_compat import recbole_config

    data = ctx.data
    cat = data.catalog
    if domain == "source":
        pairs = data.source_train
        users = [f"s{u}" for u in pairs[:, 0]]
        items = [f"c{r}" for r in cat.source_rows[pairs[:, 1]]]
        all_users = [f"s{u}" for u in range(data.n_source_users)]
        all_items = [f"c{r}" for r in cat.source_rows]
    else:
        t = data.target_train
        users = [f"t{u}" for u in t[:, 0]]
        items = [f"c{r}" for r in cat.target_rows[t[:, 1]]]
        all_users = [f"t{u}" for u in range(data.n_target_users)]
        all_items = [f"c{r}" for r in cat.target_rows]
        if pooled:
            s = data.source_train
            shared = dict(zip(data.shared_users[:, 1], data.shared_users[:, 0])) if len(data.shared_users) else {}
            # source rows are stacked under the target's on the items both domains have; a user
            # present in both domains also brings their source-only items as extra columns
            shared_item = np.zeros(data.n_source_items, dtype=bool)
            if len(data.shared_items):
                shared_item[data.shared_items[:, 1]] = True
            shared_user = np.zeros(data.n_source_users, dtype=bool)
            if shared:
                shared_user[list(shared)] = True
            s = s[shared_item[s[:, 1]] | shared_user[s[:, 0]]]
            su = [f"t{shared[u]}" if u in shared else f"s{u}" for u in s[:, 0]]
            users += su
            items += [f"c{r}" for r in cat.source_rows[s[:, 1]]]
            all_users += sorted(set(su) - set(all_users))
            all_items += sorted(set(f"c{r}" for r in cat.source_rows[np.unique(s[:, 1])]) - set(all_items))
    weights = 1.0
    if source_weight is not None:
        if not pooled:
            raise ValueError("source_weight weights the source rows of pooled data; pass pooled=True")
        weights = np.ones(len(users))
        weights[len(data.target_train):] = source_weight  # the source rows follow the target's
    name = f"{domain}{'-pooled' if pooled else ''}"
    folder = ctx.workdir / "recbole"
    _write_atomic(folder / name, name, users, items, all_users, all_items, weights)
    inter_cols = ["user_id", "item_id"] + (["rating"] if source_weight is not None else [])
    settings = {
        "load_col": {"inter": inter_cols, "user": ["user_id"], "item": ["item_id"]},
        "epochs": ctx.train["epochs"],
        "train_batch_size": ctx.train["batch_size"],
        "eval_batch_size": ctx.train["eval_batch_size"],
        "learning_rate": ctx.train["learning_rate"],
        "weight_decay": ctx.train["weight_decay"],
        "stopping_step": ctx.train["stopping_step"],
        "eval_step": ctx.train["eval_step"],
        "valid_metric": ctx.evaluation["valid_metric"].replace("ndcg", "NDCG").replace("recall", "Recall")
                        .replace("mrr", "MRR").replace("hit", "Hit").replace("precision", "Precision"),
        "metrics": ["Recall", "NDCG"],
        "topk": [10],
        "seed": ctx.seed,
        "eval_args": {"split": {"RS": [1.0, 0.0, 0.0]}, "order": "RO", "group_by": "user", "mode": "full"},
    }
    if source_weight is not None:  # the weights are values, never rescaled
        settings.update({"normalize_all": False, "normalize_field": None})
    if ctx.train.get("neg_sampling", "uniform") == "none":
        settings["train_neg_sample_args"] = None
    settings.update(values)
    config = recbole_config(model, name, folder, settings, ctx.device)
    init_seed(ctx.seed, True)
    dataset = Dataset(config)
    dataset._change_feat_format()
    neg = config["train_neg_sample_args"]
    sampler = None
    if neg and neg.get("distribution", "none") != "none":
        sampler = Sampler(["train"], [dataset], neg["distribution"], neg.get("alpha", 1.0)).set_phase("train")
    loader = TrainDataLoader(config, dataset, sampler, shuffle=True)
    uid = dataset.field2token_id["user_id"]
    iid = dataset.field2token_id["item_id"]
    n_t = data.n_target_users if domain == "target" else data.n_source_users
    prefix = "t" if domain == "target" else "s"
    user_ids = np.array([uid[f"{prefix}{u}"] for u in range(n_t)], dtype=np.int64)
    rows = cat.target_rows if domain == "target" else cat.source_rows
    item_ids = np.array([iid[f"c{r}"] for r in rows], dtype=np.int64)
    return RecboleData(config, dataset, loader, user_ids, item_ids)


# -- the trainer --------------------------------------------------------------------------


class XTrainer:
    """RecBole's ``Trainer`` with xdplug validation, in-memory best state and curves.

    Built lazily as a subclass so importing xdplug does not import RecBole.
    """

    def __new__(cls, *args, **kwargs):
        return _make_trainer_class()(*args, **kwargs)


_TRAINER_CLASS = None


def _make_trainer_class():
    global _TRAINER_CLASS
    if _TRAINER_CLASS is not None:
        return _TRAINER_CLASS
    import recbole.trainer.trainer as rt
    from recbole.trainer import Trainer

    class _XTrainer(Trainer):
        def __init__(self, config, model, validate: Callable[[], float], curves: list, phase: str,
                     params=None, tensorboard_dir: Path | None = None, show_progress: bool = False):
            original = rt.get_tensorboard
            rt.get_tensorboard = lambda _logger: _writer(tensorboard_dir)
            try:
                super().__init__(config, model)
            finally:
                rt.get_tensorboard = original
            if params is not None:
                self.optimizer = self._build_optimizer(params=params)
            self.validate = validate
            self.curves = curves
            self.phase = phase
            self.best_state = None
            self.best_epoch = -1
            self._show = show_progress
            self._epoch_start = time.perf_counter()
            self._last_loss = None

        def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
            self._epoch_start = time.perf_counter()
            loss = super()._train_epoch(train_data, epoch_idx, loss_func, show_progress=self._show)
            self._last_loss = float(sum(loss) if isinstance(loss, tuple) else loss)
            if self.eval_step <= 0 or (epoch_idx + 1) % self.eval_step:
                self.curves.append({"phase": self.phase, "epoch": epoch_idx, "loss": self._last_loss,
                                    "valid": None, "seconds": time.perf_counter() - self._epoch_start})
            self._epoch = epoch_idx
            return loss

        def _valid_epoch(self, valid_data, show_progress=False):
            self.model.eval()
            score = float(self.validate())
            self.model.train()
            self.curves.append({"phase": self.phase, "epoch": getattr(self, "_epoch", 0),
                                "loss": self._last_loss, "valid": score,
                                "seconds": time.perf_counter() - self._epoch_start})
            self.tensorboard.add_scalar(f"{self.phase}/valid", score, getattr(self, "_epoch", 0))
            return score, {"valid": score}

        def _save_checkpoint(self, epoch, verbose=True, **kwargs):
            self.best_state = copy.deepcopy(self.model.state_dict())
            self.best_epoch = epoch

        def _add_hparam_to_tensorboard(self, best_valid_result):
            pass

        def restore_best(self):
            if self.best_state is not None:
                self.model.load_state_dict(self.best_state)

    _TRAINER_CLASS = _XTrainer
    return _XTrainer


def _writer(folder: Path | None):
    from torch.utils.tensorboard import SummaryWriter

    if folder is None:
        class _Null:
            def add_scalar(self, *a, **k):
                pass

            def add_hparams(self, *a, **k):
                pass

            def close(self):
                pass

        return _Null()
    folder.mkdir(parents=True, exist_ok=True)
    return SummaryWriter(str(folder))


def fit_recbole(ctx: FitContext, config, model, train_loader, validate: Callable[[], float],
                phase: str = "train", params=None, epochs: int | None = None) -> object:
    """Train ``model`` with RecBole's loop; early stopping on ``validate``; best state restored."""
    from recbole.utils import ModelType

    if epochs is not None:
        config.final_config_dict["epochs"] = epochs
    if getattr(model, "type", None) == ModelType.TRADITIONAL:
        config.final_config_dict["epochs"] = 1
        config.final_config_dict["eval_step"] = 1
    trainer = XTrainer(config, model, validate, ctx.curves, phase, params=params,
                       tensorboard_dir=(ctx.tensorboard_dir / phase) if ctx.tensorboard_dir else None)
    start = len(ctx.curves)
    trainer.fit(train_loader, valid_data=True, verbose=False, saved=True, show_progress=False)
    trainer.restore_best()
    trainer.tensorboard.close()
    points = ctx.curves[start:]
    for point in points:  # the epoch whose state was kept
        if point.get("valid") is not None and point.get("epoch") == trainer.best_epoch:
            point["best"] = True
    trainer.learning_problem = learning_problem(points, phase)
    if trainer.learning_problem:
        ctx.log(trainer.learning_problem)
    return trainer


# -- runs that did not learn -------------------------------------------------------------

#: notes of a run that did not learn start with this (the report lists them apart)
DID_NOT_LEARN = "did not learn"
#: a training loss whose relative change from the first to the last epoch is at most this did not move
LOSS_RTOL = 1e-6


def learning_problem(points: list[dict], phase: str | None = None) -> str | None:
    """Why one training phase's curve says the model did not learn, or None.

    Only a phase trained for more than one epoch can be judged (closed-form and
    one-epoch models never are): its training loss is NaN or infinite, or did
    not move (relative change from the first to the last epoch at most
    :data:`LOSS_RTOL`), or it was validated more than once and no later
    validation score beat the first one (training never improved on its
    start: early stopping at initialisation; a tie is no improvement).
    """
    points = sorted(points, key=lambda p: p.get("epoch") or 0)
    epochs = len({p.get("epoch") for p in points})
    if epochs < 2:
        return None
    where = f" ({phase} phase)" if phase else ""
    losses = [(p.get("epoch"), float(p["loss"])) for p in points if p.get("loss") is not None]
    bad = next(((e, x) for e, x in losses if not math.isfinite(x)), None)
    if bad is not None:
        return f"{DID_NOT_LEARN}: training loss {bad[1]} at epoch {bad[0]} of {epochs}{where}"
    if len(losses) >= 2:
        first, last = losses[0][1], losses[-1][1]
        if abs(last - first) <= LOSS_RTOL * max(abs(first), abs(last)):
            return f"{DID_NOT_LEARN}: training loss constant at {first:.6g} over {epochs} epochs{where}"
    scores = [(p.get("epoch"), float(p["valid"])) for p in points if p.get("valid") is not None]
    scores = [(e, v) for e, v in scores if math.isfinite(v)]
    if len(scores) >= 2 and max(v for _, v in scores[1:]) <= scores[0][1]:
        return (f"{DID_NOT_LEARN}: best validation score at epoch {scores[0][0]} of {epochs}{where}, "
                f"{scores[0][1]:.4f}, never beaten")
    return None


def learning_problems(curves: list[dict]) -> list[str]:
    """:func:`learning_problem` of every phase of a run's curves (a phase restarts when its epoch does)."""
    groups: list[list[dict]] = []
    for point in curves:
        last = groups[-1][-1] if groups else None
        if last is None or last.get("phase") != point.get("phase") or \
                (point.get("epoch") or 0) <= (last.get("epoch") or 0):
            groups.append([])
        groups[-1].append(point)
    problems = [learning_problem(g, g[0].get("phase")) for g in groups]
    return [p for p in problems if p]
