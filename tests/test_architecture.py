"""The shape of xdplug/: imports run one way, the core knows no plugin, no module grows too big.

An ``ast`` walk over every module of ``xdplug/``, counting imports at module level and
inside functions alike (a function-level import is still a dependency). ``from pkg import
name`` depends on ``pkg.name`` where that is a module, else on ``pkg`` itself.
"""

from __future__ import annotations

import ast
import collections
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "xdplug"
PLUGIN_PACKAGES = ("xdplug_builtin", "xdplug_datasets")
MAX_LINES = 600


def modules() -> dict[str, Path]:
    out = {}
    for file in sorted(ROOT.rglob("*.py")):
        parts = file.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = file
    return out


def imported(name: str, file: Path, mods: dict, tree: ast.AST | None = None) -> list[tuple[str, str]]:
    """``(written, depended on)`` for every import in ``file`` (or its parsed ``tree``), wherever the statement is.

    ``from pkg import name`` depends on ``pkg.name`` where that is a module, else on ``pkg``.
    """
    package = name if file.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree if tree is not None else ast.parse(file.read_text(), str(file))):
        if isinstance(node, ast.Import):
            found += [(alias.name, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                full = f"{target}.{alias.name}"
                found.append((full, full if full in mods else target))
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    edges: dict[str, set[str]] = collections.defaultdict(set)
    for name, file in mods.items():
        for _, target in imported(name, file, mods):
            while target and target not in mods:
                target = target.rpartition(".")[0]
            if target and target != name:
                edges[name].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycles():
    found = cycles(graph())
    assert not found, "import cycles in xdplug/ (module- and function-level imports):\n" + "\n".join(
        " <-> ".join(c) for c in found)


def test_the_core_never_imports_a_plugin():
    offenders = []
    for name, file in modules().items():
        for target, _ in imported(name, file, {}):
            if target.split(".")[0] in PLUGIN_PACKAGES:
                offenders.append(f"{name} imports {target}")
        text = file.read_text()
        offenders += [f"{name} names {p}" for p in PLUGIN_PACKAGES if p in text]
    assert not offenders, "\n".join(sorted(set(offenders)))


def test_no_module_over_the_line_limit():
    big = {name: n for name, file in modules().items() if (n := len(file.read_text().splitlines())) > MAX_LINES}
    assert not big, f"modules over {MAX_LINES} lines: {big}"


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


# -- the layer order of docs/architecture.md ---------------------------------------------

#: docs/architecture.md's layers, lowest first: a module imports only from its own layer or a lower one
LAYERS = {  # (progress, npzfile, tasks, names, controls, configfile, serve: modules of other branches, named ahead)
    "leaves": ("errors", "options", "paths", "tempdirs", "version", "frozen", "identity", "metrics", "progress",
               "npzfile", "tasks", "names", "controls", "atomicfile"),
    "plugin contract": ("hookspecs", "components", "spec", "spaces", "stages", "registry", "plugins"),
    "data": ("data", "textcache"),
    "configuration": ("config", "configfile"),
    "training contract": ("context", "evaluation", "recbole"),
    "models": ("model",),
    # the runner writes the report when a grid finishes, the report reads engine.plan's run IDs:
    # one layer (imports inside it are held by the cycle test)
    "engine": ("engine", "store", "report"),
    "serving": ("artifact", "weights"),
    "entry points": ("cli", "cli_common", "cli_artifacts", "api", "testing", "benchmark", "serve", ""),
}


def layer_of(module: str) -> int:
    """The index in :data:`LAYERS` of ``xdplug.<first part>`` (``xdplug`` itself: the entry points)."""
    head = module.split(".")[1] if "." in module else ""
    for i, heads in enumerate(LAYERS.values()):
        if head in heads:
            return i
    raise AssertionError(f"{module} is in no layer of tests/test_architecture.py LAYERS (and docs/architecture.md)")


def runtime_graph() -> dict[str, set[str]]:
    """:func:`graph` without the imports under ``if TYPE_CHECKING:`` (annotations only, never executed)."""
    mods = modules()
    edges: dict[str, set[str]] = collections.defaultdict(set)
    for name, file in mods.items():
        tree = ast.parse(file.read_text(), str(file))
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING":
                node.body = []
        for _, target in imported(name, file, mods, tree):
            while target and target not in mods:
                target = target.rpartition(".")[0]
            if target and target != name:
                edges[name].add(target)
    return edges


def test_every_module_has_a_layer():
    for name in modules():
        layer_of(name)


def test_imports_run_down_the_layers():
    """Module- and function-level imports alike: a module never imports from a layer above its own."""
    names = list(LAYERS)
    upward = [f"{m} ({names[layer_of(m)]}) imports {t} ({names[layer_of(t)]})"
              for m, targets in sorted(runtime_graph().items()) for t in sorted(targets)
              if t.startswith("xdplug") and layer_of(t) > layer_of(m)]
    assert not upward, "imports against the layer order of docs/architecture.md:\n" + "\n".join(upward)


def test_the_layer_check_sees_function_level_imports(tmp_path, monkeypatch):
    """A function-level import upwards counts: the check is not fooled by hiding it in a function."""
    (tmp_path / "xdplug" / "data").mkdir(parents=True)
    (tmp_path / "xdplug" / "__init__.py").write_text("")
    (tmp_path / "xdplug" / "data" / "__init__.py").write_text("")
    (tmp_path / "xdplug" / "data" / "prepare.py").write_text("def f():\n    from ..config import DEFAULTS\n")
    (tmp_path / "xdplug" / "config.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                                   "    from .model import x\n")
    (tmp_path / "xdplug" / "model.py").write_text("")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path / "xdplug")
    edges = runtime_graph()
    assert edges["xdplug.data.prepare"] == {"xdplug.config"} and "xdplug.model" not in edges.get("xdplug.config", ())


def test_importing_the_config_imports_no_torch():
    """``xdplug.config`` (and the registry it validates against) is light: no torch, no RecBole."""
    code = ("import sys, xdplug.config, xdplug.registry, xdplug.spec; "
            "print(sorted(m for m in ('torch', 'recbole', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]", out.stdout


#: (module, name) pairs left for now (none)
KNOWN_NAMES: set[tuple[str, str]] = set()


def test_the_core_names_no_builtin_adaptation_or_family():
    """No string in ``xdplug/`` outside docstrings is the name of a built-in adaptation or model family
    (the default family's name, a default value, aside): the core dispatches on declarations."""
    from xdplug.components import DEFAULT_FAMILY
    from xdplug.plugins import make_plugin_manager

    registry = make_plugin_manager().registry
    names = {e.name for kind in ("adaptation", "family") for e in registry.all(kind)
             if e.plugin.startswith("builtin-")} - {DEFAULT_FAMILY}
    assert {"ease", "joint", "l2sp", "target-only", "zero-shot"} <= names
    found = []
    for module, file in modules().items():
        tree = ast.parse(file.read_text(), str(file))
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                      and node.body and isinstance(node.body[0], ast.Expr)}
        found += [f"{module}:{node.lineno} {node.value!r}" for node in ast.walk(tree)
                  if isinstance(node, ast.Constant) and node.value in names and id(node) not in docstrings
                  and (module, node.value) not in KNOWN_NAMES]
    assert not found, "built-in component names in the core:\n" + "\n".join(found)


def test_no_function_falls_back_to_a_global_plugin_manager():
    """The registry is passed: ``xdplug.plugins`` keeps no process-wide manager, and no module of the
    core (nor ``xdplug.api``, which plugins import) holds a manager or registry at module level."""
    import xdplug.plugins as plugins

    assert not {"get_plugins", "set_plugins", "_default"} & set(vars(plugins)), "a process-wide manager is back"
    found = []
    for module, file in modules().items():
        tree = ast.parse(file.read_text(), str(file))
        found += [f"{module}:{node.lineno} imports {alias.name}" for node in ast.walk(tree)
                  if isinstance(node, ast.ImportFrom) for alias in node.names
                  if alias.name in ("get_plugins", "set_plugins", "registered", "registered_names")]
        for node in tree.body:  # module-level state: a manager or a registry built at import
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Call):
                called = ast.unparse(node.value.func)
                if called.endswith(("make_plugin_manager", "Plugins", "Registry", "installed_registry")):
                    found.append(f"{module}:{node.lineno} builds {called}() at import")
    assert not found, "a global plugin manager in the core:\n" + "\n".join(found)


def test_the_api_exports_what_plugins_use_and_no_engine_internals():
    """Every name of ``xdplug.api`` is imported by a plugin (``plugins/``, ``datasets/``) or named in the plugin docs,
    and none is defined in the engine, artifact, report or command-line layers."""
    import xdplug.api as api

    repo = ROOT.parent
    used = set()
    for file in [*(repo / "plugins").rglob("*.py"), *(repo / "datasets").rglob("*.py")]:
        tree = ast.parse(file.read_text(), str(file))
        used |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                 and node.module == "xdplug.api" for alias in node.names}
    docs = "".join((repo / "docs" / name).read_text() for name in ("plugin_authors.md", "plugin_hooks.md"))
    named = set(re.findall(r"`(?:\w+\.)*(\w+)", docs))
    unused = [name for name in api.__all__ if name not in used and name not in named]
    assert not unused, f"xdplug.api exports names no plugin imports and the plugin docs never name: {unused}"
    internal = [name for name in api.__all__ if (getattr(getattr(api, name), "__module__", "") or "").startswith(
        ("xdplug.engine", "xdplug.artifact", "xdplug.report", "xdplug.cli", "xdplug.plugins", "xdplug.registry"))]
    assert not internal, f"xdplug.api exports engine internals: {internal}"
