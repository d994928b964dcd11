"""The Ray executor on a 2-CPU local Ray instance: same metrics as the local executor, faults, Ctrl-C.

Plugins must be importable in Ray's worker processes, which load them from
entry points like any xdplug process. The fault-injecting baselines here are
therefore a real (temporary) distribution: a module plus a ``.dist-info``
with an ``xdplug`` entry point, in a folder on ``PYTHONPATH`` before Ray
starts (workers inherit it) and on ``sys.path`` of this process.

One Ray instance serves the whole module (starting one costs seconds);
tasks get this test's ``XDPLUG_HOME`` from the executor, which forwards it.
"""

from __future__ import annotations

import os
import sys
import textwrap

import pytest

from xdplug import hookimpl
from xdplug.engine.executors.local import LocalExecutor
from xdplug.engine.plan import expand
from xdplug.engine.runner import run_benchmark
from xdplug.config import store_path
from xdplug.store import RunStore

pytest.importorskip("ray")

STRATEGY = {"name": "id-only", "encoder": "id", "fusion": "id", "adaptation": "target-only",
            "params": {"model": {"batch_users": 16, "dim": 16}}}

FAULTS_MODULE = '''
"""Baselines that fail on purpose (xdplug executor tests)."""
import os
import signal
from pathlib import Path

from xdplug import hookimpl
from xdplug.components import Baseline


def _die():
    if os.environ.get("XDPLUG_FAULTS_DRIVER_PID") == str(os.getpid()):
        raise RuntimeError("refusing to kill the test driver; use the ray executor")
    os.kill(os.getpid(), signal.SIGKILL)


class Boom(Baseline):
    name = "boom"
    description = "Raises while fitting (test plugin)"

    def fit(self, ctx, pooled=False):
        raise ValueError("boom: this baseline always fails")


class Crash(Baseline):
    name = "crash"
    description = "Kills its own worker process while fitting (test plugin)"

    def fit(self, ctx, pooled=False):
        _die()


class Flaky(Baseline):
    name = "flaky"
    description = "Kills its worker on the first attempt, then behaves as Pop (test plugin)"
    defaults = {"marker": ""}

    def fit(self, ctx, pooled=False):
        marker = Path(self.params["marker"])
        if not marker.exists():
            marker.write_text("died once")
            _die()
        from xdplug.plugins import make_plugin_manager

        return make_plugin_manager().registry.get("baseline", "Pop")({}).fit(ctx)


@hookimpl
def register_baselines(register):
    register(Boom)
    register(Crash)
    register(Flaky)
'''


@pytest.fixture(scope="module")
def fault_plugin_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("fault-plugin")
    (root / "xdplug_test_faults.py").write_text(textwrap.dedent(FAULTS_MODULE))
    info = root / "xdplug_test_faults-0.0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: xdplug-test-faults\nVersion: 0.0.1\n")
    (info / "entry_points.txt").write_text("[xdplug]\ntest-faults = xdplug_test_faults\n")
    return root


@pytest.fixture(scope="module")
def ray_cluster(fault_plugin_dir):
    """A local 2-CPU Ray instance whose workers can import the fault plugin."""
    from xdplug.engine.executors.ray import import_ray

    ray = import_ray()
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(fault_plugin_dir))
        patch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(fault_plugin_dir),
                                                                os.environ.get("PYTHONPATH")])))
        patch.setenv("XDPLUG_FAULTS_DRIVER_PID", str(os.getpid()))
        started = not ray.is_initialized()
        if started:
            ray.init(num_cpus=2, log_to_driver=False, include_dashboard=False, logging_level="WARNING")
        try:
            yield ray
        finally:
            if started:
                ray.shutdown()


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # as each Ray task (1 CPU): identical arithmetic
    yield
    torch.set_num_threads(previous)


def metrics_by_run(config) -> dict:
    store = RunStore(store_path(config))
    try:
        return {r["run_id"]: r for r in store.runs()}
    finally:
        store.close()


def test_ray_grid_matches_the_local_executor(ray_cluster, tiny_config, tmp_path, plugin_manager):
    sections = dict(seeds=[0, 1], baselines=[{"baseline": "Pop"}, {"baseline": "EASE"}], strategies=[STRATEGY])
    local = tiny_config(name="local", **sections)
    remote = tiny_config(name="ray", executor={"kind": "ray", "workers": 2}, **sections)
    run_benchmark(local, progress=False)
    run_benchmark(remote, progress=False)
    a, b = metrics_by_run(local), metrics_by_run(remote)
    assert set(a) == set(b) == {s.run_id for s in expand(local, plugin_manager.registry)}  # same cells, same identities
    for run_id, run in a.items():
        assert run["status"] == b[run_id]["status"] == "done", (run["method"], b[run_id]["error"])
        for split in ("test", "valid"):
            assert b[run_id]["metrics"][split] == pytest.approx(run["metrics"][split], rel=1e-6, abs=1e-9), \
                (run["method"], run["seed"], split)
    # resume: nothing left to do, nothing rerun
    run_benchmark(remote, progress=False)
    assert all(r["attempts"] == 1 for r in metrics_by_run(remote).values())


