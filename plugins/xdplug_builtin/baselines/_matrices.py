"""What the non-RecBole CF baselines (RP3beta, iALS, GF-CF, SANSA) train on and score with.

``training_matrix`` returns the target's training matrix, or with ``pooled``
the pooled matrix built by the same generic mechanism as every RecBole
baseline (:func:`xdplug.training.recbole_data` with ``pooled=True``: source
rows stacked under the target's on shared items, a shared user's source items
as extra columns, ``source_weight`` as the source rows' value). Rows and
columns come with the maps from canonical target users and items, so the
scorers answer over the target's canonical item indices like every other
scorer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from xdplug.api import Float

#: the pooled-only option every one of these baselines takes (checked by xdplug.config.check_pooling)
SOURCE_WEIGHT = Float(None, 0, 1e6, low_open=True,
                      help="pooled only: the value of the source's rows (1 = plain stacking)")
#: pooled: how much the source's rows count, searched like pooled EASE's
POOLED_SEARCH_SPACE = {"params.source_weight": {"type": "loguniform", "low": 0.005, "high": 16.0}}


@dataclass
class Interactions:
    #: users x items training matrix (float64 CSR); binary, or target 1 / source ``source_weight``
    matrix: sp.csr_matrix
    #: the matrix row of each canonical target user
    rows: np.ndarray
    #: the matrix column of each canonical target item
    cols: np.ndarray

    @property
    def item_known(self) -> np.ndarray:
        """Target items with at least one training interaction (target or, pooled, source)."""
        return np.asarray((self.matrix[:, self.cols] != 0).sum(0)).ravel() > 0


def training_matrix(ctx, pooled: bool = False, source_weight: float | None = None) -> Interactions:
    """The training interactions: the target's (``ctx.data.matrix``) or the pooled ones (``recbole_data``)."""
    data = ctx.data
    if not pooled:
        if source_weight is not None:
            raise ValueError("source_weight weights the source rows of pooled data; pass pooled=True")
        return Interactions(data.matrix("target", "train").astype(np.float64).tocsr(),
                            np.arange(data.n_target_users), np.arange(data.n_target_items))
    from xdplug.api import pooled_matrix

    # the same pooled atomic files and ID maps as the RecBole baselines
    return Interactions(*pooled_matrix(ctx, source_weight))


def gram_rows(ctx, pooled: bool = False, source_weight: float | None = None) -> Interactions:
    """:func:`training_matrix` for a Gram-based model: with ``source_weight`` w each source row is
    scaled by sqrt(w), so it counts w times in every co-occurrence (as in pooled EASE) and scores are
    these rows times B."""
    inter = training_matrix(ctx, pooled, source_weight)
    if source_weight is None:
        return inter
    return Interactions(inter.matrix.sqrt(), inter.rows, inter.cols)


class FactorScorer:
    """Scores = the user's vector dotted with every item's vector (factor and embedding baselines)."""

    def __init__(self, users, items, item_known: np.ndarray, device):
        self.users = torch.as_tensor(users, dtype=torch.float32, device=device)
        self.items = torch.as_tensor(items, dtype=torch.float32, device=device)
        self.item_known = item_known

    def score(self, users: torch.Tensor) -> torch.Tensor:
        return self.users[users.to(self.users.device)] @ self.items.T


class SparseRowScorer:
    """Scores = the user's training row times a (sparse or low-rank) item-item operator.

    ``operator(rows)`` maps a CSR block of training rows (all columns) to a dense
    ``[len(rows), n_target_items]`` float64 array; every user's row is computed
    from that user's row alone, so scores do not depend on the batch.
    """

    def __init__(self, inter: Interactions, operator, device):
        self.inter = inter
        self.operator = operator
        self.item_known = inter.item_known
        self.device = device

    def score(self, users: torch.Tensor) -> torch.Tensor:
        rows = self.inter.matrix[self.inter.rows[users.cpu().numpy()]]
        scores = np.asarray(self.operator(rows), dtype=np.float64)
        return torch.as_tensor(scores, dtype=torch.float32, device=self.device)
