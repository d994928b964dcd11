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
