"""``AlphaRec`` (Sheng et al., ICLR 2025) and its ID control ``LightGCN-InfoNCE``.

AlphaRec ("Language Representations Can be What Recommenders Need"): every item's frozen text
vector (the text baselines' encoder, through ``encode_texts``, L2-normalised) goes through a
2-layer MLP (``Linear -> LeakyReLU -> Linear``) to a ``dim``-d embedding; a user's layer 0 is the
same MLP applied to the mean text vector of their training items. ``layers`` LightGCN steps over
the symmetric-normalised user-item graph ``D^-1/2 A D^-1/2`` (``A = [[0, R], [R^T, 0]]``, binary
``R``) and the mean of layers ``0..layers`` give the final vectors; a score is the cosine of a
user's and an item's final vector (AlphaRec's ``train_norm``/``pred_norm``). Loss: InfoNCE with
temperature ``tau`` over each training (user, item) pair against ``negatives`` sampled items::

    loss = mean_b [ logsumexp(s_bp, s_b1..s_bK) - s_bp ],   s = cos(u, i) / tau

Where this differs from the authors' code (read at LehengTHU/AlphaRec): the ``negatives`` are
drawn once per mini-batch and shared by its pairs (a ``[B, K]`` score matrix instead of a
``[B, K, d]`` gather, which keeps CPU training in minutes), and they are drawn uniformly from the
items *with* training interactions: an item without any is never a positive, so sampling it as a
negative would only teach the MLP to bury texts like the cold items'. The authors' defaults
(hidden 1/2 of a 3072-d LM vector, ``dim`` 64, ``tau`` 0.15, lr 5e-4, batch 4096, 256 negatives,
weight decay 1e-6, 2 layers) are the defaults here, with ``hidden`` 512 for MiniLM's 384-d vectors.

An item without training interactions is out of the graph's reach; AlphaRec still places it
through the MLP of its text (layer 0 only), so every item is scored (``item_known`` all True).

``LightGCN-InfoNCE`` is the same propagation, loss and training loop with free ID embeddings as
layer 0 (N(0, 0.1), LightGCN's initialisation) instead of the text MLP: the control for how much
of AlphaRec's gain is the InfoNCE objective rather than the text (the AlphaRec re-implementation
study's point). An item without interactions has no edge and no gradient: its embedding is 0 from
the start, so it scores 0 (cosines lie in [-1, 1]) and is ``item_known`` False.

Training: Adam, mini-batches of shuffled training pairs, a full-graph sparse propagation per batch
(``torch.sparse``); after every epoch the validation metric (``evaluation.valid_metric``) is
computed on the valid split and the best epoch's vectors are kept; training stops after
``patience`` epochs without improvement (0: run all ``epochs``). Seeded by ``ctx.seed``; trains on
``ctx.device``. Not poolable (``pooled: true`` is refused): the target's graph only.
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from xdplug.api import Baseline, Float, Int, quick_metric, rank_split

from ._matrices import FactorScorer
from ._text import TextBaseline


# --------------------------------------------------------------------------- shared parts
def normalized_adjacency(matrix: sp.spmatrix) -> torch.Tensor:
    """The ``(U+I) x (U+I)`` sparse ``D^-1/2 A D^-1/2`` of the bipartite graph of a users x items matrix."""
    r = (sp.csr_matrix(matrix) != 0).astype(np.float64)
    inv_sqrt = lambda d: np.divide(1.0, np.sqrt(d), out=np.zeros_like(d), where=d > 0)  # noqa: E731
    norm = sp.diags(inv_sqrt(np.asarray(r.sum(1)).ravel())) @ r @ sp.diags(inv_sqrt(np.asarray(r.sum(0)).ravel()))
    a = sp.bmat([[None, norm], [norm.T, None]], format="coo")
    index = torch.as_tensor(np.vstack([a.row, a.col]), dtype=torch.long)
    return torch.sparse_coo_tensor(index, torch.as_tensor(a.data, dtype=torch.float32), a.shape,
                                   check_invariants=False).coalesce()


def propagate(adj: torch.Tensor, h0: torch.Tensor, layers: int) -> torch.Tensor:
    """LightGCN: the mean of ``h0, A h0, ..., A^layers h0``."""
    total, h = h0, h0
    for _ in range(layers):
        h = torch.sparse.mm(adj, h)
        total = total + h
    return total / (layers + 1)


def info_nce(users: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor, tau: float) -> torch.Tensor:
    """Mean InfoNCE of ``[B, d]`` users against their ``[B, d]`` positives and ``[K, d]`` shared negatives
    (cosine / tau)."""
    u = F.normalize(users, dim=-1)
    pos = (u * F.normalize(positives, dim=-1)).sum(-1) / tau
    neg = u @ F.normalize(negatives, dim=-1).T / tau
    return (torch.logsumexp(torch.cat([pos[:, None], neg], 1), 1) - pos).mean()


class _TextTower(nn.Module):
    """AlphaRec's layer 0: the MLP of the users' mean item text and of the items' text."""

    def __init__(self, user_text: np.ndarray, item_text: np.ndarray, hidden: int, dim: int):
        super().__init__()
        self.register_buffer("text", torch.as_tensor(np.vstack([user_text, item_text]), dtype=torch.float32))
        self.mlp = nn.Sequential(nn.Linear(self.text.shape[1], hidden), nn.LeakyReLU(), nn.Linear(hidden, dim))

    def forward(self) -> torch.Tensor:
        return self.mlp(self.text)


