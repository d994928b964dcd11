"""The ``synthetic-scale`` recipe (datasets/synthetic.py), configs/scale.yaml and bench/bench_scale.py."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xdplug.errors import ConfigError
from xdplug.testing import DatasetContract
from xdplug_datasets.synthetic import SyntheticScaleRecipe

ROOT = Path(__file__).resolve().parent.parent
SCALE = str(ROOT / "configs" / "scale.yaml")
SMALL = {"interactions": 20_000, "items": 1_000}
#: configs/scale.yaml at 10^4 target interactions over 100 items
TINY = ["dataset.params.scale=0.001", "train.epochs=1", "train.eval_step=1", "strategies.0.params.model.epochs=1",
        "device=cpu"]


def load(**params):
    return SyntheticScaleRecipe({**SMALL, **params}, "dataset.params").load("unused")


@pytest.fixture(scope="module")
def raw():
    return load()


def topic_of(raw) -> dict:
    """item -> its topic's name (the genres field names one topic per value with the default topics)."""
    items = pd.concat([raw.target.items, raw.source.items]).drop_duplicates("item")
    return dict(zip(items["item"], items["genres"]))


# -- the data ---------------------------------------------------------------------------------

class TestSyntheticScaleContract(DatasetContract):
    dataset_class = SyntheticScaleRecipe
    params = SMALL


class TestSyntheticScaleSharingBothContract(DatasetContract):
    dataset_class = SyntheticScaleRecipe
    params = {**SMALL, "overlap": "both", "source_size": 2.0}


def test_same_seed_same_data_other_seed_other_data(raw):
    again = load()
    for role in ("target", "source"):
        pd.testing.assert_frame_equal(getattr(raw, role).inter, getattr(again, role).inter)
        pd.testing.assert_frame_equal(getattr(raw, role).items, getattr(again, role).items)
    other = load(seed=1)
    assert not raw.target.inter["item"].equals(other.target.inter["item"])


def test_sizes_activity_and_no_repeated_pairs(raw):
    for domain in (raw.target, raw.source):
        inter = domain.inter
        assert inter.duplicated(["user", "item"]).sum() == 0
        assert abs(len(inter) - 20_000) / 20_000 < 0.05
        per_user = inter["user"].value_counts()
        assert len(per_user) == 1_000  # interactions / activity 20
        assert per_user.min() >= 5
        assert per_user.max() > 3 * per_user.median()  # log-normal: a long tail of heavy users
        assert inter["rating"].isna().all()  # implicit: every interaction is a positive
        assert inter.groupby("user")["timestamp"].apply(lambda s: s.is_monotonic_increasing).all()
        assert len(domain.items) == 1_000 and set(inter["item"]) <= set(domain.items["item"])


def test_popularity_is_heavy_tailed(raw):
    counts = raw.target.inter["item"].value_counts()
    share_of_top_percent = counts.iloc[:10].sum() / counts.sum()
    assert share_of_top_percent > 0.05  # 5x the share of a uniform catalogue
    flat = load(popularity_exponent=0.0, noise=1.0).target.inter["item"].value_counts()
    assert flat.iloc[:10].sum() / flat.sum() < 0.02


def test_texts_are_distinct_and_name_the_topic(raw):
    from xdplug_datasets.synthetic import THEMES

    items = raw.target.items
    assert items["title"].is_unique
    assert items["genres"].nunique() == 50  # the default 50 topics, one pair of theme words each
    # "Wool hiking jacket, model 1f": the theme word is one of the few its topic uses
    theme = items["title"].str.split().str[1]
    assert theme.isin(THEMES).all()
    assert theme.groupby(items["genres"]).nunique().max() <= 3
    assert (items.apply(lambda row: row["title"].split()[1] in row["genres"], axis=1)).mean() > 0.5
    # the source (a bookshop) sells other things than the target (a shop), on the same topics
    assert set(raw.source.items["genres"]) == set(items["genres"])
    nouns = {title.split(",")[0].split(" ", 2)[2] for title in raw.source.items["title"]}
    assert nouns and not nouns & {"jacket", "mug", "lamp"}


