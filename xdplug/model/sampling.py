"""Which loss a training step uses, and the sampled softmax for catalogues too large to score in full.

A full softmax scores every item of the trained domain for every user of a
batch: exact, but its cost is users x items per epoch. Above
:data:`SOFTMAX_MAX_ITEMS` items ``loss: auto`` switches to a sampled softmax:
each batch shares ``negatives`` items drawn from a proposal ``q`` (uniform, or
popularity: training count plus one, to the power ``sampler_alpha``), optionally
joined by one held-out positive of every user in the batch (in-batch
negatives, drawn about in proportion to popularity ``p``). Every candidate's logit
is corrected by ``- log(K q_j + B p_j)`` (logQ correction: Bengio & Senecal
2008, Yi et al. 2019): the candidates then estimate the softmax's partition
function without the bias a popular proposal would give (popular items are drawn
often, so uncorrected they are pushed down too hard). A candidate equal to the row's
positive or to one of the user's input items is masked (an accidental hit).

Mixed precision (``amp``) is decided here too: bf16 autocast on CUDA devices that
support it; CPU runs never autocast (CPUs without bf16 units run it slower). There is
no fp16 option: without loss scaling in the trainer this model's per-logit gradients
(about 1 / (items x targets)) underflow in fp16.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

#: ``loss: auto`` uses the full softmax up to this many items in the trained domain, the sampled
#: softmax above: every shipped config (ML-100K/ML-1M scale) stays on the full softmax
SOFTMAX_MAX_ITEMS = 20_000


def resolve_loss(options: dict, n_domain_items: int) -> str:
    """The loss a step on a domain of ``n_domain_items`` items uses (``auto`` resolved)."""
    loss = options.get("loss", "auto")
    if loss == "auto":
        return "softmax" if n_domain_items <= SOFTMAX_MAX_ITEMS else "sampled_softmax"
    return loss


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of training steps on ``device`` (None: full precision)."""
    if amp == "off" or torch.device(device).type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else None


def autocast(dtype: torch.dtype | None, device: torch.device):
    """``torch.autocast`` with ``dtype`` on ``device``'s type, or nothing when ``dtype`` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)


class Proposal:
    """The negative proposal ``q`` of one domain and the popularity ``p`` of its in-batch positives."""

    def __init__(self, counts: np.ndarray, sampler: str, alpha: float, device: torch.device | str = "cpu"):
        counts = np.asarray(counts, dtype=np.float64)
        self.n = len(counts)
        self.uniform = sampler == "uniform"
        weights = np.ones(self.n) if self.uniform else (counts + 1.0) ** alpha
        q = weights / weights.sum()
        self.cdf = np.cumsum(q)
        self.q = torch.as_tensor(q, dtype=torch.float32, device=device)
        self.p = torch.as_tensor(counts / max(counts.sum(), 1.0), dtype=torch.float32, device=device)

    def draw(self, k: int, rng: np.random.Generator) -> np.ndarray:
        """``k`` domain item indices drawn from ``q`` with replacement."""
        if self.uniform:
            return rng.integers(0, self.n, k)
        return np.minimum(np.searchsorted(self.cdf, rng.random(k) * self.cdf[-1], side="right"), self.n - 1)

    def log_expected(self, candidates: torch.Tensor, k: int, b: int = 0) -> torch.Tensor:
        """``log(k q_j + b p_j)``: the expected draws of each candidate from ``k`` proposal draws and
        ``b`` in-batch positives (the logQ correction; constant for a uniform proposal alone)."""
        expected = k * self.q[candidates]
        if b:
            expected = expected + b * self.p[candidates]
        return torch.log(expected.clamp_min(1e-30))


def hit_mask(candidates: torch.Tensor, t_items: torch.Tensor, t_rows: torch.Tensor,
             inp_items: torch.Tensor, inp_rows: torch.Tensor, n_users: int) -> torch.Tensor:
    """``(targets, candidates)`` True where a candidate is the row's positive or one of its user's
    input items (an accidental hit). Costs inputs x log(candidates), never users x items."""
    hits = t_items.unsqueeze(1) == candidates.unsqueeze(0)
    if len(inp_items) == 0 or len(candidates) == 0:
        return hits
    sorted_c, order = torch.sort(candidates)
    lo = torch.searchsorted(sorted_c, inp_items)
    n = torch.searchsorted(sorted_c, inp_items, right=True) - lo
    found = n > 0
    if not bool(found.any()):
        return hits
    n, lo, rows = n[found], lo[found], inp_rows[found]
    first = torch.repeat_interleave(lo - (torch.cumsum(n, 0) - n), n)  # each match's offset in its run
    cols = order[first + torch.arange(int(n.sum()), device=n.device)]
    user = torch.zeros(n_users, len(candidates), dtype=torch.bool, device=candidates.device)
    user[torch.repeat_interleave(rows, n), cols] = True
    return hits | user[t_rows]


def sampled_softmax(pos: torch.Tensor, neg: torch.Tensor, hits: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Weighted cross-entropy of each row's positive against its corrected candidate logits ``neg``
    (``hits`` masked out), in float32 whatever the autocast dtype."""
    logits = torch.cat([pos.float().unsqueeze(1), neg.float().masked_fill(hits, float("-inf"))], dim=1)
    per = torch.logsumexp(logits, dim=1) - logits[:, 0]
    return (per * weight).sum()
