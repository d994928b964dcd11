"""What ``xdplug update`` does differently for a sequence model (``reads_order``): the new events keep
their time order, the slice validated on is each user's latest events, and a user's known events
and new ones make one timeline (an artifact keeps the order of the events, not their times)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..data.raw import column_numbers
from ..errors import DataError


def timestamps(column: pd.Series, file: Path, name: str) -> np.ndarray:
    """A timestamp column as seconds (numbers as given, dates parsed; ``column_numbers``); an empty
    cell is an error too: a sequence model appends the new events in time order."""
    values = column_numbers(column, str(file), name, dates=True)
    if values.isna().any():
        row = int(np.flatnonzero(values.isna().to_numpy())[0])
        raise DataError(f"expected a time (a number or a date), got an empty cell (row {row + 1}, line {row + 2} "
                        "of the file); a sequence model appends the new events in time order", str(file), name)
    return values.to_numpy(dtype=np.float64)


def holdout_latest(pairs: np.ndarray, fraction: float) -> np.ndarray:
    """Boolean mask: the latest ``fraction`` of each user's new pairs (in time order; users with two or
    more keep their earliest for training), what a sequence model must predict from what came before."""
    held = np.zeros(len(pairs), dtype=bool)
    if fraction <= 0 or not len(pairs):
        return held
    for user in np.unique(pairs[:, 0]):
        mine = np.flatnonzero(pairs[:, 0] == user)
        if len(mine) >= 2:
            held[mine[len(mine) - min(len(mine) - 1, max(1, int(round(fraction * len(mine))))):]] = True
    return held


def timeline(*parts: np.ndarray) -> np.ndarray:
    """(user, item) pairs grouped by user in ascending order, each user's events of ``parts[0]`` first,
    then ``parts[1]``'s, ...; each part's own order kept (a sequence's layout, ``Sequences.from_pairs``)."""
    parts = [np.asarray(p, dtype=np.int64).reshape(-1, 2) for p in parts]
    pairs = np.concatenate(parts)
    rank = np.concatenate([np.full(len(p), i) for i, p in enumerate(parts)])
    return pairs[np.lexsort((np.arange(len(pairs)), rank, pairs[:, 0]))]
