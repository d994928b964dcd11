"""The run store: one SQLite file per benchmark output directory.

Guarantees:

* a run is identified by ``run_id``, a hash of everything that changes its
  result (dataset, protocol, seed, training settings, evaluation, method spec);
* each state change is one transaction, so a killed process leaves the store
  consistent: a run is ``done``, ``failed``, ``not_applicable`` or
  ``running`` (interrupted; the next ``xdplug run`` runs it again);
* only the driver process writes (executors send results back to it);
* one ``xdplug run`` per store at a time: :func:`store_lock` holds an
  ``flock`` on ``<store>.lock`` for the whole run, and a second run refuses
  (or, with ``--wait``, waits) instead of training every cell twice.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shlex
import sqlite3
import stat
import time
from pathlib import Path

import numpy as np

from .errors import RunError, StorageError, storage_error

logger = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    config_hash TEXT NOT NULL,
    method TEXT NOT NULL,
    kind TEXT NOT NULL,
    seed INTEGER NOT NULL,
    status TEXT NOT NULL,
    spec TEXT,
    metrics TEXT,
    error TEXT,
    notes TEXT,
    curves TEXT,
    time_s REAL,
    peak_rss_mb REAL,
    versions TEXT,
    device TEXT,
    started_at REAL,
    finished_at REAL,
    attempts INTEGER DEFAULT 0,
    per_user BLOB
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
"""

FINISHED = ("done", "failed", "not_applicable")
RUN_COLUMNS = ("run_id", "config_hash", "method", "kind", "seed", "status", "spec", "metrics", "error", "notes",
               "curves", "time_s", "peak_rss_mb", "versions", "device", "started_at", "finished_at", "attempts",
               "per_user")


def _pack(per_user: dict[str, np.ndarray] | None) -> bytes | None:
    if not per_user:
        return None
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **per_user)
    return buffer.getvalue()


def _unpack(blob: bytes | None) -> dict[str, np.ndarray]:
    """The per-user arrays of a run; a blob that is not an ``.npz`` archive of arrays raises ValueError."""
    if not blob:
        return {}
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        raise ValueError(f"expected an .npz archive (bytes), got {type(blob).__name__}")
    try:
        with np.load(io.BytesIO(bytes(blob)), allow_pickle=False) as archive:
            if not hasattr(archive, "files"):
                raise ValueError("expected an .npz archive of arrays, got a single array")
            return {k: archive[k] for k in archive.files}
    except ValueError:
        raise
    except Exception as exc:  # noqa: BLE001 - zipfile, zlib, EOF and format errors of a damaged archive
        raise ValueError(f"{type(exc).__name__}: {exc}") from None


#: the JSON columns of a run row and the type each holds once decoded
JSON_COLUMNS = {"spec": dict, "metrics": dict, "curves": list, "versions": dict}


def lock_path(path: str | Path) -> Path:
    """The lock file of the run store at ``path``: ``<store>.lock`` beside it."""
    path = Path(path)
    return path.with_name(path.name + ".lock")


def _lock_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
    except OSError:
        text = ""
    return f"pid {text}" if text.isdigit() else "a process whose pid is not written yet"


@contextlib.contextmanager
def store_lock(path: str | Path, wait: bool = False, on_wait=None):
    """Hold the exclusive lock of the run store at ``path`` (one ``xdplug run`` per store at a time).

    An ``flock`` on ``<store>.lock``, released when the process ends however it
    ends, holding the holder's pid. Taken: a :class:`RunError` naming the lock
    and its holder, or with ``wait`` block until it is free (``on_wait(holder,
    lock)`` is called first). Where the file system has no locks it goes on unlocked.
    """
    from .paths import ensure_dir

    lock = lock_path(path)
    ensure_dir(lock.parent, "the output folder",
                     "make it writable or set output.dir (--set output.dir=DIR) to a writable folder")
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock
        yield lock
        return
    while True:
        fd = _open_lock(lock)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _lock_holder(fd)
                if not wait:
                    raise RunError(f"the run store {path} is in use by another `xdplug run` ({holder} holds the lock "
                                   f"{lock}); wait for it to finish, or run again with --wait to start after it") from None
                if on_wait is not None:
                    on_wait(holder, lock)
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError as exc:  # ENOLCK, EOPNOTSUPP: a file system without locks
                logger.warning("cannot lock %s (%s); two runs on this store at once would train twice", lock, exc)
        except BaseException:
            os.close(fd)
            raise
        if _still_linked(fd, lock):
            break
        os.close(fd)  # the holder removed the file we waited on (discard_store): lock the one there now
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield lock
    finally:
        os.close(fd)  # releases the lock


