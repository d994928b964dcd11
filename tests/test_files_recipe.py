"""The ``files`` recipe: your own domains from CSV/TSV/Parquet tables or RecBole atomic files.

Small generated domains (genre-driven, from ``xdplug.testing.synthetic``)
written in every supported layout; every bad input is one named error.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from xdplug.cli import main
from xdplug.config import load_config
from xdplug.data.prepare import prepare
from xdplug.errors import ConfigError, DataError
from xdplug.testing import check_dataset
from xdplug.testing.synthetic import synthetic_domains
from xdplug_datasets.files import FilesRecipe, write_demo


@pytest.fixture(scope="module")
def raw():
    return synthetic_domains(n_users=40, n_source_items=30, n_target_items=20, n_shared_items=6,
                             n_shared_users=25, per_user=10, seed=3)


def write_csv(folder, domain, sep=",", user_prefix="", item_prefix="", title_suffix="", rename=True):
    """One domain as a ratings table and an item table with the user's own column names."""
    folder.mkdir(parents=True, exist_ok=True)
    inter = domain.inter.copy()
    inter["user"] = user_prefix + inter["user"]
    inter["item"] = item_prefix + inter["item"]
    items = domain.items.copy()
    items["item"] = item_prefix + items["item"]
    items["title"] = items["title"] + title_suffix
    if rename:
        inter = inter.rename(columns={"user": "uid", "item": "iid", "rating": "stars", "timestamp": "ts"})
        items = items.rename(columns={"item": "iid", "title": "name"})
    ext = "csv" if sep == "," else "tsv"
    inter.to_csv(folder / f"ratings.{ext}", sep=sep, index=False)
    items.to_csv(folder / f"items.{ext}", sep=sep, index=False)
    return folder / f"ratings.{ext}", folder / f"items.{ext}"


def write_atomic(folder, domain, name="movies", user_prefix="", item_prefix=""):
    folder.mkdir(parents=True, exist_ok=True)
    inter = pd.DataFrame({"user_id:token": user_prefix + domain.inter["user"],
                          "item_id:token": item_prefix + domain.inter["item"],
                          "rating:float": domain.inter["rating"], "timestamp:float": domain.inter["timestamp"]})
    inter.to_csv(folder / f"{name}.inter", sep="\t", index=False)
    items = pd.DataFrame({"item_id:token": item_prefix + domain.items["item"],
                          "movie_title:token_seq": domain.items["title"], "release_year:token": domain.items["year"],
                          "class:token_seq": domain.items["genres"]})
    items.to_csv(folder / f"{name}.item", sep="\t", index=False)
    return folder


CSV_MAP = {"columns": {"user": "uid", "item": "iid", "rating": "stars", "timestamp": "ts"},
           "item_fields": {"title": "name"}}
ATOMIC_MAP = {"item_fields": {"title": "movie_title", "year": "release_year", "genres": "class"}}


def csv_domain(ratings, items, **extra):
    return {"interactions": str(ratings), "items": str(items), **CSV_MAP, **extra}


def prepared(params, seed=0, **dataset):
    config = load_config(data={"dataset": {"recipe": "files", "params": params, **dataset},
                               "baselines": [{"baseline": "Pop"}]})
    return prepare(FilesRecipe(config["dataset"]["params"], "dataset.params"), config["dataset"], seed)


# -- the three alignments -----------------------------------------------------------------

def test_user_overlap_csv_and_atomic(tmp_path, raw):
    ratings, items = write_csv(tmp_path / "books", raw.source)
    write_atomic(tmp_path / "movies", raw.target)
    params = {"source": csv_domain(ratings, items), "target": {"dir": str(tmp_path / "movies"), **ATOMIC_MAP},
              "align_users": "id", "align_items": "none"}
    check_dataset(FilesRecipe, params)
    data = prepared(params)
    overlap = data.summary["overlap"]
    assert overlap["users"] > 0 and overlap["items"] == 0
    assert len(data.shared_users) == overlap["users"] and len(data.shared_items) == 0
    assert data.summary["domains"]["target"]["name"] == "movies"
    assert data.summary["domains"]["target"]["text_coverage"] == 1.0
    # the template's fields came through the mapping: titles, years and genres in the texts
    text = data.target_item_texts()[0]
    assert "Story" in text and "Genres:" in text and ("(19" in text or "(20" in text)


