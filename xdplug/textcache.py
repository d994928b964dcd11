"""On-disk cache of frozen text embeddings.

Encoding a catalogue with a BERT-family model is the slowest step of a text
strategy on a CPU, and the result only depends on the model, the pooling, the
maximum token length and the text. So every vector is stored once, keyed by
exactly those four things, and every later run (another seed, another fusion,
another adaptation) reads it back instead of encoding again.

Layout (root defaults to :func:`xdplug.paths.text_cache_dir`, i.e.
``$XDPLUG_HOME/text-embeddings``)::

    <root>/
      <label>-<hash16>-<pooling>-len<max_length>/    one namespace
        meta.json                  model identity, pooling, max_length, dim
        shard-<time_ns>-<pid>-<rand>.npz
        shard-...npz               keys: S32, hex of sha256(text)[:16]
                                   vectors: float32 [n, dim]

  ``label`` is the model identity's part before ``@`` (``bert``), ``hash16``
  the start of sha256(model identity, pooling, max_length).

* One namespace per (model identity, pooling, max_length); inside it, keys are
  a hash of the text, so a lookup of thousands of texts is one ``listdir``,
  a few ``np.load`` calls and dictionary look-ups, never one file per text.
* Writes never modify a file: each :meth:`CacheSpace.put` writes a *new* shard
  to ``.tmp-*`` in the same directory and renames it into place with
  ``os.replace`` (atomic on POSIX and Windows). A run killed mid-write leaves at
  most a ``.tmp-*`` file, which readers ignore and later writers delete once it
  is stale; concurrent writers each add their own shard and cannot corrupt
  each other.
* When a namespace holds many shards, a writer merges them into one new shard
  (written the same atomic way) and then deletes the merged ones. A reader that
  races with that sees duplicates (identical vectors) or a vanished file, which
  it skips; nothing is ever lost, because the merged shard exists before the
  old ones go.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import time
from pathlib import Path

import numpy as np

from .npzfile import write_npz
from .errors import storage_error
from .paths import home_fix, text_cache_dir

logger = logging.getLogger(__name__)

#: merge a namespace's shards into one when a write leaves more than this many
COMPACT_AFTER = 32
#: ``.tmp-*`` files older than this (seconds) belong to a dead writer
STALE_TMP_SECONDS = 3600

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def text_key(text: str) -> bytes:
    """The stored key of one text: 32 hex characters of its SHA-256."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32].encode("ascii")


def _write_npz_atomic(directory: Path, prefix: str, keys: np.ndarray, vectors: np.ndarray) -> Path:
    """Write a shard under a temporary name, flush it, then rename it into place."""
    final = directory / f"{prefix}-{time.time_ns()}-{os.getpid()}-{secrets.token_hex(4)}.npz"
    tmp = directory / f".tmp-{final.name}"
    try:
        with open(tmp, "wb") as fh:
            write_npz(fh, {"keys": keys, "vectors": vectors})
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        raise
    return final


