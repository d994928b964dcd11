"""Every option of every registered component and of the config schema refuses out-of-range values.

The declarations live once per option (``xdplug.options``); these tests walk all
of them, so a new option without a range, or a range the engine does not
enforce, fails here.
"""

from __future__ import annotations

import math

import pytest

from xdplug.components import declared_options, resolve_params
from xdplug.config import SCHEMA, load_config
from xdplug.errors import ConfigError
from xdplug.model.transfer import ModelOptions
from xdplug.options import Float, Int, Option
from xdplug.plugins import PluginFailureWarning, make_plugin_manager

BUILTIN_PLUGINS = ("builtin", "datasets", "example", "testing")


def _registry():
    return make_plugin_manager().registry


def _component_options():
    out = []
    for entry in _registry().all():
        for key, option in declared_options(entry.cls).items():
            out.append(pytest.param(entry, key, option, id=f"{entry.kind}:{entry.name}.{key}"))
    for key, option in ModelOptions._options.items():
        out.append(pytest.param(None, key, option, id=f"model.{key}"))
    return out


def _numeric(option: Option) -> bool:
    types = option.item_types() if option.is_list else option.types()
    return any(t in (int, float) for t in types) and bool not in types


@pytest.mark.parametrize("entry, key, option", _component_options())
def test_component_option_refuses_out_of_range_values(entry, key, option):
    cls = entry.cls if entry is not None else ModelOptions
    path = f"{getattr(cls, 'kind', 'model')}:{cls.name}"
    # the declared default is accepted
    assert resolve_params(cls, {key: option.default}, path)[key] == option.default
    bad = option.out_of_range()
    if _numeric(option):
        assert bad, f"{path}.{key}: a numeric option needs a declared range (low/high) or choices"
    if option.types() == (dict,):
        bad = ["not a mapping"]
    for value in bad + ["__import__('os').system('true')"] * (str not in option.types() and not option.choices
                                                             and option.types() != (object,)):
        with pytest.raises(ConfigError) as info:
            resolve_params(cls, {key: value}, path)
        assert info.value.path == f"{path}.{key}" or info.value.path.startswith(f"{path}.{key}["), str(info.value)
        assert "expected" in str(info.value)


def test_builtin_numeric_options_all_declare_a_range():
    missing = [f"{e.kind}:{e.name}.{k}" for e in _registry().all() if e.plugin.startswith(BUILTIN_PLUGINS)
               for k, o in declared_options(e.cls).items() if _numeric(o) and not o.bounded]
    missing += [f"model.{k}" for k, o in ModelOptions._options.items() if _numeric(o) and not o.bounded]
    assert missing == []


def _schema_leaves(node=SCHEMA, path=()):
    for key, sub in node.items():
        if isinstance(sub, dict):
            yield from _schema_leaves(sub, path + (key,))
        elif isinstance(sub, tuple) and sub and sub[0] == "list" and isinstance(sub[1], dict):
            yield from _schema_leaves(sub[1], path + (key, 0))
        elif isinstance(sub, Option):
            yield path + (key,), sub


def _with(path, value):
    """A minimal config with ``value`` at ``path`` (list entries get a minimal method)."""
    data = {"baselines": [{"baseline": "Pop"}]}
    node = data
    for i, part in enumerate(path[:-1]):
        if isinstance(part, int):
            continue
        if path[i + 1] == 0:  # a list of mappings: one entry
            entry = {"baseline": "Pop", "name": "p"} if part == "baselines" else \
                {"name": "s", "encoder": "id", "fusion": "id", "adaptation": "target-only"}
            node[part] = [entry]
            node = entry
        else:
            node = node.setdefault(part, {})
    node[path[-1]] = value
    return data


@pytest.mark.parametrize("path, option", list(_schema_leaves()),
                         ids=[".".join(map(str, p)) for p, _ in _schema_leaves()])
def test_config_option_refuses_out_of_range_values(path, option):
    bad = option.out_of_range()
    assert bad, f"{path}: a numeric config key needs a declared range"
    shown = ".".join(p if isinstance(p, str) else "" for p in path).replace("..", "[0].")
    for value in bad + ["__import__('os')", None]:
        with pytest.raises(ConfigError) as info:
            load_config(data=_with(path, value))
        assert info.value.path.startswith(shown), (info.value.path, shown)


def test_a_declared_default_outside_its_range_is_refused_at_registration():
    from xdplug import hookimpl
    from xdplug.components import Fusion

    class Broken(Fusion):
        name = "broken-bounds"
        description = "a fusion whose default breaks its own range"
        defaults = {"alpha": Float(2.0, 0, 1)}

    class Plugin:
        @hookimpl
        def register_fusions(self, register):
            register(Broken)

    pm = make_plugin_manager(load_entrypoints=False)
    pm.register(Plugin(), "broken")
    with pytest.warns(PluginFailureWarning):
        pm.registry  # noqa: B018 - registration happens while the registry is built
    assert "broken-bounds" not in pm.registry.names("fusion")
    assert "default of option 'alpha' is outside its own declaration" in pm.info["broken"].error


def test_option_messages_and_coercion():
    dim = Int(64, 1, 4096)
    with pytest.raises(ConfigError, match=r"^x\.dim: expected an integer in \[1, 4096\], got 1000000000$"):
        dim.check(10**9, "x.dim")
    rate = Float(0.1, 0, 1, low_open=True)
    assert rate.check(1, "r") == 1.0 and isinstance(rate.check(1, "r"), float)
    with pytest.raises(ConfigError, match="not a finite number"):
        rate.check(math.inf, "r")
    with pytest.raises(ConfigError, match=r"expected a number in \(0, 1\], got 0"):
        rate.check(0, "r")
    with pytest.raises(ConfigError, match="got True"):
        dim.check(True, "x.dim")


def test_a_model_too_large_for_the_machine_is_refused_before_allocating(synthetic_data, monkeypatch):
    import torch

    from xdplug.model import strategy

    options = dict(ModelOptions.defaults, dim=4096, batch_users=10_000_000)
    monkeypatch.setattr(strategy, "available_memory", lambda device: 2**30)
    with pytest.raises(ConfigError, match=r"strategies\[0\]\.params\.model: this model needs at least .* GiB "
                                          r"\(dim 4096, batch_users 10000000, \d+ items\) but cpu has 1\.0 GiB free"):
        strategy.check_memory(options, synthetic_data, 384, True, torch.device("cpu"), "strategies[0]")
    strategy.check_memory(dict(ModelOptions.defaults), synthetic_data, 384, True, torch.device("cpu"), "s")


def test_the_memory_estimate_counts_the_columns_a_step_scores():
    """Above the full-softmax limit a step scores sampled candidates, not the whole catalogue."""
    from xdplug.model import strategy
    from xdplug.model.sampling import SOFTMAX_MAX_ITEMS as FULL_SOFTMAX_ITEMS

    options = dict(ModelOptions.defaults)
    small = strategy.estimate_model_bytes(options, 1000, 500, 0, True)
    n = 10 * FULL_SOFTMAX_ITEMS
    full = strategy.estimate_model_bytes(dict(options, loss="softmax"), n, 500, 0, True)
    sampled = strategy.estimate_model_bytes(options, n, 500, 0, True)
    weights = 4 * 4 * (n * (1 + options["dim"]) + 4 * options["dim"] ** 2)
    assert small < sampled < full
    assert full - weights == 4 * 3 * options["batch_users"] * n
    assert sampled - weights == 4 * 3 * options["batch_users"] * (1 + options["negatives"])