class _IdTower(nn.Module):
    """The control's layer 0: one free embedding per user and item (LightGCN's N(0, 0.1) start).

    A node without edges gets no gradient: it starts at 0 and stays there (no representation).
    """

    def __init__(self, n_nodes: int, dim: int, connected: np.ndarray):
        super().__init__()
        start = torch.randn(n_nodes, dim) * 0.1
        self.embedding = nn.Parameter(start * torch.as_tensor(connected, dtype=start.dtype)[:, None])

    def forward(self) -> torch.Tensor:
        return self.embedding


def _cosine_scorer(users: torch.Tensor, items: torch.Tensor, item_known: np.ndarray, device) -> FactorScorer:
    """Scores = cosine of the final user and item vectors (AlphaRec scores by cosine)."""
    return FactorScorer(F.normalize(users, dim=-1), F.normalize(items, dim=-1), item_known, device)


def train_graph_model(ctx, tower: nn.Module, matrix: sp.csr_matrix, p: dict,
                      label: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Train ``tower`` (layer 0 of users then items) through LightGCN with InfoNCE; the best epoch's final vectors.

    One loop for AlphaRec and its ID control, so the two differ only in their layer 0.
    """
    n_users, n_items = matrix.shape
    device = ctx.device
    adj = normalized_adjacency(matrix).to(device)
    tower.to(device)
    coo = sp.coo_matrix(matrix)
    pairs = np.vstack([coo.row, coo.col]).T[coo.data != 0]
    warm = np.unique(pairs[:, 1])
    rng = np.random.default_rng(ctx.seed)
    optimizer = torch.optim.Adam(tower.parameters(), lr=p["learning_rate"], weight_decay=p["weight_decay"])
    metric, k = ctx.valid_metric

    def final() -> tuple[torch.Tensor, torch.Tensor]:
        h = propagate(adj, tower(), p["layers"])
        return h[:n_users], h[n_users:]

    best, best_score, since = None, -np.inf, 0
    for epoch in range(p["epochs"]):
        start, losses = time.perf_counter(), []
        tower.train()
        for batch in np.array_split(rng.permutation(len(pairs)), max(1, -(-len(pairs) // p["batch_size"]))):
            users, items = final()
            u, i = torch.as_tensor(pairs[batch, 0], device=device), torch.as_tensor(pairs[batch, 1], device=device)
            negatives = torch.as_tensor(rng.choice(warm, p["negatives"]), device=device)
            loss = info_nce(users[u], items[i], items[negatives], p["tau"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        tower.eval()
        with torch.no_grad():
            users, items = final()
        scorer = _cosine_scorer(users, items, np.ones(n_items, dtype=bool), device)
        score = quick_metric(rank_split(scorer.score, ctx.data, "valid", [k], device,
                                        ctx.evaluation["user_groups"]), metric, k)
        point = {"phase": "train", "epoch": epoch, "loss": float(np.mean(losses)) if losses else None,
                 "valid": score, "seconds": time.perf_counter() - start}
        ctx.curves.append(point)
        if best is None or score > best_score:
            best, best_score, since = (users, items, point), score, 0
        else:
            since += 1
            if p["patience"] and since >= p["patience"]:
                break
    best[2]["best"] = True
    ctx.log(f"{label}: best {metric}@{k} {best_score:.4f} at epoch {best[2]['epoch']} of {epoch + 1}")
    return best[0], best[1]


COMMON_OPTIONS = {
    "layers": Int(2, 0, 8, help="LightGCN propagation steps"),
    "dim": Int(64, 1, 4096, help="embedding size"),
    "tau": Float(0.15, 0, 10, low_open=True, help="InfoNCE temperature (cosine scores / tau)"),
    "learning_rate": Float(5e-4, 0, 1, low_open=True, help="Adam's learning rate"),
    "weight_decay": Float(1e-6, 0, 1, help="Adam's L2 weight decay"),
    "epochs": Int(50, 1, 10_000, help="most training epochs (passes over the training pairs)"),
    "patience": Int(5, 0, 10_000, help="stop after this many epochs without a better validation score (0: never)"),
    "batch_size": Int(4096, 1, 10_000_000, help="training (user, item) pairs per step"),
    "negatives": Int(256, 1, 100_000, help="sampled negative items per mini-batch (shared by its pairs)"),
}
SEARCH_SPACE = {
    "params.tau": {"type": "loguniform", "low": 0.05, "high": 0.5},
    "params.learning_rate": {"type": "loguniform", "low": 1e-4, "high": 1e-2},
    "params.layers": {"type": "categorical", "choices": [0, 1, 2, 3]},
}


# --------------------------------------------------------------------------- baselines
class AlphaRec(TextBaseline):
    name = "AlphaRec"
    description = "AlphaRec: MLP of frozen text vectors + LightGCN + InfoNCE; cold items through their text"
    defaults = {**COMMON_OPTIONS,
                "hidden": Int(512, 1, 65_536, help="hidden width of the text MLP"),
                "encoder": {}}
    search_space = SEARCH_SPACE

    def fit(self, ctx, pooled: bool = False):
        p, data = self.params, ctx.data
        matrix = (data.matrix("target", "train").tocsr() != 0).astype(np.float64)
        text = self.unit_text_vectors(ctx, data.target_item_texts())
        counts = np.asarray(matrix.sum(1))
        user_text = np.divide(np.asarray(matrix @ text), counts, out=np.zeros((matrix.shape[0], text.shape[1])),
                              where=counts > 0)
        torch.manual_seed(ctx.seed)
        tower = _TextTower(user_text, text, p["hidden"], p["dim"])
        users, items = train_graph_model(ctx, tower, matrix, p, self.name)
        return _cosine_scorer(users, items, np.ones(data.n_target_items, dtype=bool), ctx.device)


class LightGCNInfoNCE(Baseline):
    name = "LightGCN-InfoNCE"
    description = "LightGCN with AlphaRec's InfoNCE loss and loop on ID embeddings (AlphaRec's same-loss control)"
    defaults = dict(COMMON_OPTIONS)
    search_space = SEARCH_SPACE

    def fit(self, ctx, pooled: bool = False):
        p, data = self.params, ctx.data
        matrix = (data.matrix("target", "train").tocsr() != 0).astype(np.float64)
        known = np.asarray(matrix.sum(0)).ravel() > 0
        torch.manual_seed(ctx.seed)
        tower = _IdTower(sum(matrix.shape), p["dim"], np.concatenate([np.asarray(matrix.sum(1)).ravel() > 0, known]))
        users, items = train_graph_model(ctx, tower, matrix, p, self.name)
        return _cosine_scorer(users, items, known, ctx.device)
