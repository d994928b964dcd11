"""``example-synthetic``: a dataset recipe that generates its domains in memory.

A recipe only delivers raw domains (interactions and item tables, all IDs as
strings) and says how they align; filtering, alignment, splitting and item
text are the engine's, identical for every recipe. A recipe reading files
would read them in ``load`` (``cache_dir`` is a folder it may keep downloads in).
"""

from __future__ import annotations

from xdplug.api import ConfigError, DatasetRecipe, Int


class ExampleSynthetic(DatasetRecipe):
    name = "example-synthetic"
    description = "Generated genre-taste data, smaller than `synthetic`, with shared users and items (example plugin)"
    defaults = {"n_users": Int(60, 1, 100_000), "n_source_items": Int(50, 1, 100_000),
                "n_target_items": Int(30, 1, 100_000), "n_shared_items": Int(8, 0, 100_000),
                "n_shared_users": Int(40, 0, 100_000), "per_user": Int(12, 1, 10_000), "seed": Int(1, 0, 2**32 - 1)}

    def __init__(self, params: dict | None = None, path: str | None = None):
        super().__init__(params, path)
        p, where = self.params, path or "dataset.params"
        if p["n_shared_users"] > p["n_users"]:
            raise ConfigError(f"{where}.n_shared_users", f"cannot exceed n_users ({p['n_users']})")
        if p["n_shared_items"] > min(p["n_source_items"], p["n_target_items"]):
            raise ConfigError(f"{where}.n_shared_items", "cannot exceed n_source_items or n_target_items")

    def origin(self) -> str:
        return "generated in memory (xdplug.testing.synthetic.synthetic_domains)"

    def load(self, cache_dir: str):
        from xdplug.testing.synthetic import synthetic_domains

        raw = synthetic_domains(**self.params)
        raw.description = f"example-synthetic: {self.params['n_users']} users per domain, genre-driven tastes"
        return raw
