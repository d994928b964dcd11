"""Bad data is refused or warned about, never turned silently into results.

Each test feeds one kind of bad input (a template naming no item field, low text
coverage, repeated item IDs, non-finite ratings, an update's item table without
the template's fields or in the wrong encoding) and checks the named error, or
the warning in the prepared summary, the log and the written report.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from xdplug.cli import main
from xdplug.config import load_config
from xdplug.data.prepare import prepare, prepare_domains
from xdplug.data.raw import dedupe_items
from xdplug.errors import ConfigError, DataError
from xdplug.testing.synthetic import synthetic_domains
from xdplug_datasets.files import FilesRecipe

TEMPLATE = "{title} ({year}). Genres: {genres}."


def dataset_cfg(**dataset) -> dict:
    return load_config(data={"dataset": {"recipe": "synthetic", **dataset},
                             "baselines": [{"baseline": "Pop"}]})["dataset"]


def run_domains(raw, cfg: dict | None = None) -> dict:
    with tempfile.TemporaryDirectory() as work:
        return prepare_domains(raw, cfg or dataset_cfg(), 0, Path(work))


@pytest.fixture(scope="module")
def synth():
    return synthetic_domains(n_users=40, n_source_items=30, n_target_items=20, n_shared_items=6,
                             n_shared_users=25, per_user=10, seed=3)


def write_domain(folder: Path, domain, items: pd.DataFrame | None = None) -> dict:
    """One domain as ratings.csv + items.csv, the ``files`` recipe's params for it."""
    folder.mkdir(parents=True, exist_ok=True)
    domain.inter.to_csv(folder / "ratings.csv", index=False)
    (domain.items if items is None else items).to_csv(folder / "items.csv", index=False)
    return {"interactions": str(folder / "ratings.csv"), "items": str(folder / "items.csv")}


def files_params(tmp_path: Path, synth, target_items: pd.DataFrame | None = None) -> dict:
    return {"source": write_domain(tmp_path / "source", synth.source),
            "target": write_domain(tmp_path / "target", synth.target, target_items), "align_users": "id"}


def prepared(params: dict, **dataset):
    config = load_config(data={"dataset": {"recipe": "files", "params": params, **dataset},
                               "baselines": [{"baseline": "Pop"}]})
    return prepare(FilesRecipe(config["dataset"]["params"], "dataset.params"), config["dataset"], 0)


# -- 1. a template placeholder that is no item field ---------------------------------------

@pytest.mark.parametrize("template, unknown", [("{titel}", "{titel}"),
                                               ("{title} ({yeer}). Genres: {genre}.", "{yeer}, {genre}")])
def test_unknown_template_field_is_a_config_error(template, unknown):
    with pytest.raises(ConfigError) as info:
        run_domains(synthetic_domains(), dataset_cfg(text_template=template))
    message = str(info.value)
    assert message.startswith("dataset.text_template: unknown item field")
    assert unknown in message and "fields that exist: genres, title, year" in message
    assert "did you mean {" in message


def test_unknown_template_field_stops_the_files_recipe_and_the_run(tmp_path, synth, capsys):
    params = files_params(tmp_path, synth)
    with pytest.raises(ConfigError, match=r"dataset\.text_template: unknown item field \{titel\} .*fields that "
                                          r"exist: genres, title, year"):
        prepared(params, text_template="{titel}")
    # `xdplug run`: refused in the preflight, before any run is recorded
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump({"name": "bad", "dataset": {"recipe": "files", "params": params,
                                                                 "text_template": "{titel}"},
                                      "baselines": [{"baseline": "Pop"}], "output": {"dir": str(tmp_path / "out")}}))
    assert main(["run", str(config), "--quiet"]) == 2
    assert "dataset.text_template: unknown item field {titel}" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # no report, and no empty run store or lock either


def test_the_default_template_is_checked_like_any_other():
    raw = synthetic_domains()
    for domain in (raw.source, raw.target):  # the item tables call the title "name": unmapped
        domain.items = domain.items[["item", "title"]].rename(columns={"title": "name"})
    raw.text_fields = {}
    with pytest.raises(ConfigError, match=r"dataset\.text_template: unknown item fields \{title\}, \{year\}, "
                                          r"\{genres\} in .*fields that exist: name; it is the default "
                                          r"dataset\.text_template: set your own$"):
        run_domains(raw)
    # tables with a title only: refused as well (the texts would read "Title 0."), with the template to write
    for domain in (raw.source, raw.target):
        domain.items = domain.items.rename(columns={"name": "title"})
    with pytest.raises(ConfigError) as info:
        run_domains(raw)
    assert str(info.value).endswith("unknown item fields {year}, {genres} in '{title} ({year}). Genres: {genres}.': "
                                    "no domain's item table has them (every item would get the fallback text "
                                    "'item <id>' or render without it); fields that exist: title; it is the "
                                    "default dataset.text_template: set your own, e.g. '{title}.'")
    # the same text written by the user: the same error; the template that fits: no error
    with pytest.raises(ConfigError, match=r"unknown item fields \{year\}, \{genres\}"):
        run_domains(raw, dataset_cfg(text_template="{title} ({year}). Genres: {genres}."))
    assert run_domains(raw, dataset_cfg(text_template="{title}."))["summary"]["warnings"] == []


