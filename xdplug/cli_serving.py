"""CLI commands that serve recommendations from finished runs (export, recommend, update)."""

from __future__ import annotations


def add_commands(sub) -> None:
    """Add the serving subcommands to the ``xdplug`` parser (none yet)."""
