"""Artifacts: a finished run as a directory that serves recommendations.

``xdplug export`` turns a finished run of the store into an artifact
directory; :func:`load_artifact` (``xdplug.load``) reads one back into a
:class:`Recommender`; :func:`update_artifact` (``xdplug update``) fine-tunes
an exported strategy on new target interactions and writes the next version
beside it. Layout::

    ARTIFACT/
      manifest.json      format, version and the sha256 and size of every other file
      meta.json          kind, method, seed, run ID, the method's spec, the resolved config
                         and its hash, library versions, encoder name and text-cache key,
                         the run's metrics, the update history
      weights.pt         torch.save(model.state_dict()) of the best-validation model
      extras.pt          tensors outside the state dict (text whitening), when there are any
      ids.json           the target users' and items' IDs as in your files (and item aliases)
      data/arrays.npz    target train/valid/test pairs, catalog rows, model user rows
      data/keys.json     ID maps: target user and item keys, catalog keys and item texts
      data/summary.json  the prepared data's summary

Loading reads only directories whose manifest lists exactly their files with
matching hashes, and reads weights with ``torch.load(weights_only=True)``: a
missing, foreign or tampered file is an :class:`~xdplug.errors.ArtifactError`
naming the file. The model is rebuilt from the spec (strategies: the
construction path of :func:`~xdplug.model.strategy.fit_strategy`, without
training; RecBole baselines: the model constructed on the stored training
interactions, which recomputes EASE's and ItemKNN's matrices exactly, then
its state dict) and the weights are loaded into it.

A known user is represented as in the benchmark: by the training
interactions of the run (plus those added by updates); all of the user's
known interactions count as seen.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .errors import ArtifactError, DataError, RunError, XdplugError

logger = logging.getLogger(__name__)

FORMAT = "xdplug-artifact"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
#: baselines rebuilt by calling their (training-free, deterministic) ``fit`` again
REFIT_BASELINES = ("text-knn", "source-pop")


# =============================================================================== files


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _listing(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def _write_manifest(folder: Path, meta: dict) -> dict:
    files = {}
    for name in _listing(folder):
        if name == MANIFEST:
            continue
        path = folder / name
        files[name] = {"sha256": _sha256(path), "bytes": path.stat().st_size}
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": meta["kind"],
                "method": meta["method"], "version": meta["version"], "created": meta["created"],
                "files": files}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return manifest


def verify_artifact(path: str | Path) -> dict:
    """Check that ``path`` is an intact artifact; returns its manifest or raises ArtifactError."""
    folder = Path(path).expanduser()
    if not folder.exists():
        raise ArtifactError(f"{folder}: no such artifact directory")
    if not folder.is_dir():
        raise ArtifactError(f"{folder}: not a directory; an artifact is a directory written by `xdplug export`")
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise ArtifactError(f"{manifest_path}: missing; {folder} is not an xdplug artifact "
                            "(write one with `xdplug export`)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{manifest_path}: unreadable manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not isinstance(manifest.get("files"), dict):
        raise ArtifactError(f"{manifest_path}: foreign manifest: not written by xdplug export "
                            f"(format {manifest.get('format') if isinstance(manifest, dict) else None!r})")
    if manifest.get("format_version", 0) > FORMAT_VERSION:
        raise ArtifactError(f"{manifest_path}: artifact format {manifest['format_version']} is newer than this "
                            f"xdplug reads ({FORMAT_VERSION}); upgrade xdplug")
    listed = manifest["files"]
    for name, entry in sorted(listed.items()):
        if name.startswith("/") or ".." in Path(name).parts or not isinstance(entry, dict):
            raise ArtifactError(f"{manifest_path}: foreign entry {name!r}")
        file = folder / name
        if not file.is_file():
            raise ArtifactError(f"{file}: missing (listed in the manifest)")
        if file.stat().st_size != entry.get("bytes") or _sha256(file) != entry.get("sha256"):
            raise ArtifactError(f"{file}: sha256 does not match the manifest: the file was modified, "
                                "truncated or copied from another artifact")
    for name in _listing(folder):
        if name != MANIFEST and name not in listed:
            raise ArtifactError(f"{folder / name}: foreign file, not part of the artifact's manifest; "
                                "remove it (an artifact holds only the files it was exported with)")
    for required in ("meta.json", "weights.pt", "ids.json", "data/arrays.npz", "data/keys.json",
                     "data/summary.json"):
        if required not in listed:
            raise ArtifactError(f"{folder / required}: missing from the manifest; not a complete artifact")
    return manifest


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path}: unreadable ({exc})") from None


def _torch_load(path: Path, device) -> dict:
    try:
        obj = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises UnpicklingError, RuntimeError, ...
        raise ArtifactError(f"{path}: cannot be read as tensors with torch.load(weights_only=True): "
                            f"{str(exc).splitlines()[0][:200]}") from None
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ArtifactError(f"{path}: expected a mapping of names to tensors")
    return obj


# =============================================================================== data


def _write_data(folder: Path, data, keep_source: bool, extra: dict | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    source = data.source_train if keep_source else np.zeros((0, 2), dtype=np.int64)
    arrays = {
        "target_train": np.asarray(data.target_train, dtype=np.int64).reshape(-1, 2),
        "target_valid": np.asarray(data.target_valid, dtype=np.int64).reshape(-1, 2),
        "target_test": np.asarray(data.target_test, dtype=np.int64).reshape(-1, 2),
        "source_train": np.asarray(source, dtype=np.int64).reshape(-1, 2),
        "catalog_source_rows": np.asarray(data.catalog.source_rows, dtype=np.int64),
        "catalog_target_rows": np.asarray(data.catalog.target_rows, dtype=np.int64),
        "cold_items": np.asarray(data.cold_items, dtype=np.int64),
        **(extra or {}),
    }
    np.savez_compressed(folder / "arrays.npz", **arrays)
    (folder / "keys.json").write_text(json.dumps(data.keys))
    (folder / "summary.json").write_text(json.dumps(data.summary, indent=2, default=str))


def _load_data(folder: Path):
    from .data.crossdomain import CrossDomainData

    try:
        with np.load(folder / "arrays.npz", allow_pickle=False) as npz:
            extra = {name: npz[name] for name in npz.files}
        data = CrossDomainData.load(folder)
    except ArtifactError:
        raise
    except Exception as exc:  # noqa: BLE001 - numpy/json/zip errors
        raise ArtifactError(f"{folder}: cannot read the artifact's data ({type(exc).__name__}: {exc})") from None
    return data, extra


def _copy_data(data, **changes):
    """A CrossDomainData like ``data`` with some fields replaced (nothing shared that changes)."""
    from .data.catalog import ItemCatalog
    from .data.crossdomain import CrossDomainData

    keys = changes.pop("keys") if "keys" in changes else copy.deepcopy(data.keys)
    catalog = changes.pop("catalog", None)
    if catalog is None:
        catalog = ItemCatalog(keys=keys["catalog"], texts=keys["texts"],
                              source_rows=data.catalog.source_rows.copy(),
                              target_rows=data.catalog.target_rows.copy())
    fields = dict(folder=data.folder, target_train=data.target_train, target_valid=data.target_valid,
                  target_test=data.target_test, source_train=data.source_train, catalog=catalog, keys=keys,
                  summary=copy.deepcopy(data.summary), cold_items=data.cold_items)
    fields.update(changes)
    return CrossDomainData(**fields)


# =============================================================================== IDs


def raw_ids(config: dict, data, registry) -> dict:
    """The target users' and items' IDs as they are in the user's files, plus item aliases.

    Prepared keys carry a domain prefix where entities do not align (``t:42``)
    and a normalised title where items align by key (``k:toy story 1995``).
    For key alignment the recipe is read once more to map keys back to IDs.
    """
    align = data.summary.get("align", {})
    users = [k[2:] if align.get("users") != "id" and k.startswith("t:") else k for k in data.keys["target_users"]]
    mode = align.get("items")
    aliases: dict[str, int] = {}
    item_key = None
    if mode == "key":
        from .data.prepare import _item_keys
        from . import paths

        recipe_cls = registry.get("dataset", config["dataset"]["recipe"], "dataset.recipe")
        recipe = recipe_cls(config["dataset"]["params"], "dataset.params")
        cache = paths.prepared_dir() / "raw" / recipe.name
        cache.mkdir(parents=True, exist_ok=True)
        raw = recipe.load(str(cache))
        item_key = raw.item_key_field
        row_of = {k: i for i, k in enumerate(data.keys["catalog"])}
        for role, domain in (("target", raw.target), ("source", raw.source)):
            for item, key in _item_keys(raw, domain, role, "key").items():
                if key in row_of:
                    aliases.setdefault(str(item), row_of[key])
        by_row: dict[int, list[str]] = {}
        for item, row in aliases.items():
            by_row.setdefault(row, []).append(item)
        items = []
        for key, row in zip(data.keys["target_items"], data.catalog.target_rows):
            names = sorted(by_row.get(int(row), []))
            items.append(names[0] if names else key)
    else:
        items = [k[2:] if mode != "id" and k.startswith("t:") else k for k in data.keys["target_items"]]
    return {"align": {"users": align.get("users"), "items": mode, "item_key": item_key},
            "users": users, "items": items,
            "item_aliases": aliases}


# =============================================================================== models


class TextTable(nn.Module):
    """Frozen item text vectors (the state of a frozen text encoder), restored without the encoder."""

    def __init__(self, vectors: torch.Tensor):
        super().__init__()
        self.register_buffer("table", vectors)
        self.out_dim = int(vectors.shape[1])

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        return self.table[items]


class _StubDataset:
    """What RecBole's ``GeneralRecommender.__init__`` reads from a dataset: the counts."""

    def __init__(self, n_users: int, n_items: int):
        self.counts = {"user_id": n_users + 1, "item_id": n_items + 1}  # RecBole counts its [PAD] row

    def num(self, field: str) -> int:
        return self.counts[field]


