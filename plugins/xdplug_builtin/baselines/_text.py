"""The frozen text vectors of the text baselines (``text-knn``, ``text-cf``, ``text-gcn``, ...).

One place that turns a baseline's ``params.encoder`` into vectors, so every text baseline reads
the same encoder (and its text cache) the strategies use, and a second encoder reaches all of
them at once.
"""

from __future__ import annotations

import numpy as np


def encode_texts(texts: list[str], encoder_params: dict, option: str) -> np.ndarray:
    """The item texts' vectors ``[len(texts), d]`` as the encoder returns them (not normalised).

    ``option`` is the config path of ``encoder_params``, named in errors.
    """
    from xdplug_builtin.encoders.bert import BertEncoder

    return BertEncoder(encoder_params, option).encode(list(texts))
