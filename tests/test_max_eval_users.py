"""evaluation.max_users: a seeded sample of evaluated users, the same for every method; the default
keeps every user and the runs' identities of before."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xdplug.config import load_config
from xdplug.engine.plan import expand
from xdplug.errors import ConfigError
from xdplug.evaluation import rank_split, split_users


def _config(**evaluation):
    return load_config(data={"name": "t", "dataset": {"recipe": "synthetic"}, "seeds": [1],
                             "evaluation": evaluation, "baselines": [{"baseline": "Pop"}]})


def test_a_limit_ranks_a_seeded_sample_of_users_the_same_for_every_scorer(synthetic_data):
    everyone = split_users(synthetic_data, "test")[0]
    assert len(everyone) > 10
    synthetic_data.max_eval_users = 10
    try:
        users, positives, masked, counts = split_users(synthetic_data, "test")
        assert len(users) == 10 and np.all(np.diff(users) > 0) and set(users) <= set(everyone)
        n = synthetic_data.n_target_items
        rng = np.random.default_rng(0)
        scores = rng.random((synthetic_data.n_target_users, n))
        a = rank_split(lambda u: torch.as_tensor(scores[u.numpy()]), synthetic_data, "test",
                       [5], "cpu", [5])
        b = rank_split(lambda u: torch.as_tensor(-scores[u.numpy()]), synthetic_data, "test",
                       [5], "cpu", [5])
        assert np.array_equal(a.users, users) and np.array_equal(b.users, users)
        # the same sample on every call (a fixed seed, not the global generator)
        synthetic_data.split_cache.clear()
        np.random.seed(123)
        assert np.array_equal(split_users(synthetic_data, "test")[0], users)
        # the sampled users keep their own positives and masked items
        held = synthetic_data.matrix("target", "test")
        assert all(np.array_equal(p, held.indices[held.indptr[u]:held.indptr[u + 1]]) for u, p in zip(users, positives))
    finally:
        synthetic_data.max_eval_users = 0
    assert np.array_equal(split_users(synthetic_data, "test")[0], everyone)


def test_the_default_keeps_run_identities_and_a_limit_changes_them(plugin_manager):
    plain = expand(_config(), plugin_manager.registry)
    same = expand(_config(max_users=0), plugin_manager.registry)
    limited = expand(_config(max_users=500), plugin_manager.registry)
    assert [s.run_id for s in plain] == [s.run_id for s in same]
    assert plain[0].run_id != limited[0].run_id


def test_a_negative_limit_is_refused_with_its_key():
    with pytest.raises(ConfigError, match="evaluation.max_users"):
        _config(max_users=-1)