def test_item_key_overlap_tsv(tmp_path, raw):
    # disjoint users and item IDs; items match by title, written differently in the two files
    s_ratings, s_items = write_csv(tmp_path / "s", raw.source, sep="\t", user_prefix="s", item_prefix="book-")
    t_ratings, t_items = write_csv(tmp_path / "t", raw.target, sep="\t", user_prefix="t", item_prefix="film-",
                                   title_suffix="!")
    params = {"source": csv_domain(s_ratings, s_items), "target": csv_domain(t_ratings, t_items),
              "align_users": "none", "align_items": "key", "item_key": "title"}
    check_dataset(FilesRecipe, params)
    data = prepared(params)
    overlap = data.summary["overlap"]
    assert overlap["users"] == 0 and overlap["items"] > 0
    assert all(k.startswith("k:") for k in data.keys["target_items"])


def test_no_overlap_implicit_without_ratings(tmp_path, raw):
    s_ratings, s_items = write_csv(tmp_path / "s", raw.source, user_prefix="s", item_prefix="x", rename=False)
    t_ratings, t_items = write_csv(tmp_path / "t", raw.target, user_prefix="t", item_prefix="y", rename=False)
    params = {"source": {"interactions": str(s_ratings), "items": str(s_items), "implicit": True},
              "target": {"interactions": str(t_ratings), "items": str(t_items), "implicit": True},
              "align_users": "none", "align_items": "none"}
    data = prepared(params)
    assert data.summary["overlap"] == {"users": 0, "items": 0, "user_fraction": 0.0, "item_fraction": 0.0}
    assert not data.has_shared_ids
    # implicit: the low ratings (2) are positives too
    assert data.summary["domains"]["target"]["positives"] == data.summary["domains"]["target"]["raw_interactions"]


def test_dates_as_timestamps_and_the_cache_follows_the_files(tmp_path, raw):
    ratings, items = write_csv(tmp_path / "s", raw.source)
    df = pd.read_csv(ratings)
    df["ts"] = pd.to_datetime(df["ts"], unit="s").dt.strftime("%Y-%m-%d %H:%M:%S")
    df.to_csv(ratings, index=False)
    t_ratings, t_items = write_csv(tmp_path / "t", raw.target)
    params = {"source": csv_domain(ratings, items), "target": csv_domain(t_ratings, t_items), "align_users": "id"}
    first = prepared(params)
    again = prepared(params)
    assert again.folder == first.folder  # unchanged files: the cache
    extra = pd.read_csv(t_ratings).head(0)
    rows = [{"uid": "newcomer", "iid": item, "stars": 5, "ts": 1} for item in raw.target.items["item"][:6]]
    pd.concat([pd.read_csv(t_ratings), extra, pd.DataFrame(rows)]).to_csv(t_ratings, index=False)
    changed = prepared(params)
    assert changed.folder != first.folder and "newcomer" in changed.keys["target_users"]


# -- bad input: one named error each ---------------------------------------------------

@pytest.fixture
def good(tmp_path, raw):
    s = write_csv(tmp_path / "s", raw.source)
    t = write_csv(tmp_path / "t", raw.target)
    return {"source": csv_domain(*s), "target": csv_domain(*t), "align_users": "id"}


def test_missing_file_is_named(good, tmp_path):
    good["target"]["interactions"] = str(tmp_path / "nowhere.csv")
    with pytest.raises(DataError, match=r"nowhere\.csv, field 'dataset\.params\.target\.interactions': file not found"):
        FilesRecipe(good)
    good["target"] = {"dir": str(tmp_path / "no-dir")}
    with pytest.raises(DataError, match=r"no-dir.*directory not found"):
        FilesRecipe(good)


def test_missing_column_is_named(good):
    good["source"]["columns"] = {**CSV_MAP["columns"], "user": "reader"}
    with pytest.raises(DataError, match=r"ratings\.csv, field 'reader': missing column 'reader' "
                                        r"\(dataset\.params\.source\.columns\.user\); found columns \['uid'"):
        FilesRecipe(good)


