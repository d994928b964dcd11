"""A strategy spec resolved: its encoder, fusion, adaptation and model family, each with its options.

Resolving builds no model, trains nothing and imports no torch, so the config's validation,
tuning and artifact loading all check a strategy the way a run builds it. Which family a
strategy is (``params.model.family``) and what the family accepts come from the registry: the
core names no family and no adaptation.
"""

from __future__ import annotations

from typing import Any

from .components import DEFAULT_FAMILY, Strategy
from .errors import ConfigError

__all__ = ["Strategy", "build_strategy", "family_class", "family_name", "resolve_strategy"]


def family_name(entry: dict) -> Any:
    """The family a strategy entry names (``params.model.family``, default ``DEFAULT_FAMILY``)."""
    return ((entry.get("params") or {}).get("model") or {}).get("family", DEFAULT_FAMILY)


def family_class(entry: dict, registry, path: str = "strategy") -> type:
    """The registered :class:`~xdplug.components.ModelFamily` class a strategy entry names."""
    name = family_name(entry)
    if not isinstance(name, str):
        raise ConfigError(f"{path}.params.model.family", f"expected the name of a model family, got {name!r}")
    return registry.get("family", name, f"{path}.params.model.family")


def resolve_strategy(entry: dict, registry, path: str) -> Strategy:
    """Instantiate the strategy's components and family from a config entry (validates every option)."""
    params = entry.get("params") or {}
    encoder_cls = registry.get("encoder", entry["encoder"], f"{path}.encoder")
    fusion_cls = registry.get("fusion", entry["fusion"], f"{path}.fusion")
    adaptation_cls = registry.get("adaptation", entry["adaptation"], f"{path}.adaptation")
    encoder = encoder_cls(params.get("encoder"), f"{path}.params.encoder")
    fusion = fusion_cls(params.get("fusion"), f"{path}.params.fusion")
    adaptation = adaptation_cls(params.get("adaptation"), f"{path}.params.adaptation")
    family_cls = family_class(entry, registry, path)
    model = {k: v for k, v in (params.get("model") or {}).items() if k != "family"}
    family = family_cls(model, f"{path}.params.model")
    options = {"family": family_cls.name, **family.params}
    if "text" in fusion.uses and encoder.role != "text":
        raise ConfigError(f"{path}.fusion", f"fusion {fusion.name!r} needs a text encoder, but encoder "
                          f"{encoder.name!r} provides {encoder.role!r} vectors")
    if family_cls.name not in adaptation.families:
        able = [n for n in registry.names("adaptation") if family_cls.name in registry.get("adaptation", n).families]
        raise ConfigError(f"{path}.adaptation", f"{adaptation.name!r} does not run in params.model.family: "
                          f"{family_cls.name} (it declares families {', '.join(sorted(adaptation.families))}); "
                          f"adaptations that do: {', '.join(able) or 'none'}")
    strategy = Strategy(encoder, fusion, adaptation, family, options, registry, path)
    family.check(strategy)
    return strategy


def build_strategy(entry: dict, registry, path: str):
    """``(encoder, fusion, adaptation, options)`` of a config entry (see :func:`resolve_strategy`)."""
    strategy = resolve_strategy(entry, registry, path)
    return strategy.encoder, strategy.fusion, strategy.adaptation, strategy.options
