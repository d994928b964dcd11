"""Phase reuse: a source pretraining computed once and reused by every adaptation that starts from it.

``finetune``, ``freeze``, ``l2sp``, ``consistency``, ``zero-shot`` all open with the same phase,
``session.train(["source"], validate_on="source")``, on a freshly built model. Its result depends only
on what went into it, so :class:`TrainingSession` stores it in the run's folder
(``FitContext.reuse_dir``, ``<output.dir>/phases``) under a key of everything that determines it:
the model's initial weights (seed, encoder, fusion, model parts), the model options, the train
block, the phase's arguments, the data (every split array, the catalog and its texts), the random
states at the phase's start (torch, numpy, Python, the model's own generators), the device, the
versions and the source files of the code that trains it. A later run with the same key (another
adaptation, a tuning trial of an adaptation parameter, a Ray worker on the same machine, a resumed
run) loads the weights, the phase's record and curve, and the random states at the phase's end, so
what follows trains exactly as after a computed phase.

An entry is a ``torch.save`` file of tensors, numbers and strings, read with
``torch.load(weights_only=True)`` (no pickled code), written atomically
(:func:`xdplug.atomicfile.write_files_atomically`); one whose key, format or weight shapes do not match, or that cannot be read, is
ignored with a log line and recomputed. A lock file per key makes a second process wait for the
first one's result instead of training the same phase twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import io
import json
import logging
import os
import random
from pathlib import Path

import numpy as np
import torch

from ..atomicfile import write_files_atomically

logger = logging.getLogger(__name__)

#: bumped when an entry's layout changes: older entries are then ignored
FORMAT = 1


# -- what determines a phase ----------------------------------------------------------------------
def _update(h, value) -> None:
    """Feed ``value`` (nested dicts, lists, arrays, tensors, scalars) into hash ``h``, unambiguously."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        h.update(f"T{value.dtype}{tuple(value.shape)}".encode())
        h.update(value.contiguous().view(torch.uint8).numpy().tobytes() if value.numel() else b"")
    elif isinstance(value, np.ndarray):
        h.update(f"A{value.dtype}{value.shape}".encode())
        h.update(np.ascontiguousarray(value).tobytes() if value.dtype != object else repr(value.tolist()).encode())
    elif isinstance(value, dict):
        h.update(b"{")
        for k in sorted(value, key=str):
            _update(h, str(k))
            _update(h, value[k])
        h.update(b"}")
    elif isinstance(value, (list, tuple)):
        h.update(f"[{len(value)}".encode())
        for v in value:
            _update(h, v)
        h.update(b"]")
    else:
        h.update(f"{type(value).__name__}:{value!r};".encode())


def digest(value) -> str:
    h = hashlib.sha256()
    _update(h, value)
    return h.hexdigest()


def data_digest(data) -> str:
    """The split: every interaction array, their times, the catalog's rows, keys and texts."""
    arrays = {name: getattr(data, name) for name in ("target_train", "target_valid", "target_test", "source_train",
                                                      "target_test_input", "cold_items")}
    catalog = data.catalog
    return digest({"arrays": arrays, "times": dict(data.times), "source_rows": np.asarray(catalog.source_rows),
                   "target_rows": np.asarray(catalog.target_rows), "keys": list(catalog.keys),
                   "texts": list(catalog.texts)})


def code_digest(model, *others) -> str:
    """The source files of the model's module classes (outside torch), of ``others``' classes (the family's
    scorer) and of the training loop."""
    from ..recbole import trainer

    session = Path(__file__).with_name("session.py")  # the loop that uses this module (no import: no cycle)
    classes = [type(m) for m in model.modules()] + [type(o) for o in others]
    files = {inspect.getsourcefile(c) for c in classes} | {str(session), trainer.__file__}
    files = sorted(f for f in files if f and "site-packages/torch" not in f and os.path.isfile(f))
    return digest({Path(f).name: Path(f).read_bytes().hex() for f in files})


# -- random states ----------------------------------------------------------------------------------
def _generators(model) -> dict[str, np.random.Generator]:
    """The numpy generators the model's modules hold (a sampled softmax's negatives, an ID dropout)."""
    found = {}
    for name, module in model.named_modules():
        for attr, value in sorted(vars(module).items()):
            if isinstance(value, np.random.Generator):
                found[f"{name}.{attr}" if name else attr] = value
    return found


def rng_state(model, device: torch.device) -> dict:
    """Every random state a phase draws from, as tensors, numbers and strings (``weights_only``-loadable)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {"torch": torch.get_rng_state(),
             "numpy": {"name": name, "keys": torch.as_tensor(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "cached": float(cached)},
             "python": {"version": version, "internal": torch.as_tensor(internal, dtype=torch.int64),
                        "gauss_next": "" if gauss_next is None else repr(gauss_next)},
             "generators": {k: json.dumps(g.bit_generator.state, sort_keys=True)
                            for k, g in _generators(model).items()}}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(model, device: torch.device, state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["internal"].tolist()),
                     float(p["gauss_next"]) if p["gauss_next"] else None))
    generators = _generators(model)
    for k, text in state["generators"].items():
        generators[k].bit_generator.state = json.loads(text)
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


# -- the store ------------------------------------------------------------------------------------
class PhaseStore:
    """Reusable phase results in ``folder``: one file per key, read only when its content matches."""

    def __init__(self, folder: Path, log=None):
        self.folder = Path(folder)
        self.log = log or logger.info

    def path(self, key: str) -> Path:
        return self.folder / f"{key[:40]}.pt"

    @contextlib.contextmanager
    def claim(self, key: str):
        """Hold the key's lock (another process computing the same phase finishes first)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            import fcntl
        except ImportError:  # no advisory locks (Windows): at worst a phase is computed twice
            yield
            return
        with open(self.folder / f"{key[:40]}.lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def load(self, key: str, model) -> dict | None:
        """The entry of ``key`` when it is there, readable and fits ``model``; None otherwise (logged)."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            entry = torch.load(path, map_location="cpu", weights_only=True)
            problem = self._mismatch(entry, key, model)
        except Exception as exc:  # truncated, not a torch file, a pickle that needs code: never trusted
            problem = f"unreadable ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        if problem:
            self.log(f"reuse: ignored {path} ({problem}); computing the phase again")
            return None
        return entry

    @staticmethod
    def _mismatch(entry, key: str, model) -> str | None:
        if not isinstance(entry, dict) or entry.get("format") != FORMAT:
            return "not an entry of this format"
        if entry.get("key") != key:
            return "its key differs"
        state, own = entry.get("state"), model.state_dict()
        if not isinstance(state, dict) or set(state) != set(own):
            return "its weights name other parameters"
        for name, value in own.items():
            if not isinstance(state[name], torch.Tensor) or state[name].shape != value.shape \
                    or state[name].dtype != value.dtype:
                return f"weight {name!r} has another shape or type"
        return None

    def save(self, key: str, entry: dict) -> None:
        """Write atomically: a reader sees the old file, the new one or none, never half of one."""
        self.folder.mkdir(parents=True, exist_ok=True)
        payload = io.BytesIO()
        torch.save({"format": FORMAT, "key": key, **entry}, payload)
        write_files_atomically({self.path(key): payload.getvalue()})
