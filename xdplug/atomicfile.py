"""All-or-nothing file writes, so a crash never leaves a truncated file that looks finished (a report, a
stored training phase)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path


def write_files_atomically(files: Mapping[Path, bytes]) -> None:
    """Write every file to a temp file beside its target, then ``os.replace`` each into place.

    Every payload is staged (written and fsynced) before the first rename, so a
    failure while writing leaves the previous files, if any, untouched and no
    temp file behind. Each rename is atomic on its own.
    """
    staged: list[tuple[str, Path]] = []
    try:
        for path, payload in files.items():
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            staged.append((tmp, path))
            with os.fdopen(fd, "wb") as fh:
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o644)  # mkstemp's 0600 would make the file private
        while staged:
            tmp, path = staged[0]
            os.replace(tmp, path)
            staged.pop(0)
    finally:
        for tmp, _ in staged:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
