"""``xdplug update``: fine-tune an exported strategy on new target interactions, write the next version.

New users and items are appended after the ones the artifact knows (a new item
gets its text vector and a fresh ID row); the fine-tuning is one phase of the
:class:`~xdplug.model.session.TrainingSession` a run fits a strategy with (same
trainer, RecBole config and early stopping on the config's valid metric), validated
on the slice of new interactions it held out. A sequence model's new events are appended to
each user's sequence in time order, and the slice it validates on is each user's latest ones.
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from ..data.catalog import ItemCatalog
from ..data.raw import column_numbers
from ..data.tables import read_table
from ..data.text import normalise_key, render_texts, template_fields
from ..errors import STORAGE_ERRNOS, ArtifactError, DataError, XdplugError, storage_error
from ..evaluation import rank_users
from ..metrics import parse_metric, topk_metrics
from ..model.session import TrainingSession
from ..options import Float, Int
from ..paths import check_writable
from ..model.strategy import TrainingConfig, build_strategy, fit_strategy, model_class
from ..plugins import installed_registry
from ..recbole.compat import quiet_recbole_logging
from ..recbole.dataset import training_config
from ..spec import resolve_strategy
from ..weights import load_state, rng_kept, seeded
from .export import write_artifact
from .format import MANIFEST, check_replaceable, copy_data, next_version_path
from .recommender import TextTable, build_strategy_model, fit_context, load_artifact
from .sequence_update import holdout_latest, timeline, timestamps

logger = logging.getLogger(__name__)


def mapped_columns(df: pd.DataFrame, mapping: dict[str, str], roles: tuple[str, ...], required: tuple[str, ...],
                   file: Path, what: str) -> pd.DataFrame:
    """``df`` with its columns renamed to ``roles``: each role read from the column the config maps it to
    (the ``files`` recipe's ``columns:``), else from a column named after the role."""
    picked = {}
    for role in roles:
        names = [n for n in dict.fromkeys([mapping.get(role), role]) if n]
        column = next((n for n in names if n in df.columns), None)
        if column is not None:
            picked[role] = column
        elif role in required:
            shown = " or ".join(repr(n) for n in names)
            mapped = f" (the artifact's config maps {role} to {mapping[role]!r})" if role in mapping else ""
            raise DataError(f"missing column {shown}{mapped}; expected {what}, found {list(df.columns)}",
                            str(file), role)
    out = pd.DataFrame({role: df[column] for role, column in picked.items()})
    rest = [c for c in df.columns if c not in picked.values() and c not in out.columns]
    out.attrs["columns"] = picked  # role -> the file's column, named in later errors
    return pd.concat([out, df[rest]], axis=1) if rest else out


def read_new_interactions(file: str | Path, min_rating: float, columns: dict[str, str] | None = None,
                          ordered: bool = False):
    """``user,item[,rating][,timestamp]`` rows; rated rows below ``min_rating`` are not positives.

    ``columns`` maps roles to the names of the user's files (the recipe's
    :meth:`~xdplug.components.DatasetRecipe.update_columns`); the standard names work too.
    ``ordered`` (a sequence model): the rows come back in time order, by ``timestamp`` where the
    file has one (numbers or dates; ties keep the file's order), else in the file's order.
    """
    file = Path(file).expanduser()
    df = read_table(file, "the new interactions", strip_columns=True)
    df = mapped_columns(df, columns or {}, ("user", "item", "rating", "timestamp"), ("user", "item"), file,
                        "a header user,item[,rating][,timestamp]")
    named = dict(df.attrs.get("columns") or {})
    for column in ("user", "item"):
        # before any conversion to text: an empty cell is NaN, which str() would make a user named 'nan'
        empty = df[column].isna() | (df[column].astype(str).str.strip() == "")
        if empty.any():
            row = int(np.flatnonzero(empty.to_numpy())[0])
            raise DataError(f"empty {column} in row {row + 1} (line {row + 2} of the file); every row needs a "
                            f"{column} ID", str(file), named.get(column, column))
        df[column] = df[column].astype(str).str.strip()
    if df.empty:
        raise DataError("no interactions (a header and no rows)", str(file))
    keep = np.ones(len(df), dtype=bool)
    if "rating" in df.columns:
        rating = named.get("rating", "rating")
        ratings = column_numbers(df["rating"], str(file), rating)  # inf, which would count as a positive, refused
        blank = ratings.isna() & df["rating"].notna()  # a cell of spaces: an error here, not "no rating"
        if blank.any():
            row = int(np.flatnonzero(blank.to_numpy())[0])
            raise DataError(f"expected numbers, got {df['rating'].iloc[row]!r} (row {row + 1})", str(file), rating)
        keep = (ratings.isna() | (ratings >= min_rating)).to_numpy()
    if ordered and "timestamp" in df.columns:
        df = df.iloc[np.argsort(timestamps(df["timestamp"], file, named.get("timestamp", "timestamp")),
                                kind="stable")]
        keep = keep[df.index.to_numpy()]
    return df.loc[keep, ["user", "item"]].drop_duplicates().reset_index(drop=True), int((~keep).sum())


def update_columns(config: dict, registry) -> dict[str, dict[str, str]]:
    """The artifact's recipe's column mapping (:meth:`~xdplug.components.DatasetRecipe.update_columns`);
    none when the recipe's plugin is not installed where the artifact is updated."""
    try:
        cls = registry.get("dataset", config["dataset"]["recipe"], "dataset.recipe")
    except XdplugError:
        return {"interactions": {}, "items": {}}
    mapping = cls.update_columns(config["dataset"].get("params") or {})
    return {"interactions": dict(mapping.get("interactions") or {}), "items": dict(mapping.get("items") or {})}


def origin_of_new(joined: list[str], dropped: dict | None) -> dict | None:
    """How many of the users or items new to the artifact are new to the data, and how many its data
    had but the preparation dropped (by reason); None when the artifact does not record the dropped IDs."""
    if dropped is None:
        return None
    below, few = set(dropped.get("below_min_rating") or []), set(dropped.get("too_few_interactions") or [])
    out = {"new": 0, "below_min_rating": 0, "too_few_interactions": 0}
    for i in joined:
        out["below_min_rating" if i in below else "too_few_interactions" if i in few else "new"] += 1
    return out


def explain_new(kind: str, n: int, origin: dict | None, protocol: dict) -> str:
    """``8 new items: 3 new to the data the artifact was trained on; 5 in that data but dropped by the
    preparation (5 with fewer than 5 positive interactions)``."""
    head = f"{n} new {kind}"
    if not n:
        return head
    if origin is None:
        return f"{head} (new to the data, or dropped by the preparation's filters)"
    parts = []
    if origin["new"]:
        parts.append(f"{origin['new']} new to the data the artifact was trained on")
    dropped = origin["below_min_rating"] + origin["too_few_interactions"]
    if dropped:
        minimum = protocol["min_user_inter"] if kind == "users" else protocol["min_item_inter"]
        why = []
        if origin["too_few_interactions"]:
            why.append(f"{origin['too_few_interactions']} with fewer than {minimum} positive interactions")
        if origin["below_min_rating"]:
            why.append(f"{origin['below_min_rating']} rated only below {protocol['min_rating']}")
        data = "that data" if parts else "the data the artifact was trained on"
        parts.append(f"{dropped} in {data} but dropped by the preparation ({', '.join(why)})")
    return f"{head}: {'; '.join(parts)}"


def prepared_item_key(item: str, align: dict, row: dict) -> str:
    """The prepared key of a target item (its ``--items`` row: ``row``), by the rule the preparation used."""
    mode = align.get("items")
    if mode == "id":
        return item
    if mode != "key":
        return f"t:{item}"
    field = align.get("item_key") or "title"
    if field == "item":
        value = item
    elif field in row or "+" not in field:
        value = row.get(field)
    else:  # a key combined from fields (the files recipe's item_key: [title, year]): each field
        # normalised, joined by a space; no key where one of them has no value
        parts = [normalise_key(row[f]) if row.get(f) and row[f] != "nan" else "" for f in field.split("+")]
        value = " ".join(parts) if all(parts) else ""
    value = normalise_key(value) if value else ""
    return f"k:{value}" if value else f"t:{item}"


def kept_weights(kept: str, version: int, previous: int, best_epoch: int, epochs: int, before: dict,
                 after: dict, problem: str | None, metric: str = "ndcg@10") -> str:
    """Which weights the new version serves, in words: after "did not learn ... never beaten" a bare
    "updated" does not say whether the fine-tuning was kept or thrown away."""
    if kept == "refitted":  # a family without weights (export = "refit")
        scored = (f" ({metric} {after[metric]:.4f} on the held-out slice, fitted without it)" if metric in after
                  else "")
        return f"version {version} is fitted again from its data when loaded, every new interaction included{scored}"
    if kept != "updated":
        return (f"version {version} serves the weights of version {previous} (no fine-tuning epoch beat them on "
                "the held-out slice), with the new interactions added to the users' histories")
    if not before:
        return (f"version {version} serves the weights after up to {epochs} fine-tuning epochs (nothing was held out "
                "to choose an epoch by)")
    change = f"{metric} {before.get(metric, 0.0):.4f} -> {after.get(metric, 0.0):.4f}"
    tie = ", no better than before" if after.get(metric) == before.get(metric) else ""
    later = ("; no epoch after the first scored better on it (the 'did not learn' line)"
             if problem and "never beaten" in problem else "")
    return (f"version {version} serves the fine-tuned weights (epoch {best_epoch} of {epochs}, the best on the "
            f"held-out slice: {change}{tie}){later}")


def _holdout(pairs: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask: ``fraction`` of each user's new pairs (users with two or more keep one for training)."""
    held = np.zeros(len(pairs), dtype=bool)
    if fraction <= 0 or not len(pairs):
        return held
    order = np.argsort(pairs[:, 0], kind="stable")
    users, starts, counts = np.unique(pairs[order, 0], return_index=True, return_counts=True)
    for start, count in zip(starts, counts):
        if count < 2:
            continue
        n_hold = min(count - 1, max(1, int(round(fraction * count))))
        chosen = rng.choice(count, size=n_hold, replace=False)
        held[order[start + chosen]] = True
    return held


def _slice_metrics(score_fn, users, positives, masked, n_items, device, valid_metric: str = "ndcg@10") -> dict:
    """NDCG@10, Recall@10 and the valid metric of a held-out slice (ranked as every split is: full sort,
    seen items masked)."""
    if not len(users):
        return {}
    metric, k = parse_metric(valid_metric)
    topk, _ = rank_users(score_fn, users, positives, masked, n_items, max(10, k), device=device)
    return {**topk_metrics(topk, positives, 10), **topk_metrics(topk, positives, k, (metric,))}


def _new_item_texts(encoder, texts: list[str], extras: dict, device) -> torch.Tensor:
    """Vectors of new items' texts, mapped as the artifact's frozen table was (whitening, normalisation)."""
    if hasattr(encoder, "embed"):
        x = np.asarray(encoder.embed(texts, device), dtype=np.float32)
    else:
        catalog = ItemCatalog(keys=[f"new{i}" for i in range(len(texts))], texts=list(texts),
                              source_rows=np.zeros(0, dtype=np.int64), target_rows=np.arange(len(texts)))
        module = encoder.build(catalog, torch.device(device))
        with torch.no_grad():
            return module(torch.arange(len(texts), device=device)).float().cpu()
    if "whiten_mean" in extras:
        x = (x - extras["whiten_mean"].cpu().numpy()) @ extras["whiten_matrix"].cpu().numpy()
    if encoder.params.get("normalize"):
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32))


