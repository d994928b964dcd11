"""A damaged run store is a named error saying which run and how to recover, not a traceback."""

from __future__ import annotations

import re
import sqlite3

import numpy as np
import pytest
import yaml

from xdplug.cli import main
from xdplug.errors import RunError
from xdplug.store import RunStore, _pack


def one_run_store(path, per_user=None) -> RunStore:
    store = RunStore(path)
    store.start("r1", "h", "EASE", "baseline", 7, {"baseline": "EASE"})
    store.finish("r1", "done", metrics={"test": {"ndcg@10": 0.3}}, curves=[{"epoch": 0}],
                 per_user=per_user if per_user is not None else {"users": np.arange(3), "ndcg@10": np.ones(3)})
    return store


def damage(path, column: str, value) -> None:
    db = sqlite3.connect(str(path))
    with db:
        db.execute(f"UPDATE runs SET {column} = ? WHERE run_id = 'r1'", (value,))
    db.close()


def test_an_intact_row_reads_back(tmp_path):
    store = one_run_store(tmp_path / "runs.sqlite")
    [run] = store.runs(with_per_user=True)
    assert run["metrics"] == {"test": {"ndcg@10": 0.3}} and run["curves"] == [{"epoch": 0}]
    assert run["per_user"]["users"].tolist() == [0, 1, 2]
    store.close()


@pytest.mark.parametrize("column,value,what", [
    ("metrics", "{not json", r"column metrics: not valid JSON \(Expecting property name"),
    ("metrics", "[1, 2]", r"column metrics: expected a JSON object, got list"),
    ("curves", '{"epoch": 0}', r"column curves: expected a JSON array, got dict"),
    ("spec", "nul", r"column spec: not valid JSON"),
    ("versions", "42", r"column versions: expected a JSON object, got int"),
    ("per_user", b"garbage bytes", r"column per_user: its per-user results are not a readable \.npz archive"),
    ("per_user", _pack({"users": np.arange(100)})[:60], r"column per_user: its per-user results are not a readable"),
    ("per_user", "text, not bytes", r"column per_user: its per-user results are not a readable \.npz archive "
                                    r"\(expected an \.npz archive \(bytes\), got str\)"),
], ids=["metrics-not-json", "metrics-list", "curves-object", "spec-not-json", "versions-int", "per_user-garbage",
        "per_user-truncated", "per_user-text"])
def test_a_damaged_row_names_the_store_the_run_and_the_recovery(tmp_path, column, value, what):
    path = tmp_path / "runs.sqlite"
    one_run_store(path).close()
    damage(path, column, value)
    store = RunStore(path)
    with pytest.raises(RunError) as err:
        store.runs(with_per_user=True)
    message = str(err.value)
    assert message.startswith(f"the run store {path} is damaged: run EASE seed 7 (run_id r1), ")
    assert re.search(what, message), message
    assert "run it again with `xdplug run CONFIG --only EASE --force`" in message
    # the row's status can still be read: a rerun with --force overwrites it
    assert store.status("r1") == "done"
    store.close()


def test_a_damaged_meta_entry_names_its_key(tmp_path):
    path = tmp_path / "runs.sqlite"
    store = RunStore(path)
    store.set_meta("dataset_summary_0", {"a": 1})
    store.db.execute("UPDATE meta SET value = '{' WHERE key = 'dataset_summary_0'")
    store.db.commit()
    with pytest.raises(RunError, match=rf"the run store {path} is damaged: its meta entry 'dataset_summary_0' is "
                                       r"not valid JSON"):
        store.get_meta("dataset_summary_0")
    store.close()


def test_a_directory_where_the_store_should_be(tmp_path):
    (tmp_path / "runs.sqlite").mkdir()
    with pytest.raises(RunError, match=rf"{tmp_path / 'runs.sqlite'} is a directory where the run store \(an SQLite "
                                       r"file\) should be; move it away, or set output\.dir"):
        RunStore(tmp_path / "runs.sqlite")
    (tmp_path / "file").write_text("x")
    from xdplug.errors import StorageError

    with pytest.raises(StorageError, match=r"cannot write the run store's folder at .*file: .*file is a file, not a "
                                           r"folder"):
        RunStore(tmp_path / "file" / "runs.sqlite")


# -- through the CLI: report and run ------------------------------------------------------------

@pytest.fixture
def finished(tmp_path, plugin_manager, capsys):
    """A finished two-baseline grid (Pop, EASE) and its config file."""
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump({
        "name": "dmg", "dataset": {"recipe": "synthetic"}, "seeds": [0], "device": "cpu",
        "evaluation": {"ks": [10], "valid_metric": "ndcg@10", "evaluators": ["ranking", "significance"]},
        "baselines": [{"baseline": "EASE"}, {"baseline": "Pop"}], "output": {"dir": str(tmp_path / "out")}}))
    assert main(["run", str(path), "--quiet"]) == 0
    capsys.readouterr()
    return path, tmp_path / "out" / "runs.sqlite"


def test_report_on_a_damaged_row_says_which_run_and_how_to_recover(finished, capsys):
    config, store = finished
    db = sqlite3.connect(str(store))
    with db:
        db.execute("UPDATE runs SET per_user = ? WHERE method = 'Pop'", (b"PK\x03\x04 cut short",))
    db.close()
    assert main(["report", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: the run store {store} is damaged: run Pop seed 0 (run_id ")
    assert "--only Pop --force" in err and "Traceback" not in err
    # resuming the grid reads the same rows: the same error, exit 2
    assert main(["run", str(config), "--quiet"]) == 2
    assert "run Pop seed 0" in capsys.readouterr().err
    # and the advice works: the damaged run is run again, the report is written
    assert main(["run", str(config), "--quiet", "--only", "Pop", "--force"]) == 0
    assert main(["report", str(config)]) == 0


def test_report_on_invalid_metrics_json(finished, capsys):
    config, store = finished
    db = sqlite3.connect(str(store))
    with db:
        db.execute("UPDATE runs SET metrics = '{\"test\": ' WHERE method = 'EASE'")
    db.close()
    assert main(["report", str(config)]) == 2
    err = capsys.readouterr().err
    assert "run EASE seed 0" in err and "column metrics: not valid JSON" in err and "Traceback" not in err


def test_run_with_a_directory_where_the_store_should_be(tmp_path, plugin_manager, capsys):
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump({"name": "dir", "dataset": {"recipe": "synthetic"}, "seeds": [0],
                                    "baselines": [{"baseline": "Pop"}], "output": {"dir": str(tmp_path / "out")}}))
    (tmp_path / "out" / "runs.sqlite").mkdir(parents=True)
    assert main(["run", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path / 'out' / 'runs.sqlite'} is a directory where the run store")
    assert "Traceback" not in err and not any((tmp_path / "out" / "runs.sqlite").iterdir())
    assert main(["report", str(path)]) == 2
    assert "is a directory where the run store" in capsys.readouterr().err


def test_the_recovery_command_quotes_a_method_name_with_spaces(tmp_path):
    path = tmp_path / "runs.sqlite"
    store = RunStore(path)
    store.start("r2", "h", "EASE (pooled)", "baseline", 0, {"baseline": "EASE", "pooled": True})
    store.finish("r2", "done", metrics={"test": {}})
    store.db.execute("UPDATE runs SET curves = 'x' WHERE run_id = 'r2'")
    store.db.commit()
    with pytest.raises(RunError, match=r"run EASE \(pooled\) seed 0 .*`xdplug run CONFIG --only 'EASE \(pooled\)' "
                                       r"--force`"):
        store.runs()
    store.close()