def _stub_config(device) -> dict:
    return {"USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "NEG_PREFIX": "neg_", "device": device}


def default_user_rows(data) -> tuple[dict[str, np.ndarray], int]:
    """User-ID rows as :func:`~xdplug.model.strategy.fit_strategy` lays them out."""
    shared = dict(zip(data.shared_users[:, 1], data.shared_users[:, 0])) if len(data.shared_users) else {}
    target_rows = np.arange(data.n_target_users)
    extra = [u for u in range(data.n_source_users) if u not in shared]
    source_rows = np.empty(data.n_source_users, dtype=np.int64)
    for u, t in shared.items():
        source_rows[u] = t
    source_rows[extra] = data.n_target_users + np.arange(len(extra))
    return {"target": target_rows, "source": source_rows}, data.n_target_users + len(extra)


@contextlib.contextmanager
def _seeded(seed: int):
    """Seed torch's and numpy's generators inside, and give the caller's state back after."""
    state = np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        np.random.seed(seed % (2 ** 32))
        try:
            yield
        finally:
            np.random.set_state(state)


def build_strategy_model(entry: dict, registry, data, device, seed: int, *, text_module=None, rb=None,
                         user_rows=None, n_union_users=None, path: str = "strategy"):
    """The transfer model of a strategy spec, built as ``fit_strategy`` builds it, not trained.

    ``text_module`` replaces the encoder's module (a :class:`TextTable` restored from
    weights); ``rb`` a RecBole dataset (only training needs one: without it the model
    gets the counts it reads from a stub); ``user_rows``/``n_union_users`` the user-ID
    layout of an updated artifact. Returns ``(model, encoder, options)``.
    """
    from .errors import ConfigError
    from .model.strategy import build_strategy
    from .model.transfer import TransferModel

    encoder, fusion, _adaptation, options = build_strategy(entry, registry, path)
    device = torch.device(device)
    with _seeded(seed):
        if "text" in fusion.uses and text_module is None:
            text_module = encoder.build(data.catalog, device)
        if text_module is not None:
            text_module = text_module.to(device)
        fusion_module = fusion.build(options["dim"])
        if user_rows is None:
            user_rows, n_union_users = default_user_rows(data)
        id_module = None
        if "id" in fusion.uses:
            id_encoder = encoder if encoder.role == "id" else registry.get("encoder", "id", f"{path}.encoder")(
                {}, f"{path}.params.encoder")
            id_encoder.params["dim"] = id_encoder.params.get("dim") or options["dim"]
            if id_encoder.params["dim"] != options["dim"]:
                raise ConfigError(f"{path}.params.encoder.dim", f"must equal params.model.dim ({options['dim']})")
            id_module = id_encoder.build(data.catalog, device)
        config, dataset = (rb.config, rb.dataset) if rb is not None else (
            _stub_config(device), _StubDataset(data.n_target_users, data.n_target_items))
        model = TransferModel(config, dataset, data, text_module if "text" in fusion.uses else None, id_module,
                              fusion_module, frozenset(fusion.uses), options, seed, int(n_union_users),
                              {k: np.asarray(v, dtype=np.int64) for k, v in user_rows.items()})
    if rb is not None:
        model.rb_to_user = np.zeros(rb.dataset.user_num, dtype=np.int64)
        model.rb_to_user[rb.user_ids] = np.arange(data.n_target_users)
        model.target_rb_items = rb.item_ids
    return model.to(device), encoder, options


def _text_module_from_state(state: dict, encoder, data, device):
    """A frozen text table comes back from the weights alone; other text encoders are rebuilt."""
    text_keys = [k for k in state if k.startswith("text_encoder.")]
    if text_keys == ["text_encoder.table"]:
        return TextTable(torch.zeros_like(state["text_encoder.table"], device=device))
    if not text_keys:
        return None
    return encoder.build(data.catalog, torch.device(device))


def load_state(model: nn.Module, state: dict, file: Path, grow: bool = False) -> None:
    """Load ``state`` into ``model``; a mismatch is an ArtifactError naming ``file``.

    Keys of modules the model does not have (an adaptation's training-only parts,
    such as DANN's domain classifier) are ignored. With ``grow`` a tensor may be
    shorter than the model's along its first dimension (an update added users or
    items): its rows are copied and the rest keep their fresh initialisation.
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    if missing:
        raise ArtifactError(f"{file}: the weights do not fit the model built from the artifact's spec "
                            f"(missing {', '.join(missing[:5])})")
    foreign = [k for k in state if k not in own and hasattr(model, k.split(".")[0])]
    if foreign:
        raise ArtifactError(f"{file}: the weights do not fit the model built from the artifact's spec "
                            f"(unexpected {', '.join(foreign[:5])})")
    merged = {}
    for key, value in own.items():
        saved = state[key]
        if saved.shape == value.shape:
            merged[key] = saved
        elif grow and saved.dim() == value.dim() and saved.shape[1:] == value.shape[1:] \
                and saved.shape[0] <= value.shape[0]:
            fresh = value.clone()
            fresh[: saved.shape[0]] = saved.to(fresh.dtype)
            merged[key] = fresh
        else:
            raise ArtifactError(f"{file}: tensor {key} has shape {tuple(saved.shape)}, the model built from "
                                f"the artifact's spec expects {tuple(value.shape)}")
    model.load_state_dict(merged, strict=True)


def _recbole_baseline_model(baseline, ctx, pooled: bool):
    """Construct the RecBole model of a RecBole baseline as its ``fit`` does, without training."""
    from recbole.utils import get_model, init_seed
    from xdplug_builtin.baselines.recbole_models import RecboleScorer, _exact_pop_class

    from .training import recbole_data

    model_class = _exact_pop_class() if baseline.model_name == "Pop" else get_model(baseline.model_name)
    overrides = {k: v for k, v in baseline.params.items() if v is not None}
    rb = recbole_data(ctx, model_class, overrides, pooled=pooled)
    init_seed(ctx.seed, True)
    model = model_class(rb.config, rb.dataset).to(ctx.device)
    return RecboleScorer(model, rb, ctx.device)


def baseline_rebuild_kind(baseline) -> str:
    """How a baseline comes back from an artifact: ``state`` (RecBole model + state dict) or ``refit``."""
    try:
        from xdplug_builtin.baselines.recbole_models import RecboleBaseline
    except ImportError:  # pragma: no cover - the built-in plugins are part of the package
        RecboleBaseline = ()
    if RecboleBaseline and isinstance(baseline, RecboleBaseline):
        return "state"
    if baseline.name in REFIT_BASELINES and type(baseline).__module__.startswith("xdplug_builtin."):
        return "refit"
    raise ArtifactError(f"baseline {baseline.name!r} cannot be exported: xdplug can rebuild RecBole's models "
                        f"and the training-free controls ({', '.join(REFIT_BASELINES)}), but has no way to restore "
                        f"the state of {type(baseline).__module__}.{type(baseline).__name__}")


@contextlib.contextmanager
def _rng_kept():
    """RecBole's ``init_seed`` reseeds the global generators; a loading program keeps its own."""
    import random

    saved = (random.getstate(), np.random.get_state(), torch.get_rng_state(),
             torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    try:
        yield
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])
        torch.set_rng_state(saved[2])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved[3], saved[4]


