"""What every ``xdplug`` command shares: the plugin manager, loading a config, printing a table.

Imports of the engine (config, plugins, and through them torch) happen inside the
functions, so ``xdplug --version`` and ``--help`` answer without loading torch.
"""

from __future__ import annotations

from pathlib import Path

from .errors import ConfigError


def _plugins():
    from .plugins import get_plugins

    return get_plugins()


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
    return load_config(args.config, overrides=[*(args.set or []), *extra], registry=_plugins().registry)
