"""What every ``xdplug`` command shares: the plugin manager, loading a config, printing a table.

Imports of the engine (config, plugins, and through them torch) happen inside the
functions, so ``xdplug --version`` and ``--help`` answer without loading torch.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from .errors import ConfigError
from .options import Option


def _plugins(args):
    """The plugin manager of this command: the one :func:`xdplug.cli.main` was given, or one loaded
    once from the installed plugins (never a process-wide one)."""
    if getattr(args, "plugins", None) is None:
        from .plugins import make_plugin_manager

        args.plugins = make_plugin_manager()
    return args.plugins


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)] if rows else [len(h) for h in header]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)


def _check_config_path(path: str) -> None:
    if Path(path).expanduser().is_dir():
        found = sorted(p.name for p in Path(path).expanduser().glob("*.y*ml"))[:3]
        hint = f" (it holds {', '.join(found)})" if found else ""
        raise ConfigError("(file)", f"is a directory, expected a YAML config file{hint}", str(path))


def _load(args, extra: list[str] = ()):
    from .config import load_config

    _check_config_path(args.config)
    return load_config(args.config, overrides=[*(args.set or []), *extra], registry=_plugins(args).registry)


def option_arg(option: Option):
    """An argparse ``type=`` that checks a command-line number like the config key it mirrors.

    ``--learning-rate -1`` or ``--seed nan`` stop at parsing (usage, one ``error:`` line, exit 2)
    instead of failing halfway through a command.
    """
    option = dataclasses.replace(option, nullable=False)  # a flag given is a value: "(or null)" is no hint
    integer = option.types() == (int,)

    def parse(text: str):
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {option.describe()}, got {text!r}") from None
        try:
            return option.check(value, "")
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[-1]) from None

    parse.__name__ = "integer" if integer else "number"
    return parse


def device_arg(text: str) -> str:
    """An argparse ``type=`` for ``--device``: the values the config's ``device`` key takes."""
    from .config import check_device

    try:
        return check_device(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[-1]) from None
