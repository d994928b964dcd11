"""Wall time of one benchmark grid: the local executor against Ray with N workers, same machine.

    python bench/bench_executors.py                                   # configs/quickstart.yaml, Ray with 2 workers
    python bench/bench_executors.py --config configs/ml1m-ml100k.yaml --set seeds=[2022] --set train.epochs=20
    python bench/bench_executors.py --only Pop --only EASE --workers 2 --json out.json
    python bench/bench_executors.py --modes local local1 ray      # also local with one torch thread

Each mode runs ``xdplug run CONFIG --force --quiet`` in a fresh process with
its own output folder and its own empty ``XDPLUG_HOME`` (so both pay data
preparation and text encoding cold, as a first run does; a ``downloads``
folder of the current ``XDPLUG_HOME`` is shared so nothing is fetched
twice). ``local`` is one process using every core through torch's threads;
``local1`` is the same with ``OMP_NUM_THREADS=1`` (one torch thread: on a
machine busy with other work, torch's threads waiting on each other at every
parallel region can cost more than they gain); ``ray`` is N single-CPU worker
processes (``--workers N``), including the start of the local Ray instance.
The modes alternate over ``--repeat`` rounds so that a busy machine slows
all alike; the load average is printed with each round.

Besides the wall times and their ratio it prints the per-run times the run
stores recorded (train + evaluate, per method), the figures
``docs/cluster.md`` extrapolates from.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_mode(mode: str, args, work: Path, round_: int) -> dict:
    load = os.getloadavg()[0]
    out = work / f"{mode}-{round_}"
    home = work / f"home-{mode}-{round_}"
    home.mkdir(parents=True)
    current = Path(os.environ.get("XDPLUG_HOME") or Path.home() / ".cache" / "xdplug")
    if (current / "downloads").is_dir():
        (home / "downloads").symlink_to(current / "downloads")
    cmd = [sys.executable, "-m", "xdplug.cli", "run", args.config, "--force", "--quiet",
           "--set", f"output.dir={out}", "--executor", "local" if mode.startswith("local") else "ray"]
    for item in args.set or []:
        cmd += ["--set", item]
    for name in args.only or []:
        cmd += ["--only", name]
    if mode == "ray":
        cmd += ["--workers", str(args.workers)]
    env = dict(os.environ, XDPLUG_HOME=str(home))
    if mode == "local1":
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"{mode}: xdplug run failed with status {proc.returncode}")
    return {"wall_s": wall, "runs": read_runs(out), "load_before": load, "load_after": os.getloadavg()[0]}


def read_runs(out: Path) -> list[dict]:
    import sqlite3

    db = sqlite3.connect(str(out / "runs.sqlite"))
    rows = db.execute("SELECT run_id, method, seed, status, time_s, metrics FROM runs").fetchall()
    db.close()
    return [{"run_id": r, "method": m, "seed": s, "status": st, "time_s": t, "metrics": json.loads(x or "{}")}
            for r, m, s, st, t, x in rows]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "quickstart.yaml"))
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="config override (repeatable)")
    parser.add_argument("--only", action="append", metavar="METHOD", help="run only this method (repeatable)")
    parser.add_argument("--workers", type=int, default=2, help="Ray workers (CPUs of the local instance)")
    parser.add_argument("--repeat", type=int, default=1, help="rounds, alternating the order of the modes")
    parser.add_argument("--modes", nargs="+", default=["local", "ray"], choices=["local", "local1", "ray"],
                        help="local: default torch threads; local1: one torch thread; ray: --workers processes")
    parser.add_argument("--json", metavar="FILE", help="also write the figures here")
    args = parser.parse_args(argv)
    results: dict[str, list[dict]] = {mode: [] for mode in args.modes}
    with tempfile.TemporaryDirectory(prefix="xdplug-bench-exec-") as tmp:
        for r in range(args.repeat):
            for mode in args.modes if r % 2 == 0 else list(reversed(args.modes)):
                res = run_mode(mode, args, Path(tmp), r)
                results[mode].append(res)
                print(f"round {r + 1}: {mode:6s} {res['wall_s']:8.1f} s wall, {len(res['runs'])} runs, "
                      f"load average {res['load_before']:.1f} -> {res['load_after']:.1f}", flush=True)
    walls = {mode: statistics.median(r["wall_s"] for r in results[mode]) for mode in args.modes}
    first = {mode: results[mode][0]["runs"] for mode in args.modes}
    n_runs = len(first[args.modes[0]])
    label = {"local": "local executor", "local1": "local, 1 torch thread", "ray": f"ray, {args.workers} workers"}
    print()
    print(f"config: {args.config} {' '.join('--set ' + s for s in args.set or [])}".rstrip())
    print(f"machine: {os.cpu_count()} cores; grid of {n_runs} runs")
    for mode in args.modes:
        print(f"{label[mode]:24s}: {walls[mode]:8.1f} s wall (median of {len(results[mode])})")
    if "local" in walls and "ray" in walls:
        print(f"{'ratio local / ray':24s}: {walls['local'] / walls['ray']:8.2f}x")
    if "local1" in walls and "ray" in walls:
        print(f"{'ratio local1 / ray':24s}: {walls['local1'] / walls['ray']:8.2f}x")
    # the same numbers whichever executor ran them
    base = {r["run_id"]: r for r in first[args.modes[0]]}
    for mode in args.modes[1:]:
        diffs = []
        for r in first[mode]:
            a = base.get(r["run_id"], {}).get("metrics", {}).get("test", {})
            b = r["metrics"].get("test", {})
            diffs += [abs(a[k] - b[k]) for k in a.keys() & b.keys()]
        print(f"max |test metric difference| {args.modes[0]} vs {mode}: {max(diffs) if diffs else float('nan'):.2e}")
    print("\nper-run time (s, mean over seeds and rounds) as recorded in each mode's run store:")
    methods = sorted({r["method"] for r in first[args.modes[0]]})
    print(f"  {'method':28s}" + "".join(f"{m:>9s}" for m in args.modes))
    per_method = {}
    for m in methods:
        per_method[m] = {}
        for mode in args.modes:
            times = [r["time_s"] or 0 for res in results[mode] for r in res["runs"] if r["method"] == m]
            per_method[m][mode] = statistics.mean(times) if times else None
        print(f"  {m:28s}" + "".join(f"{per_method[m][mode] or 0:9.1f}" for mode in args.modes))
    print(f"  {'sum of run times':28s}" + "".join(f"{sum(r['time_s'] or 0 for r in first[mode]):9.1f}"
                                               for mode in args.modes))
    if args.json:
        Path(args.json).write_text(json.dumps({
            "config": args.config, "set": args.set, "only": args.only, "workers": args.workers,
            "cores": os.cpu_count(), "wall_s": {k: [r["wall_s"] for r in v] for k, v in results.items()},
            "load": {k: [(r["load_before"], r["load_after"]) for r in v] for k, v in results.items()},
            "per_method": per_method, "runs": {k: [r["runs"] for r in v] for k, v in results.items()}}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
