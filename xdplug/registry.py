"""Registries of components, one per kind, filled by the ``register_*`` hooks.

Each entry remembers the plugin that registered it, so a duplicate name is an
error naming both plugins and ``xdplug components`` can show ownership.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import xdplug.components as components
from .components import declared_options
from .errors import ComponentDefinitionError, ConfigError, DuplicateComponentError, UnknownComponentError
from .spaces import check_space, values_of
from .tasks import check_tasks_declaration

BASE_CLASSES: dict[str, type[components.Component]] = {
    "encoder": components.Encoder,
    "fusion": components.Fusion,
    "adaptation": components.Adaptation,
    "family": components.ModelFamily,
    "evaluator": components.Evaluator,
    "baseline": components.Baseline,
    "dataset": components.DatasetRecipe,
}

HOOK_FOR_KIND = {
    "encoder": "register_encoders",
    "fusion": "register_fusions",
    "adaptation": "register_adaptations",
    "family": "register_families",
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
            _check_capabilities(cls, plugin)
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


#: what each kind declares as class attributes: name -> (allowed values or a type, what to say)
CAPABILITIES: dict[str, dict[str, tuple]] = {
    "encoder": {"role": (("text", "id"), "'text' or 'id'")},
    "adaptation": {"uses_source": (bool, "a bool"), "uses_target": (bool, "a bool")},
    "family": {"export": (("state", "refit", None), "'state', 'refit' or None")},
    "evaluator": {"scope": (("run", "report"), "'run' or 'report'")},
    "baseline": {"needs_shared_ids": (bool, "a bool"), "supports_pooling": (bool, "a bool"),
                 "export": (("state", "refit", None), "'state', 'refit' or None")},
}


def _check_evaluator_declarations(cls, label: str) -> None:
    """An evaluator's metric directions and slices are what the report reads: checked when it registers."""
    directions = cls.directions
    if not isinstance(directions, dict) or not all(isinstance(k, str) and v in ("higher", "lower")
                                                   for k, v in directions.items()):
        raise ComponentDefinitionError(f"{label}: directions must map metric families to 'higher' or 'lower', "
                                       f"got {directions!r}")
    if not isinstance(cls.slices, dict) or not all(isinstance(k, str) and k and isinstance(v, str)
                                                   for k, v in cls.slices.items()):
        raise ComponentDefinitionError(f"{label}: slices must map slice labels to a one-line description, "
                                       f"got {cls.slices!r}")
    if cls.cold_slice is not None and cls.cold_slice not in cls.slices:
        raise ComponentDefinitionError(f"{label}: cold_slice {cls.cold_slice!r} is not one of its slices "
                                       f"{sorted(cls.slices)}")


def _check_capabilities(cls, plugin: str) -> None:
    """Declared capabilities and search spaces are checked at registration, not halfway through a run."""
    label = f"plugin {plugin!r}: {cls.kind} {cls.name!r}"
    for attribute, (allowed, said) in CAPABILITIES.get(cls.kind, {}).items():
        value = getattr(cls, attribute)
        ok = isinstance(value, allowed) if isinstance(allowed, type) else value in allowed
        if not ok:
            raise ComponentDefinitionError(f"{label}: {attribute} must be {said}, got {value!r}")
    if cls.kind == "fusion" and not (isinstance(cls.uses, (set, frozenset)) and cls.uses
                                     and set(cls.uses) <= {"text", "id"}):
        raise ComponentDefinitionError(f"{label}: uses must be a non-empty set of 'text' and 'id', got {cls.uses!r}")
    if cls.kind == "adaptation" and not (cls.uses_source or cls.uses_target):
        raise ComponentDefinitionError(f"{label}: uses_source and uses_target cannot both be False")
    if cls.kind == "adaptation" and not (isinstance(cls.families, (set, frozenset)) and cls.families
                                         and all(isinstance(f, str) for f in cls.families)):
        raise ComponentDefinitionError(f"{label}: families must be a non-empty set of model family names, "
                                       f"got {cls.families!r}")
    if cls.kind in ("baseline", "family"):
        problem = check_tasks_declaration(getattr(cls, "tasks", None))
        if problem:
            raise ComponentDefinitionError(f"{label}: tasks {problem}")
    if cls.kind == "family" and cls.export == "state" and cls.build is components.ModelFamily.build:
        raise ComponentDefinitionError(f"{label}: export = 'state' needs build() implemented (an artifact loads "
                                       "its weights into the model build() returns)")
    if cls.kind == "baseline" and cls.export == "state":
        for method in ("export_state", "restore"):
            if getattr(cls, method) is getattr(components.Baseline, method):
                raise ComponentDefinitionError(f"{label}: export = 'state' needs {method}() implemented")
    if cls.kind == "evaluator":
        keys = cls.row_keys
        if not isinstance(keys, tuple) or not all(isinstance(k, str) for k in keys) \
                or tuple(keys[:3]) != ("method", "reference", "metric"):
            raise ComponentDefinitionError(f"{label}: row_keys must be a tuple of strings starting with "
                                           f"'method', 'reference', 'metric', got {keys!r}")
        missing = [k for k in cls.p_value_keys if k not in keys]
        if missing:
            raise ComponentDefinitionError(f"{label}: p_value_keys {missing} are not in row_keys")
        _check_evaluator_declarations(cls, label)
    prefix = {"baseline": "params", "family": "params.model"}.get(cls.kind, f"params.{cls.kind}")
    for attribute in ("search_space", "pooled_search_space", "closed_form_search_space"):
        space = getattr(cls, attribute, None)
        if space is None:
            continue
        try:
            check_space(space, f"{cls.__name__}.{attribute}")
        except ConfigError as exc:
            raise ComponentDefinitionError(f"{label}: {exc}") from None
        options = declared_options(cls)
        for param, dist in space.items():
            head, _, key = param.rpartition(".")
            if head != prefix:
                raise ComponentDefinitionError(f"{label}: {attribute} path {param!r} must be {prefix}.OPTION")
            if cls.open_params and key not in options:
                continue
            if key not in options:
                raise ComponentDefinitionError(f"{label}: {attribute} searches {param!r}, which is not one of its "
                                               f"options ({', '.join(sorted(options)) or 'none'})")
            for value in values_of(dist):
                try:
                    options[key].check(value, param)
                except ConfigError as exc:
                    raise ComponentDefinitionError(f"{label}: {attribute} reaches {value!r} for {param!r}, outside "
                                                   f"the option ({str(exc).split(': ', 1)[-1]})") from None
