"""The docs keep up with the code: every hook, every config key, every example runs."""

from __future__ import annotations

import json
import re
import types
from pathlib import Path

import pytest
import torch

from xdplug.config import DEFAULTS, SCHEMA, _describe
from xdplug.plugins import make_plugin_manager

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
HOOKS_DOC = DOCS / "plugin_hooks.md"
CONFIG_DOC = DOCS / "configuration.md"
AUTHORS_DOC = DOCS / "plugin_authors.md"
EXAMPLE_README = ROOT / "plugins" / "xdplug-example" / "README.md"


def hook_names() -> list[str]:
    pm = make_plugin_manager(load_entrypoints=False).pm
    return [name for name in dir(pm.hook) if not name.startswith("_")]


def hook_signature(name: str) -> str:
    pm = make_plugin_manager(load_entrypoints=False).pm
    return f"{name}({', '.join(getattr(pm.hook, name).spec.argnames)})"


def sections(text: str) -> dict[str, str]:
    """``## heading`` -> the section's text."""
    parts = re.split(r"^## ", text, flags=re.MULTILINE)[1:]
    return {part.split("\n", 1)[0].strip(): part.split("\n", 1)[1] for part in parts}


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


# -- hooks ------------------------------------------------------------------------------

@pytest.mark.parametrize("hook", hook_names())
def test_plugin_hooks_are_documented(hook):
    """datasette's rule: a heading with the hook's signature (from the pluggy spec's argnames)."""
    headings = sections(HOOKS_DOC.read_text())
    assert hook_signature(hook) in headings, f"docs/plugin_hooks.md needs a heading '## {hook_signature(hook)}'"


def test_hook_docs_have_no_stale_sections():
    documented = {heading.split("(")[0] for heading in sections(HOOKS_DOC.read_text())}
    assert documented == set(hook_names())


@pytest.fixture
def doc_plugin(register_plugin, plugin_manager):
    """``doc_plugin(hook)``: run the hook section's example as a plugin module."""

    def load(hook: str) -> types.ModuleType:
        section = sections(HOOKS_DOC.read_text())[hook_signature(hook)]
        blocks = python_blocks(section)
        assert len(blocks) == 1, f"the {hook} section needs exactly one complete python example"
        module = types.ModuleType(f"doc_example_{hook}")
        exec(compile(blocks[0], f"docs/plugin_hooks.md ({hook})", "exec"), module.__dict__)
        register_plugin(module, name=f"doc-{hook}")
        assert not plugin_manager.failures(), [f.error for f in plugin_manager.failures()]
        return module

    return load


def _registered(plugin_manager, kind: str, hook: str) -> type:
    entries = [e for e in plugin_manager.registry.all(kind) if e.plugin == f"doc-{hook}"]
    assert len(entries) == 1, f"the {hook} example must register one {kind}"
    return entries[0].cls


def test_encoder_example_runs(doc_plugin, plugin_manager):
    from xdplug.testing import check_encoder

    doc_plugin("register_encoders")
    check_encoder(_registered(plugin_manager, "encoder", "register_encoders"))


def test_fusion_example_runs(doc_plugin, plugin_manager):
    from xdplug.testing import check_fusion

    doc_plugin("register_fusions")
    check_fusion(_registered(plugin_manager, "fusion", "register_fusions"))


def test_adaptation_example_runs(doc_plugin, plugin_manager):
    from xdplug.testing import check_adaptation

    doc_plugin("register_adaptations")
    check_adaptation(_registered(plugin_manager, "adaptation", "register_adaptations"))


def test_family_example_runs(doc_plugin, plugin_manager, fit_context):
    """The example family and its adaptation fit a strategy; an adaptation that does not list it is refused."""
    from xdplug.errors import ConfigError
    from xdplug.model.strategy import fit_strategy
    from xdplug.testing import check_family

    doc_plugin("register_families")
    check_family(_registered(plugin_manager, "family", "register_families"))
    entry = {"encoder": "id", "fusion": "id", "adaptation": "doc-pooled", "params": {"model": {"family": "doc-popularity"}}}
    data = fit_context.data
    scores = fit_strategy(entry, plugin_manager.registry, fit_context).score(torch.arange(3))
    assert scores.shape == (3, data.n_target_items) and bool((scores[0] == scores[1]).all())
    with pytest.raises(ConfigError, match="'target-only' does not run in params.model.family: doc-popularity"):
        fit_strategy(dict(entry, adaptation="target-only"), plugin_manager.registry, fit_context)


def test_evaluator_example_runs(doc_plugin, plugin_manager):
    from xdplug.testing import check_evaluator

    doc_plugin("register_evaluators")
    check_evaluator(_registered(plugin_manager, "evaluator", "register_evaluators"))


