"""Read-only config values: what :func:`xdplug.config.load_config` returns once a config is validated.

A validated config is never changed in place: :class:`FrozenDict` and :class:`FrozenList`
are a ``dict`` and a ``list`` (so they compare, serialise to JSON and hash exactly as
before) that refuse every mutation. Code that builds a variant (a tuning trial's entry,
a worker's output path, a test's edited config) takes a mutable copy with :func:`thaw`;
``copy.deepcopy`` gives one too.
"""

from __future__ import annotations

from typing import Any

MESSAGE = "a validated config is read-only; build a variant from thaw(config) (or copy.deepcopy) and validate it"


def _refuse(self, *args, **kwargs):
    raise TypeError(MESSAGE)


class FrozenDict(dict):
    """A ``dict`` that refuses mutation (a validated config or one of its sections)."""

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = __ior__ = _refuse

    def __reduce__(self):  # pickling (Ray ships configs to workers) rebuilds it whole
        return FrozenDict, (dict(self),)

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return thaw(self)


class FrozenList(list):
    """A ``list`` that refuses mutation."""

    __setitem__ = __delitem__ = __iadd__ = __imul__ = append = extend = insert = pop = remove = clear = _refuse
    sort = reverse = _refuse

    def __reduce__(self):
        return FrozenList, (list(self),)

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return thaw(self)


def freeze(value: Any) -> Any:
    """A read-only copy of plain data (dicts and lists all the way down)."""
    if isinstance(value, dict):
        return FrozenDict({k: freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return FrozenList(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """A mutable copy (plain dicts and lists) of a frozen value."""
    if isinstance(value, dict):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, list):
        return [thaw(v) for v in value]
    return value
