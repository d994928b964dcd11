"""Declared options: each one's type and its range or choices, checked once at validation.

A component (and the config schema) declares an option once, as an
:class:`Option`; the engine checks every value against it before any work
starts, so a third-party component's options get the same protection as the
built-ins'. A plain default (``"dim": 64``) is an option whose type is the
default's type; numbers are always required to be finite.

The helpers :func:`Int`, :func:`Float`, :func:`Bool`, :func:`Str`,
:func:`Choice` and :func:`List` read like the declaration they make::

    defaults = {"dim": Int(64, low=1, high=8192), "weight": Float(0.1, low=0),
                "kind": Choice("mmd", ["mmd", "coral"])}
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from .errors import ConfigError

_NUMBER = (int, float)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e12 else f"{x:g}"


@dataclass(frozen=True)
class Option:
    """One option: its default, type, inclusive/exclusive bounds or choices, and why it exists."""

    default: Any
    #: accepted types; None: the default's type (a float option also takes an int)
    type: Any = None
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # True: value > low; False: value >= low
    high_open: bool = False
    choices: tuple | None = None
    #: for lists: the type of each element (bounds then apply to each element)
    item_type: Any = None
    #: None is accepted (it means "the engine's or library's default")
    nullable: bool = False
    help: str = ""
    #: for mappings: ``((key, Option), ...)``, the keys the mapping may hold and what each takes
    keys: tuple | None = None
    #: for mappings: the keys it must hold
    required: tuple = ()

    def types(self) -> tuple:
        if self.type is not None:
            return self.type if isinstance(self.type, tuple) else (self.type,)
        d = self.default
        if isinstance(d, bool):
            return (bool,)
        if isinstance(d, float):
            return _NUMBER
        if isinstance(d, (list, tuple)):
            return (list, tuple)
        if d is None:
            return (object,)
        return (type(d),)

    @property
    def numeric(self) -> bool:
        types = self.item_types() if self.is_list else self.types()
        return bool(types) and all(t in (int, float) for t in types)

    @property
    def is_list(self) -> bool:
        return self.types() == (list, tuple) or list in self.types()

    def item_types(self) -> tuple:
        if self.item_type is None:
            return ()
        return self.item_type if isinstance(self.item_type, tuple) else (self.item_type,)

    @property
    def bounded(self) -> bool:
        return self.low is not None or self.high is not None or self.choices is not None

    def describe(self, element: bool = False) -> str:
        """What a valid value (``element``: a valid list element) looks like, for messages and docs."""
        if self.choices is not None:
            text = "one of " + ", ".join(repr(c) for c in self.choices)
        elif self.keys is not None:
            text = "a mapping with keys " + ", ".join(key for key, _ in self.keys)
        else:
            types = self.item_types() if self.is_list else self.types()
            kind = {(int,): "an integer", (float,): "a number", _NUMBER: "a number", (bool,): "true or false",
                    (str,): "a string", (list, tuple): "a list", (dict,): "a mapping"}.get(
                tuple(types), " or ".join(t.__name__ for t in types))
            parts = []
            if self.low is not None and self.high is not None:
                parts.append(f"in {'(' if self.low_open else '['}{_num(self.low)}, {_num(self.high)}"
                             f"{')' if self.high_open else ']'}")
            elif self.low is not None:
                parts.append(f"{'>' if self.low_open else '>='} {_num(self.low)}")
            elif self.high is not None:
                parts.append(f"{'<' if self.high_open else '<='} {_num(self.high)}")
            text = " ".join([kind] + parts)
            if element:
                return text
            if self.is_list and self.item_type is not None:
                text = f"a list of {text.replace('an integer', 'integers').replace('a number', 'numbers')}"
                text = text.replace("a list of a string", "a list of strings")
                if str in self.types():  # a single value or a list of them (e.g. files' item_key)
                    text = f"{self.describe(element=True)} or {text}"
        return text + (" (or null)" if self.nullable else "")

    def check(self, value: Any, path: str, source: str | None = None) -> Any:
        """Return ``value`` (an int for a float option becomes a float); ConfigError if invalid."""

        def bad(why: str = ""):
            raise ConfigError(path, f"expected {self.describe()}, got {value!r}{why}", source)

        if value is None:
            if self.nullable or self.default is None:
                return None
            bad()
        if self.choices is not None:
            if value not in self.choices or isinstance(value, bool) != any(isinstance(c, bool) for c in self.choices):
                bad()
            return value
        types = self.types()
        if isinstance(value, bool) and bool not in types and object not in types:
            bad()
        if not isinstance(value, types):
            bad()
        if self.keys is not None and isinstance(value, dict):
            return self._check_keys(value, path, source)
        if self.is_list and isinstance(value, (list, tuple)):  # an option may take a str or a list of them
            if self.item_type is not None:
                for i, item in enumerate(value):
                    self._check_scalar(item, self.item_types(), f"{path}[{i}]", source, value)
            return list(value)
        if isinstance(value, _NUMBER) and not isinstance(value, bool):
            self._check_number(value, path, source, value)
            if float in types and int in types and isinstance(self.default, float) and isinstance(value, int):
                return float(value)
        return value

    def _check_keys(self, value: dict, path: str, source: str | None) -> dict:
        """A plain dict of the checked values; an unknown key names the ones allowed."""
        declared, expected = dict(self.keys), self.describe().replace(" (or null)", "")
        for key in value:
            if key not in declared:
                raise ConfigError(f"{path}.{key}", f"unknown key; expected {expected}", source)
        missing = [key for key in self.required if value.get(key) is None]
        if missing:
            raise ConfigError(f"{path}.{missing[0]}", f"missing; expected {expected} (required: "
                              f"{', '.join(self.required)})", source)
        for key in self.required:  # given, so no "(or null)" in what it expects
            declared[key] = replace(declared[key], nullable=False)
        return {key: declared[key].check(item, f"{path}.{key}", source) for key, item in value.items()}

    def _check_scalar(self, item, types, path, source, shown):
        if isinstance(item, bool) and bool not in types or not isinstance(item, types):
            raise ConfigError(path, f"expected {self.describe(element=True)}, got {item!r}", source)
        if isinstance(item, _NUMBER) and not isinstance(item, bool):
            self._check_number(item, path, source, item, element=True)

    def _check_number(self, number, path, source, shown, element: bool = False):
        what = self.describe(element=element)
        if isinstance(number, float) and not math.isfinite(number):
            raise ConfigError(path, f"expected {what}, got {shown!r} (not a finite number)", source)
        too_low = self.low is not None and (number <= self.low if self.low_open else number < self.low)
        too_high = self.high is not None and (number >= self.high if self.high_open else number > self.high)
        if too_low or too_high:
            raise ConfigError(path, f"expected {what}, got {shown!r}", source)

    def out_of_range(self) -> list[Any]:
        """Values this option must refuse (used by the test that walks every declared option)."""
        bad: list[Any] = []
        scalar = self.item_types() if self.is_list else self.types()
        wrap = (lambda v: [v]) if self.is_list else (lambda v: v)
        if self.choices is not None:
            bad.append("__not_a_choice__")
        if self.keys is not None:
            bad.append({"__not_a_key__": 1})
            bad += [{key: v} for key, option in self.keys for v in option.out_of_range()]
        if float in scalar:
            bad += [wrap(float("nan")), wrap(float("inf"))]
        integer = int in scalar and float not in scalar
        if self.low is not None and self.choices is None:
            below = int(self.low) - 1 if integer else float(self.low) - (abs(self.low) * 0.5 + 1e-3)
            bad.append(wrap(self.low if self.low_open else below))
        if self.high is not None and self.choices is None:
            above = int(self.high) + 1 if integer else float(self.high) + (abs(self.high) * 0.5 + 1e-3)
            bad.append(wrap(self.high if self.high_open else above))
        return bad


def Int(default: int | None, low: int | None = None, high: int | None = None, *,
        nullable: bool = False, help: str = "") -> Option:
    return Option(default, type=int, low=low, high=high, nullable=nullable or default is None, help=help)


def Float(default: float | None, low: float | None = None, high: float | None = None, *,
          low_open: bool = False, high_open: bool = False, nullable: bool = False, help: str = "") -> Option:
    return Option(default, type=_NUMBER, low=low, high=high, low_open=low_open, high_open=high_open,
                  nullable=nullable or default is None, help=help)


def Bool(default: bool | None, *, nullable: bool = False, help: str = "") -> Option:
    return Option(default, type=bool, nullable=nullable or default is None, help=help)


def Str(default: str | None, *, nullable: bool = False, help: str = "") -> Option:
    return Option(default, type=str, nullable=nullable or default is None, help=help)


def Choice(default: Any, choices, *, nullable: bool = False, help: str = "") -> Option:
    return Option(default, choices=tuple(choices), nullable=nullable, help=help)


def List(default: list | None, item_type=None, low: float | None = None, high: float | None = None, *,
         nullable: bool = False, help: str = "") -> Option:
    return Option(default, type=(list, tuple), item_type=item_type, low=low, high=high,
                  nullable=nullable or default is None, help=help)


def Mapping(default: dict | None, keys: dict[str, Option], *, required: tuple = (), nullable: bool = False,
            help: str = "") -> Option:
    """A mapping whose keys are declared (each an :class:`Option`); an unknown or missing required key is refused."""
    return Option(default, type=dict, keys=tuple(keys.items()), required=tuple(required),
                  nullable=nullable or default is None, help=help)


def as_option(value: Any) -> Option:
    """A declaration from either an :class:`Option` or a plain default value."""
    return value if isinstance(value, Option) else Option(value)


def split_declarations(declared: dict[str, Any]) -> tuple[dict[str, Option], dict[str, Any]]:
    """``{name: Option | default}`` -> (``{name: Option}``, ``{name: default}``)."""
    options = {key: as_option(value) for key, value in declared.items()}
    return options, {key: opt.default for key, opt in options.items()}
