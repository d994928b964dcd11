"""A strategy spec resolved: its encoder, fusion and adaptation instances and the model's options.

Resolving a spec builds no model and trains nothing, so the config's validation,
tuning and artifact loading all check a strategy the way a run builds it.
"""

from __future__ import annotations

from ..components import resolve_params
from ..errors import ConfigError
from .linear import check_family
from .transfer import ModelOptions, _check_options


def build_strategy(entry: dict, registry, path: str):
    """Instantiate the strategy's components from a config entry (validates options)."""
    params = entry.get("params") or {}
    encoder_cls = registry.get("encoder", entry["encoder"], f"{path}.encoder")
    fusion_cls = registry.get("fusion", entry["fusion"], f"{path}.fusion")
    adaptation_cls = registry.get("adaptation", entry["adaptation"], f"{path}.adaptation")
    encoder = encoder_cls(params.get("encoder"), f"{path}.params.encoder")
    fusion = fusion_cls(params.get("fusion"), f"{path}.params.fusion")
    adaptation = adaptation_cls(params.get("adaptation"), f"{path}.params.adaptation")
    options = resolve_params(ModelOptions, params.get("model"), f"{path}.params.model")
    _check_options(options)
    if "text" in fusion.uses and encoder.role != "text":
        raise ConfigError(f"{path}.fusion", f"fusion {fusion.name!r} needs a text encoder, but encoder "
                          f"{encoder.name!r} provides {encoder.role!r} vectors")
    if options["family"] == "ease":
        check_family(adaptation.name, encoder.role, fusion.uses, path)
    return encoder, fusion, adaptation, options
