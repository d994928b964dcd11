"""The frozen text vectors of the text baselines (``text-knn``, ``text-cf``, ``text-gcn``, ...).

One place that turns a baseline's ``params.encoder`` into vectors, so every text baseline reads
the same encoder (and its text cache) the strategies use, and a second encoder reaches all of
them at once. ``params.encoder.name`` picks the encoder (default ``bert``, so a config without
it is unchanged) among the registered ones, built-in or third-party, that have role ``text``
and an ``encode(texts)``; the other keys are that encoder's options.
"""

from __future__ import annotations

import numpy as np

from xdplug.api import Baseline, ConfigError

#: the encoder a baseline reads when ``params.encoder`` names none
DEFAULT_ENCODER = "bert"


def _serves_text(cls) -> bool:
    """An encoder a text baseline can read: role ``text`` and a frozen-vector ``encode``."""
    return cls.role == "text" and callable(getattr(cls, "encode", None))


def text_encoders(registry) -> list[str]:
    """The encoders of ``registry`` a text baseline can read (any plugin's), sorted."""
    return [name for name in registry.names("encoder") if _serves_text(registry.get("encoder", name))]


def text_encoder(registry, encoder_params: dict, option: str):
    """The encoder ``encoder_params`` names (``name``, default ``bert``), built with its other keys.

    Resolved through the run's registry (the FitContext's, or the one a config is validated
    against), so a third-party encoder with role ``text`` and an ``encode(texts)`` serves every
    text baseline like ``bert`` and ``wordllama`` do.
    """
    params = dict(encoder_params or {})
    name = params.pop("name", DEFAULT_ENCODER)
    if isinstance(name, str) and name in registry.names("encoder"):
        cls = registry.get("encoder", name, f"{option}.name")
        if _serves_text(cls):
            return cls(params, option)
        found = (f"encoder {name!r} has role {cls.role!r}" if cls.role != "text"
                 else f"encoder {name!r} has no encode(texts) method giving frozen vectors")
    else:
        found = f"no plugin registers an encoder {name!r}"
    raise ConfigError(f"{option}.name", f"{name!r} is not a text encoder a baseline can use; expected one of "
                      f"{', '.join(text_encoders(registry)) or '(none registered)'} ({found}; a text baseline needs "
                      "role 'text' and encode(texts))")


def encode_texts(ctx, texts: list[str], encoder_params: dict, option: str) -> np.ndarray:
    """The item texts' vectors ``[len(texts), d]`` as the encoder returns them (normalised only
    if the encoder's own ``normalize`` says so); the encoder comes from ``ctx.registry``.

    ``option`` is the config path of ``encoder_params``, named in errors.
    """
    return text_encoder(ctx.registry, encoder_params, option).encode(list(texts))


class TextBaseline(Baseline):
    """A baseline that reads item texts through ``params.encoder``: the encoder's name and options are
    checked when the config is read (building an encoder loads nothing), not when the run starts."""

    def check_components(self, registry) -> None:
        """The encoder is a registered text encoder, its options are valid and its files (a local
        model directory) are there before the run starts."""
        text_encoder(registry, self.params["encoder"], self.encoder_option).check_files()

    @property
    def encoder_option(self) -> str:
        """The config path of this baseline's encoder options, named in errors."""
        return f"baselines.{self.name}.params.encoder"

    def unit_text_vectors(self, ctx, texts: list[str]) -> np.ndarray:
        """The texts' vectors, ``float64`` and L2-normalised (a zero vector stays zero)."""
        vectors = encode_texts(ctx, texts, self.params["encoder"], self.encoder_option).astype(np.float64)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
