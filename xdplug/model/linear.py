"""Closed-form item-item transfer: the EASE family (``params.model.family: ease``).

EASE is the strongest single-domain peer on the MovieLens data, and a low-rank
two-tower model trails it wherever the target has data of its own. This family
moves source knowledge into EASE's full-rank item-item matrix ``B`` instead,
each adaptation as a closed form over the target's items:

* ``target-only``: EASE on the target's training rows (the EASE baseline);
* ``zero-shot``: ``B_s``, EASE fitted on the source's rows over the items both
  domains share, scores target users;
* ``l2sp``: target EASE pulled towards the source's solution,
  ``min ||X - XB||^2 + reg ||B||^2 + lambda ||B - B_s||^2`` with ``diag(B) = 0``;
  with ``P = (G + (reg + lambda) I)^-1`` and ``C = P (G + lambda B_s)`` the
  answer is ``B = C - P diag(diag(C) / diag(P))``. ``lambda`` is the adaptation's
  ``weight`` on the Gram-matrix scale (tens to thousands, not the embedding
  family's 0.01);
* ``joint``: one Gram matrix in which each source co-occurrence counts
  ``source_weight`` times (tuned pooling).

Other adaptations (fine-tuning, adversarial, MMD, CORAL, consistency) shape
embeddings while they train; a closed form has neither, so they are rejected by
name. The family needs items shared by both domains to use the source, and
item IDs only: an item without interactions in either domain gets no score.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from ..errors import ConfigError, NotApplicableError

#: adaptation name -> what its closed form does
CLOSED_FORMS = {"target-only": "target", "zero-shot": "source", "l2sp": "prior", "joint": "pooled"}
#: dense item-item matrices above this many items need more memory than a laptop has
MAX_ITEMS = 20_000


def check_family(adaptation_name: str, encoder_role: str, fusion_uses, path: str) -> None:
    """Configuration-time checks of a ``family: ease`` strategy."""
    if adaptation_name not in CLOSED_FORMS:
        raise ConfigError(f"{path}.adaptation", f"{adaptation_name!r} has no closed form in params.model.family: "
                          f"ease (it shapes embeddings while training); use one of "
                          f"{', '.join(CLOSED_FORMS)} or family: embedding")
    if encoder_role != "id" or set(fusion_uses) != {"id"}:
        raise ConfigError(f"{path}.encoder", "params.model.family: ease is an item-ID model; use encoder: id "
                          "and fusion: id")


def _ease(gram: np.ndarray, reg: float) -> np.ndarray:
    p = np.linalg.inv(gram + reg * np.eye(len(gram)))
    b = p / -np.diag(p)
    np.fill_diagonal(b, 0.0)
    return b


def _ease_with_prior(gram: np.ndarray, reg: float, weight: float, prior: np.ndarray) -> np.ndarray:
    p = np.linalg.inv(gram + (reg + weight) * np.eye(len(gram)))
    c = p @ (gram + weight * prior)
    b = c - p * (np.diag(c) / np.diag(p))[None, :]
    np.fill_diagonal(b, 0.0)
    return b


class ItemItemScorer:
    """Scores = the user's target training row times ``B`` (EASE's scoring)."""

    def __init__(self, rows: sp.csr_matrix, b: np.ndarray, item_known: np.ndarray, device):
        self.rows = rows
        self.b = torch.as_tensor(b, dtype=torch.float32, device=device)
        self.item_known = item_known
        self.device = device

    def score(self, users: torch.Tensor) -> torch.Tensor:
        dense = torch.as_tensor(self.rows[users.cpu().numpy()].toarray(), dtype=torch.float32, device=self.device)
        return dense @ self.b

    def score_history(self, items: list[int]) -> torch.Tensor:
        """A new user's scores from their target items: ``x B``."""
        x = torch.zeros(1, self.b.shape[0], device=self.b.device)
        x[0, items] = 1.0
        return x @ self.b


def fit_item_item(ctx, adaptation, options: dict) -> ItemItemScorer:
    data = ctx.data
    n_items = data.n_target_items
    if n_items > MAX_ITEMS:
        raise ConfigError("params.model.family", f"ease keeps a dense {n_items} x {n_items} item-item matrix; "
                          f"above {MAX_ITEMS} items use family: embedding")
    form = CLOSED_FORMS[adaptation.name]
    target = data.matrix("target", "train").astype(np.float64)
    gram_t = (target.T @ target).toarray()
    known = np.asarray(target.sum(0)).ravel() > 0
    if form == "target":
        return ItemItemScorer(target.tocsr(), _ease(gram_t, options["reg_weight"]), known, ctx.device)
    if len(data.shared_items) == 0:
        raise NotApplicableError("params.model.family ease moves the source's item-item structure through items "
                                 "both domains share; these domains share none")
    to_target = np.full(data.n_source_items, -1)
    to_target[data.shared_items[:, 1]] = data.shared_items[:, 0]
    s = data.source_train[to_target[data.source_train[:, 1]] >= 0]
    source = sp.csr_matrix((np.ones(len(s)), (s[:, 0], to_target[s[:, 1]])), shape=(data.n_source_users, n_items))
    gram_s = (source.T @ source).toarray()
    known = known | (np.asarray(source.sum(0)).ravel() > 0)
    ctx.log(f"closed-form {adaptation.name} over {n_items} items ({len(s)} source interactions on shared items)")
    if form == "source":
        b = _ease(gram_s, options["source_reg_weight"])
    elif form == "prior":
        b = _ease_with_prior(gram_t, options["reg_weight"], float(adaptation.params["weight"]),
                             _ease(gram_s, options["source_reg_weight"]))
    else:  # pooled
        w = float(adaptation.params["source_weight"]) / float(adaptation.params["target_weight"])
        b = _ease(gram_t + w * gram_s, options["reg_weight"])
    return ItemItemScorer(target.tocsr(), b, known, ctx.device)
