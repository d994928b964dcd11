"""The next-item task: the split on hand-made timelines, leakage, the baselines, config refusals."""

from __future__ import annotations

import numpy as np
import pytest

from xdplug.data.sequences import Sequences, keep_recent, next_item_split, time_order
from xdplug.errors import ConfigError, DataError

NEXT_ITEM = {"task": "next-item"}


# -- the split on hand-made timelines ----------------------------------------------------------

def test_time_order_breaks_ties_by_row_order():
    users = np.array([1, 0, 1, 0, 1])
    times = np.array([5.0, 2.0, 5.0, 1.0, 3.0])
    assert time_order(users, times).tolist() == [3, 1, 4, 0, 2]


def test_leave_one_out_positions():
    # user 0: rows 0..3 at times 5, 1, 3, 3 -> order 1, 2, 3 (tie: row order), 0
    # user 1: rows 4..6 all at time 2 -> row order; user 2: two interactions, never evaluated
    users = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2])
    times = np.array([5, 1, 3, 3, 2, 2, 2, 9, 8], dtype=float)
    parts = next_item_split(users, times, "leave-one-out")
    assert parts["train"].tolist() == [1, 2, 4, 8, 7]
    assert parts["valid"].tolist() == [3, 5]
    assert parts["test"].tolist() == [0, 6]
    assert parts["test_input"].tolist() == [1, 2, 3, 4, 5]


def test_global_time_split_windows():
    # global order by time (ties: row order): rows 0 1 2 3 | 4 5 | 6 7 with ratios 0.5 / 0.25 / 0.25
    users = np.array([0, 1, 0, 2, 1, 0, 0, 2])
    times = np.arange(8, dtype=float)
    parts = next_item_split(users, times, "global-time", [0.5, 0.25, 0.25])
    assert parts["train"].tolist() == [0, 2, 1, 3]  # grouped by user, time-ordered
    # user 1's first validation-window row (4), user 0's (5); user 2 has none there
    assert parts["valid"].tolist() == [5, 4]
    # test window: user 0's first (6; row 7 of user 2 is their first too: they have a training row)
    assert parts["test"].tolist() == [6, 7]
    # before a test target: training rows and the validation window (user 0: rows 0, 2, 5)
    assert parts["test_input"].tolist() == [0, 2, 5, 3]


def test_global_time_needs_something_before_a_target():
    # user 1 appears only in the validation and test windows: no validation target, a test target
    users = np.array([0, 0, 1, 1])
    times = np.array([0, 1, 2, 3], dtype=float)
    parts = next_item_split(users, times, "global-time", [0.5, 0.25, 0.25])
    assert parts["valid"].tolist() == []
    assert parts["test"].tolist() == [3]
    assert parts["test_input"].tolist() == [2]


def test_sparse_keeps_the_most_recent_training_items():
    users = np.zeros(8, dtype=np.int64)
    times = np.arange(8, dtype=float)
    parts = next_item_split(users, times, "leave-one-out", keep=0.5)
    assert parts["train"].tolist() == [3, 4, 5]  # round(6 * 0.5) = 3 most recent of 0..5
    assert parts["test_input"].tolist() == [3, 4, 5, 6]
    assert keep_recent(np.array([0, 0, 0, 1]), 0.1).tolist() == [False, False, True, True]


def test_missing_timestamps_are_refused():
    with pytest.raises(DataError, match="2 target interactions have no timestamp"):
        next_item_split(np.array([0, 0, 0]), np.array([1.0, np.nan, np.nan]))


def test_sequences_last_items():
    seqs = Sequences.from_pairs(np.array([[0, 5], [0, 6], [0, 7], [2, 9]]), 3)
    rows, length = seqs.last(np.array([0, 1, 2]), 2)
    assert rows.tolist() == [[6, 7], [-1, -1], [9, -1]] and length.tolist() == [2, 0, 1]


