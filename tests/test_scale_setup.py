"""Setup in memory proportional to the interactions (issue #18): the pooled matrix, RecBole's files
and the transfer strategies' config are built from the integer arrays, and give what RecBole gave."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xdplug.recbole.dataset import pooled_matrix, recbole_data, training_config
from xdplug.testing.contracts import make_fit_context


def recbole_pooled_matrix(ctx, source_weight=None):
    """The pooled matrix as RecBole's own ``Dataset.inter_matrix`` builds it (the old path)."""
    import scipy.sparse as sp

    rb = recbole_data(ctx, "Pop", {"train_neg_sample_args": None}, pooled=True, source_weight=source_weight)
    matrix = rb.dataset.inter_matrix(form="csr", value_field="rating" if source_weight is not None else None)
    matrix = sp.csr_matrix(matrix, dtype=np.float64)
    matrix.sum_duplicates()
    if source_weight is None:
        matrix.data[:] = 1.0
    return matrix, rb.user_ids, rb.item_ids


def assert_same_matrix(ctx, source_weight):
    got, users, items = pooled_matrix(ctx, source_weight)
    want, want_users, want_items = recbole_pooled_matrix(ctx, source_weight)
    assert got.shape == want.shape
    np.testing.assert_array_equal(got.indptr, want.indptr)
    np.testing.assert_array_equal(got.indices, want.indices)
    np.testing.assert_array_equal(got.data, want.data)  # bit-identical, float32 sums included
    np.testing.assert_array_equal(users, want_users)
    np.testing.assert_array_equal(items, want_items)
    return got, users, items


@pytest.mark.parametrize("source_weight", [None, 0.35, 2.0])
def test_pooled_matrix_is_recboles(fit_context, source_weight):
    matrix, users, items = assert_same_matrix(fit_context, source_weight)
    data = fit_context.data
    # every target training pair is in its user's row and its item's column
    t = data.target_train
    assert (np.asarray(matrix[users[t[:, 0]], items[t[:, 1]]]).ravel() >= 1.0).all()
    # source-only columns come after the target's
    assert items.max() == data.n_target_items


def test_pooled_matrix_is_recboles_without_shared_users(synthetic_data, tmp_path):
    import dataclasses

    data = dataclasses.replace(synthetic_data, keys={**synthetic_data.keys, "source_users": [
        f"other:{k}" for k in synthetic_data.keys["source_users"]]})
    assert len(data.shared_users) == 0 and len(data.shared_items) > 0
    ctx = make_fit_context(data, tmp_path / "fit", seed=0)
    assert_same_matrix(ctx, None)
    assert_same_matrix(ctx, 0.5)


@pytest.mark.parametrize("domain,pooled", [("target", False), ("source", False), ("target", True)])
def test_recbole_data_ids_follow_canonical_order(fit_context, domain, pooled):
    """Integer tokens give each user and item the RecBole ID the string tokens gave: by first appearance."""
    rb = recbole_data(fit_context, "Pop", {"train_neg_sample_args": None}, pooled=pooled, domain=domain)
    data = fit_context.data
    pairs = data.target_train if domain == "target" else data.source_train
    rows = data.catalog.target_rows if domain == "target" else data.catalog.source_rows
    inter_users = rb.dataset.inter_feat["user_id"].numpy()[: len(pairs)]
    inter_items = rb.dataset.inter_feat["item_id"].numpy()[: len(pairs)]
    np.testing.assert_array_equal(inter_users, rb.user_ids[pairs[:, 0]])
    np.testing.assert_array_equal(inter_items, rb.item_ids[pairs[:, 1]])
    first = dict.fromkeys(pairs[:, 0].tolist())  # the first-seen user gets ID 1, the next 2, ...
    assert [rb.user_ids[u] for u in list(first)[:5]] == [1, 2, 3, 4, 5]
    assert len(set(rb.item_ids.tolist())) == len(rows)