def _fit_context(data, seed, device, config, workdir, progress=None):
    from .training import FitContext

    return FitContext(data=data, seed=seed, device=torch.device(device), train=config["train"],
                      evaluation=config["evaluation"], workdir=Path(workdir), progress=progress)


# =============================================================================== the recommender


class Recommender:
    """A loaded artifact: recommendations for known target users and for new users' histories.

    ``recommend(user=..., k=10)`` or ``recommend(history=[item, ...], k=10)``
    returns a list of ``{"item", "score", "text"}``, best first, items the user
    has seen left out unless ``exclude_seen=False``.
    """

    def __init__(self, path: Path, meta: dict, data, ids: dict, device, model=None, scorer=None,
                 extras: dict | None = None, arrays: dict | None = None):
        self.path, self.meta, self.data, self.ids = path, meta, data, ids
        self.arrays = arrays or {}
        self.device = torch.device(device)
        self.kind, self.method = meta["kind"], meta["method"]
        self.model, self.scorer = model, scorer
        self.extras = extras or {}
        self.users: list[str] = list(ids["users"])
        self.items: list[str] = list(ids["items"])
        self._user_of = {u: i for i, u in enumerate(self.users)}
        for i, key in enumerate(data.keys["target_users"]):
            self._user_of.setdefault(key, i)
        self._item_of = {it: i for i, it in enumerate(self.items)}
        for i, key in enumerate(data.keys["target_items"]):
            self._item_of.setdefault(key, i)
        self._row_of = {k: r for r, k in enumerate(data.keys["catalog"])}
        self._target_of_row = {int(r): i for i, r in enumerate(data.catalog.target_rows)}
        self.texts = [data.catalog.texts[r] for r in data.catalog.target_rows]
        seen = np.concatenate([data.target_train, data.target_valid, data.target_test]).reshape(-1, 2)
        import scipy.sparse as sp

        m = sp.csr_matrix((np.ones(len(seen), dtype=np.float32), (seen[:, 0], seen[:, 1])),
                          shape=(data.n_target_users, data.n_target_items))
        m.sum_duplicates()
        self._seen = m
        self._vectors = None
        if model is not None:
            with torch.no_grad():
                self._vectors = model.item_vectors()
            self._candidate_rows = torch.as_tensor(data.catalog.target_rows, device=self.device)

    def __repr__(self) -> str:
        return (f"<xdplug Recommender {self.method!r} ({self.kind}, version {self.meta.get('version', 1)}): "
                f"{len(self.users)} users, {len(self.items)} items, from {self.path}>")

    # -- look-ups --------------------------------------------------------------------------
    def user_index(self, user) -> int:
        """Canonical index of a known target user (its ID in your files, or its prepared key)."""
        key = str(user).strip()
        if key in self._user_of:
            return self._user_of[key]
        examples = ", ".join(repr(u) for u in self.users[:3])
        raise ArtifactError(f"unknown user {key!r}: not one of the {len(self.users)} target users of "
                            f"{self.path.name} (for example {examples}); recommend for a new user with "
                            "history=[...] (CLI: --history FILE)")

    def item_row(self, item) -> int:
        """Catalog row of an item (a target item's ID, a source item's ID or a catalog key)."""
        key = str(item).strip()
        if key in self._item_of:
            return int(self.data.catalog.target_rows[self._item_of[key]])
        aliases = self.ids.get("item_aliases") or {}
        if key in aliases:
            return int(aliases[key])
        candidates = [key, f"t:{key}", f"s:{key}"]
        if self.ids["align"].get("items") == "key":
            from .data.text import normalise_key

            candidates.append("k:" + normalise_key(key))
        for candidate in candidates:
            if candidate in self._row_of:
                return self._row_of[candidate]
        raise KeyError(key)

    def _history_rows(self, history) -> tuple[np.ndarray, list[int]]:
        if isinstance(history, (str, bytes)):
            raise XdplugError("history must be a list of item IDs, not one string")
        items = [str(h).strip() for h in history if str(h).strip()]
        if not items:
            raise ArtifactError("the history is empty: give at least one item ID")
        rows, unknown = [], []
        for item in items:
            try:
                rows.append(self.item_row(item))
            except KeyError:
                unknown.append(item)
        if unknown:
            shown = ", ".join(repr(u) for u in unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
            examples = ", ".join(repr(i) for i in self.items[:3])
            raise ArtifactError(f"unknown item{'s' if len(unknown) > 1 else ''} {shown}: not in the catalog of "
                                f"{self.path.name} ({len(self.items)} target items, for example {examples})")
        rows = np.array(sorted(set(rows)), dtype=np.int64)
        targets = sorted({self._target_of_row[r] for r in rows.tolist() if r in self._target_of_row})
        return rows, targets

    # -- scores ----------------------------------------------------------------------------
    def score_users(self, users: np.ndarray) -> torch.Tensor:
        """Scores ``[len(users), n_target_items]`` of known users (canonical indices)."""
        idx = torch.as_tensor(np.asarray(users, dtype=np.int64), device=self.device)
        with torch.no_grad():
            if self.model is not None:
                return self.model.score_users("target", idx, vectors=self._vectors)
            return self.scorer.score(idx).to(self.device, torch.float32)

    def score_history(self, history) -> tuple[torch.Tensor, list[int]]:
        """Scores ``[1, n_target_items]`` of a new user given only their items; and their target items."""
        rows, targets = self._history_rows(history)
        with torch.no_grad():
            if self.model is not None:
                m = self.model
                items = torch.as_tensor(rows, device=self.device)
                batch_rows = torch.zeros(len(rows), dtype=torch.long, device=self.device)
                u = m.user_tower(m.pool(self._vectors, items, batch_rows, 1))
                return m.scores_against(u, self._vectors, self._candidate_rows), targets
            if len(targets) < len(rows):
                raise ArtifactError(f"baseline {self.method!r} scores target items only; the history has "
                                    f"{len(rows) - len(targets)} item(s) of the source domain")
            return self._baseline_history(targets), targets

    def _baseline_history(self, targets: list[int]) -> torch.Tensor:
        scorer, name = self.scorer, self.meta["spec"].get("baseline") or self.method
        n = self.data.n_target_items
        if getattr(scorer, "b", None) is not None:  # closed-form item-item strategy: scores = x B
            x = torch.zeros(1, n, device=scorer.b.device)
            x[0, targets] = 1.0
            return (x @ scorer.b).to(self.device)
        rb = getattr(scorer, "rb", None)
        model = getattr(scorer, "model", None)
        if rb is not None:
            x = np.zeros(rb.dataset.item_num, dtype=np.float32)
            x[rb.item_ids[targets]] = 1.0
            if hasattr(model, "item_similarity"):  # EASE: scores = x B
                full = x @ np.asarray(model.item_similarity)
            elif hasattr(model, "w") and getattr(model, "method", "item") == "item":  # ItemKNN: x W
                full = np.asarray(model.w.T.dot(x)).ravel()
            elif hasattr(model, "item_cnt"):  # Pop: counts over the largest, as its full_sort_predict
                full = (model.item_cnt.double() / model.max_cnt.double()).cpu().numpy().ravel()
            else:
                raise ArtifactError(
                    f"baseline {name!r} has no inductive path: it learns one vector per training user, so it "
                    "cannot score a new user's history; use --user for a known user, or export a strategy "
                    "(or EASE, ItemKNN, Pop, text-knn)")
            return torch.as_tensor(np.asarray(full, dtype=np.float32)[rb.item_ids], device=self.device)[None]
        if getattr(scorer, "sim", None) is not None:  # text-knn: mean similarity to the history
            x = torch.zeros(1, n, device=scorer.sim.device)
            x[0, targets] = 1.0 / len(targets)
            return (x @ scorer.sim).to(self.device)
        if getattr(scorer, "item_scores", None) is not None:  # source-pop
            return scorer.item_scores.to(self.device)[None].clone()
        raise ArtifactError(f"baseline {name!r} has no inductive path for a new user's history")

    # -- recommendations -------------------------------------------------------------------
    def _top(self, scores: torch.Tensor, exclude: list[np.ndarray], k: int) -> list[list[dict]]:
        scores = scores.to(torch.float32).clone()
        for row, items in enumerate(exclude):
            if len(items):
                scores[row, torch.as_tensor(items, dtype=torch.long, device=scores.device)] = -torch.inf
        scores = scores.masked_fill(torch.isnan(scores), -torch.inf)
        kk = min(k, scores.shape[1])
        values, indices = torch.topk(scores, kk, dim=1)
        out = []
        for vals, idx in zip(values.cpu().numpy(), indices.cpu().numpy()):
            out.append([{"item": self.items[i], "score": float(v), "text": self.texts[i]}
                        for v, i in zip(vals, idx) if np.isfinite(v)])
        return out

    @staticmethod
    def _check_k(k) -> int:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise XdplugError(f"k must be a positive integer, got {k!r}")
        return int(k)

    def recommend(self, user=None, history=None, k: int = 10, exclude_seen: bool = True) -> list[dict]:
        """Top-``k`` items for a known ``user`` or for a new user's ``history`` (item IDs)."""
        k = self._check_k(k)
        if (user is None) == (history is None):
            raise XdplugError("give exactly one of user= (a known target user) and history= (a new user's items)")
        if user is not None:
            u = self.user_index(user)
            scores = self.score_users(np.array([u]))
            seen = self._seen.indices[self._seen.indptr[u]:self._seen.indptr[u + 1]] if exclude_seen else []
            return self._top(scores, [np.asarray(seen)], k)[0]
        scores, targets = self.score_history(history)
        return self._top(scores, [np.array(targets if exclude_seen else [], dtype=np.int64)], k)[0]

    def recommend_users(self, users=None, k: int = 10, exclude_seen: bool = True,
                        batch_size: int = 1024) -> dict[str, list[dict]]:
        """Top-``k`` for many known users (all of them by default), scored in batches."""
        k = self._check_k(k)
        index = np.arange(len(self.users)) if users is None else np.array([self.user_index(u) for u in users])
        out = {}
        for start in range(0, len(index), batch_size):
            batch = index[start:start + batch_size]
            scores = self.score_users(batch)
            exclude = [self._seen.indices[self._seen.indptr[u]:self._seen.indptr[u + 1]] if exclude_seen
                       else np.zeros(0, dtype=np.int64) for u in batch]
            for u, recs in zip(batch, self._top(scores, exclude, k)):
                out[self.users[u]] = recs
        return out


# =============================================================================== load


def check_meta(meta: dict, registry, file: Path) -> None:
    """The stored spec passes the checks a config gets, before anything is built from it.

    The manifest's hashes catch damage, not intent: anyone who edits ``meta.json``
    can recompute them. So the method entry is checked against the config schema
    and rebuilt through the registry (its components' option checks, the RecBole
    baselines' refusal of strings RecBole would evaluate), and the stored config
    passes :mod:`xdplug.config`'s schema and checks. Any failure is an
    :class:`ArtifactError` naming ``file`` and the key.
    """
    from .config import SCHEMA, _check, check_pooling, validate
    from .errors import ConfigError, UnknownComponentError
    from .model.strategy import build_strategy

    kind, spec, config = meta.get("kind"), meta.get("spec"), meta.get("config")
    step = "spec"
    try:
        for key, types in (("method", str), ("seed", int)):
            if not isinstance(meta.get(key), types) or isinstance(meta.get(key), bool):
                raise ConfigError(key, f"expected {types.__name__}, got {meta.get(key)!r}")
        if kind == "strategy":
            _check(spec, SCHEMA["strategies"][1], "spec", None)
            for key in ("encoder", "fusion", "adaptation"):
                if key not in spec:
                    raise ConfigError(f"spec.{key}", f"missing; a strategy names its {key}")
            build_strategy(spec, registry, "spec")
            n_union = (meta.get("model") or {}).get("n_union_users")
            if n_union is not None and (not isinstance(n_union, int) or isinstance(n_union, bool) or n_union < 0):
                raise ConfigError("model.n_union_users", f"expected a non-negative integer, got {n_union!r}")
        else:
            _check(spec, SCHEMA["baselines"][1], "spec", None)
            if "baseline" not in spec:
                raise ConfigError("spec.baseline", "missing; a baseline entry names its baseline")
            cls = registry.get("baseline", spec["baseline"], "spec.baseline")
            baseline_rebuild_kind(cls(spec.get("params"), "spec.params"))
            check_pooling(spec, cls, "spec")
        step = "config"
        _check(config, SCHEMA, "config", None)
        try:
            validate(config, None, None)
        except ConfigError as exc:
            raise ConfigError(f"config.{exc.path}", str(exc).split(": ", 1)[-1]) from None
    except ArtifactError as exc:
        raise ArtifactError(f"{file}: {exc}") from None
    except XdplugError as exc:
        hint = (" (is the plugin that provides it installed?)" if isinstance(exc, UnknownComponentError) else
                "; the artifact's stored spec fails the checks a config gets: it was edited after export "
                "or written by another version of xdplug")
        raise ArtifactError(f"{file}: {exc}{hint}") from None
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise ArtifactError(f"{file}: malformed {step} ({type(exc).__name__}: {exc}); not written by "
                            "`xdplug export`") from None


def load_artifact(path: str | Path, device: str | torch.device = "cpu") -> Recommender:
    """Verify and load an artifact directory; returns a :class:`Recommender`."""
    from .plugins import get_plugins
    from .recbole_compat import quiet_recbole_logging

    quiet_recbole_logging()
    folder = Path(path).expanduser()
    verify_artifact(folder)
    meta = _read_json(folder / "meta.json")
    if not isinstance(meta, dict) or meta.get("kind") not in ("strategy", "baseline") or "spec" not in meta:
        raise ArtifactError(f"{folder / 'meta.json'}: not an artifact description (kind, spec, config missing)")
    # the spec is checked like a config before any model, dataset or RecBole object is built
    check_meta(meta, get_plugins().registry, folder / "meta.json")
    ids = _read_json(folder / "ids.json")
    data, arrays = _load_data(folder / "data")
    if len(ids.get("users", [])) != data.n_target_users or len(ids.get("items", [])) != data.n_target_items:
        raise ArtifactError(f"{folder / 'ids.json'}: its IDs do not match the artifact's data "
                            f"({len(ids.get('users', []))} users, {len(ids.get('items', []))} items listed; "
                            f"the data has {data.n_target_users} and {data.n_target_items})")
    device = torch.device(device)
    state = _torch_load(folder / "weights.pt", device)
    extras = _torch_load(folder / "extras.pt", device) if (folder / "extras.pt").is_file() else {}
    registry = get_plugins().registry
    try:
        if meta["kind"] == "strategy" and _closed_form(meta["spec"]):
            scorer = _closed_form_from_data(meta, registry, data, device)
            return Recommender(folder, meta, data, ids, device, scorer=scorer, extras=extras, arrays=arrays)
        if meta["kind"] == "strategy":
            model = _strategy_from_state(meta, registry, data, arrays, state, device, folder / "weights.pt")
            return Recommender(folder, meta, data, ids, device, model=model, extras=extras, arrays=arrays)
        scorer = _baseline_from_state(meta, registry, data, state, device, folder / "weights.pt")
        return Recommender(folder, meta, data, ids, device, scorer=scorer, extras=extras, arrays=arrays)
    except ArtifactError:
        raise
    except XdplugError as exc:
        raise ArtifactError(f"{folder}: cannot rebuild {meta['kind']} {meta.get('method')!r} from its spec: {exc} "
                            "(is the plugin that provides it installed?)") from None


def _strategy_from_state(meta, registry, data, arrays, state, device, file):
    from .model.strategy import build_strategy

    user_rows, n_union = None, meta.get("model", {}).get("n_union_users")
    if "model_user_rows_target" in arrays:  # the layout of an updated artifact (new users appended)
        user_rows = {"target": arrays["model_user_rows_target"], "source": arrays["model_user_rows_source"]}
    encoder, _, _, _ = build_strategy(meta["spec"], registry, "strategy")
    text_module = _text_module_from_state(state, encoder, data, device)
    model, _, _ = build_strategy_model(meta["spec"], registry, data, device, meta["seed"],
                                       text_module=text_module, user_rows=user_rows, n_union_users=n_union)
    load_state(model, state, file)
    model.eval()
    return model


def _closed_form(spec: dict) -> bool:
    """Is this strategy of the closed-form item-item family (``params.model.family: ease``)?"""
    return ((spec.get("params") or {}).get("model") or {}).get("family") == "ease"


def _closed_form_from_data(meta, registry, data, device):
    from .model.strategy import fit_strategy

    with tempfile.TemporaryDirectory(prefix="xdplug-load-") as work, _rng_kept():
        ctx = _fit_context(data, meta["seed"], device, meta["config"], work)
        return fit_strategy(meta["spec"], registry, ctx, "strategy")


def _baseline_from_state(meta, registry, data, state, device, file):
    spec = meta["spec"]
    cls = registry.get("baseline", spec["baseline"], "baseline")
    baseline = cls(spec.get("params"), "baseline.params")
    kind = baseline_rebuild_kind(baseline)
    with tempfile.TemporaryDirectory(prefix="xdplug-load-") as work, _rng_kept():
        ctx = _fit_context(data, meta["seed"], device, meta["config"], work)
        if kind == "refit":
            return baseline.fit(ctx, pooled=bool(spec.get("pooled")))
        scorer = _recbole_baseline_model(baseline, ctx, bool(spec.get("pooled")))
    load_state(scorer.model, state, file)
    scorer.model.eval()
    return scorer


# =============================================================================== write / export


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", text).strip("_") or "run"


def encoder_info(entry: dict, registry) -> dict | None:
    """The encoder's name, options and text-cache key (the cache namespace of its vectors)."""
    if "encoder" not in entry:
        return None
    from .model.strategy import build_strategy

    encoder, _, _, _ = build_strategy(entry, registry, "strategy")
    info = {"name": encoder.name, "role": encoder.role, "params": encoder.params}
    if encoder.role == "text" and hasattr(encoder, "model_id"):
        try:
            from .textcache import TextEmbeddingCache

            info["model_id"] = encoder.model_id
            info["text_cache_key"] = TextEmbeddingCache.namespace(
                encoder.model_id, encoder.params.get("pooling", "mean"), encoder.params.get("max_length", 64))
        except XdplugError as exc:  # the model files are gone: the artifact still serves known items
            info["model_id"] = None
            info["note"] = str(exc)
    return info


def write_artifact(folder: str | Path, *, kind: str, method: str, entry: dict, seed: int, config: dict,
                   data, registry, scorer=None, model=None, run_id: str | None = None,
                   metrics: dict | None = None, ids: dict | None = None, parent: dict | None = None,
                   updates: list | None = None, version: int = 1, user_rows=None, n_union_users=None,
                   extra_meta: dict | None = None, overwrite: bool = False) -> Path:
    """Write an artifact directory (aside, then renamed into place) for a fitted method."""
    from .config import config_hash
    from .runner import library_versions

    folder = Path(folder).expanduser()
    if folder.exists() and not overwrite:
        raise ArtifactError(f"{folder}: already exists; remove it or choose another directory")
    if kind == "strategy" and _closed_form(entry):
        # the closed form is deterministic: loading refits it from the stored data (source kept)
        state, extra_arrays, extras, keep_source, rebuild = {}, {}, {}, True, "refit"
        n_union_users = data.n_target_users
    elif kind == "strategy":
        model = model if model is not None else scorer.model
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        if user_rows is None:
            user_rows, n_union_users = default_user_rows(data)
        extra_arrays = {"model_user_rows_target": np.asarray(user_rows["target"], dtype=np.int64),
                        "model_user_rows_source": np.asarray(user_rows["source"], dtype=np.int64)}
        # a frozen text table fitted with whitening maps new texts the same way (update)
        whitening = getattr(getattr(model, "text_encoder", None), "whitening", None)
        if whitening is not None:
            extras = {"whiten_mean": torch.as_tensor(whitening[0]), "whiten_matrix": torch.as_tensor(whitening[1])}
        else:
            extras = dict(getattr(model, "_artifact_extras", None) or {})
        keep_source = False
        rebuild = "state"
    else:
        rebuild = baseline_rebuild_kind(registry.get("baseline", entry["baseline"])(entry.get("params"), "baseline.params"))
        inner = getattr(scorer, "model", None)
        state = {k: v.detach().cpu() for k, v in inner.state_dict().items()} if rebuild == "state" else {}
        extra_arrays, extras, keep_source = {}, {}, True
    ids = ids if ids is not None else raw_ids(config, data, registry)
    meta = {
        "format": FORMAT, "kind": kind, "method": method, "seed": int(seed), "run_id": run_id,
        "spec": entry, "config": config, "config_hash": config_hash(config),
        "versions": library_versions(), "encoder": encoder_info(entry, registry) if kind == "strategy" else None,
        "rebuild": rebuild, "metrics": metrics or {}, "version": version, "parent": parent,
        "updates": updates or [], "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "text_template": config["dataset"]["text_template"],
        "model": {"n_union_users": int(n_union_users)} if kind == "strategy" else {},
        **(extra_meta or {}),
    }
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".tmp-", dir=folder.parent))
    try:
        torch.save(state, tmp / "weights.pt")
        if extras:
            torch.save(extras, tmp / "extras.pt")
        _write_data(tmp / "data", data, keep_source, extra_arrays)
        (tmp / "ids.json").write_text(json.dumps(ids))
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
        _write_manifest(tmp, meta)
        mask = os.umask(0)
        os.umask(mask)
        for directory in (tmp, tmp / "data"):  # mkdtemp makes them private; an artifact is shared
            os.chmod(directory, 0o777 & ~mask)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def fit_method(spec, config: dict, registry, data, device, workdir: Path, progress=None):
    """Train one grid cell exactly as :func:`xdplug.runner.execute_run` does; returns the scorer."""
    from .config import check_pooling
    from .model.strategy import fit_strategy

    ctx = _fit_context(data, spec.seed, device, config, workdir, progress)
    if spec.kind == "baseline":
        cls = registry.get("baseline", spec.entry["baseline"], f"{spec.path}.baseline")
        baseline = cls(spec.entry.get("params"), f"{spec.path}.params")
        baseline_rebuild_kind(baseline)  # fail before training when it cannot be exported
        check_pooling(spec.entry, cls, spec.path)
        return baseline.fit(ctx, pooled=bool(spec.entry.get("pooled")))
    return fit_strategy(spec.entry, registry, ctx, spec.path)


