"""Wall time and peak RSS of each phase of a run, and how they grow with the data (issue #18).

    python bench/bench_scale.py                                  # the default grid (up to 10^7 interactions)
    python bench/bench_scale.py --quick                          # tiny sizes: a smoke run in a minute or two
    python bench/bench_scale.py --sizes 1e5x1e4 1e6x1e4 --phases prepare fit evaluate
    python bench/bench_scale.py --sizes 1e6x1e5 --phases fit:ease-joint --set dataset.params.overlap=none
    python bench/bench_scale.py --device cuda --json scale-cuda.json

The data and the methods are ``configs/scale.yaml`` (``--config`` for another): the
``synthetic-scale`` recipe with its ``interactions`` and ``items`` set per size, and every
baseline and strategy of the config's grid; ``--set KEY=VALUE`` changes the config as
``xdplug run --set`` does. A size ``NxM`` is N target interactions over a catalogue of M
target items, as generated (the protocol's filtering then drops users and items with
fewer than 5 interactions, so the tables show what was left).

Phases (``--phases``), each in a fresh subprocess of its own (so each has its own peak RSS):

* ``generate``: the recipe alone (``recipe.load``), numpy;
* ``prepare``: ``xdplug.data.prepare.prepare`` from scratch (generate, filter, align,
  split, texts, write the cache);
* ``encode``: the ``bert`` encoder (the bundled all-MiniLM-L6-v2, cache off) over the
  catalogue's texts, after loading the model and a warm-up; ``--encode-texts N`` encodes
  the first N texts only and extrapolates the whole catalogue from the median texts/s of
  five timed parts (a part slowed by another job on a shared machine does not count);
* ``fit``: every method of the config, or ``fit:NAME`` for one, fitted as ``xdplug run``
  fits it (``engine.task.fit_method``); an embedding strategy also gives its seconds per
  epoch (training only, from the run's curves) and the seconds its validation took;
  each fitted method then ranks the test split (``rank``: its own scoring included);
* ``evaluate``: what a run does after fitting (rank the test and the validation split
  of every target user, then the run's evaluators), with Pop's scores, so the cost is
  the ranking itself: users x items scores, masking, top-K.

Every worker reads the prepared data from a cache under its own ``XDPLUG_HOME`` (a
temporary folder unless ``--home``), so the phases after ``prepare`` measure loading the
data as ``load`` and leave it out of the phase's time; their peak RSS includes the data,
as a run's does. ``peak RSS`` is the worker's lifetime peak (``ru_maxrss``); ``phase RSS``
the highest RSS sampled every 20 ms during the phase. With ``--device cuda`` each timer
starts and stops after ``torch.cuda.synchronize``, and the peak CUDA memory allocated is
shown too (RSS is host memory).

Growth: for each phase, the least-squares slope of log(seconds) against log(interactions
after filtering, both domains) over the sizes that share a catalogue size (the
interactions axis) and against log(target items) over those that share an interaction
count (the items axis); with both axes in the grid also one joint fit
``log t = a log(interactions) + b log(items) + c``. Evaluation's users x items term is
fitted separately: its slope against (ranked users x target items). Figures are
printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULT_TAG = "BENCH-SCALE-RESULT "
DEFAULT_CONFIG = ROOT / "configs" / "scale.yaml"
#: interactions x items: the interactions axis at a 10^5-item catalogue, and an items axis at 10^6
DEFAULT_SIZES = ("1e5x1e5", "1e6x1e5", "1e7x1e5", "1e6x1e4", "1e6x3e4")
QUICK_SIZES = ("2e3x100", "4e3x100", "4e3x200")
#: what --quick changes besides the sizes: one epoch, validated
QUICK_SET = ("train.epochs=1", "train.eval_step=1", "strategies.0.params.model.epochs=1")
QUICK_ENCODE_TEXTS = 64
#: the encode phase times its texts in this many parts
ENCODE_PARTS = 5
PHASES = ("generate", "prepare", "encode", "fit", "evaluate")
DEVICES = ("cpu", "cuda", "auto")


# ----------------------------------------------------------------------------------- arguments
def parse_size(text: str) -> tuple[int, int]:
    """``"1e6x1e5"`` -> (1000000, 100000): target interactions x target items, as generated."""
    left, sep, right = text.lower().partition("x")
    try:
        if not sep:
            raise ValueError
        interactions, items = float(left), float(right)
    except ValueError:
        raise ValueError(f"{text!r}: expected INTERACTIONSxITEMS, e.g. 1e6x1e5") from None
    if not (interactions >= 1 and items >= 1) or interactions != int(interactions) or items != int(items):
        raise ValueError(f"{text!r}: expected whole numbers of at least 1, e.g. 1e6x1e5")
    return int(interactions), int(items)


def resolve_device(name: str, cuda_available: bool) -> str:
    """``cpu``/``cuda``/``auto`` -> the device the workers use; ``cuda`` without CUDA is an error."""
    if name not in DEVICES:
        raise ValueError(f"--device {name!r}: expected one of {', '.join(DEVICES)}")
    if name == "auto":
        return "cuda" if cuda_available else "cpu"
    if name == "cuda" and not cuda_available:
        raise ValueError("--device cuda: CUDA is not available here (use cpu or auto)")
    return name


def method_names(config_path: str, overrides: list[str]) -> list[str]:
    """The names of the config's methods (baselines, then strategies): the ``fit:NAME`` phases."""
    from xdplug.config import load_config
    from xdplug.config import method_names as names

    return names(load_config(config_path, overrides=list(overrides)))