def _open_lock(lock: Path) -> int:
    if lock.is_symlink():  # never write a pid through a link into someone else's file
        raise RunError(f"{lock}: the run store's lock file is a symbolic link; remove it (xdplug writes "
                       "its own lock file there) and run again")
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except OSError as exc:
        raise storage_error(exc, lock, "the run store's lock file",
                            "make the output folder writable or set output.dir to a writable folder") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise RunError(f"{lock}: the run store's lock file is not a regular file; remove it and run again")
    return fd


def _still_linked(fd: int, lock: Path) -> bool:
    """Is the file open as ``fd`` still the one at ``lock`` (not removed or replaced meanwhile)?"""
    try:
        here = os.stat(lock, follow_symlinks=False)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (here.st_dev, here.st_ino) == (mine.st_dev, mine.st_ino)


def discard_store(path: str | Path) -> None:
    """Remove a run store's files and its lock file: for a store a run created and then failed before
    it recorded anything (a data error in the preflight), so nothing half-made stays in the output
    folder. Called while holding the lock; a run that waited on it then locks a fresh file."""
    path = Path(path)
    for file in (path, *(path.with_name(path.name + end) for end in ("-wal", "-shm", "-journal")), lock_path(path)):
        try:
            file.unlink()
        except FileNotFoundError:
            pass


class RunStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        if self.path.is_dir():  # sqlite3 says only "unable to open database file"
            raise RunError(f"{self.path} is a directory where the run store (an SQLite file) should be; move it "
                           "away, or set output.dir (--set output.dir=DIR) to another folder")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise storage_error(exc, self.path.parent, "the run store's folder",
                                "make it writable or set output.dir (--set output.dir=DIR) to a writable "
                                "folder") from None
        try:
            self.db = sqlite3.connect(str(self.path), timeout=30)
        except sqlite3.Error as exc:
            raise RunError(f"cannot open the run store {self.path}: {exc}; move the file away to start a "
                           "fresh store, or set output.dir to another folder") from None
        try:
            # look before writing anything: someone else's database is left as it was
            tables = {row[0] for row in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            columns = {row[1] for row in self.db.execute("PRAGMA table_info(runs)")}
            missing = [c for c in RUN_COLUMNS if c not in columns]
            if tables and missing:
                self.db.close()
                raise RunError(f"{self.path} is not an xdplug run store (no runs table with "
                               f"{', '.join(missing)}); move the file away to start a fresh store")
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.executescript(SCHEMA)
            self.db.commit()
        except sqlite3.DatabaseError as exc:  # not SQLite, damaged, unwritable, locked
            self.db.close()
            raise RunError(f"cannot open the run store {self.path}: {exc}; move the file away "
                           "to start a fresh store") from None

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def _writing(self):
        """One transaction; a full disk or a read-only store is a :class:`StorageError`, not a traceback."""
        try:
            with self.db:
                yield
        except sqlite3.OperationalError as exc:
            raise StorageError(f"cannot write the run store {self.path}: {exc}; the runs finished before are "
                               "kept: free some space or make the output folder writable, then run again "
                               "to resume") from None

    # -- meta ---------------------------------------------------------------------------
    def set_meta(self, key: str, value) -> None:
        with self._writing():
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value, default=str)))

    def get_meta(self, key: str, default=None):
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        if not row:
            return default
        try:
            return json.loads(row[0])
        except (TypeError, ValueError) as exc:
            raise RunError(f"the run store {self.path} is damaged: its meta entry {key!r} is not valid JSON "
                           f"({exc}); rerun the config with --force to write it again, or move the store "
                           "away to start a fresh one") from None

    # -- runs ---------------------------------------------------------------------------
    def status(self, run_id: str) -> str | None:
        row = self.db.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return row[0] if row else None

    def start(self, run_id: str, config_hash: str, method: str, kind: str, seed: int, spec: dict) -> None:
        with self._writing():
            self.db.execute(
                "INSERT INTO runs (run_id, config_hash, method, kind, seed, status, spec, started_at, attempts) "
                "VALUES (?, ?, ?, ?, ?, 'running', ?, ?, 1) "
                "ON CONFLICT(run_id) DO UPDATE SET status='running', started_at=excluded.started_at, "
                "error=NULL, attempts=runs.attempts+1, config_hash=excluded.config_hash, method=excluded.method",
                (run_id, config_hash, method, kind, seed, json.dumps(spec, default=str), time.time()))

    def finish(self, run_id: str, status: str, *, metrics=None, per_user=None, error=None, notes=None,
               curves=None, time_s=None, peak_rss_mb=None, versions=None, device=None) -> None:
        assert status in FINISHED, status
        with self._writing():
            self.db.execute(
                "UPDATE runs SET status=?, metrics=?, per_user=?, error=?, notes=?, curves=?, time_s=?, "
                "peak_rss_mb=?, versions=?, device=?, finished_at=? WHERE run_id=?",
                (status, json.dumps(metrics or {}), _pack(per_user), error, notes, json.dumps(curves or []),
                 time_s, peak_rss_mb, json.dumps(versions or {}), device, time.time(), run_id))

    def runs(self, run_ids: list[str] | None = None, with_per_user: bool = False) -> list[dict]:
        columns = ("run_id, config_hash, method, kind, seed, status, spec, metrics, error, notes, curves, "
                   "time_s, peak_rss_mb, versions, device, started_at, finished_at, attempts")
        if with_per_user:
            columns += ", per_user"
        query = f"SELECT {columns} FROM runs"
        params: tuple = ()
        if run_ids is not None:
            query += f" WHERE run_id IN ({','.join('?' * len(run_ids))})"
            params = tuple(run_ids)
        rows = self.db.execute(query + " ORDER BY started_at", params).fetchall()
        names = [c.strip() for c in columns.split(",")]
        out = []
        for row in rows:
            record = dict(zip(names, row))
            for key, kind in JSON_COLUMNS.items():
                try:
                    value = json.loads(record[key]) if record[key] else kind()
                except (TypeError, ValueError) as exc:
                    raise self._damaged(record, key, f"not valid JSON ({exc})") from None
                if not isinstance(value, kind):
                    raise self._damaged(record, key, f"expected a JSON {'object' if kind is dict else 'array'}, "
                                                     f"got {type(value).__name__}")
                record[key] = value
            if with_per_user:
                try:
                    record["per_user"] = _unpack(record["per_user"])
                except ValueError as exc:
                    raise self._damaged(record, "per_user", f"its per-user results are not a readable .npz "
                                                            f"archive ({exc})") from None
            out.append(record)
        return out

    def _damaged(self, record: dict, column: str, what: str) -> RunError:
        """A damaged row: which run, which column, and how to recover (run it again)."""
        method, seed = record.get("method"), record.get("seed")
        return RunError(f"the run store {self.path} is damaged: run {method} seed {seed} (run_id "
                        f"{record.get('run_id')}), column {column}: {what}; run it again with "
                        f"`xdplug run CONFIG --only {shlex.quote(str(method))} --force` (it reruns {method}'s runs), "
                        "or move the store away to start a fresh one")