def test_tastes_carry_across_domains(raw):
    """A shared user's favourite topic in the source is their favourite in the target far above chance."""
    topic = topic_of(raw)
    favourite = {}
    for role in ("target", "source"):
        inter = getattr(raw, role).inter
        favourite[role] = inter.assign(t=inter["item"].map(topic)).groupby("user")["t"].agg(
            lambda s: s.value_counts().index[0])
    shared = sorted(set(favourite["target"].index) & set(favourite["source"].index))
    assert len(shared) == 500  # user_overlap 0.5 of 1,000
    agree = (favourite["target"][shared].to_numpy() == favourite["source"][shared].to_numpy()).mean()
    assert agree > 0.2  # chance is about 1/50


@pytest.mark.parametrize("overlap, users, items", [("users", 500, 0), ("items", 0, 200), ("both", 500, 200),
                                                   ("none", 0, 0)])
def test_overlap(overlap, users, items):
    raw = load(overlap=overlap)
    assert len(set(raw.target.inter["user"]) & set(raw.source.inter["user"])) == users
    assert len(set(raw.target.items["item"]) & set(raw.source.items["item"])) == items
    assert raw.align_users == ("id" if users else None)
    assert raw.align_items == ("id" if items else None)
    if items:  # a shared item is the same item in both tables
        both = raw.target.items.merge(raw.source.items, on="item")
        assert (both["title_x"] == both["title_y"]).all()


def test_scale_multiplies_every_size():
    raw = load(scale=0.5)
    assert len(raw.target.items) == 500 and raw.target.inter["user"].nunique() == 500
    assert abs(len(raw.target.inter) - 10_000) < 500
    half = load(source_size=0.5)
    assert len(half.source.items) == 500 and half.source.inter["user"].nunique() == 500


@pytest.mark.parametrize("params, key, words", [
    ({"scale": 0.001}, "dataset.params.scale", "interactions x scale = 20; expected at least 100"),
    ({"interactions": 600_000, "users": 1_000}, "dataset.params.interactions", "need more than half of every user's catalogue"),
    ({"users": 5_000}, "dataset.params.users", "users x min_activity"),
    ({"min_activity": 600}, "dataset.params.min_activity", "more than half"),
    ({"min_activity": 30}, "dataset.params.min_activity", "above activity 20, the mean"),
    ({"overlap": "all"}, "dataset.params.overlap", "expected"),
    ({"topics": 0}, "dataset.params.topics", "expected"),
    ({"overlap": "items", "item_overlap": 0.0}, "dataset.params.item_overlap", "shares no item"),
])
def test_bad_params_fail_when_the_recipe_is_built(params, key, words):
    with pytest.raises(ConfigError) as info:
        SyntheticScaleRecipe({**SMALL, **params}, "dataset.params")
    assert info.value.path == key and words in str(info.value)


def test_scale_config_prepares_and_runs_tiny(plugin_manager, tmp_path):
    """configs/scale.yaml at 10^4 interactions: prepared through the engine, and its grid runs."""
    from xdplug.config import load_config
    from xdplug.engine.plan import expand
    from xdplug.engine.task import prepare_data, run_task

    config = load_config(SCALE, overrides=TINY + [f"output.dir={tmp_path}"], registry=plugin_manager.registry)
    data = prepare_data(config, plugin_manager.registry, 2022)
    summary = data.summary
    assert summary["recipe"] == "synthetic-scale"
    assert summary["overlap"]["users"] > 0 and summary["overlap"]["items"] == 0
    assert 100 >= data.n_target_items > 90 and data.n_target_users == 500
    assert data.catalog.texts[0].startswith(tuple(m for m in ("Wool", "Leather", "Cotton", "Bamboo", "Steel",
                                                              "Linen", "Ceramic", "Oak", "Glass", "Copper",
                                                              "Silk", "Canvas", "Walnut", "Marble", "Velvet",
                                                              "Denim")))
    specs = expand(config, plugin_manager.registry)
    assert [s.method for s in specs] == ["Pop", "sparse-ease", "id-target-only", "ease-joint"]
    records = {s.method: run_task(s, config, {2022: data}, registry=plugin_manager.registry) for s in specs}
    assert all(r["status"] == "done" for r in records.values()), {m: r.get("error") for m, r in records.items()}