def test_baseline_example_runs(doc_plugin, plugin_manager, synthetic_data, tmp_path):
    from xdplug.testing import check_baseline

    doc_plugin("register_baselines")
    check_baseline(_registered(plugin_manager, "baseline", "register_baselines"), data=synthetic_data,
                   workdir=tmp_path)


def test_dataset_example_runs(doc_plugin, plugin_manager):
    from xdplug.testing import check_dataset

    doc_plugin("register_datasets")
    check_dataset(_registered(plugin_manager, "dataset", "register_datasets"))


def test_run_finished_example_runs(doc_plugin, plugin_manager, tmp_path, monkeypatch):
    doc_plugin("run_finished")
    log = tmp_path / "tracker.jsonl"
    monkeypatch.setenv("DOC_TRACKER_FILE", str(log))
    plugin_manager.notify_run_finished({"run_id": "r1", "method": "Pop", "seed": 1, "status": "done"})
    assert json.loads(log.read_text()) == {"run_id": "r1", "method": "Pop", "seed": 1, "status": "done"}


def test_report_written_example_runs(doc_plugin, plugin_manager, tmp_path, monkeypatch):
    doc_plugin("report_written")
    report = tmp_path / "report.md"
    report.write_text("# a report\n")
    monkeypatch.setenv("DOC_REPORT_COPIES", str(tmp_path / "copies"))
    plugin_manager.notify_report_written({"markdown": report}, {"name": "doc"})
    assert (tmp_path / "copies" / "doc" / "report.md").read_text() == "# a report\n"


# -- config keys ------------------------------------------------------------------------

def schema_keys() -> list[tuple[str, object, object]]:
    """(dotted path, schema node, default or KeyError) for every key and sub-key of SCHEMA."""
    out = []

    def walk(node, path, defaults):
        if isinstance(node, dict):
            for key, sub in node.items():
                full = f"{path}.{key}" if path else key
                default = defaults.get(key, KeyError) if isinstance(defaults, dict) else KeyError
                out.append((full, sub, default))
                walk(sub, full, default)
        elif isinstance(node, tuple) and node and node[0] == "list" and isinstance(node[1], dict):
            walk(node[1], f"{path}[]", KeyError)

    walk(SCHEMA, "", DEFAULTS)
    return out


def documented_rows() -> dict[str, list[str]]:
    rows = {}
    for line in CONFIG_DOC.read_text().splitlines():
        match = re.match(r"^\| `([^`]+)` \|(.*)\|\s*$", line)
        if match:
            assert match.group(1) not in rows, f"{match.group(1)} is documented twice"
            rows[match.group(1)] = [cell.strip() for cell in match.group(2).split(" | ")]
    return rows


def expected_type(node) -> str:
    if isinstance(node, dict):
        return "mapping"
    if isinstance(node, tuple) and node and node[0] == "list" and isinstance(node[1], dict):
        return "a list of mappings"
    return _describe(node)


def expected_default(node, default) -> str:
    if default is KeyError or isinstance(node, dict):
        return "—"
    return f"`{json.dumps(default)}`"


@pytest.mark.parametrize("path, node, default", schema_keys(), ids=[k[0] for k in schema_keys()])
def test_config_keys_are_documented(path, node, default):
    rows = documented_rows()
    assert path in rows, f"docs/configuration.md needs a table row for `{path}`"
    type_, shown_default, meaning = rows[path][:3]
    assert type_ == expected_type(node), f"{path}: documented type {type_!r}"
    assert shown_default == expected_default(node, default), f"{path}: documented default {shown_default!r}"
    assert meaning, f"{path}: say what it means"


def builtin_family_options() -> dict:
    """``params.model`` option -> its declaration, over the built-in model families."""
    from xdplug.components import declared_options

    families = [e for e in make_plugin_manager().registry.all("family") if e.plugin.startswith("builtin-")]
    assert {e.name for e in families} >= {"embedding", "ease"}
    return {key: option for e in families for key, option in declared_options(e.cls).items()}


def test_model_options_are_documented():
    rows = documented_rows()
    assert rows["strategies[].params.model.family"][2], "say what params.model.family means"
    for key, option in builtin_family_options().items():
        path = f"strategies[].params.model.{key}"
        assert path in rows, f"docs/configuration.md needs a row for `{path}`"
        type_, shown_default, meaning = rows[path][:3]
        assert type_ == option.describe() and shown_default == f"`{json.dumps(option.default)}`", path
        assert meaning


def test_no_stale_config_rows():
    known = {path for path, _, _ in schema_keys()}
    known |= {f"strategies[].params.model.{key}" for key in ["family", *builtin_family_options()]}
    assert set(documented_rows()) <= known


# -- the plugin author's guide ----------------------------------------------------------