def _valid_metric(scorer_fn, data, config, device) -> float:
    from .config import parse_metric
    from .training import quick_metric, rank_split

    metric, k = parse_metric(config["evaluation"]["valid_metric"])
    result = rank_split(scorer_fn, data, "valid", [k], device, config["evaluation"]["user_groups"])
    return quick_metric(result, metric, k)


def export_run(config: dict, method: str, seed: int | None = None, out: str | Path | None = None,
               overwrite: bool = False, progress=None, check_users: int = 64) -> tuple[Path, dict]:
    """Export a finished run of the store as an artifact: retrain it from its spec, check, write.

    The run is trained again with its seed on the same prepared split (training is
    seeded end to end, so this reproduces the stored run); its validation metric is
    compared with the stored one, and the written artifact is loaded back and must
    score like the model in memory. Returns the artifact path and a report.
    """
    from .data.prepare import prepare
    from .plugins import get_plugins
    from .recbole_compat import quiet_recbole_logging, resolve_device
    from .runner import expand, output_dir, store_path
    from .store import RunStore

    quiet_recbole_logging()
    registry = get_plugins().registry
    path = store_path(config)
    if not path.is_file():
        raise RunError(f"no run store at {path}; run `xdplug run` on this config first")
    specs = expand(config)
    methods = sorted({s.method for s in specs})
    chosen = [s for s in specs if s.method == method]
    if not chosen:
        raise RunError(f"no method {method!r} in the config; its methods are {', '.join(methods)}")
    store = RunStore(path)
    try:
        records = {r["run_id"]: r for r in store.runs([s.run_id for s in chosen])}
    finally:
        store.close()
    if seed is not None:
        chosen = [s for s in chosen if s.seed == seed]
        if not chosen:
            raise RunError(f"seed {seed} is not one of the config's seeds {config['seeds']}")
    done = [s for s in chosen if records.get(s.run_id, {}).get("status") == "done"]
    if not done:
        status = records.get(chosen[0].run_id, {}).get("status", "not run")
        raise RunError(f"{method} (seed {chosen[0].seed}) has no finished run in {path} (status: {status}); "
                       "only finished runs can be exported")
    spec = done[0]
    record = records[spec.run_id]
    stored = record.get("spec")
    if isinstance(stored, dict) and stored and stored != spec.entry:
        # the store holds what was trained (a tuned method: its chosen parameters)
        import dataclasses

        spec = dataclasses.replace(spec, entry=stored)
    out = Path(out) if out else output_dir(config) / "artifacts" / f"{_slug(spec.method)}-{spec.seed}"
    if out.exists() and not overwrite:
        raise ArtifactError(f"{out}: already exists; remove it, pass --force, or choose -o DIR")
    device = resolve_device(config["device"])
    recipe_cls = registry.get("dataset", config["dataset"]["recipe"], "dataset.recipe")
    recipe = recipe_cls(config["dataset"]["params"], "dataset.params")
    data = prepare(recipe, config["dataset"], spec.seed)
    started = time.perf_counter()
    if progress:
        progress(f"training {spec.method} (seed {spec.seed}) again from its spec")
    with tempfile.TemporaryDirectory(prefix="xdplug-export-") as work:
        scorer = fit_method(spec, config, registry, data, device, Path(work), progress)
        retrained = _valid_metric(scorer.score, data, config, device)
        metric_name = config["evaluation"]["valid_metric"]
        stored_metric = (record.get("metrics") or {}).get("valid", {}).get(metric_name)
        reproduction = {"valid_metric": metric_name, "stored": stored_metric, "retrained": retrained,
                        "match": stored_metric is not None and abs(stored_metric - retrained) <= 1e-6,
                        "train_seconds": time.perf_counter() - started}
        written = write_artifact(out, kind=spec.kind, method=spec.method, entry=spec.entry, seed=spec.seed,
                                 config=config, data=data, registry=registry, scorer=scorer, run_id=spec.run_id,
                                 metrics=record.get("metrics") or {}, overwrite=overwrite,
                                 extra_meta={"reproduction": reproduction})
        check = check_roundtrip(written, scorer, data, n_users=check_users)
    return written, {"run_id": spec.run_id, "method": spec.method, "seed": spec.seed,
                     "reproduction": reproduction, "roundtrip": check}


