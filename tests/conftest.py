"""Shared test setup. The fixtures themselves come from ``xdplug.testing`` (a pytest11 plugin).

Every test runs with a temporary ``XDPLUG_HOME`` and leaves the process-wide
plugin manager as it found it.
"""

from __future__ import annotations

import importlib.metadata

import pytest

pytest_plugins = ["pytester"]

EXAMPLE_INSTALL = "pip install -e plugins/xdplug-example"


@pytest.fixture(autouse=True)
def _isolated(xdplug_home):
    """No test reads or writes the real cache root or leaks a plugin manager."""
    from xdplug import plugins

    previous = getattr(plugins, "_default", None)
    yield
    plugins.set_plugins(previous)


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module's tests: exact, repeatable sums and no thread contention on 2 cores."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def example_plugin():
    """The installed example plugin's entry point (the documented setup installs it)."""
    found = [ep for ep in importlib.metadata.entry_points(group="xdplug") if ep.name == "example"]
    if not found:
        pytest.fail(f"the example plugin is not installed; run `{EXAMPLE_INSTALL}` (part of the test setup)")
    return found[0]


@pytest.fixture
def run_config():
    """``run_config(config)``: run a validated config's grid and return its stored runs by (method, seed)."""
    def run(config: dict) -> dict:
        from xdplug.engine.plan import expand, store_path
        from xdplug.engine.runner import run_benchmark
        from xdplug.store import RunStore

        run_benchmark(config, progress=False)
        store = RunStore(store_path(config))
        try:
            return {(r["method"], r["seed"]): r for r in store.runs([s.run_id for s in expand(config)])}
        finally:
            store.close()
    return run
