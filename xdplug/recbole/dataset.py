"""RecBole datasets from prepared data: the RecBole files of a split and RecBole's loader over them.

RecBole reads its "atomic files" (``NAME.inter``, ``NAME.user``, ``NAME.item``);
:func:`recbole_data` writes them for the target's training split (or the source's,
or both pooled) into the run's scratch folder and builds RecBole's ``Dataset`` and
train loader on them, keeping the maps between xdplug's canonical indices and
RecBole's internal IDs. Tokens are integers written column-wise (no Python string
per interaction); RecBole numbers tokens by first appearance (``pd.factorize`` over
the ``.inter`` rows, then the ``.user``/``.item`` rows), so its IDs depend only on
the order rows are written. :func:`pooled_matrix` and :func:`training_config` need
no RecBole ``Dataset`` at all.
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


@dataclass
class _Tokens:
    """The rows RecBole is given, as integer tokens: users (target ``u`` -> ``u``; a source user of
    the source domain -> ``u``; pooled, a source-only user -> ``n_target_users + u``) and items
    (their catalog row)."""

    users: np.ndarray
    items: np.ndarray
    all_users: np.ndarray
    all_items: np.ndarray
    #: how many leading rows are the domain's own (pooled: the target's; source rows follow)
    n_own: int


def _tokens(data, domain: str, pooled: bool) -> _Tokens:
    cat = data.catalog
    if domain == "source":
        pairs = data.source_train
        return _Tokens(pairs[:, 0], cat.source_rows[pairs[:, 1]], np.arange(data.n_source_users),
                       np.asarray(cat.source_rows), len(pairs))
    t = data.target_train
    users, items = t[:, 0], cat.target_rows[t[:, 1]]
    all_users, all_items = np.arange(data.n_target_users), np.asarray(cat.target_rows)
    if pooled:
        s = data.source_train
        # source rows are stacked under the target's on the items both domains have; a user
        # present in both domains also brings their source-only items as extra columns
        user_token = data.n_target_users + np.arange(data.n_source_users)
        if len(data.shared_users):
            user_token[data.shared_users[:, 1]] = data.shared_users[:, 0]
        shared_item = np.zeros(data.n_source_items, dtype=bool)
        if len(data.shared_items):
            shared_item[data.shared_items[:, 1]] = True
        shared_user = np.zeros(data.n_source_users, dtype=bool)
        if len(data.shared_users):
            shared_user[data.shared_users[:, 1]] = True
        s = s[shared_item[s[:, 1]] | shared_user[s[:, 0]]]
        su, si = user_token[s[:, 0]], cat.source_rows[s[:, 1]]
        # every extra user and item also has an interaction row, so the order they are listed in
        # the .user/.item files changes no RecBole ID
        all_users = np.concatenate([all_users, np.setdiff1d(su, all_users)])
        all_items = np.concatenate([all_items, np.setdiff1d(si, all_items)])
        users, items = np.concatenate([users, su]), np.concatenate([items, si])
    return _Tokens(users, items, all_users, all_items, len(t))


def _recbole_ids(tokens: np.ndarray, listed: np.ndarray) -> tuple[np.ndarray, int]:
    """RecBole's IDs of the interaction rows' tokens followed by the listed ones, and the ID count
    with ``[PAD]`` (``Dataset._remap``: ``pd.factorize`` over both in this order, plus one)."""
    codes, uniques = pd.factorize(np.concatenate([tokens, listed]))
    return codes.astype(np.int64) + 1, len(uniques) + 1


def write_recbole_files(folder: Path, name: str, users, items, all_users, all_items, weights=1.0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"user_id:token": users, "item_id:token": items, "rating:float": weights}).to_csv(
        folder / f"{name}.inter", sep="\t", index=False)
    # listing every user and item makes RecBole give each an ID, also those without training rows
    pd.DataFrame({"user_id:token": all_users}).to_csv(folder / f"{name}.user", sep="\t", index=False)
    pd.DataFrame({"item_id:token": all_items}).to_csv(folder / f"{name}.item", sep="\t", index=False)


def _settings(ctx: FitContext, values: dict, source_weight: float | None) -> dict:
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
    return settings


def training_config(ctx: FitContext, model, values: dict):
    """RecBole's ``Config`` for training ``model`` on the target, built without a dataset.

    The one :func:`recbole_data` would build for the target, with nothing written or
    loaded: transfer strategies train on xdplug's own batches and only need the
    trainer's settings (epochs, learning rate, early stopping, device, seed).
    """
    from .compat import recbole_config

    return recbole_config(model, "target", ctx.workdir / "recbole", _settings(ctx, values, None), ctx.device)


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

    if source_weight is not None and not pooled:
        raise ValueError("source_weight weights the source rows of pooled data; pass pooled=True")
    tok = _tokens(ctx.data, domain, pooled and domain != "source")
    weights = 1.0
    if source_weight is not None:
        weights = np.ones(len(tok.users))
        weights[tok.n_own:] = source_weight  # the source rows follow the target's
    name = f"{domain}{'-pooled' if pooled else ''}"
    folder = ctx.workdir / "recbole"
    write_recbole_files(folder / name, name, tok.users, tok.items, tok.all_users, tok.all_items, weights)
    config = recbole_config(model, name, folder, _settings(ctx, values, source_weight), ctx.device)
    init_seed(ctx.seed, True)
    dataset = Dataset(config)
    dataset._change_feat_format()
    neg = config["train_neg_sample_args"]
    sampler = None
    if neg and neg.get("distribution", "none") != "none":
        sampler = Sampler(["train"], [dataset], neg["distribution"], neg.get("alpha", 1.0)).set_phase("train")
    loader = TrainDataLoader(config, dataset, sampler, shuffle=True)
    n_own_users = ctx.data.n_target_users if domain == "target" else ctx.data.n_source_users
    rows = ctx.data.catalog.target_rows if domain == "target" else ctx.data.catalog.source_rows
    return RecboleData(config, dataset, loader, _token_ids(dataset, "user_id", np.arange(n_own_users)),
                       _token_ids(dataset, "item_id", np.asarray(rows)))


def _token_ids(dataset, field: str, tokens: np.ndarray) -> np.ndarray:
    """RecBole's IDs of integer tokens, read from the dataset's own token table (no dict of strings)."""
    table = np.asarray(dataset.field2id_token[field][1:]).astype(np.int64)  # [PAD] is ID 0
    ids = np.zeros(int(table.max()) + 1 if len(table) else 0, dtype=np.int64)
    ids[table] = np.arange(1, len(table) + 1)
    return ids[tokens]


def pooled_matrix(ctx: FitContext, source_weight: float | None = None):
    """The pooled training matrix of :func:`recbole_data` with ``pooled=True`` (float64 CSR).

    Returns ``(matrix, user_ids, item_ids)``: the matrix row of each canonical target
    user and the column of each canonical target item; the other columns are the
    source's (a shared user's source items, unshared source items). Binary (an item in
    both of a shared user's histories is one interaction), or with ``source_weight`` the
    source rows' value. The one pooling of the pooled baselines and of the closed-form
    ``joint`` strategy (``model/linear.py``). Built from the integer arrays, without
    RecBole, with the rows, columns and values its ``Dataset.inter_matrix`` gives.
    """
    import scipy.sparse as sp

    data = ctx.data
    tok = _tokens(data, "target", True)
    n = len(tok.users)
    user_ids, n_rows = _recbole_ids(tok.users, tok.all_users)
    item_ids, n_cols = _recbole_ids(tok.items, tok.all_items)
    rows, cols = user_ids[:n], item_ids[:n]
    if source_weight is None:
        values = np.ones(n)
    else:  # RecBole reads the weights as float32 and sums repeats before xdplug widens them
        values = np.ones(n, dtype=np.float32)
        values[tok.n_own:] = np.float32(source_weight)
    matrix = sp.coo_matrix((values, (rows, cols)), shape=(n_rows, n_cols)).tocsr()
    matrix = sp.csr_matrix(matrix, dtype=np.float64)
    matrix.sum_duplicates()
    if source_weight is None:
        matrix.data[:] = 1.0
    # the listed users and items start with the target's, in canonical order
    return matrix, user_ids[n:n + data.n_target_users], item_ids[n:n + data.n_target_items]
