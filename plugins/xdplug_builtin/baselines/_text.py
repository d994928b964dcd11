"""The frozen text vectors of the text baselines (``text-knn``, ``text-cf``, ``text-gcn``, ...).

One place that turns a baseline's ``params.encoder`` into vectors, so every text baseline reads
the same encoder (and its text cache) the strategies use, and a second encoder reaches all of
them at once. ``params.encoder.name`` picks the encoder (default ``bert``, so a config without
it is unchanged); the other keys are that encoder's options.
"""

from __future__ import annotations

import importlib

import numpy as np

from xdplug.api import Baseline, ConfigError

#: the frozen text encoders a baseline can read. A fixed table rather than the registry: a
#: baseline's ``fit`` gets no registry, and built-in plugins import only ``xdplug.api``
TEXT_ENCODERS = {
    "bert": ("xdplug_builtin.encoders.bert", "BertEncoder"),
    "wordllama": ("xdplug_builtin.encoders.wordllama", "WordLlamaEncoder"),
}
DEFAULT_ENCODER = "bert"


def text_encoder(encoder_params: dict, option: str):
    """The encoder ``encoder_params`` names (``name``, default ``bert``), built with its other keys."""
    params = dict(encoder_params or {})
    name = params.pop("name", DEFAULT_ENCODER)
    if not isinstance(name, str) or name not in TEXT_ENCODERS:
        raise ConfigError(f"{option}.name", f"{name!r} is not a text encoder a baseline can use; "
                          f"expected one of {', '.join(TEXT_ENCODERS)}")
    module, cls = TEXT_ENCODERS[name]
    return getattr(importlib.import_module(module), cls)(params, option)


def encode_texts(texts: list[str], encoder_params: dict, option: str) -> np.ndarray:
    """The item texts' vectors ``[len(texts), d]`` as the encoder returns them (normalised only
    if the encoder's own ``normalize`` says so).

    ``option`` is the config path of ``encoder_params``, named in errors.
    """
    return text_encoder(encoder_params, option).encode(list(texts))


class TextBaseline(Baseline):
    """A baseline that reads item texts through ``params.encoder``: the encoder's name and options are
    checked when the config is read (building an encoder loads nothing), not when the run starts."""

    def __init__(self, params: dict | None = None, path: str | None = None):
        super().__init__(params, path)
        text_encoder(self.params["encoder"], self.encoder_option)

    @property
    def encoder_option(self) -> str:
        """The config path of this baseline's encoder options, named in errors."""
        return f"baselines.{self.name}.params.encoder"

    def unit_text_vectors(self, texts: list[str]) -> np.ndarray:
        """The texts' vectors, ``float64`` and L2-normalised (a zero vector stays zero)."""
        vectors = encode_texts(texts, self.params["encoder"], self.encoder_option).astype(np.float64)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
