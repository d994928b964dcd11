"""The run store: one SQLite file per benchmark output directory.

Guarantees:

* a run is identified by ``run_id``, a hash of everything that changes its
  result (dataset, protocol, seed, training settings, evaluation, method spec);
* each state change is one transaction, so a killed process leaves the store
  consistent: a run is ``done``, ``failed``, ``not_applicable`` or
  ``running`` (interrupted; the next ``xdplug run`` runs it again);
* only the driver process writes (executors send results back to it).
"""

from __future__ import annotations

import io
import json
import sqlite3
import time
from pathlib import Path

import numpy as np

from .errors import RunError

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
    if not blob:
        return {}
    with np.load(io.BytesIO(blob)) as archive:
        return {k: archive[k] for k in archive.files}


class RunStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(self.path), timeout=30)
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

    # -- meta ---------------------------------------------------------------------------
    def set_meta(self, key: str, value) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value, default=str)))

    def get_meta(self, key: str, default=None):
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    # -- runs ---------------------------------------------------------------------------
    def status(self, run_id: str) -> str | None:
        row = self.db.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return row[0] if row else None

    def start(self, run_id: str, config_hash: str, method: str, kind: str, seed: int, spec: dict) -> None:
        with self.db:
            self.db.execute(
                "INSERT INTO runs (run_id, config_hash, method, kind, seed, status, spec, started_at, attempts) "
                "VALUES (?, ?, ?, ?, ?, 'running', ?, ?, 1) "
                "ON CONFLICT(run_id) DO UPDATE SET status='running', started_at=excluded.started_at, "
                "error=NULL, attempts=runs.attempts+1, config_hash=excluded.config_hash, method=excluded.method",
                (run_id, config_hash, method, kind, seed, json.dumps(spec, default=str), time.time()))

    def finish(self, run_id: str, status: str, *, metrics=None, per_user=None, error=None, notes=None,
               curves=None, time_s=None, peak_rss_mb=None, versions=None, device=None) -> None:
        assert status in FINISHED, status
        with self.db:
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
            for key in ("spec", "metrics", "curves", "versions"):
                record[key] = json.loads(record[key]) if record[key] else ({} if key != "curves" else [])
            if with_per_user:
                record["per_user"] = _unpack(record["per_user"])
            out.append(record)
        return out
