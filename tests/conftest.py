"""Shared test setup. The fixtures themselves come from ``xdplug.testing`` (a pytest11 plugin).

Every test runs with a temporary ``XDPLUG_HOME``.
"""

from __future__ import annotations

import importlib.metadata

import pytest

pytest_plugins = ["pytester"]

EXAMPLE_INSTALL = "pip install -e plugins/xdplug-example"


@pytest.fixture(autouse=True)
def _isolated(xdplug_home):
    """No test reads or writes the real cache root (there is no process-wide plugin manager to restore)."""


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


@pytest.fixture(scope="session")
def artifact_world(tmp_path_factory):
    """A builder of the fitted-and-exported worlds the artifact, damage and serving tests share:
    ``artifact_world(name, methods, train=..., evaluation=..., folders=..., metrics=...)``.

    ``methods`` maps a method name to its config entry (a strategy has ``encoder``, a baseline
    ``baseline``). The synthetic recipe's seed-0 data is prepared once; each method is fitted on
    it and written as an artifact under ``<root>/<folders.get(name, name)>`` with run id
    ``run-<name>`` (``metrics[name]`` as its metrics, where given), with a private ``XDPLUG_HOME``.
    Returns ``{"data", "config", "scorers", "paths", "root"}``.
    """
    import torch

    from xdplug.artifact import write_artifact
    from xdplug.config import load_config
    from xdplug.context import FitContext
    from xdplug.data.prepare import prepare
    from xdplug.model.strategy import fit_strategy
    from xdplug.plugins import make_plugin_manager

    def build(name: str, methods: dict, *, train: dict, evaluation: dict, folders: dict | None = None,
              metrics: dict | None = None) -> dict:
        root = tmp_path_factory.mktemp(name)
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("XDPLUG_HOME", str(root / "home"))
            registry = make_plugin_manager().registry
            config = load_config(data={
                "name": name, "dataset": {"recipe": "synthetic"}, "seeds": [0], "device": "cpu",
                "train": train, "evaluation": evaluation, "controls": "none",
                "baselines": [e for e in methods.values() if "baseline" in e],
                "strategies": [e for e in methods.values() if "encoder" in e]}, registry=registry)
            data = prepare(registry.get("dataset", "synthetic")({}), config["dataset"], 0)
            scorers, paths = {}, {}
            for method, entry in methods.items():
                ctx = FitContext(data=data, seed=0, device=torch.device("cpu"), train=config["train"],
                                 evaluation=config["evaluation"], workdir=root / "work" / method)
                if "encoder" in entry:
                    kind, scorer = "strategy", fit_strategy(entry, registry, ctx)
                else:
                    kind = "baseline"
                    scorer = registry.get("baseline", entry["baseline"])(entry.get("params")).fit(ctx)
                scorers[method] = scorer
                paths[method] = write_artifact(
                    root / (folders or {}).get(method, method), kind=kind, method=method, entry=entry, seed=0,
                    config=config, data=data, registry=registry, scorer=scorer, run_id=f"run-{method}",
                    metrics=(metrics or {}).get(method))
        return {"data": data, "config": config, "scorers": scorers, "paths": paths, "root": root}

    return build


@pytest.fixture
def run_config(plugin_manager):
    """``run_config(config)``: run a validated config's grid and return its stored runs by (method, seed)."""
    def run(config: dict) -> dict:
        from xdplug.engine.plan import expand, store_path
        from xdplug.engine.runner import run_benchmark
        from xdplug.store import RunStore

        run_benchmark(config, plugin_manager, progress=False)
        store = RunStore(store_path(config))
        try:
            return {(r["method"], r["seed"]): r for r in store.runs([s.run_id for s in expand(config, plugin_manager.registry)])}
        finally:
            store.close()
    return run
