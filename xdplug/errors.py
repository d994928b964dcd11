"""The errors xdplug raises on purpose.

Every error a user can cause derives from :class:`XdplugError`; the CLI prints
those as one readable message and exits with status 2. Anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

import difflib
import errno


class XdplugError(Exception):
    """Base class of every error a user can cause and fix."""


class ConfigError(XdplugError):
    """A configuration value is missing, unknown or of the wrong type.

    ``path`` is the dotted key path (``strategies[1].fusion``) so the message
    says exactly which key to fix.
    """

    def __init__(self, path: str, message: str, source: str | None = None):
        self.path = path
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{path}: {message}")


def _plain(text: str) -> str:
    return "".join(c for c in str(text).lower() if c.isalnum())


def closest_name(name: str, names: list[str]) -> str | None:
    """The registered name a mistyped ``name`` most likely means, or None.

    Spelling aside (``ml-100k`` is ``ml100k`` without the hyphen), a name the typed one
    begins is the better guess: ``ml-100k`` -> ``ml100k-genres``, not ``ml1m-ml100k``,
    which is merely closer letter by letter.
    """
    plain = _plain(name)
    starts = sorted((n for n in names if plain and _plain(n).startswith(plain)), key=lambda n: (len(n), n))
    if starts:
        return starts[0]
    close = difflib.get_close_matches(name, names, n=1)
    return close[0] if close else None


class UnknownComponentError(XdplugError):
    """A config names a component that no loaded plugin registered."""

    def __init__(self, kind: str, name: str, available: list[str], path: str | None = None):
        self.kind, self.name, self.available = kind, name, sorted(available)
        close = closest_name(name, self.available)
        hint = f" Did you mean {close!r}?" if close else ""
        where = f"{path}: " if path else ""
        listed = ", ".join(self.available) or "(none registered)"
        kinds = f"{kind[:-1]}ies" if kind.endswith("y") else f"{kind}s"
        super().__init__(f"{where}unknown {kind} {name!r}.{hint} Available {kinds}: {listed}")


class DuplicateComponentError(XdplugError):
    """Two plugins registered components of the same kind under one name."""

    def __init__(self, kind: str, name: str, first_plugin: str, second_plugin: str):
        self.kind, self.name = kind, name
        self.plugins = (first_plugin, second_plugin)
        super().__init__(
            f"{kind} {name!r} is registered by both plugin {first_plugin!r} and plugin "
            f"{second_plugin!r}; rename one or block a plugin with XDPLUG_BLOCK_PLUGINS"
        )


class ComponentDefinitionError(XdplugError):
    """A plugin tried to register something that is not a valid component."""


class PluginLoadError(XdplugError):
    """A plugin failed to import or its hook raised (only raised in strict mode)."""


class DataError(XdplugError):
    """Input data is missing, malformed or unusable; names the file and field."""

    def __init__(self, message: str, file: str | None = None, field: str | None = None):
        self.file, self.field = file, field
        parts = []
        if file:
            parts.append(str(file))
        if field:
            parts.append(f"field {field!r}")
        prefix = (", ".join(parts) + ": ") if parts else ""
        super().__init__(prefix + message)


class ArtifactError(XdplugError):
    """An exported model directory is missing, foreign or tampered with."""


class RunError(XdplugError):
    """A benchmark run cannot start (bad store, nothing to run, ...)."""


class NotApplicableError(XdplugError):
    """A method does not apply to this dataset (e.g. pooled CF without shared IDs)."""


class StorageError(XdplugError):
    """A folder or file xdplug must write is read-only, not a folder, or on a full disk; names the path."""


_STORAGE_REASONS = {
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
}


#: the errnos of a folder or file that cannot be written (read-only, full, blocked by a file)
STORAGE_ERRNOS = frozenset((*_STORAGE_REASONS, errno.ENOTDIR, errno.EEXIST))


def storage_error(exc: OSError, path, what: str, fix: str) -> StorageError:
    """One readable :class:`StorageError` for an ``OSError`` met while writing ``what`` at ``path``.

    ``fix`` says what to do (which setting points elsewhere); a full disk adds "free some space".
    """
    from pathlib import Path

    path = Path(path)
    where = Path(exc.filename) if exc.filename else path
    reason = _STORAGE_REASONS.get(exc.errno) or exc.strerror or str(exc) or type(exc).__name__
    if where != path:
        reason += f" ({where})"
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):  # name the file that blocks the way
        blocker = next((p for p in (where, *where.parents) if p.exists() and not p.is_dir()), where)
        reason = f"{blocker} is a file, not a folder"
    elif exc.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = f"free some space, or {fix}"
    return StorageError(f"cannot write {what} at {path}: {reason}; {fix}")
