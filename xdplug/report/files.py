"""Machine-readable outputs: results.csv (one row per run), summary.csv (one row per method), report.json,
and per_user.parquet / per_user.csv (one row per method, seed, user and metric).

Numbers are written at full precision so they round-trip; missing values are
empty CSV cells and JSON ``null`` (never ``NaN``, which is not JSON).
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path, PurePath
from typing import Any

import pandas as pd

from .aggregate import ReportContext, Stat, as_float, is_learning_flag, note_parts, short_error
from .edges import tuning_edges

REPORT_FORMAT = "xdplug-report"
REPORT_FORMAT_VERSION = 1


def results_frame(ctx: ReportContext) -> pd.DataFrame:
    """One row per run: identity, status, cost, the error's short line, then every test metric."""
    rows = []
    for s in ctx.summaries:
        for run in s.runs:
            test = ((run.get("metrics") or {}).get("test")) or {}
            row = {
                "method": s.method,
                "kind": run.get("kind") or s.kind,
                "seed": run.get("seed"),
                "status": run.get("status"),
                "time_s": as_float(run.get("time_s")),
                "peak_rss_mb": as_float(run.get("peak_rss_mb")),
                "error": short_error(run.get("error")) or None,
                "did_not_learn": "; ".join(n for n in note_parts(run) if is_learning_flag(n)) or None,
            }
            row.update({m: as_float(test.get(m)) for m in ctx.groups.all})
            rows.append(row)
    columns = ["method", "kind", "seed", "status", "time_s", "peak_rss_mb", "error", "did_not_learn",
               *ctx.groups.all]
    return pd.DataFrame(rows, columns=columns)


def _run_counts(ctx: ReportContext, s) -> dict[str, Any]:
    """The columns every per-method row starts with (summary.csv and report.json): who and how many runs."""
    return {
        "method": s.method,
        "kind": s.kind,
        "is_reference": s.method == ctx.reference,
        "is_control": ctx.is_control(s.method),
        "n_runs": s.n_runs,
        "n_done": s.n_done,
        "n_failed": s.n_failed,
        "n_not_applicable": s.n_not_applicable,
    }


def summary_frame(ctx: ReportContext) -> pd.DataFrame:
    """One row per method, ranked as in the report: run counts, improvement on the primary metric, mean and std per metric."""
    rows = []
    for s in ctx.summaries:
        pct, marker, comp = ctx.improvement(s.method, ctx.primary)
        row: dict[str, Any] = {
            **_run_counts(ctx, s),
            "improvement_pct": pct,
            "p_ttest_holm": as_float(comp.get("p_ttest_holm")) if comp else None,
            "marker": marker,
        }
        for m in ctx.groups.all:
            stat = s.test.get(m)
            row[f"{m}_mean"] = stat.mean if stat else None
            row[f"{m}_std"] = stat.std if stat else None
        row["time_s_mean"] = s.time_s.mean if s.time_s else None
        row["peak_rss_mb_max"] = s.peak_rss_mb
        rows.append(row)
    return pd.DataFrame(rows)


def to_csv(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False, lineterminator="\n")


def jsonable(value: Any) -> Any:
    """Plain JSON types: numpy scalars and arrays unwrapped, NaN/inf as None, paths and the rest as strings."""
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, PurePath):
        return str(value)
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return jsonable(value.tolist())
    if hasattr(value, "item"):
        return jsonable(value.item())
    return str(value)


def _stat(stat: Stat | None) -> dict | None:
    return None if stat is None else {"mean": stat.mean, "std": stat.std, "n": stat.n}