def test_a_field_of_one_domain_only_is_fine():
    raw = synthetic_domains()
    raw.source.items = raw.source.items.assign(brand="Acme")
    result = run_domains(raw, dataset_cfg(text_template="{title} by {brand}"))
    texts = dict(zip(result["keys"]["catalog"], result["keys"]["texts"]))
    assert any(t.endswith("by Acme") for t in texts.values())


# -- 2. low text coverage: a warning in the summary, the log and the report ---------------

def test_low_text_coverage_is_warned_in_summary_log_and_report(tmp_path, synth, caplog):
    few = synth.target.items.iloc[6:9]  # 3 of the target's 20 items described: coverage far below 50 %
    params = files_params(tmp_path, synth, target_items=few)
    config = tmp_path / "low.yaml"
    config.write_text(yaml.safe_dump({"name": "low", "dataset": {"recipe": "files", "params": params},
                                      "baselines": [{"baseline": "Pop"}], "seeds": [0],
                                      "output": {"dir": str(tmp_path / "out")}}))
    with caplog.at_level(logging.WARNING, logger="xdplug.data.prepare"):
        assert main(["run", str(config), "--quiet"]) == 0
    assert any("low text coverage" in r.getMessage() and "target domain" in r.getMessage() for r in caplog.records)
    from xdplug.store import RunStore

    store = RunStore(tmp_path / "out" / "runs.sqlite")
    summary = store.get_meta("dataset_summary_0")
    store.close()
    warnings = summary["warnings"]
    assert len(warnings) == 1 and warnings[0].startswith("low text coverage: only ")
    assert "of the target domain's items" in warnings[0] and "fallback 'item <id>'" in warnings[0]
    assert summary["domains"]["target"]["text_coverage"] < 0.5
    report = (tmp_path / "out" / "report.md").read_text()
    assert "## Warnings" in report and "low text coverage: only" in report
    # above the verdict, where a reader starts
    assert report.index("## Warnings") < report.index("## Verdict")
    assert "low text coverage: only" in (tmp_path / "out" / "report.html").read_text()


def test_full_coverage_has_no_warning():
    assert run_domains(synthetic_domains())["summary"]["warnings"] == []


# -- 3. repeated item IDs --------------------------------------------------------------------

def test_duplicate_item_ids_identical_dropped_conflicting_counted(tmp_path, synth, caplog):
    items = synth.target.items.set_index("item", drop=False)
    first, second = items.loc["t12"], items.loc["t6"]  # the two most rated target items
    renamed = items.loc[["t6"]].assign(title="A Different Title")
    table = pd.concat([items, items.loc[["t12", "t12"]], renamed], ignore_index=True)
    params = files_params(tmp_path, synth, target_items=table)
    with caplog.at_level(logging.WARNING, logger="xdplug.data.prepare"):
        data = prepared(params)
    warnings = data.summary["warnings"]
    assert len(warnings) == 1
    assert (f"target domain 'target': 1 item ID appears in several rows of the item table with different "
            f"fields, e.g. item '{second['item']}'; the first row of each was kept (1 row dropped)") in warnings[0]
    assert data.summary["domains"]["target"]["item_rows_dropped"] == 3
    assert any(f"e.g. item '{second['item']}'" in r.getMessage() for r in caplog.records)
    texts = dict(zip(data.catalog.keys, data.catalog.texts))  # items do not align: target keys are "t:<id>"
    assert texts["t:t6"].startswith(second["title"] + " (")  # the first row's title
    assert texts["t:t12"].startswith(first["title"] + " (")


def test_dedupe_items_counts():
    items = pd.DataFrame({"item": ["a", "a", "b", "b", "b", "c"],
                          "title": ["A", "A", "B", "B2", "B3", "C"]})
    kept, stats = dedupe_items(items)
    assert list(kept["item"]) == ["a", "b", "c"] and list(kept["title"]) == ["A", "B", "C"]
    assert stats == {"identical": 1, "conflicting_items": 1, "conflicting_rows": 2, "example": "b"}


# -- 4. ratings that are not finite numbers --------------------------------------------------

def test_non_finite_ratings_in_a_file_are_refused(tmp_path, synth):
    params = files_params(tmp_path, synth)
    path = Path(params["target"]["interactions"])
    df = pd.read_csv(path, dtype=str)
    df.loc[[1, 4, 7], "rating"] = ["inf", "-inf", "nan"]
    df.to_csv(path, index=False)
    with pytest.raises(DataError) as info:
        prepared(params)
    message = str(info.value)
    assert message.startswith(f"{path}, field 'rating': 3 values are not a finite number (inf, -inf or NaN)")
    assert "'inf' in row 2" in message


