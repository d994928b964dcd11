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


def _matches(candidates: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every ``(i, c)`` with ``items[i] == candidates[c]`` (candidates may repeat), by binary search:
    items x log(candidates), never a dense items x candidates comparison."""
    empty = torch.zeros(0, dtype=torch.long, device=candidates.device)
    if len(items) == 0 or len(candidates) == 0:
        return empty, empty
    sorted_c, order = torch.sort(candidates)
    lo = torch.searchsorted(sorted_c, items)
    n = torch.searchsorted(sorted_c, items, right=True) - lo
    found = torch.nonzero(n > 0).flatten()
    if len(found) == 0:
        return empty, empty
    n, lo = n[found], lo[found]
    first = torch.repeat_interleave(lo - (torch.cumsum(n, 0) - n), n)  # each match's offset in its run
    return torch.repeat_interleave(found, n), order[first + torch.arange(int(n.sum()), device=n.device)]


def accidental_hits(candidates: torch.Tensor, t_items: torch.Tensor, t_rows: torch.Tensor,
                    inp_items: torch.Tensor, inp_rows: torch.Tensor, n_users: int) -> tuple[torch.Tensor, tuple]:
    """Candidates to mask: ``(users, candidates)`` True where a candidate is one of the user's input
    items, and the ``(target, candidate)`` pairs where it is the target row's own positive."""
    user = torch.zeros(n_users, len(candidates), dtype=torch.bool, device=candidates.device)
    i, c = _matches(candidates, inp_items)
    user[inp_rows[i], c] = True
    t, c = _matches(candidates, t_items)
    keep = ~user[t_rows[t], c]  # already masked for the whole user
    return user, (t[keep], c[keep])


def sampled_softmax(pos: torch.Tensor, neg: torch.Tensor, t_rows: torch.Tensor, user_hits: torch.Tensor,
                    pos_hits: tuple, weight: torch.Tensor) -> torch.Tensor:
    """Weighted cross-entropy of each target row's positive logit ``pos`` against its user's corrected
    candidate logits ``neg`` (users x candidates, shared by the user's rows), hits masked, in float32.

    The candidates' sum is taken once per user and each row's own positive, where drawn, is taken
    out of it: users x candidates work, not targets x candidates."""
    neg = neg.float().masked_fill(user_hits, float("-inf"))
    top = neg.detach().max(dim=1).values
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    mass = torch.exp(neg - top.unsqueeze(1))  # masked: 0
    row_mass = mass.sum(dim=1)[t_rows]
    t, c = pos_hits
    if len(t):
        row_mass = row_mass - torch.zeros_like(row_mass).index_add(0, t, mass[t_rows[t], c])
    pos = pos.float()
    shift = torch.maximum(pos.detach(), top[t_rows])
    lse = torch.log(torch.exp(pos - shift) + row_mass.clamp_min(0) * torch.exp(top[t_rows] - shift)) + shift
    return ((lse - pos) * weight).sum()
