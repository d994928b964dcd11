"""A tiny synthetic cross-domain dataset with real structure, for fast tests.

Users have a taste over a few genres; items belong to one genre and say so in
their text. Both domains share some users and some items (same IDs), so every
alignment path and the leakage guard are exercised, and a model that learns
anything beats random on it. Deterministic for a given seed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..components import DatasetRecipe, Encoder, Fusion
from ..errors import ConfigError
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

    def __init__(self, params: dict | None = None, path: str | None = None):
        super().__init__(params, path)
        p, where = self.params, path or "dataset.params"
        if p["n_shared_users"] > p["n_users"]:
            raise ConfigError(f"{where}.n_shared_users", f"{p['n_shared_users']} shared users cannot exceed n_users "
                              f"({p['n_users']}, the users of each domain); expected n_shared_users <= n_users")
        for key in ("n_source_items", "n_target_items"):
            if p["n_shared_items"] > p[key]:
                raise ConfigError(f"{where}.n_shared_items", f"{p['n_shared_items']} shared items cannot exceed "
                                  f"{key} ({p[key]}); expected n_shared_items <= {key}")

    def origin(self) -> str:
        return "generated in memory"

    def load(self, cache_dir: str) -> RawDomains:
        return synthetic_domains(**self.params)


# -- small inputs and the plainest components, for the contract suites -----------------------


def synthetic_catalog(template: str | None = None):
    """The item catalog of the synthetic dataset (both domains, shared items once), no RecBole involved."""
    from ..config import DEFAULTS
    from ..data.catalog import ItemCatalog
    from ..data.text import render_texts

    raw = synthetic_domains()
    template = template or DEFAULTS["dataset"]["text_template"]
    items = pd.concat([raw.target.items, raw.source.items], ignore_index=True)
    items = items.drop_duplicates("item", keep="first").reset_index(drop=True)
    texts, _ = render_texts(items, template, raw.text_fields)
    keys = list(items["item"].astype(str))
    row = {key: i for i, key in enumerate(keys)}
    return ItemCatalog(
        keys=keys,
        texts=[texts[k] for k in keys],
        source_rows=np.array([row[k] for k in raw.source.items["item"].astype(str)], dtype=np.int64),
        target_rows=np.array([row[k] for k in raw.target.items["item"].astype(str)], dtype=np.int64),
    )


def tiny_ranking_result(seed: int = 0, n_users: int = 12, n_items: int = 30, ks=(5, 10)):
    """A small, seeded :class:`~xdplug.evaluation.RankingResult` with cold items and user groups."""
    from ..evaluation import RankingResult

    rng = np.random.default_rng(seed)
    k = max(ks)
    cold = np.sort(rng.choice(n_items, size=max(1, n_items // 6), replace=False))
    topk = np.stack([rng.permutation(n_items)[:k] for _ in range(n_users)])
    positives = [np.sort(rng.choice(n_items, size=int(rng.integers(1, 5)), replace=False))
                 for _ in range(n_users)]
    topk_cold = np.full((n_users, k), -1, dtype=np.int64)
    for row in range(n_users):
        ranked = rng.permutation(cold)[:k]
        topk_cold[row, :len(ranked)] = ranked
    popularity = rng.integers(0, 40, size=n_items)
    popularity[cold] = 0
    return RankingResult(
        users=np.arange(100, 100 + n_users), topk=topk, positives=positives, ks=list(ks),
        n_items=n_items, train_counts=rng.integers(1, 60, size=n_users), item_popularity=popularity,
        user_groups=[5, 10, 20, 50], cold_items=cold, topk_cold=topk_cold,
    )


class PlainIdEncoder(Encoder):
    """One learned vector per catalog item (what the contract suites train adaptations with)."""

    name = "id"
    role = "id"
    description = "Learned ID embeddings per item (contract suites)"
    defaults = {"dim": Int(0, 0, 4096)}

    def build(self, catalog, device):
        import torch

        class Table(torch.nn.Embedding):
            out_dim = property(lambda self: self.embedding_dim)

        table = Table(len(catalog), self.params["dim"] or 64)
        torch.nn.init.normal_(table.weight, std=0.05)
        return table.to(device)


class PlainIdFusion(Fusion):
    """The ID part alone; untrained IDs are zero (what the contract suites train adaptations with)."""

    name = "id"
    description = "ID part only (contract suites)"
    uses = frozenset({"id"})

    def build(self, dim):
        import torch

        class IdOnly(torch.nn.Module):
            def forward(self, text, ids, known):
                return torch.where(known.unsqueeze(-1), ids, torch.zeros_like(ids))

        return IdOnly()