def test_non_finite_ratings_from_any_recipe_are_refused():
    raw = synthetic_domains()
    raw.source.inter.loc[[3], "rating"] = np.inf
    with pytest.raises(DataError, match=r"synthetic source, field 'rating': 1 value is not a finite number"):
        run_domains(raw)


# -- 5. xdplug update: item table and encodings ----------------------------------------------

STRATEGY = {"name": "text", "encoder": "bert", "fusion": "text", "adaptation": "target-only",
            "params": {"model": {"dim": 16, "batch_users": 16}}}


@pytest.fixture(scope="module")
def text_artifact(tmp_path_factory, one_torch_thread):
    """A text strategy trained for one epoch on the synthetic fixture, written as an artifact."""
    import torch

    from xdplug.artifact import write_artifact
    from xdplug.model.strategy import fit_strategy
    from xdplug.plugins import make_plugin_manager
    from xdplug.context import FitContext

    root = tmp_path_factory.mktemp("honesty-artifact")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDPLUG_HOME", str(root / "home"))
        registry = make_plugin_manager().registry
        config = load_config(data={
            "name": "honest", "dataset": {"recipe": "synthetic"}, "seeds": [0], "device": "cpu",
            "train": {"epochs": 1}, "evaluation": {"ks": [10], "valid_metric": "ndcg@10"},
            "baselines": [{"baseline": "Pop"}], "strategies": [STRATEGY], "controls": "none"}, registry=registry)
        data = prepare(registry.get("dataset", "synthetic")({}), config["dataset"], 0)
        ctx = FitContext(data=data, seed=0, device=torch.device("cpu"), train=config["train"],
                         evaluation=config["evaluation"], workdir=root / "work")
        scorer = fit_strategy(STRATEGY, registry, ctx)
        return write_artifact(root / "text", kind="strategy", method="text", entry=STRATEGY, seed=0,
                              config=config, data=data, registry=registry, scorer=scorer, run_id="run-text")


def new_rows(tmp_path: Path, artifact) -> Path:
    import xdplug

    rec = xdplug.load(artifact)
    path = tmp_path / "new.csv"
    pd.DataFrame({"user": [rec.users[0], rec.users[1], rec.users[1]], "item": ["fresh1", "fresh1", rec.items[3]],
                  "rating": [5, 4, 5]}).to_csv(path, index=False)
    return path


def test_update_items_without_the_template_fields_is_an_error(text_artifact, tmp_path):
    from xdplug.artifact import update_artifact

    new = new_rows(tmp_path, text_artifact)
    items = tmp_path / "items.csv"
    pd.DataFrame({"item": ["fresh1"], "name": ["A Romantic Comedy"], "kind": ["romantic comedy"]}).to_csv(
        items, index=False)
    with pytest.raises(DataError) as info:
        update_artifact(text_artifact, new, items=items)
    message = str(info.value)
    assert message.startswith(f"{items}, field 'title, year, genres': the item table has none of the text "
                              "template's fields (title, year, genres missing; template "
                              f"'{TEMPLATE}'), so every new item would get the fallback text")
    assert "found columns ['name', 'kind']" in message
    # the fields are there, but empty for every new item: the same fallback, the same refusal
    pd.DataFrame({"item": ["fresh1"], "title": [""], "year": [""], "genres": [""]}).to_csv(items, index=False)
    with pytest.raises(DataError, match=r"items\.csv, field 'item': none of the 1 new item\(s\) has a value in "
                                        r"the text template's fields"):
        update_artifact(text_artifact, new, items=items)


def test_update_non_finite_ratings_are_refused(text_artifact, tmp_path):
    from xdplug.artifact import update_artifact

    new = tmp_path / "new.csv"
    new.write_text("user,item,rating\nu0,t1,inf\nu1,t2,4\n")
    with pytest.raises(DataError, match=r"new\.csv, field 'rating': 1 value is not a finite number \(inf, -inf "
                                        r"or NaN\), e\.g\. 'inf' in row 1"):
        update_artifact(text_artifact, new)


def test_update_non_utf8_files_are_named(text_artifact, tmp_path, capsys):
    from xdplug.artifact import update_artifact

    latin = tmp_path / "latin1.csv"
    latin.write_bytes("user,item,rating\nRené,t1,5\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1\.csv: cannot read the new interactions: the file is not UTF-8 "
                                        r"text \(byte 0xe9"):
        update_artifact(text_artifact, latin)
    new = new_rows(tmp_path, text_artifact)
    items = tmp_path / "items_latin1.tsv"
    items.write_bytes("item\ttitle\tyear\tgenres\nfresh1\tAmélie\t2001\tromantic comedy\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"items_latin1\.tsv: cannot read the item table: the file is not UTF-8"):
        update_artifact(text_artifact, new, items=items)
    # the CLI prints it as one line
    assert main(["update", str(text_artifact), str(latin)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "latin1.csv" in err and "not UTF-8" in err