def report_json(ctx: ReportContext, verdict: dict, generated_at: str) -> str:
    """Everything: the verdict, the per-method aggregates, and the runner's full input (runs, comparisons, tuning, config)."""
    summary = []
    for s in ctx.summaries:
        improvements = {}
        for m in ctx.groups.all:
            pct, marker, comp = ctx.improvement(s.method, m)
            if pct is not None:
                improvements[m] = {"pct": pct, "marker": marker, "tested": comp is not None,
                                   "reference": comp.get("reference") if comp else ctx.reference}
        summary.append({
            **_run_counts(ctx, s),
            "notes": s.notes,
            "did_not_learn": [{"seed": seed, "reason": reason} for seed, reason in s.learning_flags],
            "test": {m: _stat(st) for m, st in s.test.items()},
            "valid": {m: _stat(st) for m, st in s.valid.items()},
            "improvement_over_reference": improvements,
            "time_s": _stat(s.time_s),
            "peak_rss_mb_max": s.peak_rss_mb,
        })
    document = {
        "format": REPORT_FORMAT,
        "format_version": REPORT_FORMAT_VERSION,
        "generated_at": generated_at,
        "name": ctx.data.get("name"),
        "primary_metric": ctx.primary,
        "reference": ctx.reference,
        # the config's control set (controls: strong) and every tuned value at the edge of its range
        "controls": ctx.controls,
        "tuned_at_edge": tuning_edges(ctx.data.get("tuning")),
        "metric_groups": {
            "main": ctx.groups.main,
            "other_accuracy": ctx.groups.other_accuracy,
            "beyond_accuracy": ctx.groups.beyond,
            "user_groups": ctx.groups.user_groups,
            "other_slices": ctx.groups.other_slices,
        },
        "verdict": verdict,
        "summary": summary,
        "data": ctx.data,
    }
    return json.dumps(jsonable(document), indent=2, allow_nan=False, ensure_ascii=False) + "\n"


#: the per-user file's columns; ``user`` is the canonical target user index of the run's split
PER_USER_COLUMNS = ["method", "seed", "user", "metric", "value"]
PER_USER_FILES = ("per_user.parquet", "per_user.csv")


def per_user_frame(runs: list[dict]) -> pd.DataFrame:
    """One row per (method, seed, user, metric) of every finished run's per-user test arrays.

    ``runs`` are run-store records read with ``with_per_user=True``; the means of a
    (method, seed, metric) group are the run's test metric in ``results.csv`` (the
    ranking evaluator's metrics are means over users). Arrays that are not one value
    per evaluated user are left out.
    """
    import numpy as np

    frames = []
    for run in runs:
        arrays = run.get("per_user") or {}
        users = arrays.get("users")
        if run.get("status") != "done" or users is None:
            continue
        users = np.asarray(users)
        for metric in sorted(k for k in arrays if k != "users"):
            values = np.asarray(arrays[metric], dtype=np.float64)
            if values.shape != users.shape:
                continue
            measured = ~np.isnan(values)  # a slice's arrays (cold items) hold NaN for users outside it
            frames.append(pd.DataFrame({"method": run["method"], "seed": run["seed"], "user": users[measured],
                                        "metric": metric, "value": values[measured]}))
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in
                             zip(PER_USER_COLUMNS, ("object", "int64", "int64", "object", "float64"))})
    return pd.concat(frames, ignore_index=True)[PER_USER_COLUMNS]


def per_user_payload(frame: pd.DataFrame) -> tuple[str, bytes]:
    """``("per_user.parquet", bytes)`` when pyarrow is importable, else ``("per_user.csv", bytes)``."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return "per_user.csv", to_csv(frame).encode("utf-8")
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False, engine="pyarrow")
    return "per_user.parquet", buffer.getvalue()


def write_per_user(runs: list[dict], out_dir: str | Path) -> Path:
    """Write the per-user file beside results.csv (atomically); remove the other format's stale copy."""
    from ..atomicfile import write_files_atomically

    out = Path(out_dir)
    name, payload = per_user_payload(per_user_frame(runs))
    write_files_atomically({out / name: payload})
    for other in PER_USER_FILES:
        if other != name:
            (out / other).unlink(missing_ok=True)
    return out / name
