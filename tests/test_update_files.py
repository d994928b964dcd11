"""``xdplug update`` reads the user's own files: their column names, no silent 'nan' user, and it says what
serves afterwards.

An ID strategy is trained once on the ``files`` recipe over the demo files rewritten as a
newcomer's CSVs (target columns ``viewer,film,score``; item table ``film_id,movie_title,...``)
and exported; each test updates it into its own folder.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

import xdplug
from xdplug.artifact import update_artifact, write_artifact
from xdplug.artifact.update import kept_weights, read_new_interactions
from xdplug.cli import main
from xdplug.config import load_config
from xdplug.context import FitContext
from xdplug.data.prepare import prepare
from xdplug.errors import DataError
from xdplug_datasets.files import FilesRecipe, write_demo

STRATEGY = {"name": "id", "encoder": "id", "fusion": "id", "adaptation": "target-only",
            "params": {"model": {"dim": 8, "batch_users": 32}}}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def own_files(root: Path) -> dict:
    """The demo's domains with the target as a newcomer's CSVs under their own column names."""
    demo = write_demo(root)
    inter = pd.read_csv(demo["movies"] / "movies.inter", sep="\t")
    inter.columns = ["viewer", "film", "score", "when"]
    (root / "mine").mkdir()
    inter.to_csv(root / "mine" / "ratings.csv", index=False)
    items = pd.read_csv(demo["movies"] / "movies.item", sep="\t")
    items.columns = ["film_id", "movie_title", "release_year", "genre"]
    items.to_csv(root / "mine" / "films.csv", index=False)
    new = pd.read_csv(demo["new_ratings"])
    new.columns = ["viewer", "film", "score"]
    new.to_csv(root / "new_ratings.csv", index=False)
    catalog = pd.read_csv(demo["movie_catalog"])
    catalog.columns = ["film_id", "movie_title", "release_year", "genre"]
    catalog.to_csv(root / "catalog.csv", index=False)
    return {"new": root / "new_ratings.csv", "catalog": root / "catalog.csv", "standard": demo["new_ratings"],
            "standard_catalog": demo["movie_catalog"]}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from xdplug.model.strategy import fit_strategy
    from xdplug.plugins import make_plugin_manager

    root = tmp_path_factory.mktemp("own")
    files = own_files(root / "data")
    params = {
        "source": {"interactions": str(root / "data/books/ratings.csv"), "items": str(root / "data/books/books.csv"),
                   "columns": {"user": "reader", "item": "book", "rating": "stars", "timestamp": "read_at"},
                   "item_fields": {"title": "name", "genres": "shelves"}},
        "target": {"interactions": str(root / "data/mine/ratings.csv"), "items": str(root / "data/mine/films.csv"),
                   "columns": {"user": "viewer", "item": "film", "rating": "score", "timestamp": "when"},
                   "item_id_column": "film_id",
                   "item_fields": {"title": "movie_title", "year": "release_year", "genres": "genre"}},
        "align_users": "id"}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDPLUG_HOME", str(root / "home"))
        registry = make_plugin_manager().registry
        config = load_config(data={
            "name": "own", "dataset": {"recipe": "files", "params": params}, "seeds": [0], "device": "cpu",
            "train": {"epochs": 2, "learning_rate": 0.01}, "evaluation": {"ks": [10], "valid_metric": "ndcg@10"},
            "strategies": [STRATEGY]}, registry=registry)
        data = prepare(registry.get("dataset", "files")(config["dataset"]["params"]), config["dataset"], 0)
        ctx = FitContext(data=data, seed=0, device=torch.device("cpu"), train=config["train"],
                         evaluation=config["evaluation"], workdir=root / "work")
        scorer = fit_strategy(STRATEGY, registry, ctx)
        path = write_artifact(root / "art", kind="strategy", method="id", entry=STRATEGY, seed=0, config=config,
                              data=data, registry=registry, scorer=scorer, run_id="run-id")
    return {"path": path, **files}


def copy(world, tmp_path) -> Path:
    target = tmp_path / "art"
    shutil.copytree(world["path"], target)
    return target


# -- newcomer item 1: the config's column mapping ----------------------------------------------------

def test_the_recipe_reports_its_target_columns():
    params = {"target": {"columns": {"user": "viewer", "item": "film"}, "item_id_column": "film_id",
                         "item_fields": {"title": "movie_title", "genres": {"column": "genre", "split": "|"}}}}
    assert FilesRecipe.update_columns(params) == {
        "interactions": {"user": "viewer", "item": "film"},
        "items": {"title": "movie_title", "genres": "genre", "item": "film_id"}}
    assert FilesRecipe.update_columns({"target": {"dir": "data/movies", "item_fields": {"title": "movie_title"}}}) == {
        "interactions": {"user": "user_id", "item": "item_id", "rating": "rating", "timestamp": "timestamp"},
        "items": {"title": "movie_title", "item": "item_id"}}
    assert FilesRecipe.update_columns({"target": {"columns": "oops"}}) == {"interactions": {}, "items": {}}
    assert FilesRecipe.update_columns({}) == {"interactions": {}, "items": {}}


def test_update_accepts_the_files_in_the_users_own_column_names(world, tmp_path):
    folder = copy(world, tmp_path)
    report = update_artifact(folder, world["new"], items=world["catalog"], epochs=1)
    # 8 new items: 3 new to the data, 5 the preparation had dropped (too few interactions)
    assert report["new_interactions"] > 0 and report["new_items"] == 8
    rec = xdplug.load(report["path"])
    catalog = pd.read_csv(world["catalog"]).set_index("film_id")
    for item in ("m61", "m62", "m63"):
        row = catalog.loc[item]
        assert rec.texts[rec.items.index(item)] == (f"{row.movie_title} ({row.release_year}). "
                                                     f"Genres: {row.genre}.")


def test_update_still_accepts_the_standard_names(world, tmp_path):
    report = update_artifact(copy(world, tmp_path), world["standard"], items=world["standard_catalog"], epochs=1)
    assert report["new_items"] == 8


def test_a_file_with_neither_name_is_refused_naming_both(world, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("person,thing\na,b\n")
    with pytest.raises(DataError, match=r"bad\.csv, field 'user': missing column 'viewer' or 'user' \(the "
                                        r"artifact's config maps user to 'viewer'\); expected a header "
                                        r"user,item\[,rating\]\[,timestamp\], found \['person', 'thing'\]"):
        update_artifact(copy(world, tmp_path), bad)
    items = tmp_path / "items.csv"
    items.write_text("code,movie_title\nm61,X\n")
    with pytest.raises(DataError, match=r"items\.csv, field 'item': missing column 'film_id' or 'item'"):
        update_artifact(copy(world, tmp_path / "b"), world["new"], items=items)


def test_cli_update_with_the_users_column_names(world, tmp_path, capsys):
    folder = copy(world, tmp_path)
    assert main(["update", str(folder), str(world["new"]), "--items", str(world["catalog"]), "--epochs", "1",
                 "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"new version 2: {folder}.v2" in out and "8 new items: 3 new to the data" in out


# -- an empty user or item cell --------------------------------------------------------------------

@pytest.mark.parametrize("text,column,row", [
    ("viewer,film,score\nu1,m3,5\n,m4,5\n", "viewer", 2),        # an empty user: was a user named 'nan'
    ("viewer,film,score\nu1,m3,5\nu2,,5\n", "film", 2),
    ("viewer,film,score\n   ,m4,5\n", "viewer", 1),
    ("user,item\nu1,m1\nu1,m2\n,m3\n", "user", 3),
])
def test_an_empty_id_cell_is_refused_naming_the_file_and_row(world, tmp_path, text, column, row):
    new = tmp_path / "new.csv"
    new.write_text(text)
    role = "user" if column in ("viewer", "user") else "item"
    with pytest.raises(DataError, match=rf"new\.csv, field '{column}': empty {role} in row {row} \(line {row + 1} of "
                                        rf"the file\); every row needs a {role} ID"):
        update_artifact(copy(world, tmp_path), new)


def test_no_user_named_nan_reaches_the_artifact(tmp_path):
    new = tmp_path / "new.csv"
    new.write_text("user,item,rating\nu1,m3,5\nu2,m4,\n")
    df, below = read_new_interactions(new, 3.0)
    assert df.values.tolist() == [["u1", "m3"], ["u2", "m4"]] and below == 0  # a blank rating is no rating
    new.write_text("user,item,rating\nu1,m3,nan\n")
    with pytest.raises(DataError, match=r"field 'rating': 1 value is not a finite number"):
        read_new_interactions(new, 3.0)


def test_an_empty_item_id_in_the_item_table(world, tmp_path):
    items = tmp_path / "items.csv"
    items.write_text("film_id,movie_title,release_year,genre\nm61,X,2001,crime\n,Y,2002,crime\n")
    with pytest.raises(DataError, match=r"items\.csv, field 'film_id': empty item ID in row 2 \(line 3 of the file\)"):
        update_artifact(copy(world, tmp_path), world["new"], items=items)


# -- newcomer item 4: say which weights serve -----------------------------------------------------

def test_what_serves_after_an_update_in_words():
    before, after = {"ndcg@10": 0.1457}, {"ndcg@10": 0.2082}
    problem = "did not learn: best validation score at epoch 0 of 3 (update phase), 0.2082, never beaten"
    assert kept_weights("updated", 2, 1, 2, 3, before, after, problem) == (
        "version 2 serves the fine-tuned weights (epoch 2 of 3, the best on the held-out slice: ndcg@10 0.1457 -> "
        "0.2082); no epoch after the first scored better on it (the 'did not learn' line)")
    assert kept_weights("updated", 3, 2, 1, 3, before, after, None) == (
        "version 3 serves the fine-tuned weights (epoch 1 of 3, the best on the held-out slice: ndcg@10 0.1457 -> "
        "0.2082)")
    assert kept_weights("updated", 2, 1, 0, 3, before, dict(before), problem).endswith(
        "(epoch 0 of 3, the best on the held-out slice: ndcg@10 0.1457 -> 0.1457, no better than before); no epoch "
        "after the first scored better on it (the 'did not learn' line)")
    assert kept_weights("previous weights (no epoch beat them on the held-out slice)", 2, 1, 1, 3, before, before,
                        problem) == ("version 2 serves the weights of version 1 (no fine-tuning epoch beat them on "
                                     "the held-out slice), with the new interactions added to the users' histories")
    assert kept_weights("updated", 2, 1, -1, 3, {}, {}, None) == (
        "version 2 serves the weights after up to 3 fine-tuning epochs (nothing was held out to choose an epoch by)")


def test_an_update_that_did_not_learn_says_what_was_kept(world, tmp_path, capsys):
    """A learning rate too small to move anything: "did not learn ... never beaten", then what serves."""
    folder = copy(world, tmp_path)
    assert main(["update", str(folder), str(world["new"]), "--items", str(world["catalog"]), "--epochs", "3",
                 "--learning-rate", "1e-12"]) == 0
    captured = capsys.readouterr()
    assert "did not learn: best validation score at epoch 0 of 3 (update phase)" in captured.err
    lines = captured.out.splitlines()
    result = next(i for i, line in enumerate(lines) if line.startswith("result: "))
    served = lines[result + 1].strip()
    report = xdplug.load(f"{folder}.v2").meta["updates"][-1]
    assert served == report["served"] and report["learning_problem"].startswith("did not learn")
    if report["result"] == "updated":
        assert served.startswith("version 2 serves the fine-tuned weights (epoch ")
        assert served.endswith("; no epoch after the first scored better on it (the 'did not learn' line)")
    else:
        assert served.startswith("version 2 serves the weights of version 1")
