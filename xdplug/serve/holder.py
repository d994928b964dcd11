"""The served model and its replacement: load, check, swap in one assignment, refuse what fails.

A request reads :attr:`ModelHolder.current` once and answers from that :class:`Served` to the
end, so a swap never changes the model under a request in flight: the old one stays alive
while a request holds it and is freed after. A reload loads the new version beside the old
one (memory for both, for a moment), checks it (the artifact's manifest and spec through
:func:`~xdplug.artifact.load_artifact`, then a smoke recommendation) and only then replaces
``current``; a version that fails is refused, recorded in :attr:`last_reload` and logged,
and the old one keeps serving. One reload runs at a time.
"""

from __future__ import annotations

import logging
import math
import os
import re
import sys
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import XdplugError

log = logging.getLogger("xdplug.serve")

#: how much lower a reload thread's CPU priority is than the scoring threads' (Linux nice steps)
RELOAD_NICE = 10


class ReloadBusy(XdplugError):
    """A reload was asked for while another one runs."""


@dataclass(frozen=True)
class Served:
    """One loaded artifact and what the server says about it."""

    rec: object
    path: Path
    version: int
    loaded_at: float
    load_seconds: float
    meta: dict = field(repr=False)

    def describe(self) -> dict:
        """The artifact's metadata for ``GET /model``."""
        meta = self.meta
        return {"method": meta.get("method"), "kind": meta.get("kind"), "version": self.version,
                "path": str(self.path), "config_hash": meta.get("config_hash"), "seed": meta.get("seed"),
                "run_id": meta.get("run_id"), "created": meta.get("created"), "metrics": meta.get("metrics") or {},
                "parent": meta.get("parent"), "updates": len(meta.get("updates") or []),
                "users": len(self.rec.users), "items": len(self.rec.items),
                "loaded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.loaded_at)),
                "load_seconds": round(self.load_seconds, 3)}


def newest_version(path: Path) -> Path:
    """The newest of ``ARTIFACT``, ``ARTIFACT.v2``, ``ARTIFACT.v3`` ... beside ``path`` (what `xdplug update` writes).

    A folder being written by ``xdplug update`` (``ARTIFACT.v3.tmp-...``) is not a version.
    """
    match = re.match(r"^(.*)\.v(\d+)$", path.name)
    base, best = (match.group(1), int(match.group(2))) if match else (path.name, 1)
    chosen = path
    pattern = re.compile(re.escape(base) + r"\.v(\d+)")
    if path.parent.is_dir():
        for candidate in path.parent.iterdir():
            found = pattern.fullmatch(candidate.name)
            if found and int(found.group(1)) > best and candidate.is_dir():
                best, chosen = int(found.group(1)), candidate
    return chosen


def smoke_check(rec, path: Path) -> None:
    """A loaded model answers one known user with finite scores, or it is refused."""
    users = getattr(rec, "users", None)
    if not users:
        raise XdplugError(f"{path}: smoke check failed: the artifact has no target user to recommend for")
    try:
        recs = rec.recommend(user=users[0], k=min(10, len(rec.items)), exclude_seen=False)
    except XdplugError as exc:
        raise XdplugError(f"{path}: smoke check failed: recommend(user={users[0]!r}) raised: {exc}") from None
    if not recs or not all(math.isfinite(r["score"]) for r in recs):
        raise XdplugError(f"{path}: smoke check failed: recommend(user={users[0]!r}) gave no item with a finite score")


def lower_thread_priority(steps: int = RELOAD_NICE) -> bool:
    """Lower the calling thread's CPU priority (Linux keeps a nice value per thread).

    A reload loads and checks the new model while the old one serves: at a lower priority
    its work takes the cores only when the scoring threads leave them idle.
    """
    if not sys.platform.startswith("linux"):  # elsewhere PRIO_PROCESS with a thread ID names a process
        return False
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + steps))
        return True
    except (AttributeError, OSError):
        return False


