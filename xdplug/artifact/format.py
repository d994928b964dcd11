"""The artifact format: a directory, its manifest of sha256 hashes, its data arrays and ID maps.

Loading reads only directories whose manifest lists exactly their files with
matching hashes; a missing, foreign or tampered file is an
:class:`~xdplug.errors.ArtifactError` naming the file. Weights are read with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import torch

from ..data.catalog import ItemCatalog
from ..data.crossdomain import CrossDomainData
from ..errors import ArtifactError
from ..npzfile import declared_arrays, write_npz

FORMAT = "xdplug-artifact"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


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


def check_replaceable(folder: str | Path, overwrite: bool) -> Path:
    """Where an artifact may be written: a new path, or with ``overwrite`` an existing artifact.

    ``--force`` replaces an artifact and nothing else: a folder that is not an
    artifact (one whose manifest does not list exactly its files), the working
    directory or a folder above it, and a symbolic link are refused before any
    work starts, so no user file is ever deleted. Returns the absolute path.
    """
    folder = Path(folder).expanduser().absolute()
    if not folder.exists() and not folder.is_symlink():
        return folder
    if not overwrite:
        raise ArtifactError(f"{folder}: already exists; remove it, pass --force to replace an artifact, "
                            "or choose another directory with -o")
    if folder.is_symlink():
        raise ArtifactError(f"{folder}: is a symbolic link; --force replaces only an artifact directory "
                            "itself: choose another directory with -o")
    cwd = Path.cwd().resolve()
    real = folder.resolve()
    if real == cwd or real in cwd.parents or real == Path(real.anchor) or real == Path.home().resolve():
        raise ArtifactError(f"{folder}: is the working directory, a folder above it or the home folder; "
                            "--force replaces only an artifact directory: choose another directory with -o")
    if not folder.is_dir():
        raise ArtifactError(f"{folder}: exists and is not an artifact directory (a file); --force replaces "
                            "only an artifact: choose another directory with -o")
    manifest_path = folder / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
        listed = set(manifest["files"]) if manifest.get("format") == FORMAT else None
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        listed = None
    if listed is None:
        raise ArtifactError(f"{folder}: exists and is not an xdplug artifact (no {MANIFEST} written by "
                            "`xdplug export`); --force replaces only an artifact, never another folder: "
                            "choose another directory with -o")
    foreign = [name for name in _listing(folder) if name != MANIFEST and name not in listed]
    if foreign or any(p.is_symlink() for p in folder.rglob("*")):
        shown = ", ".join(foreign[:3]) or "a symbolic link"
        raise ArtifactError(f"{folder}: holds files that are not part of the artifact ({shown}); --force "
                            "deletes nothing it did not write: move them away or choose another directory with -o")
    return folder


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
    version = manifest.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ArtifactError(f"{manifest_path}: format_version: expected a positive integer (this xdplug writes "
                            f"{FORMAT_VERSION}), got {version!r}")
    if version > FORMAT_VERSION:
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
        # next-item: what precedes each test target, time-ordered (a sequence model's input of a known user)
        **({"target_test_input": np.asarray(data.target_test_input, dtype=np.int64).reshape(-1, 2)}
           if data.target_test_input is not None else {}),
        **(extra or {}),
    }
    write_npz(folder / "arrays.npz", arrays, compress=True)
    (folder / "keys.json").write_text(json.dumps(data.keys))
    (folder / "summary.json").write_text(json.dumps(data.summary, indent=2, default=str))


#: the arrays of ``data/arrays.npz``: name -> (dimensions, required)
ARRAYS = {"target_train": (2, True), "target_valid": (2, True), "target_test": (2, True),
          "source_train": (2, True), "catalog_source_rows": (1, True), "catalog_target_rows": (1, True),
          "cold_items": (1, False), "target_test_input": (2, False), "model_user_rows_target": (1, False), "model_user_rows_source": (1, False)}
#: the lists of ``data/keys.json``
KEY_LISTS = ("target_users", "target_items", "source_users", "source_items", "catalog", "texts")


def _npz_headers(path: Path) -> dict[str, tuple[tuple, np.dtype]]:
    """The arrays' declared shapes and dtypes, checked against the archive before ``np.load`` allocates
    them (:func:`~xdplug.npzfile.declared_arrays`)."""
    try:
        return declared_arrays(path)
    except ValueError as exc:
        raise ArtifactError(f"{path}: {exc}; the archive was tampered with or damaged") from None
    except Exception as exc:  # noqa: BLE001 - zipfile, zlib and numpy format errors
        raise ArtifactError(f"{path}: not a readable .npz archive ({type(exc).__name__}: {exc})") from None


def _check_keys(file: Path, keys) -> dict[str, int]:
    """``data/keys.json`` holds its lists of strings, catalog and texts alike long; returns the counts."""
    if not isinstance(keys, dict):
        raise ArtifactError(f"{file}: expected a JSON object of ID lists, got {type(keys).__name__}")
    for name in KEY_LISTS:
        value = keys.get(name)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ArtifactError(f"{file}: {name}: expected a list of strings, got "
                                f"{type(value).__name__ if not isinstance(value, list) else 'a list with non-strings'}")
    for name in ("target_users", "target_items", "catalog"):
        if not keys[name]:
            raise ArtifactError(f"{file}: {name}: empty; an artifact serves at least one target user and item")
    if len(keys["texts"]) != len(keys["catalog"]):
        raise ArtifactError(f"{file}: texts: {len(keys['texts'])} texts for {len(keys['catalog'])} catalog items; "
                            "expected one text per catalog item")
    return {name: len(keys[name]) for name in KEY_LISTS}


def _check_shapes(file: Path, headers: dict, n: dict[str, int]) -> None:
    """Every array is there, integer, and as long as ``data/keys.json`` says (pairs at most users x items)."""
    for name, (shape, dtype) in headers.items():
        if name not in ARRAYS:
            raise ArtifactError(f"{file}: foreign array {name!r}; expected {', '.join(ARRAYS)}")
        dims, _ = ARRAYS[name]
        if dtype.kind not in "iu" or len(shape) != dims or (dims == 2 and shape[1] != 2):
            want = "[n, 2] integer (user, item) pairs" if dims == 2 else "a 1-d integer array"
            raise ArtifactError(f"{file}: {name}: expected {want}, got shape {tuple(shape)} of {dtype}")
    for name, (_, required) in ARRAYS.items():
        if required and name not in headers:
            raise ArtifactError(f"{file}: {name}: missing; not a complete artifact")
    exact = {"catalog_target_rows": ("target_items", n["target_items"]),
             "catalog_source_rows": ("source_items", n["source_items"]),
             "model_user_rows_target": ("target_users", n["target_users"]),
             "model_user_rows_source": ("source_users", n["source_users"])}
    at_most = {"target_train": n["target_users"] * n["target_items"],
               "target_valid": n["target_users"] * n["target_items"],
               "target_test": n["target_users"] * n["target_items"],
               "target_test_input": n["target_users"] * n["target_items"],
               "source_train": n["source_users"] * n["source_items"], "cold_items": n["target_items"]}
    for name, (shape, _) in headers.items():
        if name in exact and shape[0] != exact[name][1]:
            raise ArtifactError(f"{file}: {name}: {shape[0]:,} entries; expected {exact[name][1]:,}, one per "
                                f"{exact[name][0][:-1].replace('_', ' ')} of data/keys.json")
        if name in at_most and shape[0] > at_most[name]:
            raise ArtifactError(f"{file}: {name}: {shape[0]:,} entries; at most {at_most[name]:,} fit the users "
                                "and items of data/keys.json")


def _check_ranges(file: Path, arrays: dict, n: dict[str, int]) -> None:
    """Every index points inside the users, items and catalog rows of ``data/keys.json``."""
    def inside(name, values, high, what):
        values = np.asarray(values)
        if values.size and (values.min() < 0 or values.max() >= high):
            bad = int(values.min()) if values.min() < 0 else int(values.max())
            raise ArtifactError(f"{file}: {name}: index {bad} out of range; expected {what} in [0, {high})")

    for name, users, items in (("target_train", "target_users", "target_items"),
                               ("target_valid", "target_users", "target_items"),
                               ("target_test", "target_users", "target_items"),
                               ("target_test_input", "target_users", "target_items"),
                               ("source_train", "source_users", "source_items")):
        if name not in arrays:  # optional (next-item only)
            continue
        pairs = arrays[name]
        inside(f"{name} (users)", pairs[:, 0], n[users], f"{users.replace('_', ' ')[:-1]} indices")
        inside(f"{name} (items)", pairs[:, 1], n[items], f"{items.replace('_', ' ')[:-1]} indices")
    inside("catalog_target_rows", arrays["catalog_target_rows"], n["catalog"], "catalog rows")
    inside("catalog_source_rows", arrays["catalog_source_rows"], n["catalog"], "catalog rows")
    if "cold_items" in arrays:
        inside("cold_items", arrays["cold_items"], n["target_items"], "target item indices")


def _load_data(folder: Path):
    """The artifact's data, checked against itself before anything is built from it.

    The manifest's hashes catch damage, not intent: anyone can edit a file and
    recompute them. So sizes are checked before anything is allocated (the
    ``.npy`` headers against ``data/keys.json``) and every index is checked
    against the users, items and catalog rows it points into.
    """
    keys_file, npz_file = folder / "keys.json", folder / "arrays.npz"
    n = _check_keys(keys_file, _read_json(keys_file))
    summary = _read_json(folder / "summary.json")
    if not isinstance(summary, dict):
        raise ArtifactError(f"{folder / 'summary.json'}: expected a JSON object, got {type(summary).__name__}")
    _check_shapes(npz_file, _npz_headers(npz_file), n)
    try:
        with np.load(npz_file, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except Exception as exc:  # noqa: BLE001 - numpy/zip errors
        raise ArtifactError(f"{npz_file}: cannot be read ({type(exc).__name__}: {exc})") from None
    _check_ranges(npz_file, arrays, n)
    try:
        data = CrossDomainData.load(folder)
    except Exception as exc:  # noqa: BLE001 - numpy/json/zip errors
        raise ArtifactError(f"{folder}: cannot read the artifact's data ({type(exc).__name__}: {exc})") from None
    return data, arrays


def check_ids(file: Path, ids, data, n_catalog: int) -> None:
    """``ids.json`` names each target user and item once, in the data's order and number."""
    if not isinstance(ids, dict):
        raise ArtifactError(f"{file}: expected a JSON object with users, items and align, got {type(ids).__name__}")
    for name, count, of in (("users", data.n_target_users, "target_users"),
                            ("items", data.n_target_items, "target_items")):
        value = ids.get(name)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ArtifactError(f"{file}: {name}: expected a list of strings (the target {name}' IDs)")
        if len(value) != count:
            raise ArtifactError(f"{file}: {name}: {len(value)} listed; expected {count}, one per entry of "
                                f"data/keys.json {of} (the IDs do not match the artifact's data)")
        if len(set(value)) != len(value):
            repeated = next(v for i, v in enumerate(value) if v in value[:i])
            raise ArtifactError(f"{file}: {name}: {repeated!r} is listed twice; expected each ID once")
    if not isinstance(ids.get("align"), dict):
        raise ArtifactError(f"{file}: align: expected an object (how users and items align), "
                            f"got {ids.get('align')!r}")
    aliases = ids.get("item_aliases") or {}
    if not isinstance(aliases, dict) or not all(
            isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and 0 <= v < n_catalog
            for k, v in aliases.items()):
        raise ArtifactError(f"{file}: item_aliases: expected an object of item IDs to catalog rows in [0, "
                            f"{n_catalog})")
    dropped = ids.get("dropped")
    if dropped is not None and not (isinstance(dropped, dict) and all(
            isinstance(reasons, dict) and all(isinstance(v, list) for v in reasons.values())
            for reasons in dropped.values())):
        raise ArtifactError(f"{file}: dropped: expected an object of users/items -> reason -> list of IDs")


def copy_data(data, **changes):
    """A CrossDomainData like ``data`` with some fields replaced (nothing shared that changes)."""
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


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", text).strip("_") or "run"


def next_version_path(path: Path) -> Path:
    """``ARTIFACT`` -> ``ARTIFACT.v2``, ``ARTIFACT.v2`` -> ``ARTIFACT.v3`` (the next free one)."""
    match = re.match(r"^(.*)\.v(\d+)$", path.name)
    base, n = (match.group(1), int(match.group(2))) if match else (path.name, 1)
    n += 1
    while (path.parent / f"{base}.v{n}").exists():
        n += 1
    return path.parent / f"{base}.v{n}"