def expand_phases(wanted: list[str], methods: list[str]) -> list[str]:
    """``fit`` -> ``fit:NAME`` for every method; other names are checked and kept in PHASES order."""
    out = []
    for phase in wanted:
        if phase == "fit":
            out += [f"fit:{m}" for m in methods]
        elif phase.startswith("fit:"):
            if phase[4:] not in methods:
                raise ValueError(f"--phases {phase!r}: the config has no method {phase[4:]!r}; it has "
                                 + ", ".join(methods))
            out.append(phase)
        elif phase in PHASES:
            out.append(phase)
        else:
            raise ValueError(f"--phases {phase!r}: expected one of {', '.join(PHASES)} or fit:METHOD")
    order = {p: i for i, p in enumerate(PHASES)}
    return sorted(dict.fromkeys(out), key=lambda p: order["fit" if p.startswith("fit:") else p])


def size_overrides(interactions: int, items: int, device: str, extra: list[str]) -> list[str]:
    """The ``--set`` overrides of one size (after the user's own, so the size wins)."""
    return list(extra) + [f"dataset.params.interactions={interactions}", f"dataset.params.items={items}",
                          f"device={device}"]


# ----------------------------------------------------------------------------------- memory
def rss_mb() -> float | None:
    """Current resident set size of this process (Linux /proc), in MiB."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


class Phase:
    """Times a block (after a device sync at both ends) and samples its peak RSS every 20 ms."""

    def __init__(self, sync, interval: float = 0.02):
        self.sync, self.interval = sync, interval
        self.seconds = 0.0
        self.peak_mb = None
        self._stop = threading.Event()

    def _sample(self):
        while not self._stop.wait(self.interval):
            self._observe()

    def _observe(self):
        value = rss_mb()
        if value is not None and (self.peak_mb is None or value > self.peak_mb):
            self.peak_mb = value

    def __enter__(self):
        self._observe()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        self.sync()
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.sync()
        self.seconds = time.perf_counter() - self._start
        self._stop.set()
        self._thread.join()
        self._observe()


# ----------------------------------------------------------------------------------- worker
def _device_sync(device: str):
    """A no-op on CPU; ``torch.cuda.synchronize`` on CUDA, so timers see finished kernels."""
    if device != "cuda":
        return lambda: None
    import torch

    torch.cuda.init()
    return lambda: torch.cuda.synchronize()


def _data_summary(data) -> dict:
    target = len(data.target_train) + len(data.target_valid) + len(data.target_test)
    return {"target_interactions": int(target), "source_interactions": int(len(data.source_train)),
            "interactions": int(target + len(data.source_train)), "target_users": int(data.n_target_users),
            "target_items": int(data.n_target_items), "source_items": int(data.n_source_items),
            "catalog": int(len(data.catalog))}


def worker(spec: dict) -> dict:
    """Run one phase in this process: ``spec`` has phase, config, overrides, device, encode_texts."""
    import torch

    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    from xdplug.config import load_config
    from xdplug.engine.plan import expand
    from xdplug.engine.task import fit_context, fit_method, prepare_data, run_evaluators
    from xdplug.evaluation import rank_split
    from xdplug.plugins import make_plugin_manager
    from xdplug.recbole.compat import quiet_recbole_logging

    quiet_recbole_logging()
    registry = make_plugin_manager().registry
    config = load_config(spec["config"], overrides=spec["overrides"], registry=registry)
    device = spec["device"]
    sync = _device_sync(device)
    seed = config["seeds"][0]
    phase = spec["phase"]
    out = {"phase": phase, "device": device, "torch_threads": torch.get_num_threads(), "rss_start_mb": rss_mb()}
    if device == "cuda":
        out["cuda_device"] = torch.cuda.get_device_name()
    if phase in ("generate", "prepare"):
        recipe_cls = registry.get("dataset", config["dataset"]["recipe"], "dataset.recipe")
        recipe = recipe_cls(config["dataset"]["params"], "dataset.params")
        with Phase(sync) as timer:
            if phase == "generate":
                raw = recipe.load(tempfile.gettempdir())
            else:
                from xdplug.data.prepare import prepare

                data = prepare(recipe, config["dataset"], seed, force=True)
        out.update(seconds=timer.seconds, phase_rss_mb=timer.peak_mb)
        if phase == "generate":
            out.update(generated={role: int(len(getattr(raw, role).inter)) for role in ("target", "source")},
                       interactions=int(len(raw.target.inter) + len(raw.source.inter)),
                       target_items=int(raw.target.inter["item"].nunique()))
        else:
            out.update(_data_summary(data))
        return _finish(out, device)

    start = time.perf_counter()
    data = prepare_data(config, registry, seed)  # from the cache the prepare phase wrote
    out.update(_data_summary(data), load_s=time.perf_counter() - start, rss_data_mb=rss_mb())
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    if phase == "encode":
        out.update(_encode(registry, data, device, spec.get("encode_texts") or 0, sync))
    elif phase == "evaluate":
        from xdplug.engine.plan import RunSpec

        pop = RunSpec("evaluate", "Pop", "baseline", seed, {"baseline": "Pop"}, "baselines[Pop]")
        with tempfile.TemporaryDirectory(prefix="xdplug-bench-scale-") as work:
            scorer = fit_method(pop, config, registry, fit_context(pop, config, data, device, Path(work),
                                                                   tensorboard=False, registry=registry))
            ks, groups = config["evaluation"]["ks"], config["evaluation"]["user_groups"]
            known = getattr(scorer, "item_known", None)
            with Phase(sync) as timer:
                test = rank_split(scorer.score, data, "test", ks, device, groups, item_known=known)
                valid = rank_split(scorer.score, data, "valid", ks, device, groups, item_known=known)
                run_evaluators(config, registry, test)
                run_evaluators(config, registry, valid)
        out.update(seconds=timer.seconds, phase_rss_mb=timer.peak_mb, test_users=int(len(test.users)),
                   valid_users=int(len(valid.users)),
                   user_items=int((len(test.users) + len(valid.users)) * data.n_target_items))
    elif phase.startswith("fit:"):
        spec_ = next((s for s in expand(config, registry) if s.method == phase[4:] and s.seed == seed), None)
        if spec_ is None:
            raise SystemExit(f"{phase}: no such method in the config")
        with tempfile.TemporaryDirectory(prefix="xdplug-bench-scale-") as work:
            ctx = fit_context(spec_, config, data, device, Path(work), tensorboard=False, registry=registry)
            with Phase(sync) as timer:
                scorer = fit_method(spec_, config, registry, ctx)
            out.update(seconds=timer.seconds, phase_rss_mb=timer.peak_mb, **epoch_times(ctx.curves))
            ks, groups = config["evaluation"]["ks"], config["evaluation"]["user_groups"]
            with Phase(sync) as ranking:
                test = rank_split(scorer.score, data, "test", ks, device, groups,
                                  item_known=getattr(scorer, "item_known", None))
            out.update(rank_s=ranking.seconds, rank_rss_mb=ranking.peak_mb, test_users=int(len(test.users)))
    else:
        raise SystemExit(f"unknown phase {phase!r}")
    return _finish(out, device)


def _finish(out: dict, device: str) -> dict:
    out["peak_rss_mb"] = peak_rss_mb()
    if device == "cuda":
        import torch

        out["cuda_peak_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def _encode(registry, data, device: str, limit: int, sync) -> dict:
    """Encode the catalogue's texts (or the first ``limit``) with the bundled MiniLM, cache off."""
    encoder = registry.get("encoder", "bert")({"cache": False, "device": device}, "encode")
    texts = list(data.catalog.texts)
    chosen = texts[:limit] if limit else texts
    start = time.perf_counter()
    encoder.embed(chosen[:8])  # loads the model and warms up; not timed
    load_s = time.perf_counter() - start
    # in ENCODE_PARTS parts, each timed: on a shared machine one part slowed by another job shows, and
    # the extrapolation uses the median part's rate
    step = max(1, math.ceil(len(chosen) / ENCODE_PARTS))
    rates = []
    with Phase(sync) as timer:
        for first in range(0, len(chosen), step):
            part = chosen[first:first + step]
            began = time.perf_counter()
            vectors = encoder.embed(part)
            sync()
            rates.append(len(part) / max(time.perf_counter() - began, 1e-9))
    per_s = len(chosen) / timer.seconds if timer.seconds > 0 else None
    median = statistics.median(rates)
    whole = timer.seconds if len(chosen) == len(texts) else len(texts) / median
    return {"seconds": whole, "measured_s": timer.seconds, "phase_rss_mb": timer.peak_mb,
            "texts": len(chosen), "catalog_texts": len(texts), "texts_per_s": per_s,
            "median_part_texts_per_s": median, "part_texts_per_s": rates,
            "extrapolated": len(chosen) < len(texts), "model_load_s": load_s, "dim": int(vectors.shape[1])}


