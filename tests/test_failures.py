"""Faults of the environment and of runs, as the command line reports them.

Every case is one ``xdplug ...`` call through :func:`xdplug.cli.main` with its
exit status and its stderr checked: 1 for a grid that finished with failed
runs (listed), 2 and one ``error: ...`` line naming the path and the fix for a
read-only or full folder, a damaged input, a run store in use; a damaged
prepared cache heals itself and scratch folders of killed runs are removed.
Tiny grids: the built-in ``synthetic`` recipe and Pop.
"""

from __future__ import annotations

import errno
import fcntl
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

import xdplug.engine.runner

import xdplug.engine.task
from xdplug import hookimpl, tempdirs
from xdplug.cli import main
from xdplug.config import load_config
from xdplug.data.prepare import PARTIAL
from xdplug.report import REPORT_FILES
from xdplug.config import store_path
from xdplug.store import RunStore, lock_path

pytestmark = pytest.mark.usefixtures("one_torch_thread", "plugin_manager")


def raw_config(tmp_path, **sections) -> dict:
    data = {
        "name": "grid",
        "dataset": {"recipe": "synthetic"},
        "seeds": [0],
        "device": "cpu",
        "evaluation": {"ks": [5, 10], "valid_metric": "ndcg@10", "user_groups": [5, 10]},
        "train": {"epochs": 1, "batch_size": 256, "eval_batch_size": 512, "stopping_step": 1},
        "baselines": [{"baseline": "Pop"}],
        "strategies": [],
        "controls": "none",  # the strong control set: tests/test_control_set.py
        "output": {"dir": str(tmp_path / "out" / "{name}")},
    }
    data.update(sections)
    return data


def write_config(tmp_path, **sections) -> str:
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(raw_config(tmp_path, **sections)))
    return str(path)


def config_of(tmp_path, **sections) -> dict:
    return load_config(data=raw_config(tmp_path, **sections))


