"""The boundary with RecBole 1.2.1: build its objects without its global side effects.

RecBole's ``Config`` parses ``sys.argv``, rewrites ``CUDA_VISIBLE_DEVICES`` and
configures the root logger through ``init_logger``. xdplug builds RecBole
objects only here, with ``sys.argv`` and the environment shielded, and never
imports ``recbole.quick_start`` (it pulls in ray and ``pkg_resources``).

RecBole's ``Config`` also runs ``eval`` on every string value it is given (and
on ``--key=value`` command-line arguments): a string option such as
``"__import__('os').system(...)"`` would run as code. xdplug builds it through
:func:`safe_config_class`, which converts strings only as literals
(:func:`literal_value`) and reads no command line, and the RecBole baselines
refuse at validation every string :func:`evaluates_as_code` flags.
"""

from __future__ import annotations

import ast
import warnings
import contextlib
import logging
import os
import sys
from functools import lru_cache
from pathlib import Path

import torch

logger = logging.getLogger(__name__)


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto`` -> the first CUDA device when there is one, else the CPU."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        from ..errors import ConfigError

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


#: what RecBole keeps of an evaluated string (its ``_convert_config_dict``; Enum members cannot be literals)
_LITERAL_TYPES = (str, int, float, list, tuple, dict, bool)


def evaluates_as_code(text: str) -> bool:
    """Would RecBole 1.2.1's ``Config`` run ``text`` as code?

    RecBole calls ``eval`` on every string option. True for any string that
    parses as a Python expression other than a literal (``0.5``, ``[64, 32]``,
    ``'a'``) or a bare name (``stack``: looked up, never called). A string that
    is not an expression (``[0,inf)``, ``/a/path``) is not evaluated.
    """
    if not isinstance(text, str):
        return False
    try:  # eval strips leading spaces and tabs; compile does not
        with warnings.catch_warnings():  # "1e-5x" would print a SyntaxWarning to the user's console
            warnings.simplefilter("ignore", SyntaxWarning)
            tree = compile(text.lstrip(" \t"), "<recbole option>", "eval", ast.PyCF_ONLY_AST)
    except (SyntaxError, ValueError):  # ValueError: a null byte; eval fails the same way
        return False
    except Exception:  # noqa: BLE001 - nesting deep enough to exhaust the parser: refuse, do not guess
        return True
    if isinstance(tree.body, ast.Name):
        return False
    try:
        ast.literal_eval(tree.body)
    except Exception:  # noqa: BLE001 - ValueError, TypeError, RecursionError, ...
        return True
    return False


def literal_value(text: str):
    """What xdplug's RecBole ``Config`` makes of a string option: a literal's value or the string itself.

    ``"0.5"`` -> 0.5, ``"[64, 32]"`` -> [64, 32], ``"true"``/``"false"`` -> bools, ``"None"`` -> None;
    anything else (``"stack"``, ``"[0,inf)"``, an expression) stays the plain string. Nothing is run.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            value = ast.literal_eval(text.lstrip(" \t"))
    except Exception:  # noqa: BLE001 - not a literal (SyntaxError, ValueError, RecursionError, ...)
        lowered = text.lower()
        return True if lowered == "true" else False if lowered == "false" else text
    return value if value is None or isinstance(value, _LITERAL_TYPES) else text


@lru_cache(maxsize=None)
def safe_config_class():
    """RecBole's ``Config`` without ``eval``: string options become literals or stay strings, no command line."""
    from recbole.config import Config

    class SafeConfig(Config):
        """``Config`` whose string options are never evaluated as code and which ignores ``sys.argv``."""

        def _convert_config_dict(self, config_dict):
            for key, value in config_dict.items():
                if isinstance(value, str):
                    config_dict[key] = literal_value(value)
            return config_dict

        def _load_cmd_line(self):
            return {}

    SafeConfig.__module__, SafeConfig.__qualname__ = __name__, "SafeConfig"  # picklable by reference
    return SafeConfig


def __getattr__(name: str):
    if name == "SafeConfig":  # built on first use: importing RecBole is slow
        return safe_config_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def recbole_config(model, dataset: str, data_path: str | Path, values: dict, device: torch.device):
    """A RecBole ``Config`` for ``model`` (a name or a class) on atomic files in ``data_path``.

    Built with :func:`safe_config_class`: no value in ``values`` is evaluated as code.
    """
    Config = safe_config_class()

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
