"""Weights in and out of models: loading a stored state dict, and seeded or kept random state.

:func:`load_state` is how an artifact's strategy model and a baseline's
``restore`` (``export = "state"``) take their stored tensors.
"""

from __future__ import annotations

import contextlib
import random
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .errors import ArtifactError


def load_state(model: nn.Module, state: dict, file: Path | str | None = None, grow: bool = False) -> None:
    """Load ``state`` into ``model``; a mismatch is an ArtifactError (naming ``file`` when given).

    Keys of modules the model does not have (an adaptation's training-only parts,
    such as DANN's domain classifier) are ignored. With ``grow`` a tensor may be
    shorter than the model's along its first dimension (an update added users or
    items): its rows are copied and the rest keep their fresh initialisation.
    """
    where = f"{file}: " if file else ""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    if missing:
        raise ArtifactError(f"{where}the weights do not fit the model built from the artifact's spec "
                            f"(missing {', '.join(missing[:5])})")
    foreign = [k for k in state if k not in own and hasattr(model, k.split(".")[0])]
    if foreign:
        raise ArtifactError(f"{where}the weights do not fit the model built from the artifact's spec "
                            f"(unexpected {', '.join(foreign[:5])})")
    merged = {}
    for key, value in own.items():
        saved = state[key]
        if saved.shape == value.shape:
            merged[key] = saved
        elif grow and saved.dim() == value.dim() and saved.shape[1:] == value.shape[1:] \
                and saved.shape[0] <= value.shape[0]:
            fresh = value.clone()
            fresh[: saved.shape[0]] = saved.to(fresh.dtype)
            merged[key] = fresh
        else:
            raise ArtifactError(f"{where}tensor {key} has shape {tuple(saved.shape)}, the model built from "
                                f"the artifact's spec expects {tuple(value.shape)}")
    model.load_state_dict(merged, strict=True)


@contextlib.contextmanager
def seeded(seed: int):
    """Seed torch's and numpy's generators inside, and give the caller's state back after."""
    state = np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        np.random.seed(seed % (2 ** 32))
        try:
            yield
        finally:
            np.random.set_state(state)


@contextlib.contextmanager
def rng_kept():
    """RecBole's ``init_seed`` reseeds the global generators; a loading program keeps its own."""
    saved = (random.getstate(), np.random.get_state(), torch.get_rng_state(),
             torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    try:
        yield
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])
        torch.set_rng_state(saved[2])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved[3], saved[4]