# -- prepared data: identical split, leakage ---------------------------------------------------

def prepare_next_item(**protocol):
    from xdplug.config import load_config
    from xdplug.data.prepare import prepare
    from xdplug.testing.synthetic import SyntheticRecipe

    config = load_config(data={"dataset": {"recipe": "synthetic", "protocol": {**NEXT_ITEM, **protocol}},
                               "baselines": [{"baseline": "Pop"}]})
    return prepare(SyntheticRecipe({}, "dataset.params"), config["dataset"], 0)


def full_timelines(data) -> dict[int, list[int]]:
    """Each target user's whole prepared timeline (train, valid, test), by time (distinct per user here)."""
    pairs = np.concatenate([data.target_train, data.target_valid, data.target_test])
    times = np.concatenate([data.times["target_train"], data.times["target_valid"], data.times["target_test"]])
    out: dict[int, list[int]] = {}
    for row in time_order(pairs[:, 0], times):
        out.setdefault(int(pairs[row, 0]), []).append(int(pairs[row, 1]))
    return out


@pytest.mark.parametrize("mode", ["leave-one-out", "global-time"])
def test_no_input_holds_its_target_or_later(xdplug_home, mode):
    data = prepare_next_item(sequence_split=mode)
    timelines = full_timelines(data) if mode == "leave-one-out" else None
    for split, pairs in (("valid", data.target_valid), ("test", data.target_test)):
        seqs = data.sequences(split)
        times = data.times[f"target_{split}"]
        assert len(pairs) and len(np.unique(pairs[:, 0])) == len(pairs)  # one target per user
        for (user, item), when in zip(pairs, times):
            history = seqs[user].tolist()
            history_times = seqs.times[seqs.indptr[user]:seqs.indptr[user + 1]]
            assert history and item not in history and (history_times <= when).all()
            if timelines is not None:  # leave-one-out: exactly the prefix before the target's position
                position = timelines[user].index(item)
                assert history == timelines[user][:position]
                assert position == len(timelines[user]) - (1 if split == "test" else 2)
    # training never reaches a held-out position
    train = data.sequences("train")
    for user, when in zip(data.target_valid[:, 0], data.times["target_valid"]):
        assert (train.times[train.indptr[user]:train.indptr[user + 1]] <= when).all()


def test_the_split_is_the_same_for_every_seed_and_masks_the_input(xdplug_home):
    from xdplug.evaluation import split_users

    data = prepare_next_item()
    assert data.task == "next-item" and data.summary["next_item"]["sequence_split"] == "leave-one-out"
    users, positives, masked, _ = split_users(data, "test")
    assert all(len(positives[i]) == 1 for i in range(len(users)))
    for i, user in enumerate(users[:10]):
        assert sorted(masked[i].tolist()) == sorted(data.sequences("test")[user].tolist())
    # the targets are the last interactions: the order of rows, not the seed, decides them
    from xdplug.config import load_config
    from xdplug.data.prepare import prepare
    from xdplug.testing.synthetic import SyntheticRecipe

    config = load_config(data={"dataset": {"recipe": "synthetic", "protocol": NEXT_ITEM},
                               "baselines": [{"baseline": "Pop"}]})
    other = prepare(SyntheticRecipe({}, "dataset.params"), config["dataset"], 7)
    assert np.array_equal(other.target_test, data.target_test)
    assert np.array_equal(other.target_train, data.target_train)


