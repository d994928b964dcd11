"""From a recipe's raw domains to one fixed, cached cross-domain split.

The steps, identical for every recipe and every method of a report:

1. validate interactions and drop duplicates (the latest (user, item) row stays);
2. keep positives (``rating >= min_rating``) and filter both domains to
   users and items with enough interactions (iterated to a fixed point);
3. align entities: shared users and items get one key, unaligned ones a
   domain prefix, so nothing is shared by accident;
4. split the target per user with RecBole's own splitting (``RS`` ratios,
   random order, seeded), optionally make a fraction of items cold and keep
   a fraction of each user's training interactions (sparse target); under
   ``protocol.task: next-item`` each user's time-ordered interactions are
   split into one validation and one test target instead (``data/sequences.py``);
5. leakage guard: drop every source interaction that equals a target
   validation or test interaction, and with ``new_in_source`` every source
   interaction of a cold item;
6. build item texts and write everything aside, then rename into place.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from ..identity import canonical_json
from ..errors import DataError, storage_error
from ..npzfile import write_npz
from ..paths import ensure_dir, home_fix, prepared_dir
from ..tempdirs import MAX_AGE_S
from ..tempdirs import make as scratch_dir
from ..tempdirs import sweep as sweep_scratch
from . import DEFAULT_TEXT_TEMPLATE
from ..tasks import NEXT_ITEM, sequence_split_of, task_of
from .raw import RawDomain, RawDomains, dedupe_items, drop_duplicate_interactions, validate_inter
from .sequences import next_item_split
from .text import check_template_fields, normalise_key, render_texts

logger = logging.getLogger(__name__)

#: bump when the preparation changes what it writes, so old caches are not reused
PREP_VERSION = 3  # 3: item tables deduplicated (first row kept), summary["warnings"]

#: below this fraction of a domain's items with real text (not the fallback) the summary warns
LOW_TEXT_COVERAGE = 0.5


def cache_key(recipe: str, dataset_cfg: dict, recipe_params: dict, seed: int) -> str:
    import hashlib

    identity = {
        "v": PREP_VERSION,
        "recipe": recipe,
        "params": recipe_params,
        "protocol": dataset_cfg["protocol"],
        "template": dataset_cfg["text_template"],
        "align": dataset_cfg.get("align", "auto"),
        "sparse": dataset_cfg.get("sparse"),
        "cold_items": dataset_cfg.get("cold_items"),
        "seed": seed,
    }
    return hashlib.sha256(canonical_json(identity).encode()).hexdigest()[:12]


def kcore(df: pd.DataFrame, min_user: int, min_item: int, user: str = "user",
          item: str = "item") -> pd.DataFrame:
    """Drop users and items with too few interactions until none is left to drop.

    Counted on integer codes (``pd.factorize``, ``np.bincount``): one pass over the
    strings, then arithmetic, whatever the number of rounds.
    """
    users, items = pd.factorize(df[user])[0], pd.factorize(df[item])[0]
    keep = np.ones(len(df), dtype=bool)
    while True:
        before = int(keep.sum())
        if min_user > 1:
            keep &= np.bincount(users[keep], minlength=users.max(initial=-1) + 1)[users] >= min_user
        if min_item > 1:
            keep &= np.bincount(items[keep], minlength=items.max(initial=-1) + 1)[items] >= min_item
        if int(keep.sum()) == before:
            return df[keep].reset_index(drop=True)


def clean_domain(domain: RawDomain, protocol: dict, role: str) -> tuple[pd.DataFrame, dict]:
    origin = domain.origin or f"{role} domain {domain.name!r}"
    inter = validate_inter(domain.inter, origin)
    inter, duplicates = drop_duplicate_interactions(inter, origin)
    rated = inter["rating"].notna()
    positives = inter[~rated | (inter["rating"] >= protocol["min_rating"])]
    filtered = kcore(positives, protocol["min_user_inter"], protocol["min_item_inter"])
    if filtered.empty:
        raise DataError(
            f"the {role} domain is empty after filtering (ratings >= {protocol['min_rating']}, "
            f"users >= {protocol['min_user_inter']} and items >= {protocol['min_item_inter']} "
            f"interactions; {len(inter)} interactions before filtering)",
            origin, "dataset.protocol")
    stats = {"raw_interactions": int(len(domain.inter)), "duplicates_dropped": int(duplicates),
             "positives": int(len(positives))}
    return filtered, stats


def _item_keys(raw: RawDomains, domain: RawDomain, role: str, align_items: str | None) -> dict[str, str]:
    """item ID -> shared key (or a domain-prefixed key when items do not align)."""
    ids = pd.unique(domain.inter["item"].astype(str))
    if align_items == "id":
        return {i: i for i in ids}
    if align_items == "key":
        field = raw.item_key_field
        items = domain.items
        if field not in items.columns:
            raise DataError(f"missing item field used to align items; found {list(items.columns)}",
                            domain.origin or role, field)
        # a missing value is no key: untitled items must not all merge into one "nan" item
        values = items[field].map(lambda v: "" if v is None or (isinstance(v, float) and pd.isna(v))
                                  else normalise_key(v))
        mapping = dict(zip(items["item"].astype(str), values))
        return {i: ("k:" + mapping[i]) if mapping.get(i) else f"{role[0]}:{i}" for i in ids}
    return {i: f"{role[0]}:{i}" for i in ids}


def _split_counts(total: int, ratios: list[float]) -> list[int]:
    """Rows of each part for a user with ``total`` rows: RecBole 1.2.1's ``Dataset._calcu_split_ids``
    (every part but the first rounded down; a part whose share is under one row gets one, while
    the first keeps more than one)."""
    cnt = [int(ratios[i] * total) for i in range(len(ratios))]
    cnt[0] = total - sum(cnt[1:])
    for i in range(1, len(ratios)):
        if cnt[0] <= 1:
            break
        if 0 < ratios[-i] * total < 1:
            cnt[-i] += 1
            cnt[0] -= 1
    return cnt


def min_user_size(ratios: list[float]) -> int:
    """The fewest interactions that give a user a row in every part of the split."""
    total = sum(ratios)
    ratios = [r / total for r in ratios]
    return next((n for n in range(len(ratios), 10_000) if min(_split_counts(n, ratios)) > 0), 10_000)


def check_split_parts(valid: pd.DataFrame, test: pd.DataFrame, per_user: np.ndarray, protocol: dict,
                      origin: str) -> None:
    """A DataError when the validation or test part is empty (no metric could be computed).

    It happens when no target user has enough interactions (``min_user_inter`` 0, 1 or 2 lets
    users with one or two interactions through; they are trained on, never tested).
    """
    for part, rows in (("validation", valid), ("test", test)):
        if len(rows):
            continue
        need = min_user_size(protocol["split"])
        raise DataError(
            f"the target split has no {part} interaction, so no method could be {part.replace('ion', 'ed')}: a "
            f"user needs at least {need} interactions to get train, validation and test items under split "
            f"{list(protocol['split'])}, and the most any target user has is {int(per_user.max(initial=0))}; "
            f"set dataset.protocol.min_user_inter to {need} or more (default 5), or add interactions",
            origin, "dataset.protocol.min_user_inter")


def split_rows(users: np.ndarray, timestamps: np.ndarray, ratios: list[float], order: str,
               seed: int) -> list[np.ndarray]:
    """Per-user ratio split, RecBole 1.2.1's ``Dataset.build`` (``RS``, ``group_by: user``) on arrays.

    Returns the row indices of each part, in RecBole's order. ``RO`` shuffles all rows
    with ``torch.randperm`` under ``seed`` (a local generator: the caller's global state
    is left alone), ``TO`` sorts them stably by timestamp as RecBole's float32 (missing
    timestamps are 0); then each user's rows, users in order of first appearance, are cut
    by :func:`_split_counts`. ``tests/test_scale_setup.py`` checks it against RecBole itself.
    """
    import torch

    n = len(users)
    if order == "RO":
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()
    elif order == "TO":
        perm = np.argsort(np.nan_to_num(np.asarray(timestamps, dtype=np.float64), nan=0.0).astype(np.float32),
                          kind="stable")
    else:
        raise ValueError(f"order must be 'RO' or 'TO', got {order!r}")
    total = sum(ratios)
    ratios = [r / total for r in ratios]
    group, _ = pd.factorize(users[perm])  # users numbered by first appearance in that order
    rows = perm[np.argsort(group, kind="stable")]
    sizes = np.bincount(group)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    position = np.arange(n) - np.repeat(starts, sizes)
    sizes_sorted = np.repeat(sizes, sizes)
    # the part boundaries of each distinct user size, computed once per size
    distinct, inverse = np.unique(sizes_sorted, return_inverse=True)
    bounds = np.array([np.cumsum(_split_counts(int(t), ratios))[:-1] for t in distinct],
                      dtype=np.int64).reshape(len(distinct), len(ratios) - 1)
    part = (position[:, None] >= bounds[inverse]).sum(axis=1)
    return [rows[part == k] for k in range(len(ratios))]


def recbole_split(inter: pd.DataFrame, ratios: list[float], order: str, seed: int) -> list[pd.DataFrame]:
    """Split per user as RecBole's ``Dataset.build`` does (shuffle or time order, then RS ratios)."""
    users = pd.factorize(inter["user"])[0]
    return [inter.iloc[index][["user", "item"]].reset_index(drop=True)
            for index in split_rows(users, inter["timestamp"].to_numpy(), ratios, order, seed)]