def test_missing_item_field_is_named(good):
    good["target"]["item_fields"] = {"title": "headline"}
    with pytest.raises(DataError, match=r"items\.csv, field 'headline': missing column 'headline' "
                                        r"\(dataset\.params\.target\.item_fields\.title\)"):
        FilesRecipe(good)


def test_wrong_separator_gets_a_hint(good, tmp_path):
    path = tmp_path / "semi.csv"
    path.write_text("uid;iid;stars;ts\nu1;i1;5;1\n")
    good["target"]["interactions"] = str(path)
    with pytest.raises(DataError, match=r"found columns \['uid;iid;stars;ts'\]; the header looks ';'-separated: "
                                        r"set dataset\.params\.target\.sep"):
        FilesRecipe(good)


def test_wrong_type_is_named(good):
    path = good["target"]["interactions"]
    df = pd.read_csv(path, dtype=str)
    df.loc[3, "stars"] = "five"
    df.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"ratings\.csv, field 'stars': expected numbers, got 'five' \(row 4\)"):
        prepared(good)
    df.loc[3, "stars"] = "5"
    df.loc[5, "ts"] = "yesterday-ish"
    df.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"field 'ts': expected numbers or dates, got 'yesterday-ish' \(row 6\)"):
        prepared(good)


def test_empty_domain_after_filtering(good):
    path = good["target"]["interactions"]
    df = pd.read_csv(path)
    df["stars"] = 1
    df.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"ratings\.csv, field 'dataset\.protocol': the target domain is empty "
                                        r"after filtering \(ratings >= 3"):
        prepared(good)


def test_zero_overlap_where_required(good, tmp_path, raw):
    t = write_csv(tmp_path / "t2", raw.target, user_prefix="other-", item_prefix="z")
    good["target"] = csv_domain(*t)
    with pytest.raises(DataError, match=r"field 'align_users': the domains share no user ID .*"
                                        r"dataset\.params\.align_users is 'id'"):
        prepared(good)
    good["align_users"], good["align_items"] = "none", "id"
    with pytest.raises(DataError, match=r"share no item ID .*align_items is 'id'"):
        prepared(good)
    t3 = write_csv(tmp_path / "t3", raw.target, item_prefix="z", title_suffix=" (remastered edition)")
    good["target"], good["align_items"] = csv_domain(*t3), "key"
    with pytest.raises(DataError, match=r"field 'title': no item of the source has the same normalised 'title'"):
        prepared(good)


def test_config_errors_name_the_key(good, tmp_path):
    with pytest.raises(ConfigError, match=r"dataset\.params\.target\.colums: unknown key; allowed here"):
        FilesRecipe({**good, "target": {**good["target"], "colums": {}}})
    with pytest.raises(ConfigError, match=r"dataset\.params\.align_users: expected one of id, none, got 'yes'"):
        FilesRecipe({**good, "align_users": "yes"})
    with pytest.raises(ConfigError, match=r"dataset\.params\.source: give exactly one of dir:"):
        FilesRecipe({**good, "source": {**good["source"], "dir": str(tmp_path)}})
    with pytest.raises(ConfigError, match=r"dataset\.params\.target\.columns\.rate: unknown role"):
        FilesRecipe({**good, "target": {**good["target"], "columns": {"rate": "stars"}}})
    with pytest.raises(ConfigError, match=r"dataset\.params\.align: unknown option for dataset 'files'"):
        load_config(data={"dataset": {"recipe": "files", "params": {**good, "align": "id"}},
                          "baselines": [{"baseline": "Pop"}]}, registry=_registry())
    with pytest.raises(ConfigError, match=r"dataset\.params\.target: missing"):
        FilesRecipe({"source": good["source"]})


def test_parquet_needs_pyarrow_or_reads(good, tmp_path):
    path = tmp_path / "ratings.parquet"
    try:
        import pyarrow  # noqa: F401

        pd.read_csv(good["target"]["interactions"]).to_parquet(path)
        good["target"]["interactions"] = str(path)
        assert len(prepared(good).target_train)
    except ImportError:
        path.write_bytes(b"PAR1 not really")
        good["target"]["interactions"] = str(path)
        with pytest.raises(DataError, match=r"ratings\.parquet: reading Parquet needs pyarrow"):
            FilesRecipe(good)


