"""RecBole's sequential datasets from the next-item split: ``item_id_list`` / ``item_length`` and a
train loader, built the way :func:`xdplug.recbole.dataset.recbole_data` builds the general ones.

The training sequences (:meth:`CrossDomainData.sequences`, or the pooled controls' merged ones)
are written as RecBole atomic files whose ``timestamp`` is each interaction's position in its
sequence, so RecBole's sort by (user, time) reproduces the protocol's order exactly (no ties for
it to break), and RecBole's own ``SequentialDataset`` augmentation makes one training example per
prefix (``<i1> -> i2``, ``<i1, i2> -> i3``, ...; the last ``MAX_ITEM_LIST_LENGTH`` items). Items
are written as catalog rows, so a pooled sequence's source items are items like any other and
only the target's columns are ranked. :func:`input_batch` turns evaluation inputs into the same
fields.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..context import FitContext
from ..data.sequences import Sequences, pooled_training_sequences
from .dataset import RecboleData, _settings, _token_ids


def training_sequences(data, pooled: bool) -> Sequences:
    """The sequences a sequential baseline trains on, items as catalog rows (rows: target users
    first, in canonical order; pooled, source-only users after them)."""
    if pooled:
        return pooled_training_sequences(data)
    seqs = data.sequences("train")
    return Sequences(seqs.indptr, np.asarray(data.catalog.target_rows)[seqs.indices], seqs.times)


def sequence_data(ctx: FitContext, model, values: dict, pooled: bool = False) -> RecboleData:
    """A RecBole ``SequentialDataset`` and train loader over the next-item training sequences.

    ``extra["catalog_ids"]`` holds RecBole's item ID of every catalog row (0, RecBole's padding,
    for a row it never saw).
    """
    from recbole.data.dataloader import TrainDataLoader
    from recbole.data.dataset import SequentialDataset
    from recbole.sampler import Sampler
    from recbole.utils import init_seed

    from .compat import recbole_config

    data = ctx.data
    seqs = training_sequences(data, pooled)
    users = seqs.owners()
    position = np.arange(len(seqs.indices)) - np.repeat(seqs.indptr[:-1], seqs.lengths())
    all_items = np.asarray(data.catalog.target_rows)
    all_items = np.concatenate([all_items, np.setdiff1d(seqs.indices, all_items)])
    name = f"sequences{'-pooled' if pooled else ''}"
    folder = ctx.workdir / "recbole"
    (folder / name).mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"user_id:token": users, "item_id:token": seqs.indices, "timestamp:float": position}).to_csv(
        folder / name / f"{name}.inter", sep="\t", index=False)
    # listing every user and item makes RecBole give each an ID, also those without training rows
    pd.DataFrame({"user_id:token": np.arange(len(seqs))}).to_csv(folder / name / f"{name}.user", sep="\t",
                                                                  index=False)
    pd.DataFrame({"item_id:token": all_items}).to_csv(folder / name / f"{name}.item", sep="\t", index=False)
    settings = _settings(ctx, values, None)
    settings["load_col"] = {"inter": ["user_id", "item_id", "timestamp"], "user": ["user_id"], "item": ["item_id"]}
    config = recbole_config(model, name, folder, settings, ctx.device)
    init_seed(ctx.seed, True)
    dataset = SequentialDataset(config)
    dataset._change_feat_format()  # RecBole's augmentation: item_id_list / item_length per prefix
    neg = config["train_neg_sample_args"]
    sampler = None
    if neg and neg.get("distribution", "none") != "none":
        sampler = Sampler(["train"], [dataset], neg["distribution"], neg.get("alpha", 1.0)).set_phase("train")
    loader = TrainDataLoader(config, dataset, sampler, shuffle=True)
    catalog_ids = np.zeros(len(data.catalog.keys), dtype=np.int64)
    catalog_ids[all_items] = _token_ids(dataset, "item_id", all_items)
    return RecboleData(config, dataset, loader, _token_ids(dataset, "user_id", np.arange(data.n_target_users)),
                       catalog_ids[np.asarray(data.catalog.target_rows)], extra={"catalog_ids": catalog_ids})


def input_batch(config, catalog_ids: np.ndarray, seqs: Sequences, users: np.ndarray, device):
    """RecBole's ``item_id_list`` / ``item_length`` fields of ``users``' inputs (items as catalog rows):
    the last ``MAX_ITEM_LIST_LENGTH`` items, left-aligned, padded with 0. An empty input is one
    padding item (RecBole gathers the output at ``item_length - 1``); the protocol never ranks one."""
    import torch
    from recbole.data.interaction import Interaction

    rows, length = seqs.last(np.asarray(users), int(config["MAX_ITEM_LIST_LENGTH"]))
    ids = np.where(rows >= 0, catalog_ids[np.maximum(rows, 0)], 0)
    fields = {config["ITEM_ID_FIELD"] + config["LIST_SUFFIX"]: torch.as_tensor(ids, dtype=torch.long),
              config["ITEM_LIST_LENGTH_FIELD"]: torch.as_tensor(np.maximum(length, 1), dtype=torch.long)}
    return Interaction(fields).to(device)