def epoch_times(curves: list[dict]) -> dict:
    """Seconds per training epoch (epochs without validation when there are any) and of a validation."""
    if not curves:
        return {}
    plain = [p["seconds"] for p in curves if p.get("valid") is None]
    validated = [p["seconds"] for p in curves if p.get("valid") is not None]
    per_epoch = statistics.mean(plain) if plain else statistics.mean(validated)
    valid_s = max(0.0, statistics.mean(validated) - per_epoch) if plain and validated else None
    return {"epochs": len(curves), "s_per_epoch": per_epoch, "valid_s": valid_s,
            "epoch_includes_validation": not plain}


# ----------------------------------------------------------------------------------- growth
#: the smallest spread (largest / smallest) of an axis worth a slope: filtering moves a "fixed"
#: catalogue by a few items, and a slope over 2,999 -> 3,000 items is noise
MIN_SPREAD = 1.5


def slope(xs: list[float], ys: list[float]) -> float | None:
    """Least-squares slope of log(y) on log(x); None unless x spans a factor of ``MIN_SPREAD``."""
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys) if x and y and x > 0 and y > 0]
    if len(pts) < 2 or max(x for x, _ in pts) - min(x for x, _ in pts) < math.log(MIN_SPREAD):
        return None
    mx = statistics.mean(x for x, _ in pts)
    my = statistics.mean(y for _, y in pts)
    return sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x, _ in pts)