def _registry():
    from xdplug.plugins import make_plugin_manager

    return make_plugin_manager().registry


def test_run_stops_before_any_run_on_bad_data(tmp_path, good, capsys):
    """`xdplug run` reports bad data once, with its file and column, and records no run."""
    path = good["target"]["interactions"]
    df = pd.read_csv(path)
    df["stars"] = 1
    df.to_csv(path, index=False)
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump({"name": "bad", "dataset": {"recipe": "files", "params": good},
                                      "baselines": [{"baseline": "Pop"}], "output": {"dir": str(tmp_path / "out")}}))
    assert main(["run", str(config), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "Traceback" not in err and len(err.splitlines()) == 1
    assert "ratings.csv" in err and "the target domain is empty after filtering" in err
    from xdplug.store import RunStore

    store = RunStore(tmp_path / "out" / "runs.sqlite")
    assert store.runs() == []
    store.close()


def test_demo_files_load(tmp_path):
    written = write_demo(tmp_path / "data")
    params = {"source": {"interactions": str(written["books"] / "ratings.csv"),
                         "items": str(written["books"] / "books.csv"),
                         "columns": {"user": "reader", "item": "book", "rating": "stars", "timestamp": "read_at"},
                         "item_fields": {"title": "name", "genres": "shelves"}},
              "target": {"dir": str(written["movies"]),
                         "item_fields": {"title": "movie_title", "year": "release_year", "genres": "genre"}},
              "align_users": "id"}
    data = prepared(params)
    assert data.summary["overlap"]["users"] > 50
    assert np.all(np.diff(data.catalog.target_rows) > 0)


# -- the walkthrough in docs/own_data.md runs as written --------------------------------

def doc_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced block, in order."""
    import re

    return re.findall(r"^```(\w+)\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


def test_own_data_walkthrough_runs_as_written(tmp_path, monkeypatch, plugin_manager, capsys):
    """Every command of docs/own_data.md, in order, in an empty directory, on the generated files."""
    import shlex
    from pathlib import Path

    from xdplug_datasets.files import main as files_main

    doc = Path(__file__).resolve().parent.parent / "docs" / "own_data.md"
    monkeypatch.chdir(tmp_path)
    ran = []
    for lang, body in doc_blocks(doc.read_text()):
        if lang == "yaml":
            assert "recipe: files" in body
            Path("own-data.yaml").write_text(body)  # "Save this as `own-data.yaml`"
            load_config("own-data.yaml", registry=plugin_manager.registry)
        elif lang == "bash":
            for line in body.splitlines():
                if not line.strip() or line.startswith("#"):
                    continue
                argv = shlex.split(line)
                # the page names the clone's virtual environment (tests/test_docs.py checks that)
                argv[0] = argv[0].removeprefix(".venv/bin/")
                if argv[:3] == ["python", "-m", "xdplug_datasets.files"]:
                    assert files_main(argv[3:]) == 0
                else:
                    assert argv[0] == "xdplug", f"the walkthrough may only run xdplug commands: {line}"
                    rc = main(argv[1:])
                    out = capsys.readouterr()
                    assert rc == 0, f"{line}\n{out.err}"
                    if "--json" in argv:
                        assert len(json.loads(out.out)) == 5
                ran.append(argv[0] if argv[0] != "python" else "demo")
        elif lang == "python":
            exec(compile(body, str(doc), "exec"), {})
            ran.append("python")
    assert ran.count("xdplug") == 7 and "demo" in ran and "python" in ran
    report = (tmp_path / "runs" / "own-data" / "report.md").read_text()
    assert "text-joint" in report and "EASE" in report
    assert (tmp_path / "runs" / "own-data" / "artifacts" / "text-joint-2022.v2" / "manifest.json").is_file()


def test_resuming_on_edited_files_is_refused(tmp_path, good, capsys):
    """Finished runs on the old files and new runs on the edited ones must not share a report."""
    config = tmp_path / "cfg.yaml"
    data = {"name": "edit", "dataset": {"recipe": "files", "params": good}, "device": "cpu",
            "evaluation": {"ks": [10], "valid_metric": "ndcg@10", "evaluators": ["ranking"]},
            "baselines": [{"baseline": "Pop"}], "output": {"dir": str(tmp_path / "out")}}
    config.write_text(yaml.safe_dump(data))
    assert main(["run", str(config), "--quiet"]) == 0
    path = good["target"]["interactions"]
    df = pd.read_csv(path)
    pd.concat([df, df.head(8).assign(uid="late-user")]).to_csv(path, index=False)
    data["baselines"].append({"baseline": "EASE"})
    config.write_text(yaml.safe_dump(data))
    capsys.readouterr()
    assert main(["run", str(config), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "the dataset changed since the finished runs" in err and "dataset.params files" in err
    assert main(["run", str(config), "--quiet", "--force"]) == 0


@pytest.mark.parametrize("edit", ["drop rows", "rating 'five'"])
def test_a_finished_grid_on_edited_files_is_not_reported_as_current(tmp_path, good, capsys, edit):
    """Nothing left to run is no excuse: the old split's metrics are stale once a file changed."""
    config = tmp_path / "cfg.yaml"
    data = {"name": "finished", "dataset": {"recipe": "files", "params": good}, "device": "cpu",
            "evaluation": {"ks": [10], "valid_metric": "ndcg@10", "evaluators": ["ranking"]},
            "baselines": [{"baseline": "Pop"}], "output": {"dir": str(tmp_path / "out")}}
    config.write_text(yaml.safe_dump(data))
    assert main(["run", str(config), "--quiet"]) == 0
    results = (tmp_path / "out" / "results.csv").read_text()
    path = good["target"]["interactions"]
    df = pd.read_csv(path)
    if edit == "drop rows":
        df = df.iloc[: len(df) - 30]
    else:
        df["stars"] = df["stars"].astype(object)
        df.loc[0, "stars"] = "five"
    df.to_csv(path, index=False)
    capsys.readouterr()
    assert main(["run", str(config), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "the dataset changed since the finished runs" in err and "metrics are stale" in err
    assert (tmp_path / "out" / "results.csv").read_text() == results  # nothing rewritten


# -- item keys from any field or several; a field normalised for the text --------------------

def _key_domains(tmp_path, raw, year_column="year"):
    """Disjoint IDs; shared titles, one of them a remake (same title, another year) in the target."""
    target = raw.target
    items = target.items.copy()
    items.loc[items["item"] == "shared1", "year"] = "2011"  # the remake
    remake = type(target)(target.name, target.inter, items, target.origin)
    s_ratings, s_items = write_csv(tmp_path / "s", raw.source, user_prefix="s", item_prefix="book-")
    t_ratings, t_items = write_csv(tmp_path / "t", remake, user_prefix="t", item_prefix="film-")
    for file in (s_items, t_items):
        pd.read_csv(file, dtype=str).rename(columns={"year": year_column}).to_csv(file, index=False)
    return {"source": csv_domain(s_ratings, s_items), "target": csv_domain(t_ratings, t_items),
            "align_users": "none", "align_items": "key"}


def _target_keys(params):
    from xdplug.data.prepare import _item_keys

    raw_domains = FilesRecipe(params).load("unused")
    return raw_domains, _item_keys(raw_domains, raw_domains.target, "target", "key")


def test_item_key_combines_fields(tmp_path, raw):
    params = _key_domains(tmp_path, raw, year_column="Release Year")  # any column name, not only identifiers
    _, by_title = _target_keys({**params, "item_key": "title"})
    raw_domains, by_both = _target_keys({**params, "item_key": ["title", "Release Year"]})
    assert raw_domains.item_key_field == "title+Release Year"
    assert by_title["film-shared1"] == "k:romantic comedy story 1"  # the remake merges with the original
    assert by_both["film-shared0"] == "k:space adventure story 0 1980"
    assert by_both["film-shared1"] == "k:romantic comedy story 1 2011"  # no longer the source's 1987 film
    from xdplug.data.prepare import _item_keys

    assert _item_keys(raw_domains, raw_domains.source, "source", "key")["book-shared1"] == \
        "k:romantic comedy story 1 1987"
    # the combined column is a key, not a text field
    assert "title+Release Year" not in raw_domains.text_fields and "title" in raw_domains.text_fields
    template = "{title}. Genres: {genres}."  # the tables' year column is "Release Year": the default's {year} is none
    by_title_overlap = prepared({**params, "item_key": "title"}, text_template=template).summary["overlap"]["items"]
    by_both = prepared({**params, "item_key": ["title", "Release Year"]}, text_template=template)
    assert 0 < by_both.summary["overlap"]["items"] < by_title_overlap
    check_dataset(FilesRecipe, {**params, "item_key": ["title", "Release Year"]})


def test_item_key_on_the_item_id_and_errors(tmp_path, raw):
    params = _key_domains(tmp_path, raw)
    ids = {**params, "source": {**params["source"], "interactions": params["target"]["interactions"],
                                "items": params["target"]["items"]}}
    _, keys = _target_keys({**ids, "item_key": "item"})  # `item`: the item ID itself, normalised
    assert keys["film-shared0"] == "k:film shared0"
    with pytest.raises(ConfigError, match=r"dataset\.params\.item_key: expected a string or a list of strings"):
        load_config(data={"dataset": {"recipe": "files", "params": {**params, "item_key": 3}},
                          "baselines": [{"baseline": "Pop"}]}, registry=_registry())
    for bad in ([], ["title", "title"], ["title", " "]):
        with pytest.raises(ConfigError, match=r"dataset\.params\.item_key: expected an item field name"):
            FilesRecipe({**params, "item_key": bad})
    with pytest.raises(DataError, match=r"missing item field 'edition' \(dataset\.params\.item_key"):
        FilesRecipe({**params, "item_key": ["title", "edition"]}).load("unused")


def test_item_field_split_and_join(tmp_path, raw):
    # the same genres written "a|b" in the source and "a b" (a RecBole token_seq) in the target
    s_ratings, s_items = write_csv(tmp_path / "s", raw.source)
    table = pd.read_csv(s_items, dtype=str)
    table["genres"] = table["genres"].str.replace(" ", "|")
    table.to_csv(s_items, index=False)
    write_atomic(tmp_path / "movies", raw.target)
    source = csv_domain(s_ratings, s_items)
    source["item_fields"] = {"title": "name", "genres": {"column": "genres", "split": "|"}}
    target = {"dir": str(tmp_path / "movies"),
              "item_fields": {**ATOMIC_MAP["item_fields"], "genres": {"column": "class", "split": " ", "join": ", "}}}
    params = {"source": source, "target": target, "align_users": "id", "align_items": "none"}
    domains = FilesRecipe(params).load("unused")
    s_genres = dict(zip(domains.source.items["item"], domains.source.items["genres"]))
    t_genres = dict(zip(domains.target.items["item"], domains.target.items["genres"]))
    assert s_genres["shared0"] == t_genres["shared0"] == "space, adventure"
    data = prepared(params)
    assert any("Genres: space, adventure." in t for t in data.target_item_texts())
    check_dataset(FilesRecipe, params)
    # errors name the key
    for spec, match in (({"column": "class", "splt": " "}, r"item_fields\.genres\.splt: unknown key"),
                        ({"split": " "}, r"item_fields\.genres\.column: expected the item table's column"),
                        ({"column": "class", "split": ""}, r"item_fields\.genres\.split: expected a non-empty"),
                        ({"column": "class", "join": "/"}, r"item_fields\.genres\.join: join needs split"),
                        (["class"], r"item_fields: expected a mapping of names to column names")):
        bad = {**target, "item_fields": {**ATOMIC_MAP["item_fields"], "genres": spec}}
        with pytest.raises(ConfigError, match=r"dataset\.params\.target\." + match):
            FilesRecipe({**params, "target": bad})
    with pytest.raises(DataError, match=r"missing column 'kind' \(dataset\.params\.target\.item_fields\.genres\)"):
        FilesRecipe({**params, "target": {**target, "item_fields": {"genres": {"column": "kind", "split": " "}}}})