def test_scale_data_reward_learning_tastes(plugin_manager, tmp_path):
    """The data have structure a model can learn: at 200 items over 10 topics the item-item methods beat
    popularity clearly."""
    from xdplug.config import load_config
    from xdplug.engine.plan import expand
    from xdplug.engine.task import run_task

    overrides = TINY + ["dataset.params.scale=0.002", "dataset.params.topics=10", f"output.dir={tmp_path}"]
    config = load_config(SCALE, overrides=overrides, registry=plugin_manager.registry)
    ndcg = {}
    for spec in expand(config, plugin_manager.registry):
        if spec.method in ("Pop", "sparse-ease", "ease-joint"):
            record = run_task(spec, config, registry=plugin_manager.registry)
            ndcg[spec.method] = record["metrics"]["test"]["ndcg@10"]
    print(ndcg)
    assert ndcg["sparse-ease"] > 1.2 * ndcg["Pop"] and ndcg["ease-joint"] > 1.2 * ndcg["Pop"]


# -- bench/bench_scale.py -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_scale", ROOT / "bench" / "bench_scale.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_sizes_and_devices(bench):
    assert bench.parse_size("1e6x1e5") == (1_000_000, 100_000)
    assert bench.parse_size("2000X50") == (2000, 50)
    for bad in ("1e6", "1e6xabc", "0x10", "1.5x10"):
        with pytest.raises(ValueError, match="expected"):
            bench.parse_size(bad)
    assert bench.resolve_device("auto", cuda_available=False) == "cpu"
    assert bench.resolve_device("auto", cuda_available=True) == "cuda"
    assert bench.resolve_device("cuda", cuda_available=True) == "cuda"
    with pytest.raises(ValueError, match="CUDA is not available"):
        bench.resolve_device("cuda", cuda_available=False)
    with pytest.raises(ValueError, match="expected one of cpu, cuda, auto"):
        bench.resolve_device("tpu", cuda_available=True)


def test_bench_arguments(bench, capsys):
    args = bench.parse_args(["--quick"])
    assert args.sizes == [bench.parse_size(s) for s in bench.QUICK_SIZES]
    assert args.overrides[:len(bench.QUICK_SET)] == list(bench.QUICK_SET) and args.encode_texts == bench.QUICK_ENCODE_TEXTS
    args = bench.parse_args(["--sizes", "1e5x1e4", "--device", "auto", "--set", "seeds=[1]"])
    assert args.sizes == [(100_000, 10_000)] and args.device in ("cpu", "cuda") and args.overrides == ["seeds=[1]"]
    assert bench.size_overrides(10, 20, "cuda", ["seeds=[1]"]) == [
        "seeds=[1]", "dataset.params.interactions=10", "dataset.params.items=20", "device=cuda"]
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(SystemExit):
            bench.parse_args(["--device", "cuda"])
        assert "CUDA is not available" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.parse_args(["--sizes", "big"])
    methods = ["Pop", "sparse-ease", "id-target-only", "ease-joint"]
    assert bench.expand_phases(["evaluate", "fit", "prepare"], methods) == [
        "prepare", "fit:Pop", "fit:sparse-ease", "fit:id-target-only", "fit:ease-joint", "evaluate"]
    with pytest.raises(ValueError, match="no method 'BPR'"):
        bench.expand_phases(["fit:BPR"], methods)
    with pytest.raises(ValueError, match="expected one of"):
        bench.expand_phases(["train"], methods)