def check_roundtrip(folder: Path, scorer, data, n_users: int = 64, k: int = 10) -> dict:
    """Load ``folder`` back and compare its top-``k`` with ``scorer``'s for some users."""
    rec = load_artifact(folder)
    users = np.arange(min(n_users, data.n_target_users))
    with torch.no_grad():
        ours = scorer.score(torch.as_tensor(users)).to(torch.float32).cpu()
    theirs = rec.score_users(users).cpu()
    if ours.shape != theirs.shape or not torch.allclose(ours, theirs, rtol=1e-4, atol=1e-4):
        shutil.rmtree(folder, ignore_errors=True)
        raise ArtifactError(f"{folder}: the exported model does not score like the trained one "
                            "(removed); please report this with the method's spec")
    same = bool((torch.topk(ours, min(k, ours.shape[1]), dim=1).indices ==
                 torch.topk(theirs, min(k, theirs.shape[1]), dim=1).indices).all())
    return {"users": len(users), "scores_match": True, "topk_match": same}


def next_version_path(path: Path) -> Path:
    """``ARTIFACT`` -> ``ARTIFACT.v2``, ``ARTIFACT.v2`` -> ``ARTIFACT.v3`` (the next free one)."""
    match = re.match(r"^(.*)\.v(\d+)$", path.name)
    base, n = (match.group(1), int(match.group(2))) if match else (path.name, 1)
    n += 1
    while (path.parent / f"{base}.v{n}").exists():
        n += 1
    return path.parent / f"{base}.v{n}"


