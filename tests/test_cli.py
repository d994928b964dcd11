"""The ``xdplug`` command line: listing, config tools, and errors as one line with exit status 2."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import yaml

import xdplug
from xdplug.cli import main
from xdplug.config import config_hash, load_config

QUICKSTART = "configs/quickstart.yaml"


def write_config(tmp_path, data: dict) -> str:
    data = {"output": {"dir": str(tmp_path / "out" / "{name}")}, **data}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("error: ")
    return lines[0]


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"xdplug {xdplug.__version__}"


def test_plugins_table(plugin_manager, capsys):
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    header, rule, *rows = out.splitlines()
    assert header.split() == ["plugin", "version", "hooks", "status"]
    assert set(rule) <= {"-", " "}
    names = [row.split()[0] for row in rows]
    assert names == sorted(names)
    assert {"builtin-encoders", "builtin-fusions", "builtin-datasets"} <= set(names)
    fusions = next(row for row in rows if row.startswith("builtin-fusions"))
    assert fusions.split() == ["builtin-fusions", xdplug.__version__, "register_fusions", "ok"]


def test_plugins_json(plugin_manager, capsys):
    assert main(["plugins", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows == plugin_manager.plugin_rows()
    row = next(r for r in rows if r["name"] == "builtin-encoders")
    assert row == {"name": "builtin-encoders", "module": "xdplug_builtin.encoders", "distribution": "xdplug",
                   "version": xdplug.__version__, "hooks": ["register_encoders"], "error": None}


def test_components_by_kind(plugin_manager, capsys):
    assert main(["components", "--kind", "fusion"]) == 0
    out = capsys.readouterr().out
    rows = out.splitlines()[2:]
    assert all(row.startswith("fusion ") for row in rows)
    registry = plugin_manager.registry
    for name in ("text", "id", "weighted", "concat", "gate"):
        entry = registry.entries["fusion"][name]
        row = next(r for r in rows if r.split()[1] == name)
        assert row.split()[2] == "builtin-fusions"
        assert row.rstrip().endswith(entry.description)


def test_components_json(plugin_manager, capsys):
    assert main(["components", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    kinds = {row["kind"] for row in rows}
    assert kinds == {"encoder", "fusion", "adaptation", "family", "evaluator", "baseline", "dataset"}
    gate = next(r for r in rows if r["name"] == "gate")
    assert gate == {"name": "gate", "kind": "fusion", "plugin": "builtin-fusions",
                    "description": plugin_manager.registry.entries["fusion"]["gate"].description}
    synthetic = next(r for r in rows if r["name"] == "synthetic")
    assert (synthetic["kind"], synthetic["plugin"]) == ("dataset", "builtin-datasets")


def test_components_rejects_an_unknown_kind(capsys):
    with pytest.raises(SystemExit) as info:
        main(["components", "--kind", "fusions"])
    assert info.value.code == 2
    assert "invalid choice: 'fusions'" in capsys.readouterr().err


def test_config_show_prints_hash_and_resolved_config(plugin_manager, capsys):
    assert main(["config", "show", QUICKSTART]) == 0
    out = capsys.readouterr().out
    first, rest = out.split("\n", 1)
    expected = load_config(QUICKSTART, registry=plugin_manager.registry)
    assert first == f"# config hash: {config_hash(expected)}"
    assert re.fullmatch(r"# config hash: [0-9a-f]{16}", first)
    assert yaml.safe_load(rest) == expected


def test_config_show_applies_overrides(plugin_manager, capsys):
    assert main(["config", "show", QUICKSTART, "--set", "train.epochs=3", "--set", "strategies.0.name=x"]) == 0
    out = capsys.readouterr().out
    shown = yaml.safe_load(out.split("\n", 1)[1])
    assert shown["train"]["epochs"] == 3 and shown["strategies"][0]["name"] == "x"
    assert out.split("\n", 1)[0] == f"# config hash: {config_hash(shown)}"


@pytest.mark.parametrize("data, expected", [
    ({"baselines": [{"baseline": "Pop"}], "train": {"epoch": 3}}, "train.epoch: unknown key; allowed here:"),
    ({"baselines": [{"baseline": "EAZE"}]}, "unknown baseline 'EAZE'. Did you mean 'EASE'?"),
    ({"baselines": [{"baseline": "Pop"}], "device": "gpu"}, "device: expected auto, cpu, cuda or cuda:N"),
])
def test_config_error_is_one_line_and_exit_2(plugin_manager, tmp_path, capsys, data, expected):
    path = write_config(tmp_path, data)
    assert main(["config", "show", path]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    line = one_line_error(captured.err)
    assert expected in line and path in line


def test_missing_config_file(plugin_manager, tmp_path, capsys):
    assert main(["config", "show", str(tmp_path / "missing.yaml")]) == 2
    assert "config file not found" in one_line_error(capsys.readouterr().err)


def test_bad_override_is_a_config_error(plugin_manager, capsys):
    assert main(["config", "show", QUICKSTART, "--set", "train.epochs=many"]) == 2
    assert "train.epochs: expected an integer in [1, 100000], got 'many'" in one_line_error(capsys.readouterr().err)


@pytest.fixture
def no_training(monkeypatch):
    """Any attempt to prepare data or train fails the test."""
    import xdplug.data.prepare
    import xdplug.model.strategy
    import xdplug.engine.runner
    import xdplug.engine.task

    def forbidden(*args, **kwargs):
        raise AssertionError("a bad config must fail before any data preparation or training")

    monkeypatch.setattr(xdplug.engine.task, "prepare", forbidden)
    monkeypatch.setattr(xdplug.engine.task, "execute_run", forbidden)
    monkeypatch.setattr(xdplug.data.prepare, "prepare", forbidden)
    monkeypatch.setattr(xdplug.model.strategy, "fit_strategy", forbidden)


@pytest.mark.parametrize("strategy, expected", [
    ({"encoder": "id", "fusion": "gaet", "adaptation": "finetune"}, "strategies[0].fusion: unknown fusion 'gaet'"),
    ({"encoder": "id", "fusion": "weighted", "adaptation": "finetune", "params": {"fusion": {"alpha": "x"}}},
     "strategies[0].params.fusion.alpha: expected a number in [0, 1]"),
    ({"encoder": "id", "fusion": "id", "adaptation": "finetune", "params": {"model": {"loss": 1}}},
     "strategies[0].params.model.loss: expected one of 'softmax', 'sampled_softmax', 'bpr'"),
])
def test_run_with_a_bad_config_fails_before_training(plugin_manager, tmp_path, capsys, no_training,
                                                     strategy, expected):
    path = write_config(tmp_path, {"name": "bad", "dataset": {"recipe": "synthetic"}, "strategies": [strategy]})
    assert main(["run", path, "--quiet"]) == 2
    assert expected in one_line_error(capsys.readouterr().err)
    assert not (tmp_path / "out").exists()  # no output directory, no run store


def test_report_without_a_store(plugin_manager, tmp_path, capsys):
    path = write_config(tmp_path, {"name": "none", "dataset": {"recipe": "synthetic"},
                                   "baselines": [{"baseline": "Pop"}]})
    assert main(["report", path]) == 2
    assert "no run store at" in one_line_error(capsys.readouterr().err)


# -- through a real process ----------------------------------------------------------------

def run_cli(*args, env=None, cwd=None):
    environment = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "xdplug.cli", *args], capture_output=True, text=True,
                          env=environment, cwd=cwd, timeout=120)


def test_subprocess_version():
    done = run_cli("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"xdplug {xdplug.__version__}"


def test_version_and_help_do_not_import_torch():
    """`xdplug --version` answers at once: the engine (and torch) loads only for a command that needs it."""
    code = ("import sys, contextlib, io\nfrom xdplug.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try: main(['--version'])\n    except SystemExit: pass\n"
            "print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False", done.stderr


def test_line_progress_when_not_a_terminal():
    """Redirected to a file, progress is plain lines: no carriage-return frames."""
    import io

    from xdplug.progress import LineProgress, progress_bar

    assert isinstance(progress_bar(3, "runs"), LineProgress)  # pytest captures stderr: not a terminal
    stream = io.StringIO()
    bar = LineProgress(3, desc="runs", unit="run", initial=1, stream=stream, interval=3600)
    bar.set_postfix_str("EASE seed=0")  # a status alone waits for the interval
    bar.update(1)
    bar.set_postfix_str("Pop seed=0")
    bar.update(1)
    bar.close()
    assert stream.getvalue() == "runs: 2/3 runs (EASE seed=0)\nruns: 3/3 runs (Pop seed=0)\n"
    assert "\r" not in stream.getvalue()
    quiet = io.StringIO()
    LineProgress(2, desc="x", disable=True, stream=quiet).update(1)
    assert quiet.getvalue() == ""


def test_subprocess_config_error_exits_2_without_traceback(tmp_path, xdplug_home):
    path = tmp_path / "bad.yaml"
    path.write_text("baselines: [{baseline: Pop}]\ntrain: {epoch: 3}\n")
    done = run_cli("config", "show", str(path), env={"XDPLUG_LOAD_PLUGINS": "", "XDPLUG_HOME": str(xdplug_home)})
    assert done.returncode == 2
    assert done.stdout == ""
    line = one_line_error(done.stderr)
    assert line.startswith(f"error: {path}: train.epoch: unknown key; allowed here: epochs,")


def test_subprocess_invalid_yaml_exits_2_without_traceback(tmp_path, xdplug_home):
    path = tmp_path / "bad.yaml"
    path.write_text("train: {epochs: 3\n")
    done = run_cli("config", "show", str(path), env={"XDPLUG_LOAD_PLUGINS": "", "XDPLUG_HOME": str(xdplug_home)})
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith(f"error: {path}: (file): not valid YAML")


def test_invalid_yaml_message_is_one_line(plugin_manager, tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("train: {epochs: 3\n")
    assert main(["config", "show", str(path)]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert "line 2" in line


def test_subprocess_lists_plugins_as_json(xdplug_home):
    done = run_cli("plugins", "--json", env={"XDPLUG_LOAD_PLUGINS": "builtin-datasets",
                                             "XDPLUG_HOME": str(xdplug_home)})
    assert done.returncode == 0, done.stderr
    (row,) = json.loads(done.stdout)
    assert (row["name"], row["distribution"], row["error"]) == ("builtin-datasets", "xdplug", None)
