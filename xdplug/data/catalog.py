"""The item catalog: the union of both domains' items, each with its text."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ItemCatalog:
    """Every item of both domains, once.

    Aligned items (same ID, or same normalised key) share one row, which is
    what lets an ID embedding learned on the source serve the target. Encoders
    index this catalog; each domain maps its own item indices into it.
    """

    #: a stable key per item (``"s:..."``/``"t:..."`` when the domains share nothing)
    keys: list[str]
    #: the text encoders read, built from the item text template
    texts: list[str]
    #: canonical source item index -> catalog row
    source_rows: np.ndarray
    #: canonical target item index -> catalog row
    target_rows: np.ndarray

    def __len__(self) -> int:
        return len(self.keys)

    def rows(self, domain: str) -> np.ndarray:
        return self.source_rows if domain == "source" else self.target_rows
