"""Where xdplug keeps prepared data, text-embedding caches and downloads."""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "XDPLUG_HOME"


def home() -> Path:
    """The cache root: ``$XDPLUG_HOME`` or ``~/.cache/xdplug``."""
    root = os.environ.get(HOME_ENV)
    return Path(root).expanduser() if root else Path.home() / ".cache" / "xdplug"


def prepared_dir() -> Path:
    return home() / "prepared"


def text_cache_dir() -> Path:
    return home() / "text-embeddings"


def downloads_dir() -> Path:
    return home() / "downloads"


def home_fix() -> str:
    """What to tell a user whose cache root cannot be written."""
    where = f"it is {os.environ[HOME_ENV]}" if os.environ.get(HOME_ENV) else f"default {home()}"
    return f"set {HOME_ENV} to a writable folder ({where})"


def ensure_dir(path: Path, what: str, fix: str) -> Path:
    """Create ``path`` if needed and check it is a writable folder, else one :class:`StorageError`.

    ``what`` names the folder in the message (``the output folder``), ``fix`` says what to do.
    """
    from .errors import StorageError, storage_error

    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise storage_error(exc, path, what, fix) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise StorageError(f"cannot write {what} at {path}: the folder is not writable (permission denied or "
                           f"a read-only file system); {fix}")
    return path


def check_writable(path: Path, what: str, fix: str) -> None:
    """Could ``path`` be created? Its nearest existing folder must be a writable folder; nothing is created
    (a command checks this before its work, and leaves no empty folder behind when it then fails)."""
    from .errors import StorageError

    path = Path(path)
    existing = next((p for p in path.parents if p.exists()), Path("/"))
    if not existing.is_dir():
        raise StorageError(f"cannot write {what} at {path}: {existing} is a file, not a folder; {fix}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise StorageError(f"cannot write {what} at {path}: {existing} is not writable (permission denied or a "
                           f"read-only file system); {fix}")
