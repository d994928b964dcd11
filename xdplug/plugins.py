"""The plugin manager: discovery, allow/block lists, failure isolation, registries.

Every plugin, built-in or third-party, is an entry point in the group
``xdplug``. Each entry point is loaded on its own and each ``register_*`` hook
is called plugin by plugin, so one broken plugin becomes a warning and a row
in ``xdplug plugins`` instead of taking the CLI down.

Environment:

``XDPLUG_LOAD_PLUGINS``
    comma-separated entry-point names; only these load (``""`` loads none).
``XDPLUG_BLOCK_PLUGINS``
    comma-separated entry-point names that never load.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import logging
import os
import warnings
from dataclasses import dataclass, field

import pluggy

import xdplug.hookspecs as hookspecs  # the module itself: pluggy reads its specs
from .errors import DuplicateComponentError, PluginLoadError
from .registry import HOOK_FOR_KIND, Registry

logger = logging.getLogger(__name__)

HOOK_NAMES = sorted(name for name in dir(hookspecs) if name.startswith(("register_", "run_", "report_")))

GROUP = "xdplug"
#: failures that keep a plugin out for good (the others are recorded afresh per registry build)
LOAD_FAILURES = ("import failed", "unknown hook")
LOAD_ENV = "XDPLUG_LOAD_PLUGINS"
BLOCK_ENV = "XDPLUG_BLOCK_PLUGINS"


@dataclass
class PluginInfo:
    name: str
    module: str
    distribution: str | None = None
    version: str | None = None
    hooks: list[str] = field(default_factory=list)
    error: str | None = None

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "module": self.module,
            "distribution": self.distribution,
            "version": self.version,
            "hooks": sorted(self.hooks),
            "error": self.error,
        }


class PluginFailureWarning(UserWarning):
    """A plugin could not be imported or one of its hooks raised."""


def _env_list(name: str) -> list[str] | None:
    value = os.environ.get(name)
    if value is None:
        return None
    return [part.strip() for part in value.split(",") if part.strip()]


class Plugins:
    """A pluggy manager plus the component registry it produced."""

    def __init__(self, strict: bool = False):
        self.strict = strict
        self.pm = pluggy.PluginManager(GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.info: dict[str, PluginInfo] = {}
        self._registry: Registry | None = None

    # -- loading -------------------------------------------------------------
    def load_entrypoints(self) -> None:
        allow = _env_list(LOAD_ENV)
        block = set(_env_list(BLOCK_ENV) or [])
        if allow is not None:
            available = {ep.name for ep in importlib.metadata.entry_points(group=GROUP)}
            for name in allow:
                if name not in available:
                    logger.warning("%s names %r, but no such plugin is installed", LOAD_ENV, name)
        for ep in sorted(importlib.metadata.entry_points(group=GROUP), key=lambda e: e.name):
            if ep.name in block or (allow is not None and ep.name not in allow):
                self.pm.set_blocked(ep.name)
                continue
            if ep.name in self.info:
                continue
            dist = getattr(ep, "dist", None)
            info = PluginInfo(
                name=ep.name,
                module=ep.value,
                distribution=dist.name if dist else None,
                version=dist.version if dist else None,
            )
            self.info[ep.name] = info
            try:
                module = ep.load()
                self.pm.register(module, name=ep.name)
            except Exception as exc:  # a broken plugin must not take the engine down
                self._fail(info, f"import failed: {type(exc).__name__}: {exc}")
        self.check_pending()

    def check_pending(self) -> None:
        """A hook implementation that matches no hook (a misspelled name) fails its plugin.

        pluggy's ``check_pending`` raises on the first such implementation; each one
        becomes a recorded failure of its plugin (which is unregistered, so none of its
        hooks run half-way), and strict mode raises.
        """
        while True:
            try:
                self.pm.check_pending()
                return
            except pluggy.PluginValidationError as exc:
                name = self.pm.get_name(exc.plugin) or repr(exc.plugin)
                hooks = sorted({caller.name for caller in (self.pm.get_hookcallers(exc.plugin) or [])
                                if not caller.has_spec()}) or [str(exc)]
                close = [difflib.get_close_matches(h, HOOK_NAMES, n=1) for h in hooks]
                hints = "".join(f" ({h!r}: did you mean {c[0]!r}?)" for h, c in zip(hooks, close) if c)
                self.pm.unregister(exc.plugin)
                info = self.info.setdefault(name, PluginInfo(name, getattr(exc.plugin, "__name__", repr(exc.plugin))))
                self._fail(info, f"unknown hook {', '.join(hooks)}{hints}; "
                                 f"xdplug's hooks are {', '.join(HOOK_NAMES)}")

    def register(self, plugin: object, name: str, version: str | None = None) -> None:
        """Register an in-process plugin object (tests, notebooks); its hook names are checked at once."""
        self.pm.register(plugin, name=name)
        self.info[name] = PluginInfo(name=name, module=getattr(plugin, "__name__", repr(plugin)),
                                     version=version)
        self._registry = None
        self.check_pending()

    def unregister(self, name: str) -> None:
        self.pm.unregister(name=name)
        self.info.pop(name, None)
        self._registry = None

    def _fail(self, info: PluginInfo, message: str) -> None:
        info.error = message if info.error is None else f"{info.error}; {message}"
        text = f"xdplug plugin {info.name!r} failed: {message}"
        if self.strict:
            raise PluginLoadError(text)
        warnings.warn(text, PluginFailureWarning, stacklevel=3)

    # -- registries ----------------------------------------------------------
    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = self._build_registry()
        return self._registry

    def _build_registry(self) -> Registry:
        registry = Registry()
        for info in self.info.values():  # hook failures are recorded afresh on each rebuild
            if info.error and not info.error.startswith(LOAD_FAILURES):
                info.error = None
        for kind, hook_name in HOOK_FOR_KIND.items():
            hook = getattr(self.pm.hook, hook_name)
            for impl in hook.get_hookimpls():
                plugin_name = impl.plugin_name
                info = self.info.setdefault(plugin_name, PluginInfo(plugin_name, repr(impl.plugin)))
                if info.error and info.error.startswith(LOAD_FAILURES):
                    continue
                kwargs = {}
                if "register" in impl.argnames:
                    kwargs["register"] = registry.register_callback(kind, plugin_name)
                try:
                    impl.function(**kwargs)
                except DuplicateComponentError:
                    raise
                except Exception as exc:
                    self._fail(info, f"{hook_name} raised {type(exc).__name__}: {exc}")
        for name, info in self.info.items():
            plugin = self.pm.get_plugin(name)
            if plugin is not None:
                info.hooks = sorted(
                    caller.name for caller in (self.pm.get_hookcallers(plugin) or [])
                )
        return registry

    def plugin_rows(self) -> list[dict]:
        self.registry  # noqa: B018 - hook failures are recorded while building it
        return [self.info[name].as_dict() for name in sorted(self.info)]

    def failures(self) -> list[PluginInfo]:
        self.registry  # noqa: B018
        return [info for info in self.info.values() if info.error]

    # -- per-run hooks -------------------------------------------------------
    def notify_run_finished(self, record: dict, config: dict | None = None) -> None:
        self._notify("run_finished", record=record, config=config)

    def notify_report_written(self, paths: dict, config: dict) -> None:
        self._notify("report_written", paths=paths, config=config)

    def _notify(self, hook_name: str, **kwargs) -> None:
        """Call every implementation with the arguments it takes; one that raises is a logged warning."""
        for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
            try:
                impl.function(**{k: v for k, v in kwargs.items() if k in impl.argnames})
            except Exception as exc:
                logger.warning("plugin %r %s hook failed: %s", impl.plugin_name, hook_name, exc)


def make_plugin_manager(load_entrypoints: bool = True, strict: bool | None = None) -> Plugins:
    """A fresh manager; with ``load_entrypoints`` it discovers installed plugins.

    There is no process-wide manager: the CLI and the public entry points each build one
    and pass its registry down, so a test's or an application's plugins are the ones a run
    sees. ``strict`` defaults to ``XDPLUG_STRICT_PLUGINS=1``.
    """
    if strict is None:
        strict = os.environ.get("XDPLUG_STRICT_PLUGINS") == "1"
    plugins = Plugins(strict=strict)
    if load_entrypoints:
        plugins.load_entrypoints()
    return plugins


def installed_registry(registry=None) -> Registry:
    """``registry``, or where a public entry point got none, the registry of a fresh manager
    loaded from the installed plugins (never a shared one)."""
    return registry if registry is not None else make_plugin_manager().registry
