"""A tiny synthetic cross-domain dataset with real structure, for fast tests.

Users have a taste over a few genres; items belong to one genre and say so in
their text. Both domains share some users and some items (same IDs), so every
alignment path and the leakage guard are exercised, and a model that learns
anything beats random on it. Deterministic for a given seed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..components import DatasetRecipe
from ..options import Int
from ..data.raw import RawDomain, RawDomains

GENRES = ["space adventure", "romantic comedy", "crime thriller", "animated family"]


def synthetic_domains(n_users: int = 80, n_source_items: int = 60, n_target_items: int = 40,
                      n_shared_items: int = 12, n_shared_users: int = 50, per_user: int = 14,
                      seed: int = 0) -> RawDomains:
    rng = np.random.default_rng(seed)
    n_genres = len(GENRES)
    taste = rng.dirichlet(np.full(n_genres, 0.3), size=n_users + n_users)

    def items_table(prefix: str, n: int, shared: int) -> pd.DataFrame:
        ids = [f"shared{i}" for i in range(shared)] + [f"{prefix}{i}" for i in range(n - shared)]
        genre = np.array([i % n_genres for i in range(n)])
        years = 1980 + (np.arange(n) * 7) % 40
        return pd.DataFrame({"item": ids, "title": [f"{GENRES[g].title()} Story {i}" for i, g in enumerate(genre)],
                             "year": years.astype(str), "genres": [GENRES[g] for g in genre], "_genre": genre})

    def interactions(users: list[str], user_rows: np.ndarray, items: pd.DataFrame) -> pd.DataFrame:
        rows = []
        for name, row in zip(users, user_rows):
            p = taste[row][items["_genre"].to_numpy()] + 0.02
            p = p / p.sum()
            chosen = rng.choice(len(items), size=min(per_user, len(items)), replace=False, p=p)
            for j, idx in enumerate(chosen):
                rating = 5 if rng.random() < 0.8 else 2
                rows.append((name, items["item"].iloc[idx], float(rating), float(1_000_000 + j)))
        return pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])

    source_items = items_table("s", n_source_items, n_shared_items)
    target_items = items_table("t", n_target_items, n_shared_items)
    shared_users = [f"u{i}" for i in range(n_shared_users)]
    source_users = shared_users + [f"su{i}" for i in range(n_users - n_shared_users)]
    target_users = shared_users + [f"tu{i}" for i in range(n_users - n_shared_users)]
    source_rows = np.arange(n_users)
    target_rows = np.concatenate([np.arange(n_shared_users), n_users + np.arange(n_users - n_shared_users)])
    source = interactions(source_users, source_rows, source_items)
    target = interactions(target_users, target_rows, target_items)
    drop = ["_genre"]
    return RawDomains(
        source=RawDomain("synthetic-source", source, source_items.drop(columns=drop), "synthetic source"),
        target=RawDomain("synthetic-target", target, target_items.drop(columns=drop), "synthetic target"),
        align_users="id", align_items="id",
        text_fields={"title": "title", "year": "year", "genres": "genres"},
        description="synthetic: genre-driven tastes, shared users and items",
    )


class SyntheticRecipe(DatasetRecipe):
    """The synthetic fixture as a dataset recipe (registered by the testing harness)."""

    name = "synthetic"
    description = "Tiny synthetic cross-domain data with shared users and items (for tests and trying plugins)"
    defaults = {"n_users": Int(80, 1, 100_000), "n_source_items": Int(60, 1, 100_000),
                "n_target_items": Int(40, 1, 100_000), "n_shared_items": Int(12, 0, 100_000),
                "n_shared_users": Int(50, 0, 100_000), "per_user": Int(14, 1, 10_000), "seed": Int(0, 0, 2**32 - 1)}

    def origin(self) -> str:
        return "generated in memory"

    def load(self, cache_dir: str) -> RawDomains:
        return synthetic_domains(**self.params)
