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
    try:
        with np.load(folder / "arrays.npz", allow_pickle=False) as npz:
            extra = {name: npz[name] for name in npz.files}
        data = CrossDomainData.load(folder)
    except ArtifactError:
        raise
    except Exception as exc:  # noqa: BLE001 - numpy/json/zip errors
        raise ArtifactError(f"{folder}: cannot read the artifact's data ({type(exc).__name__}: {exc})") from None
    return data, extra


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
