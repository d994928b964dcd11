"""``example-random``: seeded random scores, the floor every method must clear.

A scorer has ``score(users) -> FloatTensor[len(users), n_target_items]``. The
engine scores users in batches, so a user's scores must not depend on the
batch: here each user's scores come from a generator seeded by (seed, user).
"""

from __future__ import annotations

import torch

from xdplug.api import Baseline, Float, Int


class RandomScorer:
    def __init__(self, n_items: int, seed: int, device: torch.device):
        self.n_items = n_items
        self.seed = seed
        self.device = device

    def score(self, users: torch.Tensor) -> torch.Tensor:
        rows = []
        for user in users.cpu().tolist():
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + int(user))
            rows.append(torch.rand(self.n_items, generator=generator))
        if not rows:
            return torch.empty(0, self.n_items, device=self.device)
        return torch.stack(rows).to(self.device)


class RandomBaseline(Baseline):
    name = "example-random"
    description = "Uniformly random scores, seeded by the run's seed (example plugin)"
    defaults = {"seed_offset": Int(0, 0, 2**31)}

    def fit(self, ctx, pooled=False):
        return RandomScorer(ctx.data.n_target_items, ctx.seed + self.params["seed_offset"], ctx.device)


class CooccurrenceScorer:
    """Scores = the user's training row times a normalised item co-occurrence matrix."""

    def __init__(self, rows, similarity: torch.Tensor, device: torch.device):
        self.rows, self.similarity, self.device = rows, similarity, device

    def score(self, users: torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(self.rows[users.cpu().numpy()].toarray(), dtype=torch.float32, device=self.device)
        return x @ self.similarity

    def score_history(self, items: list[int]) -> torch.Tensor:
        """A new user's scores from their target items (``xdplug recommend --history``)."""
        x = torch.zeros(1, self.similarity.shape[0], device=self.device)
        x[0, items] = 1.0
        return x @ self.similarity


class CooccurrenceBaseline(Baseline):
    """Item co-occurrence with shrinkage: what the engine learns only from the class's declarations.

    * ``search_space``: the range a config's ``tuning`` block searches by default;
    * ``export = "refit"``: it trains nothing and is deterministic, so an artifact fits
      it again from the stored data when it is loaded (no weights to store).
    """

    name = "example-cooc"
    description = "Item co-occurrence counts divided by (item count + shrink) (example plugin)"
    defaults = {"shrink": Float(10.0, 0, 1e6)}
    search_space = {"params.shrink": {"type": "loguniform", "low": 0.1, "high": 1000.0}}
    export = "refit"

    def fit(self, ctx, pooled=False):
        rows = ctx.data.matrix("target", "train").tocsr()
        co = (rows.T @ rows).toarray().astype("float32")
        counts = co.diagonal().copy()
        co[range(len(counts)), range(len(counts))] = 0.0
        similarity = torch.as_tensor(co / (counts[None, :] + self.params["shrink"] + 1e-12), device=ctx.device)
        return CooccurrenceScorer(rows, similarity, ctx.device)
