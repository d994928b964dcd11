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
from pathlib import Path
from typing import Callable

from ..context import FitContext

logger = logging.getLogger(__name__)


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