def test_training_config_needs_no_dataset(fit_context):
    """The strategies' RecBole Config: the same settings recbole_data's has, nothing written."""
    from xdplug.model.strategy import model_class

    config = training_config(fit_context, model_class(), {"train_neg_sample_args": None})
    rb = recbole_data(fit_context, model_class(), {"train_neg_sample_args": None})
    mine, theirs = config.final_config_dict, rb.config.final_config_dict
    assert set(mine) == set(theirs)
    assert {k: v for k, v in mine.items() if not isinstance(v, torch.device)} == \
        {k: v for k, v in theirs.items() if not isinstance(v, torch.device)}


@pytest.fixture(scope="module")
def ml100k(tmp_path_factory):
    """ml100k-genres prepared with the default protocol (the quickstart's data)."""
    from xdplug_datasets.movielens import ML100KGenres

    from xdplug.config import DEFAULTS
    from xdplug.data.crossdomain import CrossDomainData
    from xdplug.data.prepare import prepare_domains, write_prepared

    raw = ML100KGenres({"users": "shared", "split_seed": 0}).load(str(tmp_path_factory.mktemp("raw")))
    folder = tmp_path_factory.mktemp("ml100k") / "prepared"
    write_prepared(prepare_domains(raw, DEFAULTS["dataset"], 2022, folder.parent), folder)
    return CrossDomainData.load(folder)


@pytest.mark.parametrize("source_weight", [None, 0.35])
def test_pooled_matrix_is_recboles_on_ml100k(ml100k, tmp_path, source_weight):
    ctx = make_fit_context(ml100k, tmp_path / "fit", seed=2022)
    matrix, _, _ = assert_same_matrix(ctx, source_weight)
    assert matrix.nnz > len(ml100k.target_train)  # the shared users' source rows joined


# -- preparation: the split on arrays and integer-coded keys ----------------------------------------


def recbole_split_rows(users, timestamps, ratios, order, seed, workdir):
    """The split as RecBole's own ``Dataset.build`` makes it (the old path), as row indices."""
    import random

    import pandas as pd
    from recbole.data.dataset import Dataset
    from recbole.utils import init_seed

    from xdplug.recbole.compat import recbole_config

    folder = workdir / "split"
    folder.mkdir(parents=True, exist_ok=True)
    # the item column carries each row's index, so RecBole's parts name their rows
    pd.DataFrame({"user_id:token": [f"u{u}" for u in users], "item_id:token": [f"r{i}" for i in range(len(users))],
                  "timestamp:float": np.nan_to_num(timestamps, nan=0.0)}).to_csv(folder / "split.inter", sep="\t",
                                                                                  index=False)
    config = recbole_config("Pop", "split", workdir, {
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "eval_args": {"split": {"RS": list(ratios)}, "order": order, "group_by": "user", "mode": "full"},
        "seed": seed}, torch.device("cpu"))
    state = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    try:
        init_seed(seed, True)
        dataset = Dataset(config)
        parts = dataset.build()
    finally:
        random.setstate(state[0]), np.random.set_state(state[1]), torch.set_rng_state(state[2])
    return [np.array([int(t[1:]) for t in dataset.id2token("item_id", p.inter_feat["item_id"].numpy())],
                     dtype=np.int64) for p in parts]


@pytest.mark.parametrize("order", ["RO", "TO"])
@pytest.mark.parametrize("ratios,seed", [([0.8, 0.1, 0.1], 2022), ([0.7, 0.3], 5), ([0.6, 0.2, 0.2], 0)])
def test_split_rows_is_recboles_split(tmp_path, order, ratios, seed):
    from xdplug.data.prepare import split_rows

    rng = np.random.default_rng(seed)
    n = 3000
    users = rng.integers(0, 250, n) ** 2  # uneven: users of 1 to ~30 rows, sizes under and over 10
    # large timestamps with ties, some equal only in float32 (as RecBole compares them), some missing
    timestamps = 9.0e8 + rng.integers(0, 400, n) * 37.0
    timestamps[rng.random(n) < 0.05] = np.nan
    got = split_rows(users, timestamps, ratios, order, seed)
    want = recbole_split_rows(users, timestamps, ratios, order, seed, tmp_path)
    assert len(got) == len(want) == len(ratios)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)  # same rows, same order
    assert sorted(np.concatenate(got).tolist()) == list(range(n))