def joint_fit(rows: list[tuple[float, float, float]]) -> tuple[float, float] | None:
    """(a, b) of ``log t = a log n + b log m + c`` by least squares over (n, m, t); None if not identifiable."""
    import numpy as np

    pts = [(math.log(n), math.log(m), math.log(t)) for n, m, t in rows if n > 0 and m > 0 and t and t > 0]
    if len(pts) < 3:
        return None
    a = np.array([[x, y, 1.0] for x, y, _ in pts])
    spread = np.ptp(a[:, :2], axis=0)
    if (spread < math.log(MIN_SPREAD)).any() or np.linalg.matrix_rank(a) < 3:
        return None
    # both axes must vary on their own, not only together (users grow with interactions, not with items)
    residual = a[:, 1] - np.polyval(np.polyfit(a[:, 0], a[:, 1], 1), a[:, 0])
    if np.ptp(residual) < math.log(MIN_SPREAD):
        return None
    coef, *_ = np.linalg.lstsq(a, np.array([t for *_, t in pts]), rcond=None)
    return float(coef[0]), float(coef[1])


def growth(results: list[dict]) -> dict:
    """Per phase: slopes along the interactions axis (per catalogue size), the items axis (per
    interaction count), the joint fit, and for evaluate the slope against users x items."""
    out = {}
    ok = [r for r in results if "error" not in r and r.get("seconds")]
    for phase in dict.fromkeys(r["phase"] for r in ok):
        rows = [r for r in ok if r["phase"] == phase]
        entry = {"interactions": {}, "items": {}}
        for items in sorted({r["size"][1] for r in rows}):
            group = [r for r in rows if r["size"][1] == items]
            s = slope([r["interactions"] for r in group], [r["seconds"] for r in group])
            if s is not None:
                entry["interactions"][items] = {"slope": s, "points": len(group)}
        for inter in sorted({r["size"][0] for r in rows}):
            group = [r for r in rows if r["size"][0] == inter]
            s = slope([r["target_items"] for r in group], [r["seconds"] for r in group])
            if s is not None:
                entry["items"][inter] = {"slope": s, "points": len(group)}
        joint = joint_fit([(r["interactions"], r["target_items"], r["seconds"]) for r in rows])
        if joint is not None:
            entry["joint"] = {"interactions": joint[0], "items": joint[1], "points": len(rows)}
        if any(r.get("user_items") for r in rows):
            entry["user_items"] = slope([r.get("user_items") for r in rows], [r["seconds"] for r in rows])
        if any(r.get("s_per_epoch") for r in rows):
            entry["per_epoch"] = {items: slope([r["interactions"] for r in rows if r["size"][1] == items],
                                               [r.get("s_per_epoch") for r in rows if r["size"][1] == items])
                                  for items in sorted({r["size"][1] for r in rows})}
        out[phase] = entry
    return out


