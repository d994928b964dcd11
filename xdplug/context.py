"""FitContext: what a method gets to train, the contract between the engine and a component."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .metrics import parse_metric

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .data.crossdomain import CrossDomainData

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
    #: the registry the run's components came from: a component that reads another one by name (a text
    #: baseline's encoder) resolves it here, so a third-party component serves it like a built-in one
    registry: Any = None  # an xdplug.registry.Registry (not imported: the registry sits above the context)
    #: the run's folder of reusable phase results (a source pretraining shared by the adaptations that start
    #: from it: ``xdplug.model.reuse``); None: every phase is computed
    reuse_dir: Path | None = None

    def component(self, kind: str, name: str, path: str | None = None) -> type:
        """The class registered as ``name`` of ``kind`` in this run's registry (an unknown name is an
        :class:`~xdplug.errors.UnknownComponentError` listing the registered ones, ``path`` in front)."""
        if self.registry is None:
            raise RuntimeError("this FitContext carries no registry; build it with registry=...")
        return self.registry.get(kind, name, path)

    def log(self, message: str) -> None:
        if self.progress:
            self.progress(message)
        logger.info(message)

    @property
    def valid_metric(self) -> tuple[str, int]:
        return parse_metric(self.evaluation["valid_metric"])
