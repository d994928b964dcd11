"""Search spaces: the structure of a tuning distribution, checked without a registry.

A search space maps dotted parameter paths of a method's config entry
(``params.reg_weight``, ``params.model.dim``, ``params.adaptation.weight``) to
distributions: ``{type: loguniform|uniform, low, high}``, ``{type: int, low,
high[, log: true]}`` or ``{type: categorical, choices: [...]}``. Components
declare their default space as a ``search_space`` class attribute in this
form; the registry checks it when the component registers, the config checks
a config's ``tuning.space`` blocks the same way.
"""

from __future__ import annotations

import copy

from .components import declared_options
from .errors import ConfigError
from .spec import family_class

DIST_TYPES = ("loguniform", "uniform", "int", "categorical")
DIST_KEYS = ("type", "low", "high", "log", "choices")


def check_space(space, path: str, source: str | None = None) -> None:
    """Structural checks of a search space (no registry needed); named errors."""
    if not isinstance(space, dict):
        raise ConfigError(path, f"expected a mapping of parameter paths to distributions, got {space!r}", source)
    for param, dist in space.items():
        where = f"{path}.{param}"
        if not isinstance(param, str) or not param.startswith("params."):
            raise ConfigError(where, "a parameter path starts with 'params.' (e.g. params.reg_weight, "
                              "params.model.dim, params.adaptation.weight)", source)
        if not isinstance(dist, dict):
            raise ConfigError(where, f"expected a mapping like {{type: loguniform, low: 1, high: 1000}}, got {dist!r}",
                              source)
        for key in dist:
            if key not in DIST_KEYS:
                raise ConfigError(f"{where}.{key}", "unknown key; allowed here: " + ", ".join(DIST_KEYS), source)
        kind = dist.get("type")
        if kind not in DIST_TYPES:
            raise ConfigError(f"{where}.type", f"expected one of {', '.join(map(repr, DIST_TYPES))}, got {kind!r}",
                              source)
        if kind == "categorical":
            choices = dist.get("choices")
            if not isinstance(choices, list) or not choices:
                raise ConfigError(f"{where}.choices", f"expected a non-empty list, got {choices!r}", source)
            for c in choices:
                if c is not None and not isinstance(c, (bool, int, float, str)):
                    raise ConfigError(f"{where}.choices", f"choices must be numbers, strings, booleans or null; "
                                      f"got {c!r}", source)
            for key in ("low", "high", "log"):
                if key in dist:
                    raise ConfigError(f"{where}.{key}", "not used by type: categorical (give choices)", source)
            continue
        if "choices" in dist:
            raise ConfigError(f"{where}.choices", f"only type: categorical takes choices (this is {kind})", source)
        for key in ("low", "high"):
            value = dist.get(key)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{where}.{key}", f"expected a number, got {value!r}", source)
            if kind == "int" and not isinstance(value, int):
                raise ConfigError(f"{where}.{key}", f"type: int needs integer bounds, got {value!r}", source)
        if not dist["low"] < dist["high"]:
            raise ConfigError(where, f"expected low < high, got low={dist['low']!r}, high={dist['high']!r}", source)
        log = dist.get("log", False)
        if not isinstance(log, bool):
            raise ConfigError(f"{where}.log", f"expected true or false, got {log!r}", source)
        if log and kind != "int":
            raise ConfigError(f"{where}.log", "only type: int takes log (use type: loguniform for floats)", source)
        if (kind == "loguniform" or log) and dist["low"] <= 0:
            raise ConfigError(f"{where}.low", f"a log scale needs low > 0, got {dist['low']!r}", source)


def values_of(dist: dict) -> list:
    """The values a distribution names explicitly (its choices, or its bounds)."""
    return list(dist.get("choices") or []) + [dist[b] for b in ("low", "high") if b in dist]


def configured(config: dict) -> bool:
    """Does the config ask for any tuning (globally or for one method)?"""
    if (config.get("tuning") or {}).get("trials", 0) > 0:
        return True
    return any((e.get("tuning") or {}).get("trials", 0) > 0
               for key in ("baselines", "strategies") for e in config.get(key, []))


def _component_params(kind: str, entry: dict, registry) -> dict[str, dict | None]:
    """``params`` sub-path prefix -> the option defaults it may set (None: any key)."""
    if kind == "baseline":
        cls = registry.get("baseline", entry["baseline"])
        return {"params": None if cls.open_params else declared_options(cls)}
    family = family_class(entry, registry)
    out = {"params.model": None if family.open_params else declared_options(family)}
    for part in ("encoder", "fusion", "adaptation"):
        cls = registry.get(part, entry[part])
        out[f"params.{part}"] = None if cls.open_params else declared_options(cls)
    return out