# ----------------------------------------------------------------------------------- output
def fmt(value, spec: str) -> str:
    if value is None:
        width = "".join(ch for ch in spec.split(".")[0] if ch.isdigit())
        return "-".rjust(int(width)) if width else "-"
    return format(value, spec)


def print_tables(results: list[dict]) -> None:
    for phase in dict.fromkeys(r["phase"] for r in results):
        rows = [r for r in results if r["phase"] == phase]
        print(f"\n{phase}")
        head = (f"  {'size':>9s} {'interactions':>12s} {'tgt items':>9s} {'tgt users':>9s} {'seconds':>9s} "
                f"{'load s':>7s} {'peak RSS':>9s} {'phase RSS':>9s}  detail")
        print(head)
        for r in rows:
            label = f"{r['size'][0]:.0e}x{r['size'][1]:.0e}".replace("e+0", "e")
            if "error" in r:
                print(f"  {label:>9s} {r['error']}")
                continue
            detail = []
            if r.get("s_per_epoch") is not None:
                detail.append(f"{r['s_per_epoch']:.2f} s/epoch x {r['epochs']}"
                              + (" (with validation)" if r.get("epoch_includes_validation") else ""))
            if r.get("valid_s") is not None:
                detail.append(f"validation {r['valid_s']:.2f} s")
            if r.get("rank_s") is not None:
                detail.append(f"rank test {r['rank_s']:.2f} s ({r['test_users']:,} users)")
            if r.get("texts_per_s") is not None:
                detail.append(f"{r['texts_per_s']:,.0f} texts/s over {r['texts']:,} of {r['catalog_texts']:,} texts"
                              + (" (seconds extrapolated)" if r.get("extrapolated") else ""))
            if r.get("user_items"):
                detail.append(f"{r['test_users']:,}+{r['valid_users']:,} users x {r['target_items']:,} items, "
                              f"{r['seconds'] / r['user_items'] * 1e9:.2f} ns per user x item")
            if r.get("cuda_peak_allocated_mb") is not None:
                detail.append(f"CUDA {r['cuda_peak_allocated_mb']:,.0f} MiB")
            print(f"  {label:>9s} {fmt(r.get('interactions'), '12,d')} {fmt(r.get('target_items'), '9,d')} "
                  f"{fmt(r.get('target_users'), '9,d')} {fmt(r.get('seconds'), '9.2f')} {fmt(r.get('load_s'), '7.1f')} "
                  f"{fmt(r.get('peak_rss_mb'), '9,.0f')} {fmt(r.get('phase_rss_mb'), '9,.0f')}  {'; '.join(detail)}")
    print("\ninteractions: after filtering, both domains (generate: as generated); seconds: the phase alone; "
          "load s: reading the prepared data first; RSS in MiB (peak: the whole worker, phase: during the phase)")