def test_a_raising_task_and_a_killed_worker_are_recorded_and_the_grid_completes(ray_cluster, tiny_config,
                                                                                 tmp_path):
    config = tiny_config(
        name="faults", executor={"kind": "ray", "max_retries": 1},
        baselines=[{"baseline": "Pop"}, {"baseline": "boom"}, {"baseline": "crash"},
                   {"baseline": "flaky", "params": {"marker": str(tmp_path / "flaky-died")}}])
    run_benchmark(config, progress=False)
    runs = {r["method"]: r for r in metrics_by_run(config).values()}
    assert set(runs) == {"Pop", "boom", "crash", "flaky"}
    assert runs["Pop"]["status"] == "done"
    assert runs["boom"]["status"] == "failed" and "boom: this baseline always fails" in runs["boom"]["error"]
    # killed twice (first attempt and its one retry), then recorded
    assert runs["crash"]["status"] == "failed"
    assert "worker" in runs["crash"]["error"] and "attempt 2 of 2" in runs["crash"]["error"]
    # killed once, retried, done; the record says so
    assert runs["flaky"]["status"] == "done" and "died 1 time" in runs["flaky"]["notes"]
    assert runs["flaky"]["metrics"]["test"] == pytest.approx(runs["Pop"]["metrics"]["test"])
    # the report was written despite the failures
    assert (store_path(config).parent / "report.md").is_file()


def test_ctrl_c_cancels_outstanding_tasks_and_the_next_run_resumes(ray_cluster, tiny_config, plugin_manager,
                                                                   register_plugin):
    class Interrupt:
        calls = 0

        @hookimpl
        def run_finished(self, record):
            Interrupt.calls += 1
            if Interrupt.calls == 1:
                raise KeyboardInterrupt

    config = tiny_config(name="ctrl-c", executor={"kind": "ray"}, seeds=[0, 1],
                         baselines=[{"baseline": "Pop"}, {"baseline": "EASE"}, {"baseline": "ItemKNN"}])
    register_plugin(Interrupt(), name="interrupt-after-first-run")
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(config, plugin_manager, progress=False)
    runs = metrics_by_run(config)
    statuses = sorted(r["status"] for r in runs.values())
    assert statuses.count("done") == 1, statuses
    assert set(statuses) <= {"done", "running"} and len(runs) <= 3  # never more in flight than 2 CPUs
    done_id = next(k for k, r in runs.items() if r["status"] == "done")
    run_benchmark(config, plugin_manager, progress=False)
    after = metrics_by_run(config)
    assert len(after) == 6 and all(r["status"] == "done" for r in after.values())
    assert after[done_id]["attempts"] == 1  # the finished run was not run again


def test_tuning_through_ray_matches_local_tuning(ray_cluster, tiny_config):
    """Trials run as Ray tasks, the driver asks and tells Optuna: the same trials and choices as locally."""
    sections = dict(baselines=[{"baseline": "EASE"}], strategies=[STRATEGY], tuning={"trials": 2})
    local = tiny_config(name="tune-local", **sections)
    remote = tiny_config(name="tune-ray", executor={"kind": "ray"}, **sections)
    run_benchmark(local, progress=False)
    run_benchmark(remote, progress=False)
    metas = []
    for config in (local, remote):
        store = RunStore(store_path(config))
        metas.append(store.get_meta("tuning"))
        store.close()
    for method in ("EASE", "id-only"):
        a, b = metas[0][method], metas[1][method]
        assert len(b["trials"]) == b["budget"] == 2
        assert [t["params"] for t in a["trials"]] == [t["params"] for t in b["trials"]]
        assert [t["value"] for t in b["trials"]] == pytest.approx([t["value"] for t in a["trials"]], rel=1e-6)
        assert a["chosen"] == b["chosen"]


def test_the_local_path_imports_neither_ray_nor_optuna(tiny_config, plugin_manager):
    """The local path does not import ray."""
    import subprocess

    code = ("import sys, xdplug.engine.runner, xdplug.engine.tuning, xdplug.config; "
            "print('ray' in sys.modules, 'optuna' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
    assert isinstance(LocalExecutor(tiny_config(), plugin_manager.registry), LocalExecutor)
