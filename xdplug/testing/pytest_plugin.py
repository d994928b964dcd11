"""pytest plugin with fixtures for testing xdplug and xdplug plugins (entry point ``pytest11``).

Fixtures:

``xdplug_home``
    a temporary ``XDPLUG_HOME``: prepared data and caches never touch the real one.
``plugin_manager``
    a fresh :class:`xdplug.plugins.Plugins` with every installed plugin (and the
    ``synthetic`` dataset recipe, even where the built-in datasets plugin is
    blocked). There is no process-wide manager: pass it on (``main(argv, plugins=...)``,
    ``run_benchmark(config, plugins)``, ``registry=plugin_manager.registry``).
``register_plugin``
    ``register_plugin(obj, name=...)`` registers an object with ``@hookimpl``
    methods in ``plugin_manager`` for the test; it is unregistered afterwards.
``synthetic_data``
    the synthetic recipe prepared (filtered, aligned, split) as
    :class:`~xdplug.data.crossdomain.CrossDomainData`; prepared once per session.
``fit_context``
    a :class:`~xdplug.training.FitContext` on ``synthetic_data`` (one epoch).
``tiny_config``
    ``tiny_config(**sections, overrides=[...])``: a validated config on the
    synthetic recipe with small training settings and its output under ``tmp_path``.

Importing this module imports neither torch nor RecBole; the fixtures do.
"""

from __future__ import annotations

import pytest

#: the seed ``synthetic_data`` is prepared with (and ``tiny_config``'s only seed)
SYNTHETIC_SEED = 0

#: the dataset section ``synthetic_data`` is prepared from (the default protocol)
SYNTHETIC_DATASET = {"recipe": "synthetic"}


@pytest.fixture
def xdplug_home(tmp_path, monkeypatch):
    """A temporary, empty ``XDPLUG_HOME`` for this test."""
    home = tmp_path / "xdplug-home"
    home.mkdir()
    monkeypatch.setenv("XDPLUG_HOME", str(home))
    return home


@pytest.fixture
def plugin_manager(xdplug_home):
    """A fresh plugin manager with the installed plugins, for this test.

    The ``synthetic`` recipe is always there: the built-in datasets plugin
    registers it, and where that plugin is not loaded the fixture does.
    """
    from xdplug import plugins as plugins_module

    from . import SYNTHETIC_PLUGIN_NAME, SyntheticPlugin

    manager = plugins_module.make_plugin_manager()
    if "synthetic" not in manager.registry.names("dataset"):
        # the built-in datasets plugin registers it; this covers an allow/block list without it
        manager.register(SyntheticPlugin(), name=SYNTHETIC_PLUGIN_NAME)
    return manager


@pytest.fixture
def register_plugin(plugin_manager):
    """``register_plugin(obj, name=...)``: a temporary in-process plugin, unregistered after the test."""
    names: list[str] = []

    def register(plugin: object, name: str | None = None) -> object:
        name = name or getattr(plugin, "__name__", None) or f"test-plugin-{len(names)}"
        plugin_manager.register(plugin, name=name)
        names.append(name)
        return plugin

    try:
        yield register
    finally:
        for name in reversed(names):
            if plugin_manager.pm.has_plugin(name):
                plugin_manager.unregister(name)


@pytest.fixture(scope="session")
def _xdplug_synthetic_folder(tmp_path_factory):
    from xdplug.config import load_config
    from xdplug.data.prepare import prepare

    from .synthetic import SyntheticRecipe

    home = tmp_path_factory.mktemp("xdplug-synthetic-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDPLUG_HOME", str(home))
        config = load_config(data={"dataset": dict(SYNTHETIC_DATASET), "baselines": [{"baseline": "Pop"}]})
        data = prepare(SyntheticRecipe(config["dataset"]["params"], "dataset.params"), config["dataset"],
                       SYNTHETIC_SEED)
    return data.folder


@pytest.fixture
def synthetic_data(_xdplug_synthetic_folder):
    """The prepared synthetic dataset (a fresh in-memory copy per test)."""
    from xdplug.data.crossdomain import CrossDomainData

    return CrossDomainData.load(_xdplug_synthetic_folder)


@pytest.fixture
def fit_context(synthetic_data, tmp_path, plugin_manager):
    """A FitContext on ``synthetic_data``: CPU, one epoch, ks [5, 10], seed 0, ``plugin_manager``'s registry."""
    from .contracts import make_fit_context

    return make_fit_context(synthetic_data, tmp_path / "fit", seed=SYNTHETIC_SEED, registry=plugin_manager.registry)


@pytest.fixture
def tiny_config(plugin_manager, tmp_path):
    """A factory of validated configs on the synthetic recipe with small training settings.

    Keyword arguments replace or merge into top-level sections
    (``tiny_config(strategies=[...], train={"epochs": 1})``); ``overrides``
    are ``--set`` strings. Validated against ``plugin_manager``'s registry. The strong
    control set is off (``controls: none``): tuning its 14 methods takes minutes, not the
    seconds a test has; pass ``controls={"set": "strong"}`` to get it.
    """
    from xdplug.config import deep_merge, load_config

    def make(overrides=(), **sections) -> dict:
        base = {
            "name": "tiny",
            "dataset": dict(SYNTHETIC_DATASET),
            "seeds": [SYNTHETIC_SEED],
            "device": "cpu",
            "evaluation": {"ks": [5, 10], "valid_metric": "ndcg@10", "user_groups": [5, 10]},
            "train": {"epochs": 2, "batch_size": 256, "eval_batch_size": 512, "stopping_step": 1},
            "baselines": [{"baseline": "Pop"}],
            "controls": {"set": "none"},
            "output": {"dir": str(tmp_path / "runs" / "{name}")},
        }
        return load_config(data=deep_merge(base, sections), overrides=list(overrides),
                           registry=plugin_manager.registry)

    return make