def print_growth(table: dict) -> None:
    print("\ngrowth exponents (least-squares slope on log-log; seconds against interactions at a fixed "
          "catalogue, against target items at fixed interactions):")
    for phase, entry in table.items():
        parts = [f"interactions {s['slope']:.2f} ({s['points']} sizes at {items:.0e} items)".replace("e+0", "e")
                 for items, s in entry["interactions"].items()]
        parts += [f"items {s['slope']:.2f} ({s['points']} sizes at {n:.0e} interactions)".replace("e+0", "e")
                  for n, s in entry["items"].items()]
        if "joint" in entry:
            j = entry["joint"]
            parts.append(f"joint: interactions {j['interactions']:.2f}, items {j['items']:.2f}")
        if entry.get("user_items") is not None:
            parts.append(f"users x items {entry['user_items']:.2f}")
        for items, s in (entry.get("per_epoch") or {}).items():
            if s is not None:
                parts.append(f"per epoch {s:.2f} at {items:.0e} items".replace("e+0", "e"))
        print(f"  {phase:24s} " + ("; ".join(parts) if parts else "- (one size)"))


# ----------------------------------------------------------------------------------- driver
def run_phase(spec: dict, env: dict, timeout: float) -> dict:
    load = os.getloadavg()[0]
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)],
                              env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"phase": spec["phase"], "error": f"timed out after {timeout:.0f} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_TAG)]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout[-2000:] + proc.stderr[-4000:])
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"phase": spec["phase"], "error": f"worker exited with status {proc.returncode}: {last[:300]}",
                "stderr_tail": proc.stderr[-4000:]}
    result = json.loads(lines[-1][len(RESULT_TAG):])
    result.update(worker_wall_s=time.perf_counter() - start, load_before=load, load_after=os.getloadavg()[0])
    return result


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=None, metavar="NxM",
                        help="target interactions x target items, e.g. 1e6x1e5 (default: " + " ".join(DEFAULT_SIZES) + ")")
    parser.add_argument("--phases", nargs="+", default=list(PHASES), metavar="PHASE",
                        help="generate, prepare, encode, fit (every method) or fit:NAME, evaluate (default: all)")
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="the grid (default configs/scale.yaml)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="override a config value, as xdplug run --set (repeatable)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    parser.add_argument("--encode-texts", type=int, default=0, metavar="N",
                        help="encode only the first N catalogue texts and extrapolate (0: all)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per worker (0: torch's default)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds one phase may take (default 3600)")
    parser.add_argument("--home", help="XDPLUG_HOME of the workers, kept (default: a temporary folder, removed)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes (" + " ".join(QUICK_SIZES) + "), one epoch, "
                        f"{QUICK_ENCODE_TEXTS} texts encoded: a smoke run")
    parser.add_argument("--json", metavar="OUT", help="also write every figure to this JSON file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return args
    try:
        if args.quick:
            args.sizes = args.sizes or list(QUICK_SIZES)
            args.overrides = list(QUICK_SET) + args.overrides
            args.encode_texts = args.encode_texts or QUICK_ENCODE_TEXTS
        args.sizes = [parse_size(s) for s in (args.sizes or DEFAULT_SIZES)]
        if args.encode_texts < 0 or args.threads < 0 or args.timeout <= 0:
            raise ValueError("--encode-texts and --threads must be >= 0 and --timeout > 0")
        import torch

        args.device = resolve_device(args.device, torch.cuda.is_available())
    except ValueError as exc:
        parser.error(str(exc))
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        result = worker(json.loads(args.worker))
        print(RESULT_TAG + json.dumps(result, default=str), flush=True)
        return 0
    from xdplug.errors import XdplugError

    try:
        first = size_overrides(*args.sizes[0], args.device, args.overrides)
        phases = expand_phases(args.phases, method_names(args.config, first))
    except (ValueError, XdplugError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="xdplug-bench-scale-home-"))
    env = dict(os.environ, XDPLUG_HOME=str(home))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    if args.threads:
        env.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; "
          f"device {args.device}; config {args.config} " + " ".join(f"--set {o}" for o in args.overrides))
    results = []
    try:
        for interactions, items in args.sizes:
            overrides = size_overrides(interactions, items, args.device, args.overrides)
            for phase in phases:
                spec = {"phase": phase, "config": args.config, "overrides": overrides, "device": args.device,
                        "encode_texts": args.encode_texts, "threads": args.threads}
                result = run_phase(spec, env, args.timeout)
                result["size"] = [interactions, items]
                results.append(result)
                shown = (f"{result['seconds']:.2f} s, peak RSS {result['peak_rss_mb']:,.0f} MiB"
                         if "error" not in result and result.get("seconds") is not None else result.get("error", ""))
                print(f"  {interactions:.0e} x {items:.0e} {phase}: {shown}".replace("e+0", "e"), flush=True)
    finally:
        if not args.home:
            shutil.rmtree(home, ignore_errors=True)
    print_tables(results)
    table = growth(results)
    print_growth(table)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "machine": {"cores": os.cpu_count(), "platform": platform.platform(), "load_average": os.getloadavg()},
            "config": args.config, "overrides": args.overrides, "device": args.device, "results": results,
            "growth": {phase: {k: ({str(kk): vv for kk, vv in v.items()} if isinstance(v, dict) else v)
                               for k, v in entry.items()} for phase, entry in table.items()},
        }, indent=2, default=str))
        print(f"\nfigures written to {args.json}")
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