def _sorted_codes(column: pd.Series) -> tuple[list[str], np.ndarray]:
    """The distinct keys of a column, sorted, and each row's index among them (hashing, no per-row objects)."""
    codes, uniques = pd.factorize(column)
    keys = sorted(uniques)
    return keys, pd.Index(keys).get_indexer(uniques)[codes].astype(np.int64)


def _indices_in(column: pd.Series, keys: list[str]) -> np.ndarray:
    """Each row's index in the sorted ``keys``, -1 where its key is not there."""
    codes, uniques = pd.factorize(column)
    return pd.Index(keys).get_indexer(uniques)[codes].astype(np.int64)


def make_cold(train, valid, test, fraction: float, rng: np.random.Generator):
    """Move every training interaction of a seeded fraction of items to validation/test."""
    items = np.unique(np.concatenate([part["item"].to_numpy() for part in (train, valid, test)]))
    n_cold = max(1, int(round(fraction * len(items))))
    cold = np.sort(rng.choice(items, size=n_cold, replace=False))
    moving = train["item"].isin(cold)
    moved = train[moving]
    to_valid = rng.random(len(moved)) < 0.5
    valid = pd.concat([valid, moved[to_valid]], ignore_index=True)
    test = pd.concat([test, moved[~to_valid]], ignore_index=True)
    return train[~moving].reset_index(drop=True), valid, test, set(cold.tolist())


