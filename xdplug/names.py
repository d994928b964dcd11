"""A method's name in reports when its config entry gives none (a leaf: config and controls both need it)."""

from __future__ import annotations


def default_baseline_name(entry: dict) -> str:
    return entry.get("baseline", "?") + (" (pooled)" if entry.get("pooled") else "")


def default_strategy_name(entry: dict) -> str:
    return "{}+{}+{}".format(entry.get("encoder", "?"), entry.get("fusion", "?"), entry.get("adaptation", "?"))
