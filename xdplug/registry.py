"""Registries of components, one per kind, filled by the ``register_*`` hooks.

Each entry remembers the plugin that registered it, so a duplicate name is an
error naming both plugins and ``xdplug components`` can show ownership.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import components
from .errors import ComponentDefinitionError, DuplicateComponentError, UnknownComponentError

BASE_CLASSES: dict[str, type[components.Component]] = {
    "encoder": components.Encoder,
    "fusion": components.Fusion,
    "adaptation": components.Adaptation,
    "evaluator": components.Evaluator,
    "baseline": components.Baseline,
    "dataset": components.DatasetRecipe,
}

HOOK_FOR_KIND = {
    "encoder": "register_encoders",
    "fusion": "register_fusions",
    "adaptation": "register_adaptations",
    "evaluator": "register_evaluators",
    "baseline": "register_baselines",
    "dataset": "register_datasets",
}


@dataclass(frozen=True)
class Entry:
    kind: str
    name: str
    cls: type
    plugin: str

    @property
    def description(self) -> str:
        return self.cls.description


@dataclass
class Registry:
    """All registered components, by kind and name."""

    entries: dict[str, dict[str, Entry]] = field(
        default_factory=lambda: {kind: {} for kind in BASE_CLASSES}
    )

    def register_callback(self, kind: str, plugin: str):
        """A ``register(cls)`` callback for one plugin and one kind (a fresh closure per call)."""
        base = BASE_CLASSES[kind]

        def register(cls):
            if not isinstance(cls, type) or not issubclass(cls, base):
                raise ComponentDefinitionError(
                    f"plugin {plugin!r} registered {cls!r} as a {kind}, but it is not a "
                    f"subclass of xdplug.components.{base.__name__}"
                )
            if not cls.name or not isinstance(cls.name, str):
                raise ComponentDefinitionError(
                    f"plugin {plugin!r}: {kind} class {cls.__name__} has no 'name'"
                )
            if not cls.description:
                raise ComponentDefinitionError(
                    f"plugin {plugin!r}: {kind} {cls.name!r} has no 'description'"
                )
            _check_declarations(cls, plugin)
            existing = self.entries[kind].get(cls.name)
            if existing is not None:
                raise DuplicateComponentError(kind, cls.name, existing.plugin, plugin)
            self.entries[kind][cls.name] = Entry(kind, cls.name, cls, plugin)
            return cls

        return register

    def names(self, kind: str) -> list[str]:
        return sorted(self.entries[kind])


    def get(self, kind: str, name: str, path: str | None = None) -> type:
        """The class registered as ``name``; an unknown name lists the available ones."""
        try:
            return self.entries[kind][name].cls
        except KeyError:
            raise UnknownComponentError(kind, name, self.names(kind), path) from None

    def all(self, kind: str | None = None) -> list[Entry]:
        kinds = [kind] if kind else list(BASE_CLASSES)
        return [self.entries[k][n] for k in kinds for n in sorted(self.entries[k])]


def _check_declarations(cls, plugin: str) -> None:
    """Option declarations are checked when a component registers, not when a run uses it."""
    from .components import declared_options
    from .errors import ConfigError

    if not isinstance(getattr(cls, "defaults", None), dict):
        raise ComponentDefinitionError(f"plugin {plugin!r}: {cls.kind} {cls.name!r}: 'defaults' must be a dict")
    for key, option in declared_options(cls).items():
        if not isinstance(key, str) or not key.isidentifier():
            raise ComponentDefinitionError(f"plugin {plugin!r}: {cls.kind} {cls.name!r}: option name {key!r} "
                                           "must be an identifier")
        try:
            option.check(option.default, key)
        except ConfigError as exc:
            raise ComponentDefinitionError(f"plugin {plugin!r}: {cls.kind} {cls.name!r}: the default of option "
                                           f"{key!r} is outside its own declaration ({exc})") from None
