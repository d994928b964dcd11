"""``example-random``: seeded random scores, the floor every method must clear.

A scorer has ``score(users) -> FloatTensor[len(users), n_target_items]``. The
engine scores users in batches, so a user's scores must not depend on the
batch: here each user's scores come from a generator seeded by (seed, user).
"""

from __future__ import annotations

import torch

from xdplug.api import Baseline, Int


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