def make_sparse(train: pd.DataFrame, keep: float, rng: np.random.Generator) -> pd.DataFrame:
    """Keep a fraction of each user's training interactions (at least one)."""
    order = rng.permutation(len(train))
    shuffled = train.iloc[order]
    rank = shuffled.groupby("user").cumcount()
    size = shuffled["user"].map(shuffled["user"].value_counts())
    quota = np.maximum(1, np.round(size * keep)).astype(int)
    kept = shuffled[rank < quota]
    return kept.sort_index().reset_index(drop=True)


def _summary(df: pd.DataFrame, texts_ok: int, n_items: int) -> dict:
    users, items = df["user"].nunique(), df["item"].nunique()
    return {
        "users": int(users), "items": int(n_items), "interactions": int(len(df)),
        "sparsity": float(1 - len(df) / max(1, users * max(1, n_items))),
        "text_coverage": float(texts_ok / max(1, n_items)),
    }


def _dedupe_item_tables(raw: RawDomains, warnings: list[str]) -> tuple[RawDomains, dict]:
    """Both item tables with one row per item ID; conflicting repeats become warnings."""
    import dataclasses

    domains, dropped = {}, {}
    for role in ("source", "target"):
        domain = getattr(raw, role)
        items, stats = dedupe_items(domain.items)
        dropped[role] = stats["identical"] + stats["conflicting_rows"]
        if stats["conflicting_items"]:
            n = stats["conflicting_items"]
            warnings.append(
                f"{role} domain {domain.name!r}: {n} item ID{'s' if n > 1 else ''} appear{'' if n > 1 else 's'} in "
                f"several rows of the item table with different fields, e.g. item {stats['example']!r}; the first "
                f"row of each was kept ({stats['conflicting_rows']} "
                f"row{'s' if stats['conflicting_rows'] > 1 else ''} dropped)"
                + (f" [{domain.origin}]" if domain.origin else ""))
        domains[role] = dataclasses.replace(domain, items=items) if dropped[role] else domain
    return dataclasses.replace(raw, **domains), dropped