def test_split_rows_leaves_the_global_generators_alone():
    from xdplug.data.prepare import split_rows

    torch.manual_seed(1)
    expected = torch.rand(3)
    torch.manual_seed(1)
    split_rows(np.arange(50) % 7, np.zeros(50), [0.8, 0.1, 0.1], "RO", 2022)
    assert torch.equal(torch.rand(3), expected)


def test_split_rows_refuses_an_unknown_order():
    from xdplug.data.prepare import split_rows

    with pytest.raises(ValueError, match="order must be 'RO' or 'TO', got 'XO'"):
        split_rows(np.arange(5), np.zeros(5), [0.8, 0.2], "XO", 0)


def prepared_digest(result: dict) -> str:
    import hashlib
    import json

    digest = hashlib.sha256()
    for name in sorted(result["arrays"]):
        array = result["arrays"][name]
        digest.update(name.encode())
        digest.update(str(array.dtype).encode())
        digest.update(str(array.shape).encode())
        digest.update(array.tobytes())
    digest.update(json.dumps(result["keys"]).encode())
    return digest.hexdigest()[:32]


#: digests of arrays.npz and keys.json as the string-keyed, RecBole-split preparation wrote them (d59db6f)
ML100K_DIGESTS = {
    "RO": "0c4f7cb09a47bcc8bc84df915e4eedf9",
    "TO": "8f8df2e21528e21e01df2bfd9f25591f",
    "cold-sparse": "16c3d5f3c4b64b3e6bcdd35808a0a2a2",
}


@pytest.mark.parametrize("variant", sorted(ML100K_DIGESTS))
def test_ml100k_preparation_is_unchanged(tmp_path, variant):
    import copy

    from xdplug_datasets.movielens import ML100KGenres

    from xdplug.config import DEFAULTS
    from xdplug.data.prepare import prepare_domains

    cfg, seed = copy.deepcopy(DEFAULTS["dataset"]), 2022
    if variant == "TO":
        cfg["protocol"]["order"] = "TO"
    if variant == "cold-sparse":
        cfg["cold_items"], cfg["sparse"], seed = {"fraction": 0.1, "new_in_source": True}, {"keep": 0.5}, 7
    raw = ML100KGenres({"users": "shared", "split_seed": 0}).load(str(tmp_path))
    result = prepare_domains(raw, cfg, seed, tmp_path)
    assert prepared_digest(result) == ML100K_DIGESTS[variant]


def test_leakage_guard_on_integer_pairs(tmp_path):
    """No source (user, item) equals a target validation/test one, by key; the rest of the source stays."""
    from xdplug.config import DEFAULTS
    from xdplug.data.prepare import prepare_domains
    from xdplug.testing.synthetic import synthetic_domains

    raw = synthetic_domains(seed=3)
    result = prepare_domains(raw, DEFAULTS["dataset"], 1, tmp_path)
    arrays, keys = result["arrays"], result["keys"]

    def named(pairs, users, items):
        return {(keys[users][u], keys[items][i]) for u, i in pairs}

    source = named(arrays["source_train"], "source_users", "source_items")
    held = named(np.concatenate([arrays["target_valid"], arrays["target_test"]]), "target_users", "target_items")
    assert result["summary"]["leakage_removed"] > 0
    assert not source & held
    positives = raw.source.inter[raw.source.inter["rating"] >= DEFAULTS["dataset"]["protocol"]["min_rating"]]
    kept_or_filtered = len(positives) - result["summary"]["leakage_removed"]
    assert len(source) <= kept_or_filtered and len(source) > 0.5 * kept_or_filtered