# =============================================================================== update


def _read_table(file: Path, what: str):
    import pandas as pd

    if not file.is_file():
        raise DataError("file not found", str(file))
    if file.suffix.lower() in (".parquet", ".pq"):
        try:
            return pd.read_parquet(file).astype(str)
        except ImportError:
            raise DataError("reading Parquet needs pyarrow (pip install 'pyarrow<19')", str(file)) from None
    sep = {".csv": ",", ".tsv": "\t", ".tab": "\t"}.get(file.suffix.lower())
    try:
        if sep is None:
            import csv

            with file.open(encoding="utf-8", errors="replace") as handle:
                first = handle.readline()
            try:
                sep = csv.Sniffer().sniff(first, delimiters=",\t;|").delimiter
            except csv.Error:
                sep = ","
        df = pd.read_csv(file, sep=sep, dtype=str, keep_default_na=False, na_values=[""])
    except UnicodeDecodeError as exc:
        raise DataError(f"cannot read {what}: the file is not UTF-8 text (byte 0x{exc.object[exc.start]:02x}: "
                        f"{exc.reason}); save it as UTF-8", str(file)) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"cannot read {what}: {str(exc).strip()}", str(file)) from None
    df.columns = [str(c).strip() for c in df.columns]
    return df


def read_new_interactions(file: str | Path, min_rating: float):
    """``user,item[,rating][,timestamp]`` rows; rated rows below ``min_rating`` are not positives."""
    import pandas as pd

    from .data.raw import refuse_nonfinite

    file = Path(file).expanduser()
    df = _read_table(file, "the new interactions")
    for column in ("user", "item"):
        if column not in df.columns:
            raise DataError(f"missing column {column!r}; expected a header user,item[,rating][,timestamp], "
                            f"found {list(df.columns)}", str(file), column)
        empty = df[column].isna() | (df[column].astype(str).str.strip() == "")
        if empty.any():
            raise DataError(f"empty value in row {int(np.flatnonzero(empty.to_numpy())[0]) + 1}", str(file), column)
        df[column] = df[column].astype(str).str.strip()
    if df.empty:
        raise DataError("no interactions (a header and no rows)", str(file))
    keep = np.ones(len(df), dtype=bool)
    if "rating" in df.columns:
        ratings = pd.to_numeric(df["rating"], errors="coerce")
        refuse_nonfinite(df["rating"], ratings, str(file), "rating")  # inf would count as a positive
        bad = ratings.isna() & df["rating"].notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"expected numbers, got {df['rating'].iloc[row]!r} (row {row + 1})", str(file), "rating")
        keep = (ratings.isna() | (ratings >= min_rating)).to_numpy()
    return df.loc[keep, ["user", "item"]].drop_duplicates().reset_index(drop=True), int((~keep).sum())