def prepare_domains(raw: RawDomains, dataset_cfg: dict, seed: int, workdir: Path) -> dict:
    """Run the whole preparation in memory; returns the arrays and tables to store.

    ``workdir`` is a scratch folder the caller owns (nothing is written there now: the split
    runs on arrays). Past the entity keys everything is integer-coded.
    """
    # item tables first: one row per ID, and a template whose fields exist, before any work
    warnings: list[str] = []
    raw, item_rows_dropped = _dedupe_item_tables(raw, warnings)
    template = dataset_cfg["text_template"]
    # every placeholder must name a real field, whoever wrote the template (the default one too)
    check_template_fields(template, [raw.source.items, raw.target.items], raw.text_fields,
                          default=DEFAULT_TEXT_TEMPLATE)
    protocol = dataset_cfg["protocol"]
    align = dataset_cfg.get("align", "auto")
    align_users = raw.align_users if align == "auto" else None
    align_items = raw.align_items if align == "auto" else None

    source, source_stats = clean_domain(raw.source, protocol, "source")
    target, target_stats = clean_domain(raw.target, protocol, "target")

    # entity keys: shared where the recipe says entities align, prefixed otherwise; made once
    # per distinct ID and taken by each row (no string is built per interaction)
    for df, domain, role in ((source, raw.source, "source"), (target, raw.target, "target")):
        keys = _item_keys(raw, domain, role, align_items)
        codes, uniques = pd.factorize(df["item"])
        df["item_key"] = np.array([keys[i] for i in uniques] + [None], dtype=object)[codes]
        if align_users == "id":
            df["user_key"] = df["user"]
        else:
            codes, uniques = pd.factorize(df["user"])
            df["user_key"] = np.array([f"{role[0]}:{u}" for u in uniques] + [None], dtype=object)[codes]
    # key alignment can merge two items of one domain; keep one row per (user, key), and
    # since that can leave a user below the threshold, filter the merged keys again
    merged = []
    for df, domain, role in ((source, raw.source, "source"), (target, raw.target, "target")):
        deduped = df.drop_duplicates(["user_key", "item_key"], keep="last")
        if len(deduped) < len(df):
            deduped = kcore(deduped, protocol["min_user_inter"], protocol["min_item_inter"],
                            "user_key", "item_key")
            if deduped.empty:
                raise DataError(f"the {role} domain is empty after merging items with the same key",
                                domain.origin or f"{role} domain", "dataset.protocol")
        merged.append(deduped.reset_index(drop=True))
    source, target = merged

    shared_items = set(pd.unique(source["item_key"])) & set(pd.unique(target["item_key"]))
    shared_users = set(pd.unique(source["user_key"])) & set(pd.unique(target["user_key"]))
    if (align_items or align_users) and not shared_items and not shared_users:
        raise DataError(
            f"the domains share no {'items' if align_items else 'users'} after filtering, but the "
            f"recipe aligns them (items by {align_items!r}, users by {align_users!r}); check the IDs "
            "or set dataset.align: none", raw.target.origin or "target domain", "align")

    # integer codes from here on. Canonical indices: sorted keys, so the same data always gives
    # the same indices. The target's users and items are those of the filtered target, whatever
    # the sparse regime drops from training: the ranked item set and the indices of valid/test stay
    t_users, t_user = _sorted_codes(target["user_key"])
    t_items, t_item = _sorted_codes(target["item_key"])
    target_origin = raw.target.origin or f"target domain {raw.target.name!r}"
    if len(t_items) < 2:  # every user has seen the one item: nothing to rank, nothing to sample
        raise DataError(f"the target domain has {len(t_items)} item after filtering; ranking needs at least 2 items "
                        "(a user's held-out items among the ones they have not seen)", target_origin,
                        "dataset.protocol")
    cold: set[int] = set()  # target item indices
    cold_cfg = dataset_cfg.get("cold_items")
    sparse_cfg = dataset_cfg.get("sparse")
    next_item = task_of(protocol) == NEXT_ITEM
    times: dict[str, np.ndarray] = {}
    if next_item:  # time-ordered sequences, one held-out target per user and split (data/sequences.py)
        if cold_cfg:
            raise DataError("cold items are not defined for the next-item task", "dataset.cold_items")
        t_time = target["timestamp"].to_numpy(np.float64)
        if np.isnan(t_time).any():
            raise DataError(f"{int(np.isnan(t_time).sum())} of {len(t_time)} target interactions have no timestamp; "
                            "the next-item task orders each user's interactions by time",
                            raw.target.origin or "target domain", "timestamp")
        parts = next_item_split(t_user, t_time, sequence_split_of(protocol), protocol["split"],
                                (sparse_cfg or {}).get("keep", 1.0))
        train, valid, test, test_input = (pd.DataFrame({"user": t_user[parts[k]], "item": t_item[parts[k]]})
                                          for k in ("train", "valid", "test", "test_input"))
        times = {f"target_{k}_time": t_time[parts[k]] for k in ("train", "valid", "test", "test_input")}
    else:
        split_in = pd.DataFrame({"user": t_user, "item": t_item, "timestamp": target["timestamp"]})
        train, valid, test = recbole_split(split_in, protocol["split"], protocol["order"], seed)
        check_split_parts(valid, test, np.bincount(t_user), protocol, target_origin)
        if cold_cfg:
            rng = np.random.default_rng(cold_cfg.get("seed", seed))
            train, valid, test, cold = make_cold(train, valid, test, cold_cfg.get("fraction", 0.2), rng)
        if sparse_cfg and sparse_cfg.get("keep", 1.0) < 1.0:
            rng = np.random.default_rng(sparse_cfg.get("seed", seed) + 7919)
            train = make_sparse(train, sparse_cfg["keep"], rng)

    # leakage guard: no target validation/test interaction in the source, ever. Compared as
    # integer pair codes: each source row's target user and item index (-1 where the target has none)
    as_t_user = _indices_in(source["user_key"], t_users)
    as_t_item = _indices_in(source["item_key"], t_items)
    held_out = pd.concat([valid, test], ignore_index=True)
    n_t_items = len(t_items)
    held = held_out["user"].to_numpy(np.int64) * n_t_items + held_out["item"].to_numpy(np.int64)
    both = (as_t_user >= 0) & (as_t_item >= 0)
    leak = np.zeros(len(source), dtype=bool)
    leak[both] = np.isin(as_t_user[both] * n_t_items + as_t_item[both], held)
    if cold_cfg and cold_cfg.get("new_in_source"):
        leak |= np.isin(as_t_item, np.fromiter(cold, dtype=np.int64, count=len(cold)))
    leaked = int(leak.sum())
    if leaked == len(source):
        raise DataError("the source domain is empty after removing target held-out interactions",
                        raw.source.origin or "source domain")
    s_users, s_user = _sorted_codes(source["user_key"][~leak])
    s_items, s_item = _sorted_codes(source["item_key"][~leak])
    src = pd.DataFrame({"user": s_user, "item": s_item})
    if next_item:  # the pooled controls merge a user's two domains in time
        times["source_train_time"] = source["timestamp"][~leak].to_numpy(np.float64)
    catalog_keys = sorted(set(t_items) | set(s_items))
    row_of = {k: i for i, k in enumerate(catalog_keys)}

    def encode(df):
        return np.stack([df["user"].to_numpy(np.int64), df["item"].to_numpy(np.int64)], axis=1)

    # item texts: target's description first, the source's where the target has none
    text_fields = raw.text_fields
    texts_by_key: dict[str, str] = {}
    fallback_keys: set[str] = set()
    for domain, df in ((raw.target, target), (raw.source, source)):
        items = domain.items.copy()
        if "item" not in items.columns:
            items = pd.DataFrame({"item": []})
        items["item"] = items["item"].astype(str)
        firsts = df.drop_duplicates("item")  # an item has one key: one row per item is enough
        key_of = dict(zip(firsts["item"], firsts["item_key"]))
        present = items[items["item"].isin(key_of)]
        missing = sorted(set(key_of) - set(present["item"]))
        if missing:
            present = pd.concat([present, pd.DataFrame({"item": missing})], ignore_index=True)
        texts, _ = render_texts(present, dataset_cfg["text_template"], text_fields)
        for item, text in texts.items():
            key = key_of[item]
            is_fallback = text.startswith("item ") and text == f"item {item}"
            if key not in texts_by_key or (key in fallback_keys and not is_fallback):
                texts_by_key[key] = text
                if is_fallback:
                    fallback_keys.add(key)
                else:
                    fallback_keys.discard(key)
    catalog_texts = [texts_by_key.get(k, f"item {k}") for k in catalog_keys]

    def n_text(keys):
        return sum(1 for k in keys if k not in fallback_keys and k in texts_by_key)

    summary = {
        "recipe_description": raw.description,
        "align": {"users": align_users, "items": align_items},
        "domains": {
            "source": {**_summary(src, n_text(s_items), len(s_items)), **source_stats,
                       "name": raw.source.name},
            "target": {**_summary(pd.concat([train, valid, test]), n_text(t_items), len(t_items)),
                       **target_stats, "name": raw.target.name},
        },
        "overlap": {
            "users": len(set(t_users) & set(s_users)),
            "items": len(set(t_items) & set(s_items)),
            "user_fraction": len(set(t_users) & set(s_users)) / max(1, len(t_users)),
            "item_fraction": len(set(t_items) & set(s_items)) / max(1, len(t_items)),
        },
        "split": {"train": int(len(train)), "valid": int(len(valid)), "test": int(len(test))},
        "cold_items": len(cold) if cold_cfg else None,
        "leakage_removed": leaked,
        "text_fallback_items": sum(1 for k in catalog_keys if k in fallback_keys or k not in texts_by_key),
        "protocol": protocol,
        "seed": seed,
        "sparse": sparse_cfg,
        "cold_items_config": cold_cfg,
    }
    if next_item:
        summary["next_item"] = {"sequence_split": sequence_split_of(protocol),
                                "test_input": int(len(test_input)),
                                "users_not_evaluated": int(len(t_users) - len(np.unique(test["user"])))}
    for role in ("source", "target"):
        d = summary["domains"][role]
        d["item_rows_dropped"] = int(item_rows_dropped[role])
        if d["items"] and d["text_coverage"] < LOW_TEXT_COVERAGE:
            with_text = n_text(s_items if role == "source" else t_items)
            warnings.append(
                f"low text coverage: only {d['text_coverage']:.0%} of the {role} domain's items ({with_text} of "
                f"{d['items']}, {d['name']!r}) have text from the item table under dataset.text_template "
                f"{dataset_cfg['text_template']!r}; the others get the fallback 'item <id>', so text-based methods "
                "see little more than IDs there")
    summary["warnings"] = warnings
    for warning in warnings:
        logger.warning("%s", warning)
    return {
        "arrays": {
            "target_train": encode(train),
            "target_valid": encode(valid),
            "target_test": encode(test),
            "source_train": encode(src),
            "catalog_source_rows": np.array([row_of[k] for k in s_items], dtype=np.int64),
            "catalog_target_rows": np.array([row_of[k] for k in t_items], dtype=np.int64),
            "cold_items": np.array(sorted(cold), dtype=np.int64),
            **({"target_test_input": encode(test_input)} if next_item else {}),
            **times,
        },
        "keys": {"target_users": t_users, "target_items": t_items, "source_users": s_users,
                 "source_items": s_items, "catalog": catalog_keys, "texts": catalog_texts},
        "summary": summary,
    }


