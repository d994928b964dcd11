"""Plugin discovery, failure isolation, allow/block lists, registration checks and every hook."""

from __future__ import annotations

import json
import re
import logging
import sys
import textwrap
import warnings

import pytest

from xdplug import hookimpl
from xdplug.cli import main
from xdplug.components import Adaptation, Baseline, DatasetRecipe, Encoder, Evaluator, Fusion, ModelFamily
from xdplug.errors import (
    ComponentDefinitionError,
    DuplicateComponentError,
    PluginLoadError,
    UnknownComponentError,
)
from xdplug.plugins import PluginFailureWarning, make_plugin_manager
from xdplug.registry import HOOK_FOR_KIND, Registry

BUILTINS = ["builtin-adaptations", "builtin-baselines", "builtin-datasets", "builtin-encoders",
            "builtin-evaluators", "builtin-fusions"]

BUILTIN_FUSIONS = {"text", "id", "weighted", "concat", "gate"}


# -- helpers --------------------------------------------------------------------------------

@pytest.fixture
def installed(tmp_path, monkeypatch):
    """``installed(name, source)``: a distribution with an ``xdplug`` entry point, on sys.path.

    It goes through ``importlib.metadata`` and ``Plugins.load_entrypoints`` like a
    real ``pip install`` would; the module name is unique to the test.
    """
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    modules = []

    def install(name: str, source: str, dist: str | None = None, version: str = "0.1") -> str:
        module = f"xdplug_test_{name.replace('-', '_')}_{abs(hash(str(tmp_path))) % 10**8}"
        dist = dist or f"xdplug-test-{name}"
        (site / f"{module}.py").write_text(textwrap.dedent(source))
        info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[xdplug]\n{name} = {module}\n")
        modules.append(module)
        return module

    yield install
    for module in modules:
        sys.modules.pop(module, None)


RAISES_AT_IMPORT = """
    raise RuntimeError("boom at import")
"""

HOOK_RAISES = """
    from xdplug import hookimpl

    @hookimpl
    def register_fusions(register):
        raise ValueError("bad hook")
"""


def fusion_class(name: str, description: str = "a test fusion"):
    return type(f"Fusion_{name}", (Fusion,), {"name": name, "description": description,
                                              "build": lambda self, dim: None})


def plugin_registering(hook: str, *classes):
    """An in-process plugin object whose ``hook`` registers ``classes``."""

    class Plugin:
        pass

    def impl(register):
        for cls in classes:
            register(cls)

    impl.__name__ = hook
    setattr(Plugin, hook, staticmethod(hookimpl(impl)))
    return Plugin()


def rows_by_name(manager) -> dict:
    return {row["name"]: row for row in manager.plugin_rows()}


# -- discovery ------------------------------------------------------------------------------

def test_builtins_are_discovered_through_entry_points(plugin_manager):
    rows = rows_by_name(plugin_manager)
    for name in BUILTINS:
        assert rows[name]["distribution"] == "xdplug"
        assert rows[name]["error"] is None
        assert rows[name]["hooks"]
    assert rows["builtin-fusions"]["hooks"] == ["register_fusions"]
    assert rows["builtin-fusions"]["module"] == "xdplug_builtin.fusions"
    assert set(plugin_manager.registry.names("fusion")) >= BUILTIN_FUSIONS
    assert {e.plugin for e in plugin_manager.registry.all("fusion") if e.name in BUILTIN_FUSIONS} == {
        "builtin-fusions"}