class CacheSpace:
    """The vectors of one (model identity, pooling, max_length) namespace."""

    def __init__(self, directory: Path, meta: dict):
        self.directory = directory
        self.meta = meta
        self._index: dict[bytes, tuple[int, int]] = {}
        self._blocks: list[np.ndarray] = []
        self._loaded: set[str] = set()

    # -- reading ---------------------------------------------------------------
    def _shards(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(p for p in self.directory.iterdir() if p.name.startswith("shard-") and p.suffix == ".npz")

    def _refresh(self) -> None:
        """Load shards not seen yet (other processes may have added some)."""
        for shard in self._shards():
            if shard.name in self._loaded:
                continue
            try:
                with np.load(shard, allow_pickle=False) as data:
                    keys, vectors = data["keys"], np.asarray(data["vectors"], dtype=np.float32)
            except FileNotFoundError:  # merged away by another writer meanwhile
                continue
            except Exception as exc:  # noqa: BLE001 - a damaged shard must not stop the run
                logger.warning("ignoring unreadable text-cache shard %s: %s", shard, exc)
                self._loaded.add(shard.name)
                continue
            self._loaded.add(shard.name)
            if vectors.ndim != 2 or len(keys) != len(vectors):
                logger.warning("ignoring malformed text-cache shard %s", shard)
                continue
            block = len(self._blocks)
            self._blocks.append(vectors)
            for row, key in enumerate(keys.tolist()):
                self._index[key] = (block, row)

    def __len__(self) -> int:
        self._refresh()
        return len(self._index)

    def get(self, texts: list[str], keys: list[bytes] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Return ``(found, vectors)``: a boolean mask and a float32 array of all texts.

        Rows of texts not found are zeros; ``vectors`` is ``None`` when nothing
        was found (the dimension may not be known yet).
        """
        keys = keys if keys is not None else [text_key(t) for t in texts]
        self._refresh()
        hits = [self._index.get(k) for k in keys]
        found = np.fromiter((h is not None for h in hits), dtype=bool, count=len(keys))
        if not found.any():
            return found, None
        dim = self._blocks[next(h for h in hits if h is not None)[0]].shape[1]
        out = np.zeros((len(keys), dim), dtype=np.float32)
        for i, hit in enumerate(hits):
            if hit is not None:
                vec = self._blocks[hit[0]][hit[1]]
                if vec.shape[0] != dim:
                    found[i] = False
                    continue
                out[i] = vec
        return found, out

    # -- writing ---------------------------------------------------------------
    def put(self, texts: list[str], vectors: np.ndarray, keys: list[bytes] | None = None) -> Path | None:
        """Add vectors as one new shard (atomically); returns its path, or None when it cannot be written
        (a warning names the folder and the reason: a full disk or a read-only cache)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if len(texts) == 0:
            return None
        if vectors.ndim != 2 or len(vectors) != len(texts):
            raise ValueError(f"expected {len(texts)} vectors, got array of shape {vectors.shape}")
        keys = keys if keys is not None else [text_key(t) for t in texts]
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._write_meta(int(vectors.shape[1]))
            self._clean_stale_tmp()
            shard = _write_npz_atomic(self.directory, "shard", np.array(keys, dtype="S32"), vectors)
        except OSError as exc:
            # the cache only saves time: a full or read-only XDPLUG_HOME costs encoding again next time,
            # not this run (the vectors are computed); nothing half-written is left
            reason = storage_error(exc, self.directory, "the text-embedding cache", home_fix())
            logger.warning("%s; %d vectors are used without being cached", reason, len(texts))
            return None
        self._loaded.add(shard.name)
        block = len(self._blocks)
        self._blocks.append(vectors)
        for row, key in enumerate(keys):
            self._index[key] = (block, row)
        if len(self._shards()) > COMPACT_AFTER:
            try:
                self.compact()
            except OSError as exc:  # the shards stay as they were: compacting only tidies
                logger.warning("%s", storage_error(exc, self.directory, "a compacted text-cache shard", home_fix()))
        return shard

    def compact(self) -> None:
        """Merge every shard into one new shard, then delete the merged ones."""
        shards = self._shards()
        if len(shards) <= 1:
            return
        self._refresh()
        merged_keys, merged_vecs = [], []
        for key, (block, row) in self._index.items():
            merged_keys.append(key)
            merged_vecs.append(self._blocks[block][row])
        dims = {v.shape[0] for v in merged_vecs}
        if len(dims) != 1:  # mixed dimensions would be a bug elsewhere; leave the files alone
            logger.warning("not compacting %s: vectors of several dimensions %s", self.directory, dims)
            return
        new = _write_npz_atomic(self.directory, "shard", np.array(merged_keys, dtype="S32"), np.stack(merged_vecs))
        for shard in shards:
            try:
                shard.unlink()
            except FileNotFoundError:
                pass
        self._loaded = {new.name}
        self._blocks = [np.stack(merged_vecs)]
        self._index = {k: (0, i) for i, k in enumerate(merged_keys)}
        logger.info("compacted %d text-cache shards in %s", len(shards), self.directory)

    def _write_meta(self, dim: int) -> None:
        meta_path = self.directory / "meta.json"
        if meta_path.exists():
            return
        tmp = self.directory / f".tmp-meta-{os.getpid()}-{secrets.token_hex(4)}.json"
        try:
            tmp.write_text(json.dumps({**self.meta, "dim": dim}, indent=2, sort_keys=True))
            os.replace(tmp, meta_path)
        finally:
            if tmp.exists():
                tmp.unlink()

    def _clean_stale_tmp(self) -> None:
        now = time.time()
        for p in self.directory.glob(".tmp-*"):
            try:
                if now - p.stat().st_mtime > STALE_TMP_SECONDS:
                    p.unlink()
            except FileNotFoundError:
                pass


class TextEmbeddingCache:
    """Frozen text embeddings on disk, keyed by (model identity, pooling, max_length, text).

    ``model_id`` must change whenever the weights or the tokenizer change;
    encoders derive it from the model files, not from a path (the built-in
    ``bert`` encoder hashes its weight and tokenizer files).
    """

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else text_cache_dir()
        self._spaces: dict[str, CacheSpace] = {}

    @staticmethod
    def namespace(model_id: str, pooling: str, max_length: int) -> str:
        """Directory name of one namespace: a readable label plus a hash of the full key."""
        label = _SAFE.sub("_", model_id.partition("@")[0])[:32] or "model"
        full = hashlib.sha256(f"{model_id}\0{pooling}\0{max_length}".encode()).hexdigest()[:16]
        return f"{label}-{full}-{_SAFE.sub('_', pooling)}-len{int(max_length)}"

    def space(self, model_id: str, pooling: str, max_length: int, info: dict | None = None) -> CacheSpace:
        """One namespace; ``info`` (e.g. where the model lives) only goes into ``meta.json``."""
        name = self.namespace(model_id, pooling, max_length)
        if name not in self._spaces:
            meta = {**(info or {}), "model_id": model_id, "pooling": pooling, "max_length": int(max_length)}
            self._spaces[name] = CacheSpace(self.root / name, meta)
        return self._spaces[name]

    def get(self, model_id: str, pooling: str, max_length: int, texts: list[str]):
        """Shortcut for ``space(...).get(texts)``."""
        return self.space(model_id, pooling, max_length).get(texts)

    def put(self, model_id: str, pooling: str, max_length: int, texts: list[str], vectors: np.ndarray):
        """Shortcut for ``space(...).put(texts, vectors)``."""
        return self.space(model_id, pooling, max_length).put(texts, vectors)
