"""Scratch folders named after the process that owns them, so a later run removes those a killed one left.

``make(kind)`` is a :class:`tempfile.TemporaryDirectory` named
``xdplug-KIND-PID-XXXXXXXX`` in the system temp folder. A process killed with
SIGKILL (or a lost machine) never runs its cleanup; :func:`sweep`, called at the
start of every ``xdplug run`` and of every data preparation, removes the
``xdplug-run-*`` and ``xdplug-prepare-*`` folders of this user whose process no
longer exists, and those without a PID in their name (older versions) once
they are older than :data:`MAX_AGE_S`. Folders of live processes are never touched.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
import tempfile
import time
from pathlib import Path

logger = logging.getLogger(__name__)

#: the scratch folders :func:`sweep` looks after
KINDS = ("run", "prepare")
#: a folder without a PID in its name is removed once its last change is this old
MAX_AGE_S = 3600.0

_NAME = re.compile(r"^xdplug-(?P<kind>[a-z]+)-(?:(?P<pid>\d+)-)?[A-Za-z0-9_]+$")


def prefix(kind: str) -> str:
    return f"xdplug-{kind}-{os.getpid()}-"


def make(kind: str) -> tempfile.TemporaryDirectory:
    """A scratch folder for this process, removed on exit (or by a later :func:`sweep` if killed)."""
    return tempfile.TemporaryDirectory(prefix=prefix(kind))


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: someone else's live process
        return True
    return True


def stale(path: Path, now: float | None = None, max_age_s: float = MAX_AGE_S) -> bool:
    """Whether ``path`` is a scratch folder of this user that its owner left behind."""
    match = _NAME.match(path.name)
    if not match or match["kind"] not in KINDS:
        return False
    try:
        info = path.lstat()
    except OSError:
        return False
    if not stat.S_ISDIR(info.st_mode) or (hasattr(os, "getuid") and info.st_uid != os.getuid()):
        return False
    if match["pid"] is not None:
        pid = int(match["pid"])
        return pid != os.getpid() and not pid_alive(pid)
    return (now if now is not None else time.time()) - info.st_mtime > max_age_s


def sweep(directory: str | Path | None = None, max_age_s: float = MAX_AGE_S) -> list[Path]:
    """Remove the stale scratch folders in ``directory`` (the system temp folder); returns them."""
    root = Path(directory if directory is not None else tempfile.gettempdir())
    try:
        candidates = [p for p in root.iterdir() if p.name.startswith("xdplug-")]
    except OSError:
        return []
    now = time.time()
    removed = []
    for path in candidates:
        if stale(path, now, max_age_s):
            shutil.rmtree(path, ignore_errors=True)
            if not path.exists():
                removed.append(path)
    if removed:
        logger.info("removed %d scratch folder(s) left by killed runs in %s", len(removed), root)
    return removed