def test_authors_guide_covers_the_api():
    from xdplug import components, testing

    text = AUTHORS_DOC.read_text()
    for name in ("XDPLUG_LOAD_PLUGINS", "XDPLUG_BLOCK_PLUGINS", "XDPLUG_STRICT_PLUGINS=1", "XDPLUG_HOME",
                 "PluginFailureWarning", "PluginLoadError", "DuplicateComponentError", "pytest11",
                 "[project.entry-points.xdplug]"):
        assert name in text, name
    for fixture in ("xdplug_home", "plugin_manager", "register_plugin", "synthetic_data", "fit_context",
                    "tiny_config"):
        assert f"`{fixture}`" in text, fixture
    for name in testing.__all__:
        if name.endswith("Contract") or name.startswith("check_") and name != "check_component":
            assert f"`{name}" in text, name
    for base in ("Encoder", "Fusion", "Adaptation", "ModelFamily", "Evaluator", "Baseline", "DatasetRecipe"):
        cls = getattr(components, base)
        assert f"`{base}`" in text, base
        for method in vars(cls):
            if callable(getattr(cls, method)) and not method.startswith("_"):
                assert f"`{method}(" in text, f"{base}.{method}"


@pytest.mark.parametrize("doc", [HOOKS_DOC, CONFIG_DOC, AUTHORS_DOC, EXAMPLE_README], ids=lambda p: p.name)
def test_relative_links_resolve(doc):
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", doc.read_text()):
        if "://" in target:
            continue
        assert (doc.parent / target).exists(), f"{doc.name} links to missing {target}"


# -- README and docs: every recipe named exists, every command runs in a fresh shell ----------

README = ROOT / "README.md"
COMMAND_DOCS = [README, *sorted(DOCS.glob("*.md"))]
#: commands that live in the virtual environment, not on a fresh shell's PATH
VENV_COMMANDS = ("xdplug", "python")


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced block, in order."""
    return re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


def readme_recipes() -> set[str]:
    """The recipes the README names: its dataset table's first column and every ``recipe:`` in a block."""
    text = README.read_text()
    names = set(re.findall(r"^\| `([^`]+)`", sections(text)["Datasets"], flags=re.MULTILINE))
    for _, body in fenced_blocks(text):
        names |= set(re.findall(r"^\s*recipe:\s*([\w.-]+)", body, flags=re.MULTILINE))
    return names


def test_every_readme_recipe_is_registered():
    registered = set(make_plugin_manager().registry.names("dataset"))
    named = readme_recipes()
    assert {"ml100k-genres", "amazon", "amazon2023", "douban", "files"} <= named  # the parser finds them
    assert named <= registered, f"the README names unregistered recipes: {sorted(named - registered)}"


def shell_commands(block: str) -> list[tuple[str, bool]]:
    """(command line, whether a ``source X/bin/activate`` came before it in the block) per simple
    command: comments dropped, split at ``&&``, ``||``, ``;`` and ``|``, leading ``VAR=value`` skipped."""
    import shlex

    out, activated = [], False
    for line in block.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        command: list[str] = []
        for token in [*lexer, ";"]:
            if token and set(token) <= set("&|;"):
                while command and re.match(r"^[A-Za-z_]\w*=", command[0]):
                    command.pop(0)
                if command[:1] in (["source"], ["."]) and command[1:2] and command[1].endswith("/bin/activate"):
                    activated = True
                elif command:
                    out.append((" ".join(command), activated))
                command = []
            else:
                command.append(token)
    return out


def test_shell_commands_parser():
    block = ("python -m a  # comment\nX=1 xdplug run c.yaml && .venv/bin/xdplug plugins | grep ok\n"
             "# a comment line\n. /opt/v/bin/activate\npython3.11 -m venv v; xdplug run 'a b.yaml'\n")
    assert shell_commands(block) == [
        ("python -m a", False), ("xdplug run c.yaml", False), (".venv/bin/xdplug plugins", False),
        ("grep ok", False), ("python3.11 -m venv v", True), ("xdplug run a b.yaml", True)]


@pytest.mark.parametrize("doc", COMMAND_DOCS, ids=lambda p: p.name)
def test_commands_name_the_virtual_environment(doc):
    """A fresh shell has no ``xdplug`` and no project ``python`` on its PATH: every such command in a
    bash block is written ``.venv/bin/...`` (what ``scripts/setup.sh`` makes) or follows an explicit
    ``source .../bin/activate`` line of the same block."""
    bare = []
    for lang, body in fenced_blocks(doc.read_text()):
        if lang not in ("bash", "sh", "shell", "console"):
            continue
        for command, activated in shell_commands(body):
            if command.split()[0] in VENV_COMMANDS and not activated:
                bare.append(command)
    assert not bare, (f"{doc.name}: write these as .venv/bin/... (or activate the environment first in the "
                      f"same block): {bare}")