def _fine_tune(ctx, meta: dict, registry, weights: Path, state: dict, text_module, user_rows: dict,
               n_union_users: int, train_new: np.ndarray, rng: np.random.Generator, held_out: tuple, measured, *,
               epochs: int, learning_rate: float | None, replay: float, seed: int, progress=None) -> tuple:
    """The update phase of the session that fits a strategy, on the grown model (old weights, fresh rows).

    It trains the users with new interactions plus a replay sample of the others and early-stops on
    the held-out slice by the config's valid metric, like every phase of a run; where no epoch beat
    the weights it started from, those are kept. Returns ``(model, before, after, kept, best_epoch,
    learning_problem, trained users)``.
    """
    valid_metric = ctx.evaluation["valid_metric"]
    with rng_kept():
        rb = TrainingConfig(training_config(ctx, model_class(), {"train_neg_sample_args": None}))
    model, _, options = build_strategy_model(meta["spec"], registry, ctx.data, ctx.device, meta["seed"] + 1,
                                             text_module=text_module, rb=rb, user_rows=user_rows,
                                             n_union_users=n_union_users)
    load_state(model, state, weights, grow=True)
    model.eval()

    def score(u):
        return model.score_users("target", u)

    before = measured(score)
    snapshot = {k: v.detach().clone() for k, v in model.state_dict().items()}
    touched = np.unique(train_new[:, 0]) if len(train_new) else np.zeros(0, dtype=np.int64)
    histories = getattr(model, "histories", None)  # a sequence model's users are their training sequences
    active = histories["target"].active_users() if histories else np.unique(ctx.data.target_train[:, 0])
    others = np.setdiff1d(active, touched)
    n_replay = min(len(others), int(round(replay * len(touched))))
    replayed = rng.choice(others, size=n_replay, replace=False) if n_replay else np.zeros(0, dtype=np.int64)
    train_users = np.union1d(touched, replayed).astype(np.int64)
    # the family's side of the session (a sequence tower batches the windows of these users' sequences)
    scorer, rows = resolve_strategy(meta["spec"], registry, "strategy").family.update_rows(ctx, model, train_users)
    session = TrainingSession(ctx, model, rb.config, options, uses_source=False, uses_target=True, scorer=scorer)
    session.add_slice("update", "target", *held_out)
    if progress:
        progress(f"fine-tuning on {len(train_users)} users for up to {epochs} epochs")
    with seeded(meta["seed"] + seed + 1):  # the same update gives the same model
        record = session.train(("target",), phase="update", epochs=epochs, learning_rate=learning_rate,
                               validate_on="update", users={"target": rows})
    model.eval()
    after = measured(score)
    kept = "updated"
    if before and after and after[valid_metric] < before[valid_metric]:
        model.load_state_dict(snapshot)
        after = dict(before)
        kept = "previous weights (no epoch beat them on the held-out slice)"
    return model, before, after, kept, int(record["best_epoch"]), record["learning_problem"], train_users


