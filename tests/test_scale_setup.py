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
