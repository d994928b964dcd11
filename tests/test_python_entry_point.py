"""``xdplug.run``: the documented Python entry point returns the report's data and leaks no warnings."""

from __future__ import annotations

import json
import warnings

import pytest

import xdplug
from xdplug.errors import ConfigError


def test_run_returns_the_verdict_summary_and_paths_without_warnings(plugin_manager, tmp_path, xdplug_home):
    config = {
        "name": "entry",
        "dataset": {"recipe": "synthetic", "protocol": {"min_user_inter": 3, "min_item_inter": 1}},
        "seeds": [0],
        "train": {"epochs": 2},
        "baselines": [{"baseline": "Pop"}, {"baseline": "EASE"}],
        "output": {"dir": str(tmp_path / "out")},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning that leaks fails the test
        result = xdplug.run(config, overrides=["evaluation.evaluators=[ranking]"])
    assert result.ok and result.failed == []
    report = json.loads(result.paths["json"].read_text())
    assert result.verdict == report["verdict"] and result.summary == report["summary"]
    assert {row["method"] for row in result.summary} == {"Pop", "EASE"}
    assert result.paths["markdown"].is_file() and result.paths["per_user"].is_file()
    # a second call resumes: nothing is retrained and the same numbers come back
    again = xdplug.run(config, overrides=["evaluation.evaluators=[ranking]"])
    assert again.summary == result.summary


def test_run_raises_one_readable_error_for_a_bad_config(plugin_manager, tmp_path):
    with pytest.raises(ConfigError, match=r"train\.learning_rate: expected a number in \(0, 10\], got 0"):
        xdplug.run({"baselines": [{"baseline": "Pop"}], "train": {"learning_rate": 0}})


def test_importing_xdplug_asks_openmp_for_a_passive_wait_unless_told_otherwise():
    import os
    import subprocess
    import sys

    code = "import xdplug, os; print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    assert subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.strip() == "PASSIVE"
    env["OMP_WAIT_POLICY"] = "ACTIVE"
    assert subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.strip() == "ACTIVE"