def param_problem(kind: str, entry: dict, param: str, dist: dict, registry) -> str | None:
    """Why ``param`` cannot be tuned for this method (None when it can)."""
    prefix, _, key = param.rpartition(".")
    allowed = _component_params(kind, entry, registry)
    if prefix not in allowed:
        where = "params.KEY" if kind == "baseline" else "params.model.KEY, params.encoder.KEY, " \
                                                       "params.fusion.KEY or params.adaptation.KEY"
        return f"not a parameter path of a {kind}; expected {where}"
    defaults = allowed[prefix]
    if defaults is not None:
        if key not in defaults:
            return f"no such option; allowed under {prefix}: {', '.join(sorted(defaults)) or '(none)'}"
        option = defaults[key]
        default = option.default
        integer = option.types() == (int,) or isinstance(default, int) and not isinstance(default, bool)
        if integer and dist.get("type") in ("uniform", "loguniform"):
            return f"is an integer option (default {default!r}); use type: int or categorical"
        # every value the search can draw must be a value the option accepts
        for value in values_of(dist):
            try:
                option.check(value, param)
            except ConfigError as exc:
                return f"the search space reaches {value!r}, outside the option: {str(exc).split(': ', 1)[-1]}"
    # ... and one the component accepts when it is written directly (its own checks beyond the
    # declaration: a RecBole baseline refuses a string RecBole would evaluate as code)
    cls = _component_class(kind, entry, prefix, registry)
    if cls is not None:
        written = _get(entry, prefix) or {}
        for value in values_of(dist):
            try:
                cls({**written, key: value}, prefix)
            except ConfigError as exc:
                return f"the search space reaches {value!r}, which the option refuses: {str(exc).split(': ', 1)[-1]}"
    return None


def _component_class(kind: str, entry: dict, prefix: str, registry) -> type | None:
    """The component whose options live under ``prefix`` (None for the transfer model's)."""
    if kind == "baseline":
        return registry.get("baseline", entry["baseline"])
    part = prefix.split(".", 1)[-1]
    return registry.get(part, entry[part]) if part in ("encoder", "fusion", "adaptation") else None


def _get(entry: dict, dotted: str):
    node = entry
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def component_space(kind: str, entry: dict, registry) -> dict:
    """The default search space of a method, from what its components declare.

    A baseline: its class's ``search_space`` (plus ``pooled_search_space`` when
    pooled). A strategy: what its model family makes of its components
    (``ModelFamily.strategy_space``: by default the family's ``search_space`` and
    each component's).
    """
    if kind == "baseline":
        cls = registry.get("baseline", entry["baseline"])
        space = copy.deepcopy(cls.search_space)
        if entry.get("pooled"):
            space.update(copy.deepcopy(cls.pooled_search_space))
        return space
    parts = [registry.get(part, entry[part]) for part in ("encoder", "fusion", "adaptation")]
    return family_class(entry, registry).strategy_space(*parts)


def default_spaces(registry, plugins=None) -> dict:
    """Every registered component's default search space, by kind and name (``configs/search_spaces.yaml``).

    ``pooled`` holds the baselines' ``pooled_search_space`` and ``family`` each model family's
    (``ModelFamily.documented_spaces``: its ``model`` space and what else it reads). ``plugins``
    (a predicate on a plugin's name) keeps the components of some plugins only.
    """
    keep = (lambda item: True) if plugins is None else (lambda item: plugins(item.plugin))
    out: dict = {kind: {} for kind in ("baseline", "adaptation", "fusion", "encoder")}
    pooled = {}
    for kind in ("baseline", "adaptation", "fusion", "encoder"):
        for item in filter(keep, registry.all(kind)):
            if item.cls.search_space:
                out[kind][item.name] = copy.deepcopy(item.cls.search_space)
            if getattr(item.cls, "pooled_search_space", None):
                pooled[item.name] = copy.deepcopy(item.cls.pooled_search_space)
    adaptations = list(filter(keep, registry.all("adaptation")))
    families = {item.name: item.cls.documented_spaces(adaptations) for item in filter(keep, registry.all("family"))}
    return dict(out, pooled=pooled, family=families)


def validate_space_paths(config: dict, registry, source: str | None = None) -> None:
    """Every ``tuning.space`` path names an option of its method (called by ``xdplug.config.validate_components``)."""
    if not configured(config) and not (config.get("tuning") or {}).get("space"):
        return
    glob = (config.get("tuning") or {}).get("space") or {}
    used = set()
    for key, kind in (("baselines", "baseline"), ("strategies", "strategy")):
        for i, entry in enumerate(config[key]):
            own = (entry.get("tuning") or {}).get("space")
            for param, dist in (own or {}).items():
                problem = param_problem(kind, entry, param, dist, registry)
                if problem:
                    raise ConfigError(f"{key}[{i}].tuning.space.{param}", problem, source)
            if own is None:
                used |= {p for p, d in glob.items() if param_problem(kind, entry, p, d, registry) is None}
    for param in glob:
        if param not in used:
            raise ConfigError(f"tuning.space.{param}", "applies to no method of this config (no baseline or "
                              "strategy without its own tuning.space has this option)", source)