def _holdout(pairs: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask: ``fraction`` of each user's new pairs (users with two or more keep one for training)."""
    held = np.zeros(len(pairs), dtype=bool)
    if fraction <= 0 or not len(pairs):
        return held
    order = np.argsort(pairs[:, 0], kind="stable")
    users, starts, counts = np.unique(pairs[order, 0], return_index=True, return_counts=True)
    for start, count in zip(starts, counts):
        if count < 2:
            continue
        n_hold = min(count - 1, max(1, int(round(fraction * count))))
        chosen = rng.choice(count, size=n_hold, replace=False)
        held[order[start + chosen]] = True
    return held


def _slice_metrics(score_fn, users, positives, masked, n_items, device, k: int = 10) -> dict:
    from .evaluation import rank_users

    if not len(users):
        return {}
    topk, _ = rank_users(score_fn, users, positives, masked, n_items, k, device=device)
    hits = np.array([np.isin(row, pos) for row, pos in zip(topk, positives)])
    disc = 1.0 / np.log2(np.arange(2, topk.shape[1] + 2))
    idcg = np.array([disc[: min(len(p), topk.shape[1])].sum() for p in positives])
    return {f"ndcg@{k}": float(np.mean((hits * disc).sum(1) / idcg)),
            f"recall@{k}": float(np.mean(hits.sum(1) / np.array([len(p) for p in positives])))}


def _new_item_texts(encoder, texts: list[str], extras: dict, device) -> torch.Tensor:
    """Vectors of new items' texts, mapped as the artifact's frozen table was (whitening, normalisation)."""
    if hasattr(encoder, "embed"):
        x = np.asarray(encoder.embed(texts, device), dtype=np.float32)
    else:
        from .data.catalog import ItemCatalog

        catalog = ItemCatalog(keys=[f"new{i}" for i in range(len(texts))], texts=list(texts),
                              source_rows=np.zeros(0, dtype=np.int64), target_rows=np.arange(len(texts)))
        module = encoder.build(catalog, torch.device(device))
        with torch.no_grad():
            return module(torch.arange(len(texts), device=device)).float().cpu()
    if "whiten_mean" in extras:
        x = (x - extras["whiten_mean"].cpu().numpy()) @ extras["whiten_matrix"].cpu().numpy()
    if encoder.params.get("normalize"):
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32))


