"""CrossDomainData: a prepared source domain and one fixed target split, in memory.

Everything is integer indices. The target's canonical user and item indices
are what every method scores and every evaluator reads; the item catalog
maps both domains' items to shared rows, which is how a model moves between
domains.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from ..tasks import NEXT_ITEM, task_of
from .catalog import ItemCatalog
from .sequences import SPLITS, Sequences


@dataclass
class CrossDomainData:
    folder: Path
    #: [n, 2] arrays of (user, item) canonical indices
    target_train: np.ndarray
    target_valid: np.ndarray
    target_test: np.ndarray
    source_train: np.ndarray
    catalog: ItemCatalog
    keys: dict
    summary: dict
    cold_items: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    #: the evaluated users of each split, their positives and masked items (:func:`xdplug.evaluation.split_users`)
    split_cache: dict = field(default_factory=dict, repr=False, compare=False)
    #: rank at most this many users per split (a seeded sample, the same for every method); 0 = all.
    #: Set from ``evaluation.max_users`` by the engine: ranking costs users x items, so a catalogue of
    #: 10^5 items with 10^5+ users needs a sample to evaluate in minutes
    max_eval_users: int = field(default=0, repr=False, compare=False)
    #: next-item task only: what precedes each test target ([n, 2] pairs grouped by user, time-ordered)
    target_test_input: np.ndarray | None = None
    #: next-item task only: the timestamp of every row of ``target_train``/``_valid``/``_test``/``_test_input``
    #: and ``source_train`` (keys without ``_time``)
    times: dict = field(default_factory=dict, repr=False)
    #: :meth:`sequences` of each split, built once
    sequence_cache: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def load(cls, folder: str | Path) -> "CrossDomainData":
        folder = Path(folder)
        with np.load(folder / "arrays.npz") as npz:  # read everything, then close the file
            arrays = {name: npz[name] for name in npz.files}
        keys = json.loads((folder / "keys.json").read_text())
        summary = json.loads((folder / "summary.json").read_text())
        catalog = ItemCatalog(keys=keys["catalog"], texts=keys["texts"],
                              source_rows=arrays["catalog_source_rows"],
                              target_rows=arrays["catalog_target_rows"])
        return cls(folder=folder, target_train=arrays["target_train"],
                   target_valid=arrays["target_valid"], target_test=arrays["target_test"],
                   source_train=arrays["source_train"], catalog=catalog, keys=keys,
                   summary=summary,
                   cold_items=arrays.get("cold_items", np.zeros(0, dtype=np.int64)),
                   target_test_input=arrays.get("target_test_input"),
                   times={name[:-len("_time")]: arrays[name] for name in arrays if name.endswith("_time")})

    # the task -----------------------------------------------------------------
    @property
    def task(self) -> str:
        """``general`` or ``next-item`` (``dataset.protocol.task`` the data were prepared for)."""
        return task_of(self.summary.get("protocol"))

    def sequences(self, split: str = "train") -> Sequences:
        """Next-item task: per target user, the time-ordered input of ``split``'s targets (canonical
        item indices): ``train`` the training sequence (what methods train on), ``valid`` the input of
        the validation targets (the training sequence), ``test`` that of the test targets (training
        sequence and what followed it before the test target). Docs: protocol.md, section 3."""
        if self.task != NEXT_ITEM:
            raise ValueError(f"sequences exist under the next-item task; these data are {self.task!r}")
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if split not in self.sequence_cache:
            # an artifact keeps the order of the pairs, not their times
            if split == "test":
                pairs, times = self.target_test_input, self.times.get("target_test_input")
            else:
                pairs, times = self.target_train, self.times.get("target_train")
            self.sequence_cache[split] = Sequences.from_pairs(pairs, self.n_target_users, times)
        return self.sequence_cache[split]

    # sizes ------------------------------------------------------------------
    @property
    def n_target_users(self) -> int:
        return len(self.keys["target_users"])

    @property
    def n_target_items(self) -> int:
        return len(self.keys["target_items"])

    @property
    def n_source_users(self) -> int:
        return len(self.keys["source_users"])

    @property
    def n_source_items(self) -> int:
        return len(self.keys["source_items"])

    def n_users(self, domain: str) -> int:
        return self.n_target_users if domain == "target" else self.n_source_users

    def n_items(self, domain: str) -> int:
        return self.n_target_items if domain == "target" else self.n_source_items

    def train(self, domain: str) -> np.ndarray:
        return self.target_train if domain == "target" else self.source_train

    # derived views ------------------------------------------------------------
    def matrix(self, domain: str = "target", part: str = "train") -> sp.csr_matrix:
        pairs = {"train": self.train(domain), "valid": self.target_valid, "test": self.target_test}[part]
        shape = (self.n_users(domain), self.n_items(domain))
        m = sp.csr_matrix((np.ones(len(pairs), dtype=np.float32), (pairs[:, 0], pairs[:, 1])), shape=shape)
        m.data[:] = 1.0
        return m

    @cached_property
    def target_item_popularity(self) -> np.ndarray:
        return np.bincount(self.target_train[:, 1], minlength=self.n_target_items)

    @cached_property
    def source_item_popularity(self) -> np.ndarray:
        return np.bincount(self.source_train[:, 1], minlength=self.n_source_items)

    def user_items(self, domain: str = "target", part: str = "train") -> list[np.ndarray]:
        """Per user, the sorted items of ``part`` (one array per canonical user)."""
        m = self.matrix(domain, part)
        return [m.indices[m.indptr[u]:m.indptr[u + 1]].copy() for u in range(m.shape[0])]

    @cached_property
    def shared_users(self) -> np.ndarray:
        """[k, 2] pairs (target user, source user) of the same person."""
        s = {k: i for i, k in enumerate(self.keys["source_users"])}
        pairs = [(t, s[k]) for t, k in enumerate(self.keys["target_users"]) if k in s]
        return np.array(pairs, dtype=np.int64).reshape(-1, 2)

    @cached_property
    def shared_items(self) -> np.ndarray:
        """[k, 2] pairs (target item, source item) of the same item."""
        s = {k: i for i, k in enumerate(self.keys["source_items"])}
        pairs = [(t, s[k]) for t, k in enumerate(self.keys["target_items"]) if k in s]
        return np.array(pairs, dtype=np.int64).reshape(-1, 2)

    @property
    def has_shared_ids(self) -> bool:
        return len(self.shared_users) > 0 or len(self.shared_items) > 0

    def target_item_texts(self) -> list[str]:
        return [self.catalog.texts[r] for r in self.catalog.target_rows]

    def describe(self) -> str:
        """A short human summary per domain (the ``datasets prepare`` output)."""
        s = self.summary
        lines = []
        for role in ("source", "target"):
            d = s["domains"][role]
            lines.append(
                f"{role:>6} ({d.get('name', '')}): {d['users']:,} users, {d['items']:,} items, "
                f"{d['interactions']:,} interactions, sparsity {d['sparsity']:.4f}, "
                f"text coverage {d['text_coverage']:.1%}")
        o = s["overlap"]
        lines.append(f"overlap: {o['users']:,} users ({o['user_fraction']:.1%} of target), "
                     f"{o['items']:,} items ({o['item_fraction']:.1%} of target)")
        sp_ = s["split"]
        lines.append(f"target split: {sp_['train']:,} train / {sp_['valid']:,} valid / {sp_['test']:,} test"
                     + (f"; {s['cold_items']} cold items" if s.get("cold_items") else ""))
        lines.append(f"leakage guard removed {s['leakage_removed']} source interactions; "
                     f"{s['text_fallback_items']} items use the fallback text")
        lines += [f"WARNING: {w}" for w in s.get("warnings") or []]
        return "\n".join(lines)
