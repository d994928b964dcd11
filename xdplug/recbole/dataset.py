"""RecBole datasets from prepared data: the RecBole files of a split and RecBole's loader over them.

RecBole reads its "atomic files" (``NAME.inter``, ``NAME.user``, ``NAME.item``);
:func:`recbole_data` writes them for the target's training split (or the source's,
or both pooled) into the run's scratch folder and builds RecBole's ``Dataset`` and
train loader on them, keeping the maps between xdplug's canonical indices and
RecBole's internal IDs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..context import FitContext


@dataclass
class RecboleData:
    config: object
    dataset: object
    train_loader: object
    #: RecBole user id per canonical target user
    user_ids: np.ndarray
    #: RecBole item id per canonical target item
    item_ids: np.ndarray
    #: RecBole item id per catalog row (pooled datasets) or None
    extra: dict = field(default_factory=dict)


def write_recbole_files(folder: Path, name: str, users: list[str], items: list[str],
                  all_users: list[str], all_items: list[str], weights=1.0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"user_id:token": users, "item_id:token": items, "rating:float": weights}).to_csv(
        folder / f"{name}.inter", sep="\t", index=False)
    # listing every user and item makes RecBole give each an ID, also those without training rows
    pd.DataFrame({"user_id:token": all_users}).to_csv(folder / f"{name}.user", sep="\t", index=False)
    pd.DataFrame({"item_id:token": all_items}).to_csv(folder / f"{name}.item", sep="\t", index=False)


def recbole_data(ctx: FitContext, model, values: dict, pooled: bool = False,
                 domain: str = "target", source_weight: float | None = None) -> RecboleData:
    """A RecBole dataset and train loader over the target training split.

    ``pooled`` stacks the source's interactions under the target's: items that
    align share a column, users that align share a row (their source history
    becomes extra item columns), everything else is added as new rows/columns.
    ``source_weight`` (pooled only) loads a ``rating`` column that is 1 for
    target rows and this weight for source rows, for models that read it.
    """
    from recbole.data.dataloader import TrainDataLoader
    from recbole.data.dataset import Dataset
    from recbole.sampler import Sampler
    from recbole.utils import init_seed

    from .compat import recbole_config

    data = ctx.data
    cat = data.catalog
    if domain == "source":
        pairs = data.source_train
        users = [f"s{u}" for u in pairs[:, 0]]
        items = [f"c{r}" for r in cat.source_rows[pairs[:, 1]]]
        all_users = [f"s{u}" for u in range(data.n_source_users)]
        all_items = [f"c{r}" for r in cat.source_rows]
    else:
        t = data.target_train
        users = [f"t{u}" for u in t[:, 0]]
        items = [f"c{r}" for r in cat.target_rows[t[:, 1]]]
        all_users = [f"t{u}" for u in range(data.n_target_users)]
        all_items = [f"c{r}" for r in cat.target_rows]
        if pooled:
            s = data.source_train
            shared = dict(zip(data.shared_users[:, 1], data.shared_users[:, 0])) if len(data.shared_users) else {}
            # source rows are stacked under the target's on the items both domains have; a user
            # present in both domains also brings their source-only items as extra columns
            shared_item = np.zeros(data.n_source_items, dtype=bool)
            if len(data.shared_items):
                shared_item[data.shared_items[:, 1]] = True
            shared_user = np.zeros(data.n_source_users, dtype=bool)
            if shared:
                shared_user[list(shared)] = True
            s = s[shared_item[s[:, 1]] | shared_user[s[:, 0]]]
            su = [f"t{shared[u]}" if u in shared else f"s{u}" for u in s[:, 0]]
            users += su
            items += [f"c{r}" for r in cat.source_rows[s[:, 1]]]
            all_users += sorted(set(su) - set(all_users))
            all_items += sorted(set(f"c{r}" for r in cat.source_rows[np.unique(s[:, 1])]) - set(all_items))
    weights = 1.0
    if source_weight is not None:
        if not pooled:
            raise ValueError("source_weight weights the source rows of pooled data; pass pooled=True")
        weights = np.ones(len(users))
        weights[len(data.target_train):] = source_weight  # the source rows follow the target's
    name = f"{domain}{'-pooled' if pooled else ''}"
    folder = ctx.workdir / "recbole"
    write_recbole_files(folder / name, name, users, items, all_users, all_items, weights)
    inter_cols = ["user_id", "item_id"] + (["rating"] if source_weight is not None else [])
    settings = {
        "load_col": {"inter": inter_cols, "user": ["user_id"], "item": ["item_id"]},
        "epochs": ctx.train["epochs"],
        "train_batch_size": ctx.train["batch_size"],
        "eval_batch_size": ctx.train["eval_batch_size"],
        "learning_rate": ctx.train["learning_rate"],
        "weight_decay": ctx.train["weight_decay"],
        "stopping_step": ctx.train["stopping_step"],
        "eval_step": ctx.train["eval_step"],
        "valid_metric": ctx.evaluation["valid_metric"].replace("ndcg", "NDCG").replace("recall", "Recall")
                        .replace("mrr", "MRR").replace("hit", "Hit").replace("precision", "Precision"),
        "metrics": ["Recall", "NDCG"],
        "topk": [10],
        "seed": ctx.seed,
        "eval_args": {"split": {"RS": [1.0, 0.0, 0.0]}, "order": "RO", "group_by": "user", "mode": "full"},
    }
    if source_weight is not None:  # the weights are values, never rescaled
        settings.update({"normalize_all": False, "normalize_field": None})
    if ctx.train.get("neg_sampling", "uniform") == "none":
        settings["train_neg_sample_args"] = None
    settings.update(values)
    config = recbole_config(model, name, folder, settings, ctx.device)
    init_seed(ctx.seed, True)
    dataset = Dataset(config)
    dataset._change_feat_format()
    neg = config["train_neg_sample_args"]
    sampler = None
    if neg and neg.get("distribution", "none") != "none":
        sampler = Sampler(["train"], [dataset], neg["distribution"], neg.get("alpha", 1.0)).set_phase("train")
    loader = TrainDataLoader(config, dataset, sampler, shuffle=True)
    uid = dataset.field2token_id["user_id"]
    iid = dataset.field2token_id["item_id"]
    n_t = data.n_target_users if domain == "target" else data.n_source_users
    prefix = "t" if domain == "target" else "s"
    user_ids = np.array([uid[f"{prefix}{u}"] for u in range(n_t)], dtype=np.int64)
    rows = cat.target_rows if domain == "target" else cat.source_rows
    item_ids = np.array([iid[f"c{r}"] for r in rows], dtype=np.int64)
    return RecboleData(config, dataset, loader, user_ids, item_ids)


def pooled_matrix(ctx: FitContext, source_weight: float | None = None):
    """The pooled training matrix of :func:`recbole_data` with ``pooled=True`` (float64 CSR).

    Returns ``(matrix, user_ids, item_ids)``: the matrix row of each canonical target
    user and the column of each canonical target item; the other columns are the
    source's (a shared user's source items, unshared source items). Binary (an item in
    both of a shared user's histories is one interaction), or with ``source_weight`` the
    source rows' value. The one pooling of the pooled baselines and of the closed-form
    ``joint`` strategy (``model/linear.py``).
    """
    import scipy.sparse as sp

    # "Pop" only names a model for RecBole's Config (nothing is trained through RecBole here)
    rb = recbole_data(ctx, "Pop", {"train_neg_sample_args": None}, pooled=True, source_weight=source_weight)
    matrix = rb.dataset.inter_matrix(form="csr", value_field="rating" if source_weight is not None else None)
    matrix = sp.csr_matrix(matrix, dtype=np.float64)
    matrix.sum_duplicates()
    if source_weight is None:
        matrix.data[:] = 1.0
    return matrix, np.asarray(rb.user_ids), np.asarray(rb.item_ids)