def update_artifact(path: str | Path, interactions: str | Path, items: str | Path | None = None,
                    out: str | Path | None = None, epochs: int = 3, holdout: float = 0.1, seed: int = 0,
                    learning_rate: float | None = None, replay: float = 1.0, device: str = "cpu",
                    progress=None) -> dict:
    """Fine-tune an exported strategy on new target interactions; write the next version beside it.

    New users join with their new items as history; new items get their text
    vector (their fields from ``items``, rendered with the artifact's template)
    and a fresh ID. A seeded ``holdout`` fraction of each user's new
    interactions is held out: NDCG@10 and Recall@10 on it are reported before
    and after. Training runs for at most ``epochs`` epochs over the users with
    new interactions plus ``replay`` times as many other users (so the others are
    not forgotten), keeps the best epoch on the held-out slice, and keeps the
    previous weights when no epoch beats them. Returns a report; the new
    artifact's path is ``report["path"]``.
    """
    import pandas as pd

    from .data.text import normalise_key, render_texts, template_fields
    from .plugins import get_plugins
    from .recbole_compat import quiet_recbole_logging
    from .training import fit_recbole, recbole_data

    quiet_recbole_logging()
    started = time.perf_counter()
    src = Path(path).expanduser()
    rec = load_artifact(src, device)
    meta, data, ids = rec.meta, rec.data, rec.ids
    if meta["kind"] != "strategy":
        raise ArtifactError(f"{src}: update fine-tunes strategies; {meta['method']!r} is a baseline "
                            f"({meta['spec'].get('baseline')}), retrain it with `xdplug run`")
    if _closed_form(meta["spec"]):
        raise ArtifactError(f"{src}: {meta['method']!r} is a closed-form item-item strategy (family: ease); it has "
                            "no weights to fine-tune: refit it on the grown data with `xdplug run` (seconds)")
    if not 0 <= holdout < 1:
        raise XdplugError(f"holdout must be a fraction in [0, 1), got {holdout!r}")
    if epochs < 1:
        raise XdplugError(f"epochs must be at least 1, got {epochs!r}")
    config = meta["config"]
    registry = get_plugins().registry
    new, below = read_new_interactions(interactions, config["dataset"]["protocol"]["min_rating"])
    update_warnings: list[str] = []
    item_table = None
    if items is not None:
        item_table = _read_table(Path(items).expanduser(), "the item table")
        if "item" not in item_table.columns:
            raise DataError(f"missing column 'item'; expected item plus the template's fields "
                            f"({meta.get('text_template')}), found {list(item_table.columns)}", str(items), "item")
        # the new items' text is rendered from these columns: without any template field every
        # new item would get the fallback text "item <id>" and a text strategy would learn nothing
        template = config["dataset"]["text_template"]
        wanted = template_fields(template)
        lacking = [name for name in wanted if name not in item_table.columns]
        if lacking and rec.model.uses_text:
            found = [c for c in item_table.columns if c != "item"]
            if len(lacking) == len(wanted):
                raise DataError(f"the item table has none of the text template's fields ({', '.join(lacking)} "
                                f"missing; template {template!r}), so every new item would get the fallback text "
                                f"'item <id>'; found columns {found}: name the columns after the template's "
                                "fields", str(items), ", ".join(lacking))
            update_warnings.append(f"{items}: the item table lacks the template field(s) {', '.join(lacking)} "
                                   f"(template {template!r}); new items' texts leave them out")
            logger.warning("%s", update_warnings[-1])
        item_table["item"] = item_table["item"].astype(str).str.strip()
        item_table = item_table.drop_duplicates("item", keep="last").reset_index(drop=True)

    # -- users and items: known ones keep their index, new ones are appended ----------------
    align = ids["align"]
    keys = copy.deepcopy(data.keys)
    users, items_ids = list(ids["users"]), list(ids["items"])
    user_of, item_of, row_of = dict(rec._user_of), dict(rec._item_of), dict(rec._row_of)
    aliases = ids.get("item_aliases") or {}
    target_rows = list(data.catalog.target_rows.tolist())
    target_of_row = dict(rec._target_of_row)
    fields = {row["item"]: row for row in item_table.to_dict("records")} if item_table is not None else {}
    new_users, new_items, new_rows = [], [], []

    def item_key(item: str) -> str:
        """The prepared key of a target item, by the rule the preparation used."""
        mode = align.get("items")
        if mode == "id":
            return item
        if mode == "key":
            field = align.get("item_key") or "title"
            value = item if field == "item" else (fields.get(item) or {}).get(field)
            value = normalise_key(value) if value else ""
            return f"k:{value}" if value else f"t:{item}"
        return f"t:{item}"

    u_idx = []
    for user in new["user"]:
        if user not in user_of:
            user_of[user] = len(users)
            users.append(user)
            keys["target_users"].append(user if align.get("users") == "id" else f"t:{user}")
            new_users.append(user)
        u_idx.append(user_of[user])
    i_idx = []
    for item in new["item"]:
        if item not in item_of:
            row = aliases.get(item) if align.get("items") == "key" else None
            if row is None:
                key = item_key(item)
                row = row_of.get(key)
            if row is not None and row in target_of_row:
                item_of[item] = target_of_row[row]  # another ID of a known target item
            else:
                if row is None:  # an item the artifact has never seen: a new catalog row
                    row = len(keys["catalog"])
                    keys["catalog"].append(key)
                    keys["texts"].append(f"item {item}")
                    row_of[key] = row
                    new_rows.append((row, item))
                target_of_row[row] = len(items_ids)
                item_of[item] = len(items_ids)
                items_ids.append(item)
                keys["target_items"].append(keys["catalog"][row])
                target_rows.append(row)
                new_items.append(item)
        i_idx.append(item_of[item])
    # texts of new catalog rows: the item table rendered with the artifact's template
    if new_rows:
        missing = [item for _, item in new_rows if item not in fields]
        if missing and rec.model.uses_text:
            shown = ", ".join(repr(m) for m in missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            plural = len(missing) > 1
            raise DataError(f"new item{'s' if plural else ''} {shown} {'are' if plural else 'is'} not in the "
                            f"artifact (new, or dropped by the preparation's filters) and the strategy reads "
                            f"item text: give {'their' if plural else 'its'} fields with --items FILE (columns "
                            f"item plus the template's fields, template {meta.get('text_template')!r})",
                            str(interactions), "item")
        present = [item for _, item in new_rows if item in fields]
        if present:
            table = pd.DataFrame([fields[item] for item in present])
            texts, fell_back = render_texts(table, config["dataset"]["text_template"],
                                            {c: c for c in table.columns if c != "item"})
            if fell_back == len(present) and rec.model.uses_text:
                raise DataError(f"none of the {len(present)} new item(s) has a value in the text template's fields "
                                f"(template {config['dataset']['text_template']!r}), so each would get the "
                                "fallback text 'item <id>'; fill in their fields", str(items), "item")
            for row, item in new_rows:
                if item in texts:
                    keys["texts"][row] = texts[item]
    pairs = np.stack([np.array(u_idx, dtype=np.int64), np.array(i_idx, dtype=np.int64)], axis=1).reshape(-1, 2)
    known = set(map(tuple, np.concatenate([data.target_train, data.target_valid, data.target_test]).tolist()))
    fresh = np.array([tuple(p) not in known for p in pairs.tolist()], dtype=bool)
    already = int((~fresh).sum())
    pairs = np.unique(pairs[fresh], axis=0)
    if not len(pairs):
        raise DataError("no new interactions: every row is already known to the artifact"
                        + (f" or rated below {config['dataset']['protocol']['min_rating']}" if below else ""),
                        str(interactions))
    rng = np.random.default_rng(seed)
    held = _holdout(pairs, holdout, rng)
    train_new, valid_new = pairs[~held], pairs[held]

    from .data.catalog import ItemCatalog

    catalog = ItemCatalog(keys=keys["catalog"], texts=keys["texts"], source_rows=data.catalog.source_rows.copy(),
                          target_rows=np.array(target_rows, dtype=np.int64))
    work_data = _copy_data(data, keys=keys, catalog=catalog,
                           target_train=np.concatenate([data.target_train, train_new]).astype(np.int64))
    # user-ID rows: new target users come after every row the model already has
    n_union = int(meta["model"]["n_union_users"])
    n_new_users = len(new_users)
    user_rows = {"target": np.concatenate([rec.arrays["model_user_rows_target"],
                                           n_union + np.arange(n_new_users)]).astype(np.int64),
                 "source": np.asarray(rec.arrays["model_user_rows_source"], dtype=np.int64)}
    n_union_new = n_union + n_new_users

    # -- the grown model: old weights, fresh rows for new users and items ---------------------
    state = {k: v.detach().clone() for k, v in rec.model.state_dict().items()}
    text_module = None
    if "text_encoder.table" in state and [k for k in state if k.startswith("text_encoder.")] == ["text_encoder.table"]:
        table = state["text_encoder.table"]
        vectors = torch.zeros(len(keys["catalog"]), table.shape[1], dtype=table.dtype)
        vectors[: table.shape[0]] = table.cpu()
        if new_rows:
            from .model.strategy import build_strategy

            encoder, _, _, _ = build_strategy(meta["spec"], registry, "strategy")
            if progress:
                progress(f"encoding {len(new_rows)} new item texts")
            vectors[[r for r, _ in new_rows]] = _new_item_texts(
                encoder, [keys["texts"][r] for r, _ in new_rows], rec.extras, device).to(table.dtype)
        text_module = TextTable(vectors.to(device))
        state["text_encoder.table"] = vectors
    workdir = Path(tempfile.mkdtemp(prefix="xdplug-update-"))
    try:
        ctx = _fit_context(work_data, meta["seed"], device, config, workdir, progress)
        from .model import transfer

        with _rng_kept():
            rb = recbole_data(ctx, transfer._CLASS or transfer._make_model_class(), {"train_neg_sample_args": None})
        model, encoder, options = build_strategy_model(meta["spec"], registry, work_data, device, meta["seed"] + 1,
                                                       text_module=text_module, rb=rb, user_rows=user_rows,
                                                       n_union_users=n_union_new)
        load_state(model, state, src / "weights.pt", grow=True)
        model.eval()

        # -- the held-out slice and the metric before -----------------------------------------
        seen_all = np.concatenate([work_data.target_train, data.target_valid, data.target_test, valid_new])
        order = np.argsort(valid_new[:, 0], kind="stable")
        v_users, v_starts = np.unique(valid_new[order, 0], return_index=True)
        positives = np.split(valid_new[order, 1], v_starts[1:]) if len(valid_new) else []
        import scipy.sparse as sp

        seen_m = sp.csr_matrix((np.ones(len(seen_all)), (seen_all[:, 0], seen_all[:, 1])),
                               shape=(len(users), len(items_ids)))
        seen_m.sum_duplicates()
        masked = [np.setdiff1d(seen_m.indices[seen_m.indptr[u]:seen_m.indptr[u + 1]], pos)
                  for u, pos in zip(v_users, positives)]
        n_items = len(items_ids)

        def score(u):
            return model.score_users("target", u)

        def validate() -> float:
            return _slice_metrics(score, v_users, positives, masked, n_items, device).get("ndcg@10", 0.0)

        before = _slice_metrics(score, v_users, positives, masked, n_items, device)
        snapshot = {k: v.detach().clone() for k, v in model.state_dict().items()}

        # -- fine-tuning: users with new interactions plus a replay sample -----------------------
        model.mark_trained("target")
        touched = np.unique(train_new[:, 0]) if len(train_new) else np.zeros(0, dtype=np.int64)
        active = model.histories["target"].active_users()
        others = np.setdiff1d(active, touched)
        n_replay = min(len(others), int(round(replay * len(touched))))
        replayed = rng.choice(others, size=n_replay, replace=False) if n_replay else np.zeros(0, dtype=np.int64)
        train_users = np.union1d(touched, replayed).astype(np.int64)
        from .model.batches import UserBatches

        loader = UserBatches({"target": train_users}, options["batch_users"], meta["seed"] + 1)
        cfg = rb.config.final_config_dict
        cfg["epochs"] = epochs
        cfg["learning_rate"] = learning_rate or options["learning_rate"] or config["train"]["learning_rate"]
        cfg["weight_decay"] = options["weight_decay"]
        cfg["eval_step"] = 1 if len(v_users) else epochs + 1
        model.domain_weight = {"source": 1.0, "target": 1.0}
        model.extra_losses = []
        params = [p for p in model.parameters() if p.requires_grad]
        if progress:
            progress(f"fine-tuning on {len(train_users)} users for up to {epochs} epochs")
        with _seeded(meta["seed"] + seed + 1):  # the same update gives the same model
            trainer = fit_recbole(ctx, rb.config, model, loader, validate, phase="update", params=params)
        model.eval()
        after = _slice_metrics(score, v_users, positives, masked, n_items, device)
        kept = "updated"
        if before and after and after["ndcg@10"] < before["ndcg@10"]:
            model.load_state_dict(snapshot)
            after = dict(before)
            kept = "previous weights (no epoch beat them on the held-out slice)"
        seconds = time.perf_counter() - started

        # -- the new version: every new interaction joins the users' histories -------------------
        final = _copy_data(work_data, target_train=np.concatenate([work_data.target_train, valid_new]).astype(np.int64))
        final.summary.setdefault("updates", []).append({"interactions": int(len(pairs)), "users": len(new_users),
                                                        "items": len(new_items)})
        report = {
            "from": str(src), "new_interactions": int(len(pairs)), "ignored_known": already,
            "ignored_below_min_rating": below, "new_users": len(new_users), "new_items": len(new_items),
            "held_out": int(len(valid_new)), "validation_users": int(len(v_users)),
            "before": before, "after": after, "result": kept, "epochs": epochs,
            "best_epoch": int(getattr(trainer, "best_epoch", -1)), "trained_users": int(len(train_users)),
            "seconds": seconds, "warnings": update_warnings,
        }
        new_ids = {"align": align, "users": users, "items": items_ids, "item_aliases": ids.get("item_aliases") or {}}
        target = Path(out).expanduser() if out else next_version_path(src)
        model._artifact_extras = rec.extras
        version = int(meta.get("version", 1)) + 1
        manifest = json.loads((src / MANIFEST).read_text())
        parent = {"path": str(src), "version": meta.get("version", 1),
                  "weights_sha256": manifest["files"]["weights.pt"]["sha256"]}
        written = write_artifact(target, kind="strategy", method=meta["method"], entry=meta["spec"],
                                 seed=meta["seed"], config=config, data=final, registry=registry, model=model,
                                 run_id=meta.get("run_id"), metrics=meta.get("metrics"), ids=new_ids,
                                 parent=parent, updates=list(meta.get("updates", [])) + [report],
                                 version=version, user_rows=user_rows, n_union_users=n_union_new,
                                 extra_meta={k: meta[k] for k in ("reproduction",) if k in meta})
        report["path"] = str(written)
        report["version"] = version
        return report
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
