"""The boundary with RecBole 1.2.1: build its objects without its global side effects.

RecBole's ``Config`` parses ``sys.argv``, rewrites ``CUDA_VISIBLE_DEVICES`` and
configures the root logger through ``init_logger``. xdplug builds RecBole
objects only here, with ``sys.argv`` and the environment shielded, and never
imports ``recbole.quick_start`` (it pulls in ray and ``pkg_resources``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path

import torch

logger = logging.getLogger(__name__)


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto`` -> the first CUDA device when there is one, else the CPU."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        from .errors import ConfigError

        raise ConfigError("device", f"{spec!r} was requested but CUDA is not available here; use 'cpu' or 'auto'")
    return torch.device(spec)


@contextlib.contextmanager
def _shielded():
    argv = sys.argv
    cuda_env = os.environ.get("CUDA_VISIBLE_DEVICES")
    sys.argv = [argv[0] if argv else "xdplug"]
    try:
        yield
    finally:
        sys.argv = argv
        if cuda_env is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = cuda_env


def recbole_config(model, dataset: str, data_path: str | Path, values: dict, device: torch.device):
    """A RecBole ``Config`` for ``model`` (a name or a class) on atomic files in ``data_path``."""
    from recbole.config import Config

    base = {
        "data_path": str(data_path),
        "checkpoint_dir": str(Path(data_path) / "checkpoints"),
        "show_progress": False,
        "log_wandb": False,
        "save_dataset": False,
        "save_dataloaders": False,
        "use_gpu": device.type == "cuda",
        "gpu_id": str(device.index or 0) if device.type == "cuda" else "",
        "reproducibility": True,
        "state": "WARNING",
        # xdplug filters and splits the data itself; RecBole must not refilter
        "user_inter_num_interval": "[0,inf)",
        "item_inter_num_interval": "[0,inf)",
        "val_interval": None,
        "load_col": {"inter": ["user_id", "item_id"]},
        "USER_ID_FIELD": "user_id",
        "ITEM_ID_FIELD": "item_id",
        "RATING_FIELD": "rating",
        "TIME_FIELD": "timestamp",
    }
    base.update(values)
    with _shielded():
        config = Config(model=model, dataset=dataset, config_dict=base)
    config.final_config_dict["device"] = device
    config.final_config_dict["gpu_id"] = base["gpu_id"]
    return config


def quiet_recbole_logging(level: int = logging.WARNING) -> None:
    """RecBole logs through the root logger; keep its chatter out of xdplug's output."""
    for name in ("recbole", "numexpr"):
        logging.getLogger(name).setLevel(level)
