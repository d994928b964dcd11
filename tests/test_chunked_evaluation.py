"""Ranking within a memory budget: the full-row path ranks exactly as before, item chunks
merge to the same top-k (ties by item index), and no batch outgrows the budget."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from xdplug import evaluation
from xdplug.errors import ConfigError
from xdplug.evaluation import (CHUNK_BYTES, ROW_BYTES, UserItems, memory_budget, order_keys, plan_batches,
                               rank_split, rank_users, split_users)
from xdplug.metrics import hit_matrix
from xdplug.testing.synthetic import tiny_ranking_result

MB = 2**20


# -- references: the code as it was, and the tie-by-index order --------------------------------


def todays_rank_users(score_fn, users, positives, train_items, n_items, k, batch_size=1024, device="cpu",
                      cold_items=None):
    """``rank_users`` before budgets (verbatim but for names): full rows, per-user loops."""
    k = min(k, n_items)
    topk = np.empty((len(users), k), dtype=np.int64)
    topk_cold = cold_mask = None
    if cold_items is not None and len(cold_items):
        topk_cold = np.full((len(users), k), -1, dtype=np.int64)
        cold_mask = torch.zeros(n_items, dtype=torch.bool, device=device)
        cold_mask[torch.as_tensor(cold_items, device=device)] = True
        k_cold = min(k, len(cold_items))
    for start in range(0, len(users), batch_size):
        stop = min(start + batch_size, len(users))
        batch = torch.as_tensor(users[start:stop], dtype=torch.long, device=device)
        with torch.no_grad():
            scores = score_fn(batch).to(device=device, dtype=torch.float32).clone()
        rows = np.concatenate([np.full(len(train_items[u]), i) for i, u in enumerate(range(start, stop))])
        cols = np.concatenate([train_items[u] for u in range(start, stop)])
        if len(cols):
            scores[torch.as_tensor(rows, dtype=torch.long), torch.as_tensor(cols, dtype=torch.long)] = -torch.inf
        scores = torch.nan_to_num(scores, nan=-torch.inf)
        topk[start:stop] = torch.topk(scores, k, dim=1).indices.cpu().numpy()
        if cold_mask is not None:
            cold_scores = scores.masked_fill(~cold_mask, -torch.inf)
            topk_cold[start:stop, :k_cold] = torch.topk(cold_scores, k_cold, dim=1).indices.cpu().numpy()
    return topk, topk_cold


def todays_split_users(data, split):
    train = data.user_items("target", "train")
    held = data.user_items("target", split)
    masked = train
    if split == "test":
        masked = [np.union1d(a, b) for a, b in zip(train, data.user_items("target", "valid"))]
    users = np.array([u for u in range(data.n_target_users) if len(held[u])], dtype=np.int64)
    return users, [held[u] for u in users], [masked[u] for u in users], np.array([len(train[u]) for u in users])


def masked_keys(scores, train_items):
    """What both paths rank: training items -inf, then NaN -> -inf and +-inf -> the finite extremes."""
    keys = np.array(scores, dtype=np.float32)
    for row, items in enumerate(train_items):
        keys[row, items] = -np.inf
    return np.nan_to_num(keys, nan=-np.inf, posinf=np.finfo(np.float32).max, neginf=np.finfo(np.float32).min)


def by_index(keys, k):
    """Top-k per row by (score descending, item index ascending)."""
    items = np.arange(keys.shape[1])
    return np.stack([np.lexsort((items, -row))[:k] for row in keys]).astype(np.int64)


def cold_reference(keys, cold, k):
    cold_keys = np.where(np.isin(np.arange(keys.shape[1]), cold), keys, -np.inf)
    out = np.full((len(keys), k), -1, dtype=np.int64)
    out[:, :min(k, len(cold))] = by_index(cold_keys, min(k, len(cold)))
    return out


def messy_scores(rng, n_users, n_items, levels=None):
    """Scores with ties (few levels), NaN, +-inf and -0.0."""
    scores = (rng.integers(0, levels, (n_users, n_items)).astype(np.float32) - levels // 2 if levels
              else rng.standard_normal((n_users, n_items)).astype(np.float32))
    where = rng.random((n_users, n_items))
    scores[where < 0.08] = np.nan
    scores[(where >= 0.08) & (where < 0.14)] = -np.inf
    scores[(where >= 0.14) & (where < 0.16)] = np.inf
    scores[(where >= 0.16) & (where < 0.2)] = -0.0
    return scores


def problem(seed, n_users=23, n_items=157, levels=4):
    rng = np.random.default_rng(seed)
    scores = messy_scores(rng, n_users, n_items, levels)
    train = [np.sort(rng.choice(n_items, size=int(rng.integers(0, n_items // 3)), replace=False))
             for _ in range(n_users)]
    cold = np.sort(rng.choice(n_items, size=n_items // 5, replace=False))
    return scores, train, cold


class Scorer:
    """A matrix scorer that records the shapes it is asked for; ``chunks`` adds ``score_items``."""

    def __init__(self, scores, chunks=False):
        self.scores, self.calls = torch.as_tensor(scores), []
        if chunks:
            self.score_items = self._score_items

    def __call__(self, users):
        self.calls.append(("rows", len(users), self.scores.shape[1]))
        return self.scores[users]

    def _score_items(self, users, start, stop):
        self.calls.append(("items", len(users), stop - start))
        return self.scores[users, start:stop]


def rank(scores, train, cold, k, memory_mb=None, chunks=False, batch_size=1024):
    users = np.arange(len(scores))
    return rank_users(Scorer(scores, chunks), users, None, train, scores.shape[1], k, batch_size=batch_size,
                      cold_items=cold, memory_mb=memory_mb)


# -- the full-row path is today's ranking ------------------------------------------------------


@pytest.mark.parametrize("levels", [None, 3])
def test_full_rows_rank_exactly_as_before_ties_included(levels):
    scores, train, cold = problem(1, levels=levels)
    for k in (5, 40, 157):
        before = todays_rank_users(Scorer(scores), np.arange(len(scores)), None, train, 157, k,
                                   batch_size=7, cold_items=cold)
        after = rank(scores, train, cold, k, batch_size=7)
        assert np.array_equal(before[0], after[0]) and np.array_equal(before[1], after[1])


@pytest.mark.parametrize("split", ["valid", "test"])
def test_rank_split_is_unchanged_on_synthetic_data(synthetic_data, split):
    rng = np.random.default_rng(3)
    n_users, n_items = synthetic_data.n_target_users, synthetic_data.n_target_items
    cold = np.sort(rng.choice(n_items, size=7, replace=False))
    data = dataclasses.replace(synthetic_data, cold_items=cold, split_cache={})
    users, positives, masked, counts = todays_split_users(data, split)
    new_users, new_positives, new_masked, new_counts = split_users(data, split)
    assert np.array_equal(users, new_users) and np.array_equal(counts, new_counts)
    for old, new in ((positives, new_positives), (masked, new_masked)):
        assert len(old) == len(new) and all(a.dtype == b.dtype and np.array_equal(a, b) for a, b in zip(old, new))
    for scores in (rng.random((n_users, n_items)), messy_scores(rng, n_users, n_items, 3),
                   np.tile(data.target_item_popularity.astype(np.float64), (n_users, 1))):
        scorer = Scorer(scores)
        topk, topk_cold = todays_rank_users(scorer, users, positives, masked, n_items, 10, cold_items=cold)
        result = rank_split(scorer, data, split, [5, 10], "cpu", [5, 10])
        assert np.array_equal(result.topk, topk) and np.array_equal(result.topk_cold, topk_cold)
        assert np.array_equal(result.hits(), hit_matrix(topk, positives))
        assert np.array_equal(result.positive_counts(), [len(p) for p in positives])


# -- item chunks ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed, levels", [(0, 2), (1, 5), (2, None)])
@pytest.mark.parametrize("chunks", [False, True])
def test_item_chunks_merge_to_the_top_k_by_score_then_item_index(seed, levels, chunks):
    scores, train, cold = problem(seed, n_users=9, levels=levels)
    keys = masked_keys(scores, train)
    # 3, 20 or 50 items per chunk: one user's row (157 x ROW_BYTES) does not fit
    for memory_mb in (3 * CHUNK_BYTES / MB, 20 * CHUNK_BYTES / MB, 50 * CHUNK_BYTES / MB):
        for k in (1, 12, 157):
            topk, topk_cold = rank(scores, train, cold, k, memory_mb, chunks)
            assert np.array_equal(topk, by_index(keys, k)), (memory_mb, k)
            assert np.array_equal(topk_cold, cold_reference(keys, cold, k)), (memory_mb, k)


def test_chunked_ranking_agrees_with_full_rows():
    """Same scores at every rank (ties can only trade places); the same items where no ties are."""
    for levels in (3, None):
        scores, train, cold = problem(4, levels=levels)
        if levels is None:  # +inf (the largest finite value) and -0.0 tie: replaced by distinct scores
            tied = np.isposinf(scores) | (scores == 0)
            scores[tied] = 1e3 + np.arange(tied.sum())
        keys = masked_keys(scores, train)
        full, full_cold = rank(scores, train, cold, 8)
        chunked, chunked_cold = rank(scores, train, cold, 8, 64 * CHUNK_BYTES / MB, chunks=True)
        assert np.array_equal(np.take_along_axis(keys, full, 1), np.take_along_axis(keys, chunked, 1))
        cold_keys = np.where(np.isin(np.arange(157), cold), keys, -np.inf)
        assert np.array_equal(np.take_along_axis(cold_keys, full_cold, 1),
                              np.take_along_axis(cold_keys, chunked_cold, 1))
        if levels is None:  # continuous scores: the top 8 have no ties, so the items agree
            assert np.array_equal(full, chunked) and np.array_equal(full_cold, chunked_cold)


def test_order_keys_sort_like_scores_then_item_index():
    values = torch.tensor([[0.5, -0.0, 0.0, -np.inf, 1e-30, -1e-30, np.finfo(np.float32).max,
                            np.finfo(np.float32).min, 0.5, -2.0]], dtype=torch.float32)
    keys = order_keys(values, 100)
    order = torch.argsort(keys, dim=1, descending=True)[0].tolist()
    assert order == [6, 0, 8, 4, 1, 2, 5, 9, 7, 3]
    assert len(set(keys[0].tolist())) == values.shape[1]


# -- the budget ------------------------------------------------------------------------------


@pytest.mark.parametrize("chunks", [False, True])
def test_no_batch_outgrows_the_budget(chunks):
    scores, train, cold = problem(5, n_users=40, n_items=300)
    for memory_mb in (0.5 * 300 * ROW_BYTES / MB, 3 * 300 * ROW_BYTES / MB, 50 * CHUNK_BYTES / MB):
        scorer = Scorer(scores, chunks)
        rank_users(scorer, np.arange(40), None, train, 300, 10, batch_size=16, cold_items=cold, memory_mb=memory_mb)
        budget = memory_budget(memory_mb)
        assert sum(n for kind, n, _ in scorer.calls if kind == "rows") in (0, 40)
        for kind, n_users, width in scorer.calls:
            assert n_users <= 16
            if kind == "items":
                assert n_users * width * CHUNK_BYTES <= budget
            elif budget >= 300 * ROW_BYTES:
                assert n_users * width * ROW_BYTES <= budget
            else:  # not even one row fits: one user at a time, ranked in chunks
                assert n_users == 1


def test_a_large_catalogue_is_batched_within_the_default_budget():
    budget = memory_budget()
    users, width, chunked = plan_batches(10**6, 10**5, 1024, budget, False)
    assert not chunked and width == 10**5 and 1 <= users <= 1024 and users * width * ROW_BYTES <= budget
    # shipped catalogues (< 20,000 items) keep today's batch of 1024 whole rows
    assert plan_batches(10**6, 20_000, 1024, budget, True) == (1024, 20_000, False)
    users, width, chunked = plan_batches(10**6, 10**8, 1024, budget, True)
    assert chunked and width < 10**8 and users * width * CHUNK_BYTES <= budget
    assert plan_batches(10**6, 10**8, 1024, budget, False)[:1] == (1,)


def test_budget_from_the_environment(monkeypatch):
    monkeypatch.setenv("XDPLUG_EVAL_MEMORY_MB", "64")
    assert memory_budget() == 64 * MB and memory_budget(2) == 2 * MB
    monkeypatch.setenv("XDPLUG_EVAL_MEMORY_MB", "")
    assert memory_budget() == evaluation.MEMORY_MB * MB
    for bad in ("lots", "0", "-5", "nan"):
        monkeypatch.setenv("XDPLUG_EVAL_MEMORY_MB", bad)
        with pytest.raises(ConfigError, match=f"XDPLUG_EVAL_MEMORY_MB: expected a number in \\(0, .*got .*{bad}"):
            memory_budget()
    with pytest.raises(ConfigError, match="memory_mb: expected a number"):
        memory_budget(0)


def test_a_scorer_of_the_wrong_shape_is_named():
    scores, train, cold = problem(6)
    for memory_mb, chunks in ((None, False), (CHUNK_BYTES / MB, True)):
        bad = Scorer(scores[:, :-1], chunks)
        with pytest.raises(RuntimeError, match="scorer returned shape"):
            rank_users(bad, np.arange(5), None, train, 157, 5, memory_mb=memory_mb)


# -- per-user lists as CSR -----------------------------------------------------------------


def test_user_items_read_like_a_list_of_arrays():
    arrays = [np.array([3, 1]), np.array([], dtype=np.int64), np.array([7])]
    rows = UserItems.from_arrays(arrays)
    assert len(rows) == 3 and [r.tolist() for r in rows] == [[3, 1], [], [7]]
    assert rows[-1].tolist() == [7] and [r.tolist() for r in rows[1:]] == [[], [7]]
    assert rows.lengths().tolist() == [2, 0, 1]
    with pytest.raises(IndexError):
        rows[3]


def test_hit_matrix_and_cold_slices_match_the_per_user_loops():
    from xdplug_builtin.evaluators.cold_start import ColdStartEvaluator, cold_positives

    rng = np.random.default_rng(7)
    topk = rng.integers(0, 50, (30, 8))
    topk[rng.random(topk.shape) < 0.2] = -1
    positives = [np.sort(rng.choice(50, size=int(rng.integers(0, 6)), replace=False)) for _ in range(30)]
    loop = np.array([np.isin(row, pos) if len(pos) else np.zeros(8, bool) for row, pos in zip(topk, positives)])
    assert np.array_equal(hit_matrix(topk, positives), loop)
    assert np.array_equal(hit_matrix(topk, UserItems.from_arrays(positives)), loop)
    cold = np.sort(rng.choice(50, size=9, replace=False))
    is_cold = np.zeros(50, dtype=bool)
    is_cold[cold] = True
    kept, counts = cold_positives(positives, is_cold)
    expected = [p[np.isin(p, cold)] for p in positives]
    assert counts.tolist() == [len(p) for p in expected]
    assert [r.tolist() for r in UserItems(kept.indptr, kept.indices)] == [p.tolist() for p in expected if len(p)]
    result = tiny_ranking_result(seed=2, n_users=40, n_items=60)
    as_csr = dataclasses.replace(result, positives=UserItems.from_arrays(result.positives))
    assert ColdStartEvaluator().evaluate(result) == ColdStartEvaluator().evaluate(as_csr)