#: the numbers an update takes (``xdplug update --epochs/--holdout/--seed/--learning-rate/--replay``)
UPDATE_OPTIONS = {
    "epochs": Int(3, 1, 100_000),
    "holdout": Float(0.1, 0, 1, high_open=True, help="0: nothing held out, no validation"),
    "seed": Int(0, 0, 2**32 - 1),
    "learning_rate": Float(None, 0, 10, low_open=True, help="None: the strategy's learning rate"),
    "replay": Float(1.0, 0, 1000),
}


def update_artifact(path: str | Path, interactions: str | Path, items: str | Path | None = None,
                    out: str | Path | None = None, epochs: int = 3, holdout: float = 0.1, seed: int = 0,
                    learning_rate: float | None = None, replay: float = 1.0, device: str = "cpu",
                    progress=None, registry=None) -> dict:
    """Fine-tune an exported strategy on new target interactions; write the next version beside it.

    New users join with their new items as history; new items get their text
    vector (their fields from ``items``, rendered with the artifact's template)
    and a fresh ID. A seeded ``holdout`` fraction of each user's new
    interactions is held out: NDCG@10 and Recall@10 on it are reported before
    and after. Training runs for at most ``epochs`` epochs over the users with
    new interactions plus ``replay`` times as many other users (so the others are
    not forgotten), keeps the best epoch on the held-out slice, and keeps the
    previous weights when no epoch beats them. Returns a report; the new
    artifact's path is ``report["path"]``.
    """
    for name, value in (("epochs", epochs), ("holdout", holdout), ("seed", seed), ("learning_rate", learning_rate),
                        ("replay", replay)):  # before the artifact is loaded
        UPDATE_OPTIONS[name].check(value, name)
    quiet_recbole_logging()
    started = time.perf_counter()
    src = Path(path).expanduser()
    registry = installed_registry(registry)  # the caller's, or a fresh one of the installed plugins
    rec = load_artifact(src, device, registry=registry)
    meta, data, ids = rec.meta, rec.data, rec.ids
    if meta["kind"] != "strategy":
        raise ArtifactError(f"{src}: update fine-tunes strategies; {meta['method']!r} is a baseline "
                            f"({meta['spec'].get('baseline')}), retrain it with `xdplug run`")
    # a family that refits at load (ModelFamily.export = "refit") has no weights: its new version is the
    # grown data, fitted again when loaded; the others fine-tune their weights
    refit = rec.model is None
    _, fusion, _, _ = build_strategy(meta["spec"], registry, "strategy")
    reads_text = "text" in fusion.uses  # then new items need their text
    # a sequence model reads each user's events in order: new ones are appended after the known ones
    ordered = bool(getattr(rec.model, "reads_order", False))
    if out:  # before any training: an existing -o is never overwritten
        check_replaceable(out, overwrite=False)
    # where the new version goes must be writable: known now, not after the fine-tuning
    check_writable(Path(out).expanduser() if out else next_version_path(src), "the new version",
                   "choose a writable folder with -o DIR")
    config = meta["config"]
    columns = update_columns(config, registry)  # the user's own column names (the files recipe's mapping)
    new, below = read_new_interactions(interactions, config["dataset"]["protocol"]["min_rating"],
                                       columns["interactions"], ordered)
    update_warnings: list[str] = []
    item_table = None
    if items is not None:
        template = config["dataset"]["text_template"]
        wanted = template_fields(template)
        item_table = read_table(Path(items).expanduser(), "the item table", strip_columns=True)
        item_table = mapped_columns(item_table, columns["items"], ("item", *wanted), ("item",),
                                    Path(items).expanduser(), f"item plus the template's fields "
                                    f"({meta.get('text_template')})")
        empty = item_table["item"].isna() | (item_table["item"].astype(str).str.strip() == "")
        if empty.any():
            row = int(np.flatnonzero(empty.to_numpy())[0])
            raise DataError(f"empty item ID in row {row + 1} (line {row + 2} of the file)", str(items),
                            item_table.attrs["columns"]["item"])
        item_table = item_table.astype(str)
        # the new items' text is rendered from these columns: without any template field every
        # new item would get the fallback text "item <id>" and a text strategy would learn nothing
        lacking = [name for name in wanted if name not in item_table.columns]
        if lacking and reads_text:
            found = [c for c in item_table.columns if c != "item"]
            if len(lacking) == len(wanted):
                raise DataError(f"the item table has none of the text template's fields ({', '.join(lacking)} "
                                f"missing; template {template!r}), so every new item would get the fallback text "
                                f"'item <id>'; found columns {found}: name the columns after the template's "
                                "fields", str(items), ", ".join(lacking))
            update_warnings.append(f"{items}: the item table lacks the template field(s) {', '.join(lacking)} "
                                   f"(template {template!r}); new items' texts leave them out")
            logger.warning("%s", update_warnings[-1])
        item_table["item"] = item_table["item"].astype(str).str.strip()
        item_table = item_table.drop_duplicates("item", keep="last").reset_index(drop=True)

    # -- users and items: known ones keep their index, new ones are appended ----------------
    align = ids["align"]
    keys = copy.deepcopy(data.keys)
    users, items_ids = list(ids["users"]), list(ids["items"])
    user_of, item_of, row_of, target_of_row = rec.lookups()
    aliases = ids.get("item_aliases") or {}
    target_rows = list(data.catalog.target_rows.tolist())
    fields = {row["item"]: row for row in item_table.to_dict("records")} if item_table is not None else {}
    new_users, new_items, new_rows = [], [], []

    def item_key(item: str) -> str:
        return prepared_item_key(item, align, fields.get(item) or {})

    u_idx = []
    for user in new["user"]:
        if user not in user_of:
            user_of[user] = len(users)
            users.append(user)
            keys["target_users"].append(user if align.get("users") == "id" else f"t:{user}")
            new_users.append(user)
        u_idx.append(user_of[user])
    i_idx = []
    for item in new["item"]:
        if item not in item_of:
            row = aliases.get(item) if align.get("items") == "key" else None
            if row is None:
                key = item_key(item)
                row = row_of.get(key)
            if row is not None and row in target_of_row:
                item_of[item] = target_of_row[row]  # another ID of a known target item
            else:
                if row is None:  # an item the artifact has never seen: a new catalog row
                    row = len(keys["catalog"])
                    keys["catalog"].append(key)
                    keys["texts"].append(f"item {item}")
                    row_of[key] = row
                    new_rows.append((row, item))
                target_of_row[row] = len(items_ids)
                item_of[item] = len(items_ids)
                items_ids.append(item)
                keys["target_items"].append(keys["catalog"][row])
                target_rows.append(row)
                new_items.append(item)
        i_idx.append(item_of[item])
    # texts of new catalog rows: the item table rendered with the artifact's template
    if new_rows:
        missing = [item for _, item in new_rows if item not in fields]
        if missing and reads_text:
            shown = ", ".join(repr(m) for m in missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            plural = len(missing) > 1
            raise DataError(f"new item{'s' if plural else ''} {shown} {'are' if plural else 'is'} not in the "
                            f"artifact (new, or dropped by the preparation's filters) and the strategy reads "
                            f"item text: give {'their' if plural else 'its'} fields with --items FILE (columns "
                            f"item plus the template's fields, template {meta.get('text_template')!r})",
                            str(interactions), "item")
        present = [item for _, item in new_rows if item in fields]
        if present:
            table = pd.DataFrame([fields[item] for item in present])
            texts, fell_back = render_texts(table, config["dataset"]["text_template"],
                                            {c: c for c in table.columns if c != "item"})
            if fell_back == len(present) and reads_text:
                raise DataError(f"none of the {len(present)} new item(s) has a value in the text template's fields "
                                f"(template {config['dataset']['text_template']!r}), so each would get the "
                                "fallback text 'item <id>'; fill in their fields", str(items), "item")
            for row, item in new_rows:
                if item in texts:
                    keys["texts"][row] = texts[item]
    pairs = np.stack([np.array(u_idx, dtype=np.int64), np.array(i_idx, dtype=np.int64)], axis=1).reshape(-1, 2)
    known = set(map(tuple, np.concatenate([data.target_train, data.target_valid, data.target_test]).tolist()))
    fresh = np.array([tuple(p) not in known for p in pairs.tolist()], dtype=bool)
    already = int((~fresh).sum())
    if ordered:  # time order kept; a pair named twice (two IDs of one item) counts at its first time
        pairs = pairs[fresh]
        pairs = pairs[np.sort(np.unique(pairs, axis=0, return_index=True)[1])]
    else:
        pairs = np.unique(pairs[fresh], axis=0)
    if not len(pairs):
        raise DataError("no new interactions: every row is already known to the artifact"
                        + (f" or rated below {config['dataset']['protocol']['min_rating']}" if below else ""),
                        str(interactions))
    rng = np.random.default_rng(seed)
    held = holdout_latest(pairs, holdout) if ordered else _holdout(pairs, holdout, rng)
    train_new, valid_new = pairs[~held], pairs[held]

    catalog = ItemCatalog(keys=keys["catalog"], texts=keys["texts"], source_rows=data.catalog.source_rows.copy(),
                          target_rows=np.array(target_rows, dtype=np.int64))
    if ordered:  # each user's whole timeline trains and is the input: known events, then the new ones
        known_events = (data.target_test_input if data.summary.get("updates")  # a grown version holds them all
                        else timeline(data.target_test_input, data.target_test))
        history = timeline(known_events, train_new)
        work_data = copy_data(data, keys=keys, catalog=catalog, target_train=history, target_test_input=history)
    else:
        work_data = copy_data(data, keys=keys, catalog=catalog,
                              target_train=np.concatenate([data.target_train, train_new]).astype(np.int64))
    # -- the held-out slice, ranked as every split is: seen items masked ------------------------
    seen_all = np.concatenate([work_data.target_train, data.target_valid, data.target_test, valid_new])
    order = np.argsort(valid_new[:, 0], kind="stable")
    v_users, v_starts = np.unique(valid_new[order, 0], return_index=True)
    positives = np.split(valid_new[order, 1], v_starts[1:]) if len(valid_new) else []
    seen_m = sp.csr_matrix((np.ones(len(seen_all)), (seen_all[:, 0], seen_all[:, 1])),
                           shape=(len(users), len(items_ids)))
    seen_m.sum_duplicates()
    masked = [np.setdiff1d(seen_m.indices[seen_m.indptr[u]:seen_m.indptr[u + 1]], pos)
              for u, pos in zip(v_users, positives)]
    n_items = len(items_ids)
    valid_metric = config["evaluation"]["valid_metric"]

    def measured(score) -> dict:
        return _slice_metrics(score, v_users, positives, masked, n_items, device, valid_metric)

    if refit:
        user_rows = n_union_new = None
    else:  # user-ID rows: new target users come after every row the model already has
        n_union = int(meta["model"]["n_union_users"])
        user_rows = {"target": np.concatenate([rec.arrays["model_user_rows_target"],
                                               n_union + np.arange(len(new_users))]).astype(np.int64),
                     "source": np.asarray(rec.arrays["model_user_rows_source"], dtype=np.int64)}
        n_union_new = n_union + len(new_users)

    # -- the grown model: old weights, fresh rows for new users and items ---------------------
    state = {} if refit else {k: v.detach().clone() for k, v in rec.model.state_dict().items()}
    text_module = None
    if "text_encoder.table" in state and [k for k in state if k.startswith("text_encoder.")] == ["text_encoder.table"]:
        table = state["text_encoder.table"]
        vectors = torch.zeros(len(keys["catalog"]), table.shape[1], dtype=table.dtype)
        vectors[: table.shape[0]] = table.cpu()
        if new_rows:
            encoder, _, _, _ = build_strategy(meta["spec"], registry, "strategy")
            if progress:
                progress(f"encoding {len(new_rows)} new item texts")
            vectors[[r for r, _ in new_rows]] = _new_item_texts(
                encoder, [keys["texts"][r] for r, _ in new_rows], rec.extras, device).to(table.dtype)
        text_module = TextTable(vectors.to(device))
        state["text_encoder.table"] = vectors
    workdir = Path(tempfile.mkdtemp(prefix="xdplug-update-"))
    try:
        ctx = fit_context(work_data, meta["seed"], device, config, workdir, progress, registry=registry)
        if refit:  # fitted again without the held-out slice: how the refit scores it
            if progress:
                progress(f"fitting {meta['method']} again on the grown data")
            scorer = fit_strategy(meta["spec"], registry, ctx, "strategy")
            before, after, best_epoch, problem, model = {}, measured(scorer.score), -1, None, None
            kept, train_users = "refitted", np.unique(work_data.target_train[:, 0])
        else:
            model, before, after, kept, best_epoch, problem, train_users = _fine_tune(
                ctx, meta, registry, src / "weights.pt", state, text_module, user_rows, n_union_new, train_new, rng,
                (v_users, positives, masked), measured, epochs=epochs, learning_rate=learning_rate, replay=replay,
                seed=seed, progress=progress)
        version = int(meta.get("version", 1)) + 1
        seconds = time.perf_counter() - started
        served = kept_weights(kept, version, meta.get("version", 1), best_epoch, epochs, before, after, problem,
                              valid_metric)

        # -- the new version: every new interaction joins the users' histories -------------------
        if ordered:  # the held-out events are each user's latest
            history = timeline(work_data.target_train, valid_new)
            final = copy_data(work_data, target_train=history, target_test_input=history)
        else:
            final = copy_data(work_data, target_train=np.concatenate([work_data.target_train, valid_new]).astype(np.int64))
        final.summary.setdefault("updates", []).append({"interactions": int(len(pairs)), "users": len(new_users),
                                                        "items": len(new_items)})
        report = {
            "from": str(src), "new_interactions": int(len(pairs)), "ignored_known": already,
            "ignored_below_min_rating": below, "new_users": len(new_users), "new_items": len(new_items),
            "held_out": int(len(valid_new)), "validation_users": int(len(v_users)),
            "before": before, "after": after, "result": kept, "served": served, "learning_problem": problem,
            "epochs": epochs, "best_epoch": best_epoch, "valid_metric": valid_metric,
            "trained_users": int(len(train_users)),
            "seconds": seconds, "warnings": update_warnings,
        }
        protocol = config["dataset"]["protocol"]
        for kind, joined in (("users", new_users), ("items", new_items)):
            origin = origin_of_new(joined, (ids.get("dropped") or {}).get(kind) if "dropped" in ids else None)
            report[f"new_{kind}_origin"] = origin
            report[f"new_{kind}_explained"] = explain_new(kind, len(joined), origin, protocol)
        new_ids = {"align": align, "users": users, "items": items_ids, "item_aliases": ids.get("item_aliases") or {}}
        if "dropped" in ids:  # those that joined now are the artifact's own
            joined = {"users": set(new_users), "items": set(new_items)}
            new_ids["dropped"] = {kind: {reason: [i for i in listed if i not in joined[kind]]
                                         for reason, listed in reasons.items()}
                                  for kind, reasons in ids["dropped"].items()}
        target = Path(out).expanduser() if out else next_version_path(src)
        manifest = json.loads((src / MANIFEST).read_text())
        parent = {"path": str(src), "version": meta.get("version", 1),
                  "weights_sha256": manifest["files"]["weights.pt"]["sha256"]}
        try:
            written = write_artifact(target, kind="strategy", method=meta["method"], entry=meta["spec"],
                                     seed=meta["seed"], config=config, data=final, registry=registry, model=model,
                                     extras=rec.extras,
                                     run_id=meta.get("run_id"), metrics=meta.get("metrics"), ids=new_ids,
                                     parent=parent, updates=list(meta.get("updates", [])) + [report],
                                     version=version, user_rows=user_rows, n_union_users=n_union_new,
                                     extra_meta={k: meta[k] for k in ("reproduction",) if k in meta})
        except OSError as exc:  # a full disk: nothing half-written is left (write_artifact writes aside)
            if exc.errno not in STORAGE_ERRNOS:
                raise
            raise storage_error(exc, target, "the new version", "choose another folder "
                                "with -o DIR") from None
        report["path"] = str(written)
        report["version"] = version
        return report
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
