"""Config files as YAML: read safely and bounded, written back plainly.

Safe YAML only (no tags that build objects), with :class:`_Loader`'s fixes and limits, so a
config file or a ``--set`` value is plain data (dicts, lists, scalars) or one
:class:`~xdplug.errors.ConfigError` / ``yaml.YAMLError`` naming the line and column.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError
from .frozen import FrozenDict, FrozenList, thaw

#: a config is small: the most values its anchors and aliases may expand to, and the deepest nesting
#: (a recursive alias, ``a: &a [*a]``, or aliases of aliases, the "billion laughs", would otherwise
#: exhaust the recursion limit or the memory when the values are copied and checked)
MAX_YAML_VALUES = 100_000
MAX_YAML_DEPTH = 50


class _Loader(yaml.SafeLoader):
    """Safe YAML with five fixes: ``1e-3`` is a float (YAML 1.1 reads a string), a key given
    twice in one mapping is an error (YAML keeps the last silently), values reached
    through anchors (``&params`` / ``*params`` / ``<<:``) become independent copies, and an
    alias inside its own anchor, or aliases that expand beyond :data:`MAX_YAML_VALUES`
    values or :data:`MAX_YAML_DEPTH` levels, are refused while the document is composed."""

    def __init__(self, stream):
        super().__init__(stream)
        self._open: list = []  # anchors (or None) of the nodes being composed, outermost first
        self._sizes: dict[int, int] = {}  # id(node) -> values it expands to, aliases included
        self._aliased = False

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in self._open:
                raise yaml.composer.ComposerError(
                    None, None, f"the alias *{event.anchor} is inside its own anchor &{event.anchor} (a recursive "
                    "alias: the value would contain itself)", event.start_mark)
            self._aliased = True
            return super().compose_node(parent, index)
        if len(self._open) >= MAX_YAML_DEPTH:
            raise yaml.composer.ComposerError(None, None, f"nested more than {MAX_YAML_DEPTH} levels deep",
                                              event.start_mark)
        self._open.append(event.anchor)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._open.pop()
        children = node.value if isinstance(node, yaml.SequenceNode) else \
            [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else ()
        size = 1 + sum(self._sizes[id(child)] for child in children)
        if size > MAX_YAML_VALUES:
            how = " through its aliases (aliases of aliases multiply)" if self._aliased else ""
            raise yaml.composer.ComposerError(
                None, None, f"this value expands to more than {MAX_YAML_VALUES:,} values{how}; a config is far "
                "smaller", node.start_mark)
        self._sizes[id(node)] = size
        return node

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    hash(key)
                except TypeError:
                    continue  # the base class reports unhashable keys
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping", node.start_mark,
                        f"key {key!r} appears twice (first on line {seen[key] + 1})", key_node.start_mark)
                seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
    list("-+0123456789."),
)


# a frozen config dumps like the plain data it is
yaml.SafeDumper.add_representer(FrozenDict, yaml.representer.SafeRepresenter.represent_dict)
yaml.SafeDumper.add_representer(FrozenList, yaml.representer.SafeRepresenter.represent_list)


def unaliased(value: Any) -> Any:
    """A fresh copy of plain YAML data in which no two places share one dict or list.

    ``copy.deepcopy`` keeps sharing (an anchor used by four strategies stays one
    dict), so a ``--set`` on one strategy would change all four.
    """
    if isinstance(value, dict):
        return {k: unaliased(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [unaliased(v) for v in value]
    return value


def yaml_error(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"not valid YAML: {where}{problem}"


def load_yaml(text: str) -> Any:
    """Plain data from YAML text (a config file's or a ``--set`` value's); ``yaml.YAMLError`` if invalid."""
    return yaml.load(text, Loader=_Loader)


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if path.is_dir():
        raise ConfigError("(file)", "is a directory; expected a YAML config file", str(path))
    if not path.is_file():
        raise ConfigError("(file)", f"config file not found: {path}", str(path))
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError("(file)", f"not UTF-8 text (byte {exc.start}: {exc.object[exc.start:exc.start + 1]!r}); "
                          "save the config as UTF-8", str(path)) from None
    except OSError as exc:
        raise ConfigError("(file)", f"cannot read: {exc.strerror or exc}", str(path)) from None
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigError("(file)", yaml_error(exc), str(path)) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("(file)", "the top level must be a mapping", str(path))
    return unaliased(data)


def dump_yaml(config: dict) -> str:
    return yaml.safe_dump(thaw(config), sort_keys=False, default_flow_style=None)