def test_xdplug_plugins_lists_the_builtins(plugin_manager, capsys):
    assert main(["plugins", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert set(BUILTINS) <= set(rows)
    assert {rows[name]["distribution"] for name in BUILTINS} == {"xdplug"}


def test_example_plugin_is_discovered_through_its_entry_point(plugin_manager, example_plugin):
    assert example_plugin.value == "xdplug_example"
    assert example_plugin.dist.name == "xdplug-example"
    row = rows_by_name(plugin_manager)["example"]
    assert row["distribution"] == "xdplug-example" and row["error"] is None
    assert set(row["hooks"]) == {"register_adaptations", "register_baselines", "register_datasets",
                                 "register_encoders", "register_evaluators", "register_fusions",
                                 "run_finished"}
    registry = plugin_manager.registry
    owned = {(e.kind, e.name) for e in registry.all() if e.plugin == "example"}
    assert owned == {("encoder", "example-hashed-bow"), ("fusion", "example-sum"),
                     ("adaptation", "example-warmup"), ("evaluator", "example-novelty"),
                     ("evaluator", "example-wins"), ("baseline", "example-cooc"),
                     ("baseline", "example-random"), ("dataset", "example-synthetic")}


def test_plugin_manager_fixture_is_the_tests_own_and_has_the_synthetic_recipe(plugin_manager, request):
    assert request.getfixturevalue("plugin_manager") is plugin_manager  # one per test, passed on explicitly
    assert plugin_manager.registry.entries["dataset"]["synthetic"].plugin == "builtin-datasets"


def test_plugin_manager_fixture_adds_the_synthetic_recipe_when_datasets_are_blocked(monkeypatch, request):
    monkeypatch.setenv("XDPLUG_BLOCK_PLUGINS", "builtin-datasets")
    manager = request.getfixturevalue("plugin_manager")
    assert "ml100k-genres" not in manager.registry.names("dataset")
    assert manager.registry.entries["dataset"]["synthetic"].plugin == "xdplug-testing"


# -- failure isolation ----------------------------------------------------------------------

def test_plugin_that_raises_at_import_is_a_warning_and_a_row(installed):
    installed("broken", RAISES_AT_IMPORT, dist="broken-plugin", version="1.2")
    with pytest.warns(PluginFailureWarning, match=r"'broken' failed: import failed: RuntimeError: boom at import"):
        manager = make_plugin_manager()
    row = rows_by_name(manager)["broken"]
    assert row["error"] == "import failed: RuntimeError: boom at import"
    assert (row["distribution"], row["version"]) == ("broken-plugin", "1.2")
    assert row["hooks"] == []
    assert [info.name for info in manager.failures()] == ["broken"]
    # everything else still works
    assert set(manager.registry.names("fusion")) >= BUILTIN_FUSIONS
    assert all(rows_by_name(manager)[name]["error"] is None for name in BUILTINS)


def test_xdplug_plugins_shows_the_broken_plugin(installed, capsys):
    installed("broken", RAISES_AT_IMPORT)
    with pytest.warns(PluginFailureWarning):  # the command loads its own manager
        assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    broken = [line for line in out.splitlines() if line.startswith("broken ")]
    assert broken and "import failed: RuntimeError: boom at import" in broken[0]
    assert any(line.startswith("builtin-fusions") and line.rstrip().endswith("ok") for line in out.splitlines())


def test_hook_that_raises_is_a_warning_and_a_row(installed):
    installed("hookfail", HOOK_RAISES)
    manager = make_plugin_manager()  # the module imports fine; the hook runs when the registry is built
    with pytest.warns(PluginFailureWarning, match=r"'hookfail' failed: register_fusions raised ValueError: bad hook"):
        registry = manager.registry
    assert set(registry.names("fusion")) >= BUILTIN_FUSIONS
    row = rows_by_name(manager)["hookfail"]
    assert row["error"] == "register_fusions raised ValueError: bad hook"
    assert row["hooks"] == ["register_fusions"]


def test_in_process_hook_that_raises_only_disables_that_plugin(register_plugin, plugin_manager):
    class Broken:
        @hookimpl
        def register_encoders(self, register):
            raise KeyError("nope")

    register_plugin(Broken(), name="broken-inline")
    with pytest.warns(PluginFailureWarning, match="'broken-inline' failed: register_encoders raised KeyError"):
        names = plugin_manager.registry.names("encoder")
    assert "id" in names


def test_strict_mode_raises_plugin_load_error(installed):
    installed("broken", RAISES_AT_IMPORT)
    with pytest.raises(PluginLoadError, match="'broken' failed: import failed: RuntimeError: boom at import"):
        make_plugin_manager(strict=True)


def test_strict_mode_raises_for_a_failing_hook(installed):
    installed("hookfail", HOOK_RAISES)
    manager = make_plugin_manager(strict=True)
    with pytest.raises(PluginLoadError, match="register_fusions raised ValueError: bad hook"):
        manager.registry  # noqa: B018


def test_strict_mode_from_the_environment(installed, monkeypatch):
    installed("broken", RAISES_AT_IMPORT)
    monkeypatch.setenv("XDPLUG_STRICT_PLUGINS", "1")
    with pytest.raises(PluginLoadError):
        make_plugin_manager()


def test_blocking_a_broken_plugin_recovers(installed, monkeypatch):
    installed("broken", RAISES_AT_IMPORT)
    monkeypatch.setenv("XDPLUG_BLOCK_PLUGINS", "broken")
    with warnings.catch_warnings():
        warnings.simplefilter("error", PluginFailureWarning)
        manager = make_plugin_manager(strict=True)
        assert "broken" not in rows_by_name(manager)
        assert manager.failures() == []


# -- allow and block lists ------------------------------------------------------------------

def test_load_plugins_allow_list(monkeypatch, caplog):
    monkeypatch.setenv("XDPLUG_LOAD_PLUGINS", "builtin-fusions, no-such-plugin")
    with caplog.at_level(logging.WARNING, logger="xdplug.plugins"):
        manager = make_plugin_manager()
    assert "no-such-plugin" in caplog.text and "XDPLUG_LOAD_PLUGINS" in caplog.text
    assert list(rows_by_name(manager)) == ["builtin-fusions"]
    assert set(manager.registry.names("fusion")) == BUILTIN_FUSIONS
    assert manager.registry.names("encoder") == []
    assert manager.pm.is_blocked("builtin-encoders")


def test_load_plugins_empty_loads_none(monkeypatch):
    monkeypatch.setenv("XDPLUG_LOAD_PLUGINS", "")
    manager = make_plugin_manager()
    assert manager.plugin_rows() == []
    assert all(manager.registry.names(kind) == [] for kind in HOOK_FOR_KIND)


def test_block_plugins_block_list(monkeypatch):
    monkeypatch.setenv("XDPLUG_BLOCK_PLUGINS", "builtin-fusions,builtin-datasets")
    manager = make_plugin_manager()
    rows = rows_by_name(manager)
    assert "builtin-fusions" not in rows and "builtin-datasets" not in rows
    assert "builtin-encoders" in rows
    assert not BUILTIN_FUSIONS & set(manager.registry.names("fusion"))
    assert "id" in manager.registry.names("encoder")
    with pytest.raises(UnknownComponentError, match="unknown fusion 'gate'"):
        manager.registry.get("fusion", "gate")


# -- registration ---------------------------------------------------------------------------

def test_duplicate_component_names_both_plugins(register_plugin, plugin_manager):
    register_plugin(plugin_registering("register_fusions", fusion_class("twin")), name="first-plugin")
    register_plugin(plugin_registering("register_fusions", fusion_class("twin", "another")), name="second-plugin")
    with pytest.raises(DuplicateComponentError) as info:
        plugin_manager.registry  # noqa: B018
    assert set(info.value.plugins) == {"first-plugin", "second-plugin"}
    message = str(info.value)
    assert "fusion 'twin'" in message
    assert "'first-plugin'" in message and "'second-plugin'" in message
    assert "XDPLUG_BLOCK_PLUGINS" in message


def test_duplicate_of_a_builtin_names_the_builtin_plugin(register_plugin, plugin_manager):
    register_plugin(plugin_registering("register_fusions", fusion_class("gate")), name="shadow")
    with pytest.raises(DuplicateComponentError, match="builtin-fusions") as info:
        plugin_manager.registry  # noqa: B018
    assert set(info.value.plugins) == {"builtin-fusions", "shadow"}


def test_unknown_component_lists_names_and_suggests(plugin_manager):
    with pytest.raises(UnknownComponentError) as info:
        plugin_manager.registry.get("fusion", "gaet", "strategies[0].fusion")
    message = str(info.value)
    assert message.startswith("strategies[0].fusion: unknown fusion 'gaet'.")
    assert "Did you mean 'gate'?" in message
    assert "Available fusions: concat, " in message
    for name in BUILTIN_FUSIONS:
        assert name in info.value.available
    with pytest.raises(UnknownComponentError, match=r"unknown encoder 'zzz'\. Available encoders:"):
        plugin_manager.registry.get("encoder", "zzz")


@pytest.mark.parametrize("kind, base", [("encoder", Encoder), ("fusion", Fusion), ("adaptation", Adaptation),
                                        ("evaluator", Evaluator), ("baseline", Baseline),
                                        ("dataset", DatasetRecipe)])
def test_registration_checks_the_class(kind, base):
    register = Registry().register_callback(kind, "checker")
    with pytest.raises(ComponentDefinitionError, match=f"not a subclass of xdplug.components.{base.__name__}"):
        register(type("Stranger", (), {"name": "x", "description": "y"}))
    with pytest.raises(ComponentDefinitionError, match="not a subclass"):
        register(object())
    other = Encoder if base is not Encoder else Fusion
    with pytest.raises(ComponentDefinitionError, match="not a subclass"):
        register(type("WrongKind", (other,), {"name": "x", "description": "y"}))
    with pytest.raises(ComponentDefinitionError, match="class Nameless has no 'name'"):
        register(type("Nameless", (base,), {"description": "y"}))
    with pytest.raises(ComponentDefinitionError, match=f"{kind} 'mute' has no 'description'"):
        register(type("Mute", (base,), {"name": "mute"}))
    good = type("Good", (base,), {"name": "good", "description": "fine"})
    assert register(good) is good


def test_invalid_registration_through_a_plugin_is_reported(register_plugin, plugin_manager):
    nameless = type("Nameless", (Fusion,), {"description": "no name"})
    register_plugin(plugin_registering("register_fusions", nameless), name="sloppy")
    with pytest.warns(PluginFailureWarning, match="'sloppy' failed: register_fusions raised "
                                                  "ComponentDefinitionError: .*has no 'name'"):
        plugin_manager.registry  # noqa: B018
    assert "has no 'name'" in rows_by_name(plugin_manager)["sloppy"]["error"]


def test_register_plugin_fixture_unregisters(plugin_manager, register_plugin):
    register_plugin(plugin_registering("register_fusions", fusion_class("temporary")), name="temp")
    assert "temporary" in plugin_manager.registry.names("fusion")
    plugin_manager.unregister("temp")
    assert "temporary" not in plugin_manager.registry.names("fusion")
    assert "temp" not in rows_by_name(plugin_manager)


# -- run_finished ---------------------------------------------------------------------------

RECORD = {"run_id": "abc", "method": "Pop", "seed": 1, "status": "done",
          "metrics": {"test": {"ndcg@10": 0.1}}, "error": None}


def test_run_finished_receives_the_record_and_a_raising_one_only_logs(register_plugin, plugin_manager, caplog):
    seen = []

    class Recorder:
        @hookimpl
        def run_finished(self, record):
            seen.append(record)

    class Exploding:
        @hookimpl
        def run_finished(self, record):
            raise RuntimeError("tracker down")

    class NoArguments:  # a hook implementation may take a subset of the arguments
        @hookimpl
        def run_finished(self):
            seen.append("called")

    register_plugin(Exploding(), name="exploding")
    register_plugin(Recorder(), name="recorder")
    register_plugin(NoArguments(), name="no-arguments")
    with caplog.at_level(logging.WARNING, logger="xdplug.plugins"):
        plugin_manager.notify_run_finished(RECORD)
    assert seen == [RECORD, "called"]
    assert "'exploding' run_finished hook failed: tracker down" in caplog.text


# -- one test per hook ----------------------------------------------------------------------

def _check_register_hook(kind: str, cls: type, register_plugin, plugin_manager) -> None:
    hook = HOOK_FOR_KIND[kind]
    register_plugin(plugin_registering(hook, cls), name=f"test-{kind}")
    entry = plugin_manager.registry.entries[kind][cls.name]
    assert entry.cls is cls and entry.plugin == f"test-{kind}"
    assert plugin_manager.registry.get(kind, cls.name) is cls
    assert hook in rows_by_name(plugin_manager)[f"test-{kind}"]["hooks"]


def test_hook_register_encoders(register_plugin, plugin_manager):
    cls = type("TestEncoder", (Encoder,), {"name": "test-encoder", "description": "d"})
    _check_register_hook("encoder", cls, register_plugin, plugin_manager)


def test_hook_register_fusions(register_plugin, plugin_manager):
    _check_register_hook("fusion", fusion_class("test-fusion"), register_plugin, plugin_manager)


def test_hook_register_adaptations(register_plugin, plugin_manager):
    cls = type("TestAdaptation", (Adaptation,), {"name": "test-adaptation", "description": "d"})
    _check_register_hook("adaptation", cls, register_plugin, plugin_manager)


def test_hook_register_families(register_plugin, plugin_manager):
    cls = type("TestFamily", (ModelFamily,), {"name": "test-family", "description": "d", "export": "refit"})
    _check_register_hook("family", cls, register_plugin, plugin_manager)
    assert {"embedding", "ease"} <= set(plugin_manager.registry.names("family"))


@pytest.mark.parametrize("attrs, message", [
    ({"export": "weights"}, "export must be 'state', 'refit' or None, got 'weights'"),
    ({"search_space": {"params.family.x": {"type": "uniform", "low": 0, "high": 1}}},
     "search_space path 'params.family.x' must be params.model.OPTION"),
])
def test_family_declarations_are_checked_at_registration(attrs, message):
    cls = type("BadFamily", (ModelFamily,), {"name": "bad-family", "description": "d", **attrs})
    with pytest.raises(ComponentDefinitionError, match=re.escape(message)):
        Registry().register_callback("family", "p")(cls)


def test_adaptation_families_are_checked_at_registration():
    cls = type("BadAdaptation", (Adaptation,), {"name": "bad", "description": "d", "families": "ease"})
    with pytest.raises(ComponentDefinitionError, match="families must be a non-empty set of model family names"):
        Registry().register_callback("adaptation", "p")(cls)


def test_hook_register_evaluators(register_plugin, plugin_manager):
    cls = type("TestEvaluator", (Evaluator,), {"name": "test-evaluator", "description": "d"})
    _check_register_hook("evaluator", cls, register_plugin, plugin_manager)


def test_hook_register_baselines(register_plugin, plugin_manager):
    cls = type("TestBaseline", (Baseline,), {"name": "test-baseline", "description": "d"})
    _check_register_hook("baseline", cls, register_plugin, plugin_manager)


def test_hook_register_datasets(register_plugin, plugin_manager):
    cls = type("TestRecipe", (DatasetRecipe,), {"name": "test-recipe", "description": "d"})
    _check_register_hook("dataset", cls, register_plugin, plugin_manager)


def test_hook_run_finished(register_plugin, plugin_manager):
    seen = []

    class Tracker:
        @hookimpl
        def run_finished(self, record):
            seen.append(record["run_id"])

    register_plugin(Tracker(), name="tracker")
    plugin_manager.notify_run_finished(RECORD)
    assert seen == ["abc"]
    assert rows_by_name(plugin_manager)["tracker"]["hooks"] == ["run_finished"]


def test_hook_report_written(register_plugin, plugin_manager, caplog):
    seen = []

    class Uploader:
        @hookimpl
        def report_written(self, paths, config):
            seen.append((paths["json"], config["name"]))

    class Exploding:
        @hookimpl
        def report_written(self):
            raise RuntimeError("upload failed")

    register_plugin(Exploding(), name="exploding")
    register_plugin(Uploader(), name="uploader")
    with caplog.at_level(logging.WARNING, logger="xdplug.plugins"):
        plugin_manager.notify_report_written({"json": "report.json"}, {"name": "quick"})
    assert seen == [("report.json", "quick")]
    assert "'exploding' report_written hook failed: upload failed" in caplog.text
    assert rows_by_name(plugin_manager)["uploader"]["hooks"] == ["report_written"]


def test_run_finished_passes_the_config_to_an_implementation_that_takes_it(register_plugin, plugin_manager):
    seen = []

    class Tracker:
        @hookimpl
        def run_finished(self, record, config):
            seen.append((record["run_id"], config["name"]))

    register_plugin(Tracker(), name="tracker")
    plugin_manager.notify_run_finished(RECORD, {"name": "quick"})
    assert seen == [("abc", "quick")]


def test_plugin_hooks_have_tests():
    """datasette's rule: every hook in the spec has a ``test_hook_<name>`` here."""
    manager = make_plugin_manager(load_entrypoints=False)
    hooks = [name for name in dir(manager.pm.hook) if not name.startswith("_")]
    assert hooks, "no hooks found"
    missing = [name for name in hooks if f"test_hook_{name}" not in globals()]
    assert not missing, f"hooks without a test_hook_<name> test: {missing}"


@pytest.mark.parametrize("attrs, message", [
    ({"directions": {"gini": "smaller"}}, "directions must map metric families to 'higher' or 'lower'"),
    ({"slices": {"cold": 3}}, "slices must map slice labels to a one-line description"),
    ({"slices": {"cold": "c"}, "cold_slice": "warm"}, "cold_slice 'warm' is not one of its slices"),
])
def test_evaluator_declarations_are_checked_at_registration(attrs, message):
    cls = type("BadEvaluator", (Evaluator,), {"name": "bad-evaluator", "description": "d", **attrs})
    with pytest.raises(ComponentDefinitionError, match=re.escape(message)):
        Registry().register_callback("evaluator", "p")(cls)