class ModelHolder:
    """Holds the served model; loads the first one and swaps in reloaded ones.

    ``loader(path)`` returns a :class:`~xdplug.artifact.Recommender` (default:
    :func:`~xdplug.artifact.load_artifact` on ``device``).
    """

    def __init__(self, path: str | Path, loader=None, device: str = "cpu", metrics=None):
        self.path = Path(path).expanduser()
        if loader is None:
            def loader(p):
                from ..artifact import load_artifact

                return load_artifact(p, device=device)
        self._loader = loader
        self.metrics = metrics
        self.current: Served | None = None
        self.load_error: str | None = None
        self.last_reload: dict | None = None
        self.on_load_failure = None  # called once when the first load fails (the CLI stops the server)
        self._lock = threading.Lock()

    @property
    def loading(self) -> bool:
        return self.current is None and self.load_error is None

    def _load(self, path: Path) -> Served:
        start = time.perf_counter()
        rec = self._loader(path)
        smoke_check(rec, path)
        meta = dict(getattr(rec, "meta", {}) or {})
        return Served(rec=rec, path=path, version=int(meta.get("version") or 1), loaded_at=time.time(),
                      load_seconds=time.perf_counter() - start, meta=meta)

    def load_initial(self) -> None:
        """Load the artifact given at start (in a thread; the server answers 503 meanwhile)."""
        try:
            with self._lock:
                self.current = self._load(self.path)
            log.info("serving %s version %d (%s), loaded in %.1f s", self.current.meta.get("method"),
                        self.current.version, self.path, self.current.load_seconds)
        except Exception as exc:  # noqa: BLE001 - any failure is reported, the server stops
            self.load_error = str(exc) if isinstance(exc, XdplugError) else f"{self.path}: {type(exc).__name__}: {exc}"
            log.error("cannot serve %s: %s", self.path, self.load_error)
            if not isinstance(exc, XdplugError):
                log.exception("loading failed")
            if self.on_load_failure is not None:
                self.on_load_failure()

    def start_reload(self, path: str | Path | None = None) -> Future:
        """:meth:`reload` in a new thread of lower CPU priority; the future holds its record or error."""
        future: Future = Future()

        def run():
            lower_thread_priority()
            try:
                future.set_result(self.reload(path))
            except BaseException as exc:  # noqa: BLE001 - handed to whoever waits on the future
                future.set_exception(exc)

        threading.Thread(target=run, name="xdplug-reload", daemon=True).start()
        return future

    def reload(self, path: str | Path | None = None) -> dict:
        """Load ``path`` (default: the newest version of the served artifact), check it and swap.

        Returns the record also kept in :attr:`last_reload`: ``status`` ``"swapped"`` or
        ``"refused"`` (with ``error``). Raises :class:`ReloadBusy` while another reload runs.
        """
        if not self._lock.acquire(blocking=False):
            raise ReloadBusy("a reload is already in progress; try again when it has finished")
        try:
            old = self.current
            base = old.path if old is not None else self.path
            target = Path(path).expanduser() if path is not None else newest_version(base)
            record = {"path": str(target), "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            try:
                new = self._load(target)
            except Exception as exc:  # noqa: BLE001 - a broken version is refused, whatever broke
                message = str(exc) if isinstance(exc, XdplugError) else f"{target}: {type(exc).__name__}: {exc}"
                serving = f"version {old.version} from {old.path}" if old is not None else "nothing"
                record.update(status="refused", error=message, serving=serving)
                log.error("reload refused, still serving %s: %s", serving, message)
                if not isinstance(exc, XdplugError):
                    log.exception("reload failed")
                if self.metrics is not None:
                    self.metrics.reload("refused")
            else:
                self.current = new  # the swap: one assignment; requests in flight keep their Served
                self.load_error = None
                record.update(status="swapped", version=new.version, method=new.meta.get("method"),
                              seconds=round(new.load_seconds, 3),
                              previous=None if old is None else {"version": old.version, "path": str(old.path)})
                log.info("reloaded: serving %s version %d from %s (loaded and checked in %.1f s)",
                            new.meta.get("method"), new.version, target, new.load_seconds)
                if self.metrics is not None:
                    self.metrics.reload("swapped")
            self.last_reload = record
            return record
        finally:
            self._lock.release()