def test_pooled_sequences_merge_only_earlier_source_events(xdplug_home):
    from xdplug.data.sequences import merged_sequences, pooled_training_sequences, source_sequences

    data = prepare_next_item()
    source = source_sequences(data)
    person = dict(zip(data.shared_users[:, 0].tolist(), data.shared_users[:, 1].tolist()))
    merged = merged_sequences(data, "test")
    target_rows = np.asarray(data.catalog.target_rows)
    source_rows = np.asarray(data.catalog.source_rows)
    checked = 0
    for (user, _), when in zip(data.target_test, data.times["target_test"]):
        expected = [(t, 0, r) for t, r in zip(data.sequences("test").times[data.sequences("test").indptr[user]:
                                                                          data.sequences("test").indptr[user + 1]],
                                              target_rows[data.sequences("test")[user]])]
        if user in person:
            s = person[user]
            times = source.times[source.indptr[s]:source.indptr[s + 1]]
            expected += [(t, 1, r) for t, r in zip(times, source_rows[source[s]]) if t < when]
            checked += 1
        expected = sorted(expected, key=lambda e: (e[0], e[1]))
        assert merged[user].tolist() == [r for _, _, r in expected]
        assert merged.domains[merged.indptr[user]:merged.indptr[user + 1]].tolist() == [d for _, d, _ in expected]
        assert (merged.times[merged.indptr[user]:merged.indptr[user + 1]] < when).all()
    assert checked > 10
    pooled = pooled_training_sequences(data)
    valid_time = dict(zip(data.target_valid[:, 0].tolist(), data.times["target_valid"].tolist()))
    for user, when in valid_time.items():
        assert (pooled.times[pooled.indptr[user]:pooled.indptr[user + 1]] < when).all()
    assert len(pooled) > data.n_target_users  # source-only users who touch a shared item


# -- baselines ----------------------------------------------------------------------------------

def test_seq_ease_matches_a_hand_computation():
    from xdplug_builtin.baselines.seq_ease import fit_transitions, query_features

    # sequences 0 -> 1 -> 2 and 1 -> 2 -> 0 over 3 items; window 2, decay 0.5, reg 1
    seqs = Sequences.from_pairs(np.array([[0, 0], [0, 1], [0, 2], [1, 1], [1, 2], [1, 0]]), 2)
    x = np.array([[1.0, 0, 0],    # <0> -> 1
                  [0.5, 1, 0],    # <0, 1> -> 2
                  [0, 1, 0],      # <1> -> 2
                  [0, 0.5, 1]])   # <1, 2> -> 0
    y = np.array([[0, 1.0, 0], [0, 0, 1], [0, 0, 1], [1, 0, 0]])
    expected = np.linalg.inv(x.T @ x + np.eye(3)) @ x.T @ y
    weights = fit_transitions(seqs, window=2, decay=0.5, reg_weight=1.0, n_cols=3)
    np.testing.assert_allclose(weights, expected, rtol=1e-10)
    # a user whose last items are 2 then 0: x = e0 + 0.5 e2
    query = query_features(Sequences.from_pairs(np.array([[0, 1], [0, 2], [0, 0]]), 1), np.array([0]), 2, 0.5, 3)
    np.testing.assert_allclose(query.toarray() @ weights, np.array([[1, 0, 0.5]]) @ expected, rtol=1e-10)