def test_bench_growth_exponents(bench):
    assert bench.slope([1e5, 1e6, 1e7], [2.0, 20.0, 200.0]) == pytest.approx(1.0)
    assert bench.slope([1e5, 1e5], [1.0, 2.0]) is None
    assert bench.slope([2999, 3000], [1.0, 2.0]) is None  # filtering moved a fixed catalogue: no axis
    # t = n^1.0 * m^0.5: the interactions axis, the items axis and the joint fit recover both
    rows = []
    for n, m in ((1e5, 1e5), (1e6, 1e5), (1e7, 1e5), (1e6, 1e4), (1e6, 3e4)):
        rows.append({"phase": "fit:x", "size": [n, m], "interactions": n, "target_items": m,
                     "seconds": 1e-6 * n * math.sqrt(m), "s_per_epoch": 1e-7 * n})
    rows.append({"phase": "fit:x", "size": [1, 1], "error": "worker exited with status 1"})
    table = bench.growth(rows)["fit:x"]
    # only the interactions axis, its catalogue a few items apart after filtering: no items slope, no joint fit
    same = bench.growth([dict(r, target_items=r["target_items"] - i) for i, r in enumerate(rows[:3])])["fit:x"]
    assert same["items"] == {} and "joint" not in same and same["interactions"][1e5]["slope"] == pytest.approx(
        1.0, abs=1e-3)
    assert table["interactions"][1e5]["slope"] == pytest.approx(1.0)
    assert table["items"][1e6]["slope"] == pytest.approx(0.5)
    assert table["joint"]["interactions"] == pytest.approx(1.0) and table["joint"]["items"] == pytest.approx(0.5)
    assert table["per_epoch"][1e5] == pytest.approx(1.0)


def test_bench_epoch_times(bench):
    curves = [{"epoch": 0, "valid": None, "seconds": 2.0}, {"epoch": 1, "valid": None, "seconds": 4.0},
              {"epoch": 2, "valid": 0.1, "seconds": 4.5}]
    assert bench.epoch_times(curves) == {"epochs": 3, "s_per_epoch": 3.0, "valid_s": 1.5,
                                         "epoch_includes_validation": False}
    assert bench.epoch_times([{"valid": 0.2, "seconds": 1.0}])["epoch_includes_validation"] is True
    assert bench.epoch_times([]) == {}


def test_bench_phases_run_in_process(bench, plugin_manager, monkeypatch):
    """Every phase's worker at a tiny size (what --quick runs, one subprocess per phase, here in-process)."""
    overrides = bench.size_overrides(2000, 100, "cpu", list(bench.QUICK_SET))
    base = {"config": SCALE, "overrides": overrides, "device": "cpu", "encode_texts": 10, "threads": 0}
    out = {}
    for phase in ("generate", "prepare", "encode", "fit:id-target-only", "fit:sparse-ease", "evaluate"):
        out[phase] = bench.worker({**base, "phase": phase})
        assert out[phase]["seconds"] > 0 and out[phase]["peak_rss_mb"] > 0, phase
    assert out["generate"]["generated"]["target"] == pytest.approx(2000, rel=0.05)
    prepared = out["prepare"]
    assert prepared["target_users"] == 100 and 0 < prepared["target_items"] <= 100
    assert prepared["interactions"] == prepared["target_interactions"] + prepared["source_interactions"]
    encoded = out["encode"]
    assert encoded["texts"] == 10 and encoded["extrapolated"] and encoded["dim"] == 384
    assert len(encoded["part_texts_per_s"]) == bench.ENCODE_PARTS
    assert encoded["seconds"] == pytest.approx(encoded["catalog_texts"] / encoded["median_part_texts_per_s"])
    fit = out["fit:id-target-only"]
    assert fit["epochs"] == 1 and fit["s_per_epoch"] > 0 and fit["test_users"] > 0
    assert "s_per_epoch" not in out["fit:sparse-ease"]  # a closed form has no epochs
    evaluate = out["evaluate"]
    assert evaluate["user_items"] == (evaluate["test_users"] + evaluate["valid_users"]) * prepared["target_items"]
    assert all(r["interactions"] == prepared["interactions"] for r in out.values() if "load_s" in r)