#: the infix of a prepared folder being written (``NAME.tmp-XXXXXXXX``)
PARTIAL = ".tmp-"


def _sweep_partial(parent: Path, max_age_s: float = MAX_AGE_S) -> None:
    """Remove prepared folders a killed process was writing (older than ``max_age_s``).

    By age, not PID: ``XDPLUG_HOME`` may be shared by several machines. Writing
    one takes seconds, so an old one is left over.
    """
    import time

    try:
        partial = [p for p in parent.iterdir() if PARTIAL in p.name and p.is_dir() and not p.is_symlink()]
    except OSError:
        return
    for path in partial:
        try:
            old = time.time() - path.stat().st_mtime > max_age_s
        except OSError:
            continue
        if old:
            logger.info("removing %s, a prepared folder a killed process left half-written", path)
            shutil.rmtree(path, ignore_errors=True)


def write_prepared(result: dict, folder: Path) -> None:
    """Write aside, then rename: an interrupted prepare never leaves a half-written cache."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=folder.name + PARTIAL, dir=folder.parent))
    try:
        write_npz(tmp / "arrays.npz", result["arrays"])
        (tmp / "keys.json").write_text(json.dumps(result["keys"]))
        (tmp / "summary.json").write_text(json.dumps(result["summary"], indent=2, default=str))
        if folder.exists():
            shutil.rmtree(folder)
        try:
            os.replace(tmp, folder)
        except OSError:
            # another process prepared the same (deterministic) data first: keep theirs
            if not (folder / "summary.json").is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def prepare(recipe, dataset_cfg: dict, seed: int, force: bool = False, progress=None):
    """Prepared data for (recipe, protocol, seed), from the cache when it is there."""
    from .crossdomain import CrossDomainData

    key = cache_key(recipe.name, dataset_cfg, recipe.params, seed)
    folder = prepared_dir() / f"{recipe.name}-{key}"
    if folder.is_dir() and (folder / "summary.json").is_file() and not force:
        try:
            return CrossDomainData.load(folder)
        except Exception as exc:  # truncated or damaged (a full disk, a copy cut short): build it again
            logger.warning("the prepared data in %s is damaged (%s: %s); rebuilding it",
                           folder, type(exc).__name__, exc)
    raw_cache = ensure_dir(prepared_dir() / "raw" / recipe.name, "the prepared-data cache",
                                 home_fix())
    sweep_scratch()
    _sweep_partial(prepared_dir())
    if progress:
        progress(f"loading {recipe.name}")
    raw = recipe.load(str(raw_cache))
    with scratch_dir("prepare") as work:
        if progress:
            progress("filtering, aligning and splitting")
        result = prepare_domains(raw, dataset_cfg, seed, Path(work))
    result["summary"]["recipe"] = recipe.name
    result["summary"]["recipe_params"] = recipe.params
    try:
        write_prepared(result, folder)
    except OSError as exc:  # a full disk or a read-only cache: nothing half-written is left
        raise storage_error(exc, folder, "the prepared data", home_fix()) from None
    return CrossDomainData.load(folder)