def test_sequential_baselines_train_and_rank(xdplug_home, plugin_manager, tmp_path, one_torch_thread):
    import torch

    from xdplug.evaluation import rank_split
    from xdplug.metrics import quick_metric
    from xdplug.testing.contracts import make_fit_context

    data = prepare_next_item()
    registry = plugin_manager.registry
    ctx = make_fit_context(data, tmp_path / "sasrec", epochs=2)
    sasrec = registry.get("baseline", "SASRec")({"hidden_size": 32, "inner_size": 64, "max_length": 20})
    scorer = sasrec.fit(ctx)
    assert [p["phase"] for p in ctx.curves] == ["train", "train"]
    # RecBole's own augmentation: one example per training prefix, the longest is the sequence less its last
    rb = scorer.rb
    user = int(data.target_valid[0, 0])
    train = data.sequences("train")[user]
    uid = rb.user_ids[user]
    rows = (rb.dataset.inter_feat["user_id"] == uid).nonzero().ravel()
    assert len(rows) == len(train) - 1
    lengths = rb.dataset.inter_feat["item_length"][rows]
    longest = rows[lengths.argmax()]
    assert rb.dataset.inter_feat["item_id_list"][longest][:len(train) - 1].tolist() == \
        rb.item_ids[train[:-1]].tolist()
    # our input fields score exactly as RecBole's own training example with the same prefix
    from xdplug.recbole.sequences import input_batch

    scorer.model.eval()
    with torch.no_grad():
        own = scorer.model.full_sort_predict(rb.dataset.inter_feat[torch.tensor([int(longest)])])
    prefix = Sequences(np.array([0, len(train) - 1]), np.asarray(data.catalog.target_rows)[train[:-1]])
    ours = scorer._scores(input_batch(rb.config, scorer.catalog_ids, prefix, np.array([0]), "cpu"))
    torch.testing.assert_close(ours, own.view(1, -1)[:, scorer.item_index])
    # valid and test targets read different inputs; the ranking binds the split
    users = torch.as_tensor(data.target_test[:4, 0])
    assert not torch.allclose(scorer.score_split(users, "valid"), scorer.score_split(users, "test"))
    for split in ("valid", "test"):
        result = rank_split(scorer.score, data, split, [10], "cpu", [5])
        assert 0.0 <= quick_metric(result, "ndcg", 10) <= 1.0
    # pooled: the merged two-domain sequences train it, only target items are ranked
    ctx = make_fit_context(data, tmp_path / "pooled", epochs=1)
    pooled = registry.get("baseline", "SASRec")({"hidden_size": 16, "inner_size": 32, "max_length": 10,
                                                 "n_layers": 1}).fit(ctx, pooled=True)
    assert pooled.rb.dataset.inter_num > len(rb.dataset.inter_feat)  # the source's events join the sequences
    assert tuple(pooled.score_split(users, "test").shape) == (4, data.n_target_items)
    seq = registry.get("baseline", "seq-ease")({}).fit(ctx, pooled=True)
    result = rank_split(seq.score, data, "test", [10], "cpu", [5])
    assert result.topk.shape == (len(data.target_test), 10)


def test_bert4rec_trains_on_its_masks_and_scores_as_recbole(xdplug_home, plugin_manager, tmp_path, one_torch_thread):
    import torch

    from xdplug.recbole.sequences import input_batch
    from xdplug.testing.contracts import make_fit_context

    data = prepare_next_item()
    ctx = make_fit_context(data, tmp_path / "bert4rec", epochs=1)
    scorer = plugin_manager.registry.get("baseline", "BERT4Rec")(
        {"hidden_size": 16, "inner_size": 32, "n_layers": 1, "max_length": 5}).fit(ctx)
    rb = scorer.rb
    # RecBole's masking transform makes its training batches (MASK_ITEM_SEQ, MASK_INDEX, ...)
    batch = next(iter(rb.train_loader))
    assert rb.config["MASK_ITEM_SEQ"] in batch.interaction and rb.config["MASK_INDEX"] in batch.interaction
    assert (batch[rb.config["MASK_ITEM_SEQ"]] == scorer.model.mask_token).any()
    # our inputs score exactly as RecBole's own examples: a full-length prefix and a short one
    lengths = rb.dataset.inter_feat["item_length"]
    rows = [int((lengths == 5).nonzero()[0]), int((lengths == 2).nonzero()[0])]
    catalog_row = {int(rb_id): row for row, rb_id in enumerate(scorer.catalog_ids) if rb_id}
    scorer.model.eval()
    with torch.no_grad():
        own = scorer.model.full_sort_predict(rb.dataset.inter_feat[torch.tensor(rows)])
    for i, row in enumerate(rows):
        ids = rb.dataset.inter_feat["item_id_list"][row][:int(lengths[row])].numpy()
        prefix = Sequences(np.array([0, len(ids)]), np.array([catalog_row[i] for i in ids]))
        ours = scorer._scores(input_batch(rb.config, scorer.catalog_ids, prefix, np.array([0]), "cpu"))
        torch.testing.assert_close(ours, own[i].view(1, -1)[:, scorer.item_index])