def one_error_line(err: str) -> str:
    """The ``error: ...`` line, after checking it is the only thing that speaks of a fault."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err
    return lines[0]


def make_read_only(path: Path) -> None:
    path.chmod(0o555)
    if os.access(path, os.W_OK):  # root: permissions do not bite
        path.chmod(0o755)
        pytest.skip("chmod does not make a folder read-only for this user (root?)")


@pytest.fixture
def restore_modes():
    """Folders made read-only by a test get their mode back, so tmp_path can be removed."""
    changed: list[Path] = []
    yield changed.append
    for path in changed:
        path.chmod(0o755)


class BoomPlugin:
    __name__ = "boom-plugin"

    @hookimpl
    def register_baselines(self, register):
        from xdplug.components import Baseline

        class Boom(Baseline):
            name = "boom"
            description = "always fails"

            def fit(self, ctx, pooled=False):
                raise RuntimeError("boom: the model exploded\nsecond line of the message")

        register(Boom)


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# -- failed runs: exit status 1 and the list ----------------------------------------------------

def test_a_grid_with_failed_runs_exits_1_and_lists_them_after_the_report(plugin_manager, register_plugin, tmp_path,
                                                                          capsys):
    register_plugin(BoomPlugin(), "boom-plugin")
    path = write_config(tmp_path, seeds=[0, 1], baselines=[{"baseline": "Pop"}, {"baseline": "boom"}])
    assert main(["run", path, "--quiet"], plugins=plugin_manager) == 1
    out, err = capsys.readouterr()
    assert "report written:" in out and "report.md" in out
    assert "2 run(s) failed" in err
    for seed in (0, 1):
        assert f"  boom seed {seed}: RuntimeError: boom: the model exploded\n" in err
    assert "second line" not in err and "Traceback" not in err  # one line per run
    assert "Pop seed" not in err

    # --only a method that works: nothing failed in that part of the grid
    assert main(["run", path, "--quiet", "--only", "Pop"], plugins=plugin_manager) == 0
    assert "failed" not in capsys.readouterr().err


def test_help_lists_the_exit_codes(capsys):
    for argv in (["--help"], ["run", "--help"]):
        with pytest.raises(SystemExit) as stop:
            main(argv)
        assert stop.value.code == 0
        out = capsys.readouterr().out
        assert "exit status" in out and "130" in out and "some runs failed" in out
    assert "--wait" in out


# -- folders that cannot be written -------------------------------------------------------------

@pytest.mark.parametrize("which", ["output folder", "its parent"])
def test_a_read_only_output_folder_is_one_error(tmp_path, capsys, restore_modes, which):
    path = write_config(tmp_path)
    folder = tmp_path / "out" / "grid" if which == "output folder" else tmp_path / "out"
    folder.mkdir(parents=True)
    restore_modes(folder)
    make_read_only(folder)
    assert main(["run", path, "--quiet"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "the output folder" in line and str(tmp_path / "out" / "grid") in line
    assert "permission denied" in line and "output.dir" in line


def test_a_read_only_xdplug_home_is_one_error(xdplug_home, tmp_path, capsys, restore_modes):
    path = write_config(tmp_path)
    restore_modes(xdplug_home)
    make_read_only(xdplug_home)
    assert main(["run", path, "--quiet"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(xdplug_home) in line and "XDPLUG_HOME" in line and "permission denied" in line
    assert main(["datasets", "prepare", "synthetic", "--quiet"]) == 2
    assert "XDPLUG_HOME" in one_error_line(capsys.readouterr().err)


def test_xdplug_home_being_a_file_is_one_error(tmp_path, monkeypatch, capsys):
    home = tmp_path / "home-is-a-file"
    home.write_text("not a folder")
    monkeypatch.setenv("XDPLUG_HOME", str(home))
    path = write_config(tmp_path)
    assert main(["run", path, "--quiet"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"{home} is a file, not a folder" in line and "XDPLUG_HOME" in line
    assert home.read_text() == "not a folder"
    assert main(["datasets", "prepare", "synthetic", "--quiet"]) == 2
    assert "is a file, not a folder" in one_error_line(capsys.readouterr().err)


class _FullDisk:
    """``os`` for ``xdplug.atomicfile``: each file gets half its bytes, then ENOSPC."""

    def __init__(self):
        self.writes = 0

    def __getattr__(self, name):
        return getattr(os, name)

    def fdopen(self, fd, mode="r", *args, **kwargs):
        handle = os.fdopen(fd, mode, *args, **kwargs)
        disk = self

        class Half:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                handle.close()

            def write(self, payload):
                disk.writes += 1
                handle.write(payload[: len(payload) // 2])
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

            def __getattr__(self, name):
                return getattr(handle, name)

        return Half()


def test_a_full_disk_while_writing_the_report_is_one_error_and_leaves_the_report_whole(
        tmp_path, monkeypatch, capsys):
    import xdplug.atomicfile as atomic

    path = write_config(tmp_path)
    assert main(["run", path, "--quiet"]) == 0
    capsys.readouterr()
    out = tmp_path / "out" / "grid"
    before = {name: (out / name).read_bytes() for name in REPORT_FILES.values()}

    disk = _FullDisk()
    monkeypatch.setattr(atomic, "os", disk)
    for argv in (["report", path], ["run", path, "--quiet", "--force"]):
        assert main(argv) == 2
        line = one_error_line(capsys.readouterr().err)
        assert "cannot write the report" in line and str(out) in line
        assert "no space left on device" in line and "free some space" in line and "xdplug report" in line
        # every file is the previous report's, and no temp file is left beside them
        assert {name: (out / name).read_bytes() for name in REPORT_FILES.values()} == before
        assert sorted(p.name for p in out.iterdir() if p.name.endswith(".tmp")) == []
    assert disk.writes == 2

    # with the disk freed, the report comes back from the store alone
    monkeypatch.setattr(atomic, "os", os)
    assert main(["report", path]) == 0


# -- inputs that are not what they claim ----------------------------------------------------------

@pytest.mark.parametrize("content, line_no", [
    ("café\nthé\n".encode("latin-1"), 1),          # Latin-1, not UTF-8
    ("item-1\nitem-2\n".encode("utf-16"), 1),       # UTF-16 with its byte-order mark
    (b"item-1\nitem-2\n\x80\x81\n", 3),             # stray bytes on line 3
])
def test_a_history_file_that_is_not_utf8_is_one_error(tmp_path, capsys, content, line_no):
    history = tmp_path / "history.txt"
    history.write_bytes(content)
    # read before the artifact is loaded: the artifact need not even exist
    assert main(["recommend", str(tmp_path / "no-artifact"), "--history", str(history)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(history) in line and "not UTF-8" in line and "save it as UTF-8" in line
    assert f"line {line_no}" in line


@pytest.mark.parametrize("command", [["run"], ["run", "--quiet"], ["config", "show"], ["report"], ["export"]])
def test_a_directory_given_as_the_config_is_one_error(tmp_path, capsys, command):
    folder = tmp_path / "configs"
    folder.mkdir()
    (folder / "grid.yaml").write_text(yaml.safe_dump(raw_config(tmp_path)))
    argv = [*command[:2 if command[0] == "config" else 1], str(folder), *command[2 if command[0] == "config" else 1:]]
    if command == ["export"]:
        argv += ["--method", "Pop"]
    assert main(argv) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(folder) in line and "is a directory, expected a YAML config file" in line
    assert "grid.yaml" in line  # the hint: the config files it holds
    assert not (tmp_path / "out").exists()


# -- a damaged prepared cache heals -------------------------------------------------------------

DAMAGES = {
    "arrays.npz truncated": ("arrays.npz", lambda b: b[: len(b) // 2]),
    "arrays.npz empty": ("arrays.npz", lambda b: b""),
    "arrays.npz garbage": ("arrays.npz", lambda b: b"\x00garbage" * 64),
    "keys.json truncated": ("keys.json", lambda b: b[: len(b) // 3]),
    "summary.json not json": ("summary.json", lambda b: b"{nope"),
}


def prepared_folder(home: Path) -> Path:
    [folder] = [p for p in (home / "prepared").iterdir() if p.name.startswith("synthetic-")]
    return folder


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_prepared_cache_is_rebuilt_with_a_warning(xdplug_home, capsys, caplog, damage):
    from xdplug.data.crossdomain import CrossDomainData

    assert main(["datasets", "prepare", "synthetic", "--quiet"]) == 0
    folder = prepared_folder(xdplug_home)
    good = CrossDomainData.load(folder)
    name, spoil = DAMAGES[damage]
    (folder / name).write_bytes(spoil((folder / name).read_bytes()))

    caplog.clear()
    assert main(["datasets", "prepare", "synthetic", "--quiet"]) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("damaged" in w and "rebuilding" in w and str(folder) in w for w in warnings), warnings
    healed = CrossDomainData.load(folder)
    np.testing.assert_array_equal(healed.target_train, good.target_train)
    assert healed.keys == good.keys


def test_a_run_on_a_truncated_cache_rebuilds_it_instead_of_failing_forever(xdplug_home, tmp_path, capsys, caplog):
    path = write_config(tmp_path)
    assert main(["run", path, "--quiet"]) == 0
    arrays = prepared_folder(xdplug_home) / "arrays.npz"
    arrays.write_bytes(arrays.read_bytes()[:100])
    for _ in range(2):  # healed once, then read as usual
        caplog.clear()
        assert main(["run", path, "--quiet", "--force"]) == 0
        assert "failed" not in capsys.readouterr().err
    assert not any("damaged" in r.getMessage() for r in caplog.records)
    with np.load(arrays) as npz:
        assert len(npz["target_train"])


# -- scratch folders of killed runs -------------------------------------------------------------

def test_scratch_folders_of_killed_runs_are_removed_by_the_next_run(xdplug_home, tmp_path, monkeypatch, capsys):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(scratch))
    dead = dead_pid()
    old = time.time() - 2 * tempdirs.MAX_AGE_S

    def folder(name, mtime=None):
        path = scratch / name
        (path / "split").mkdir(parents=True)
        (path / "split" / "split.inter").write_text("left behind")
        if mtime:
            os.utime(path, (mtime, mtime))
        return path

    gone = [folder(f"xdplug-run-{dead}-k1ll3d_x"), folder(f"xdplug-prepare-{dead}-abc123"),
            folder("xdplug-run-0ldn4m3s", mtime=old)]            # an older version's name, long idle
    kept = [folder(f"xdplug-run-{os.getppid()}-alive123"),        # a live process's
            folder(f"xdplug-run-{os.getpid()}-mine1234"),         # this process's
            folder("xdplug-prepare-r3c3nt_1"),                    # an older version's, recent
            folder(f"xdplug-load-{dead}-notours1"),               # not a kind the sweep owns
            folder(f"other-run-{dead}-x")]
    partial_old = xdplug_home / "prepared" / f"synthetic-abc{PARTIAL}x1"
    partial_new = xdplug_home / "prepared" / f"synthetic-def{PARTIAL}x2"
    for path, mtime in ((partial_old, old), (partial_new, None)):
        path.mkdir(parents=True)
        if mtime:
            os.utime(path, (mtime, mtime))

    seen = []
    real = xdplug.engine.task.execute_run

    def spy(spec, config, registry, data, device, workdir, progress=None):
        seen.append(workdir)
        return real(spec, config, registry, data, device, workdir, progress=progress)

    monkeypatch.setattr(xdplug.engine.task, "execute_run", spy)
    assert main(["run", write_config(tmp_path), "--quiet"]) == 0
    assert [p for p in gone if p.exists()] == []
    assert [p for p in kept if not p.exists()] == []
    assert not partial_old.exists() and partial_new.exists()
    # this run's scratch folder carried its pid, and is gone
    [workdir] = seen
    assert workdir.parent == scratch and workdir.name.startswith(f"xdplug-run-{os.getpid()}-")
    assert not workdir.exists()
    assert tempdirs.stale(scratch / f"xdplug-run-{dead}-again") is False  # not there: nothing to do


def test_sweep_leaves_live_and_foreign_folders_alone(tmp_path):
    dead = dead_pid()
    (tmp_path / f"xdplug-run-{dead}-a").mkdir()
    (tmp_path / f"xdplug-run-{dead}-file").write_text("a file, not a folder")
    (tmp_path / f"xdplug-run-{os.getpid()}-b").mkdir()
    target = tmp_path / "elsewhere"
    target.mkdir()
    (tmp_path / f"xdplug-prepare-{dead}-link").symlink_to(target)
    removed = tempdirs.sweep(tmp_path)
    assert [p.name for p in removed] == [f"xdplug-run-{dead}-a"]
    assert target.exists() and (tmp_path / f"xdplug-prepare-{dead}-link").is_symlink()
    assert tempdirs.sweep(tmp_path / "missing") == []


# -- one run per store at a time -----------------------------------------------------------------

def hold_lock(config) -> int:
    lock = lock_path(store_path(config))
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.ftruncate(fd, 0)
    os.write(fd, b"4242\n")
    return fd


def test_a_second_run_on_a_store_in_use_refuses_and_names_the_lock(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(xdplug.engine.task, "run_task", lambda *a, **k: pytest.fail("trained under someone's lock"))
    path = write_config(tmp_path)
    config = config_of(tmp_path)
    fd = hold_lock(config)
    try:
        assert main(["run", path, "--quiet"]) == 2
        line = one_error_line(capsys.readouterr().err)
        assert str(lock_path(store_path(config))) in line and "pid 4242" in line and "--wait" in line
        assert not store_path(config).exists()  # the store was not even opened
    finally:
        os.close(fd)


def test_a_lock_held_by_another_process_is_refused(tmp_path, capsys):
    path = write_config(tmp_path)
    config = config_of(tmp_path)
    lock = lock_path(store_path(config))
    lock.parent.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(lock)!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "os.write(fd, str(os.getpid()).encode())\n"
        "print('locked', flush=True)\n"
        "time.sleep(60)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert main(["run", path, "--quiet"]) == 2
        assert f"pid {holder.pid}" in one_error_line(capsys.readouterr().err)
    finally:
        holder.kill()
        holder.wait()
    assert main(["run", path, "--quiet"]) == 0  # a dead holder's lock is free


def test_run_wait_waits_for_the_lock_then_runs(tmp_path, capsys, caplog):
    path = write_config(tmp_path)
    config = config_of(tmp_path)
    fd = hold_lock(config)
    released = []

    def release():
        time.sleep(1.5)
        released.append(time.monotonic())
        os.close(fd)

    thread = threading.Thread(target=release)
    thread.start()
    try:
        assert main(["run", path, "--quiet", "--wait"]) == 0
        finished = time.monotonic()
    finally:
        thread.join()
    assert released and finished >= released[0]
    assert any("waiting" in r.getMessage() and "pid 4242" in r.getMessage() for r in caplog.records)
    store = RunStore(store_path(config))
    try:
        assert [r["status"] for r in store.runs()] == ["done"]
    finally:
        store.close()


# -- a run that fails before recording anything leaves nothing behind ------------------------------

def test_a_data_error_in_the_preflight_leaves_no_store_lock_or_folder(tmp_path, capsys, monkeypatch):
    from xdplug.errors import DataError

    path = write_config(tmp_path)
    config = config_of(tmp_path)

    def broken(*args, **kwargs):
        raise DataError("dataset.params.target.interactions: column 'item' is missing")

    monkeypatch.setattr(xdplug.engine.runner, "prepare_data", broken)
    assert main(["run", path, "--quiet"]) == 2
    assert "column 'item' is missing" in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "out").exists()  # the store, its lock and both folders the run made are gone
    # a store that holds runs is kept as it was when a later run's preflight fails (it resumes from it)
    monkeypatch.undo()
    assert main(["run", path, "--quiet"]) == 0
    monkeypatch.setattr(xdplug.engine.runner, "prepare_data", broken)
    assert main(["run", path, "--quiet", "--force"]) == 2
    store = RunStore(store_path(config))
    try:
        assert [r["status"] for r in store.runs()] == ["done"]
    finally:
        store.close()
    assert lock_path(store_path(config)).exists()


def test_a_run_waiting_on_a_lock_whose_file_is_discarded_locks_the_new_file(tmp_path):
    from xdplug.errors import RunError
    from xdplug.store import discard_store, store_lock

    store = tmp_path / "out" / "runs.sqlite"
    waiting, held = threading.Event(), []

    def waiter():
        with store_lock(store, wait=True, on_wait=lambda holder, lock: waiting.set()) as lock:
            try:  # the file the waiter holds is the one at the path: a third run is refused
                with store_lock(store):
                    refused = False
            except RunError:
                refused = True
            held.append((os.stat(lock).st_ino, refused))

    with store_lock(store) as lock:
        thread = threading.Thread(target=waiter)
        thread.start()
        assert waiting.wait(10)
        discard_store(store)  # the holder's run failed before recording anything
        assert not lock.exists()
    thread.join(10)
    assert held == [(os.stat(lock).st_ino, True)]


# -- executor flags are overrides, validated once ----------------------------------------------

@pytest.mark.parametrize("flags, expected", [
    (["--executor", "local", "--workers", "3"], {"kind": "local", "workers": 3}),
    (["--address", "10.0.0.1:6379"], {"kind": "ray", "address": "10.0.0.1:6379"}),
    (["--address", "auto", "--executor", "local"], {"kind": "local", "address": "auto"}),
    (["--address", "1:20"], {"kind": "ray", "address": "1:20"}),  # YAML would read 1:20 as a number
])
def test_executor_flags_are_overrides_of_the_validated_config(tmp_path, monkeypatch, flags, expected):
    seen = []

    def fake_run(config, **kwargs):
        seen.append(config)
        return {}

    monkeypatch.setattr(xdplug.engine.runner, "run_benchmark", fake_run)
    path = write_config(tmp_path)
    assert main(["run", path, "--quiet", *flags]) == 0
    [config] = seen
    assert {k: config["executor"][k] for k in expected} == expected
    sets = [f"executor.{k}={v!r}" if isinstance(v, str) else f"executor.{k}={v}" for k, v in expected.items()]
    assert config == load_config(path, overrides=[s.replace("'", '"') for s in sets])


def test_a_bad_executor_flag_fails_validation(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(xdplug.engine.runner, "run_benchmark", lambda *a, **k: pytest.fail("ran with a bad config"))
    with pytest.raises(SystemExit) as exit_:  # refused while the arguments are parsed: usage, one error line
        main(["run", write_config(tmp_path), "--quiet", "--workers", "-1"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "argument --workers" in err and "-1" in err and "Traceback" not in err


def test_a_full_disk_while_writing_the_run_store_is_one_error(tmp_path):
    import sqlite3

    from xdplug.errors import StorageError
    from xdplug.store import RunStore

    store = RunStore(tmp_path / "runs.sqlite")
    store.start("r1", "h", "EASE", "baseline", 2022, {})

    class FullDisk:  # the connection as SQLite behaves when the disk fills during a commit
        def __init__(self, db):
            self.db = db

        def execute(self, *args):
            return self.db.execute(*args)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.db.rollback()
            raise sqlite3.OperationalError("database or disk is full")

    real = store.db
    store.db = FullDisk(real)
    with pytest.raises(StorageError, match=r"cannot write the run store .*runs\.sqlite: database or disk is full; "
                                           r"the runs finished before are kept"):
        store.finish("r1", "done", metrics={"test": {"ndcg@10": 0.1}})
    store.db = real
    assert store.status("r1") == "running"  # nothing half-written
    store.close()