def test_bert4rec_refuses_a_mask_ratio_that_masks_nothing(plugin_manager):
    with pytest.raises(ConfigError, match="mask_ratio.*masks no item"):
        plugin_manager.registry.get("baseline", "BERT4Rec")({"mask_ratio": 0.1, "max_length": 5})


# -- config refusals ------------------------------------------------------------------------------

@pytest.mark.parametrize("sections, path, message", [
    ({"dataset": {"protocol": NEXT_ITEM}, "baselines": [{"baseline": "EASE"}]}, "baselines[0].baseline",
     "baseline 'EASE' ranks for the general protocol, not for dataset.protocol.task 'next-item'"),
    ({"baselines": [{"baseline": "SASRec"}]}, "baselines[0].baseline",
     "baseline 'SASRec' ranks for the next-item protocol, not for dataset.protocol.task 'general'"),
    ({"dataset": {"protocol": NEXT_ITEM}, "baselines": [{"baseline": "Pop"}],
      "strategies": [{"encoder": "id", "fusion": "id", "adaptation": "target-only"}]},
     "strategies[0].params.model.family",
     "model family 'embedding' ranks for the general protocol, not for dataset.protocol.task 'next-item'"),
    ({"dataset": {"protocol": {"sequence_split": "global-time"}}}, "dataset.protocol.sequence_split",
     "only read under dataset.protocol.task: next-item"),
    ({"dataset": {"protocol": NEXT_ITEM, "cold_items": {"fraction": 0.2}}}, "dataset.cold_items",
     "is not defined for dataset.protocol.task next-item"),
    ({"dataset": {"protocol": NEXT_ITEM}, "baselines": [{"baseline": "SASRec", "params": {"n_heads": 3}}]},
     "baselines[0].params.hidden_size", "64 must be a multiple of n_heads (3)"),
])
def test_config_refuses_methods_outside_their_task(tiny_config, sections, path, message):
    with pytest.raises(ConfigError) as info:
        tiny_config(**sections)
    assert info.value.path == path
    assert message in str(info.value)


def test_next_item_config_accepts_its_methods(tiny_config):
    config = tiny_config(dataset={"protocol": {**NEXT_ITEM, "sequence_split": "global-time"}},
                         baselines=[{"baseline": "Pop"}, {"baseline": "SASRec"}, {"baseline": "GRU4Rec"},
                                    {"baseline": "seq-ease", "pooled": True}])
    assert config["dataset"]["protocol"]["task"] == "next-item"


def test_general_configs_keep_their_identity(tiny_config):
    """The task key has no default: a config that does not write it resolves, hashes and names its runs as
    before the key existed (``configs/quickstart.yaml``'s hash and run IDs were checked unchanged)."""
    from xdplug.config import load_config

    assert "task" not in load_config("configs/quickstart.yaml")["dataset"]["protocol"]
    assert "sequence_split" not in tiny_config()["dataset"]["protocol"]


def test_prepare_refuses_target_rows_without_a_timestamp(xdplug_home):
    from xdplug.config import load_config
    from xdplug.data.prepare import prepare_domains
    from xdplug.testing.synthetic import synthetic_domains

    raw = synthetic_domains()
    raw.target.inter.loc[:2, "timestamp"] = np.nan
    config = load_config(data={"dataset": {"recipe": "synthetic", "protocol": NEXT_ITEM},
                               "baselines": [{"baseline": "Pop"}]})
    with pytest.raises(DataError, match="target interactions have no timestamp; the next-item task orders") as info:
        prepare_domains(raw, config["dataset"], 0, xdplug_home)
    assert "synthetic target" in str(info.value)
