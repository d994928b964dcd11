"""Tuned values at the edge of their search range: a search its own space may have cut short.

On both sparse pairs of issue 31 the tuned iALS chose a regularisation of 96-99 against a
bound of 100, and nothing in the report said so. A chosen value within
:data:`EDGE_TOLERANCE` of its range's width from a bound (in log space for log-scaled ranges)
is flagged here, for controls and strategies alike; the report shows the flags in its tuning
table and in ``report.json``; a staged search's flags are its stages'. A bound of 0 on a linear range is the option's natural limit
(the term is off), not a cut, and is not flagged; numeric categorical choices (three or more)
are flagged at their smallest and largest choice.
"""

from __future__ import annotations

import math
from typing import Any

#: share of a range's width (log width for log-scaled ranges) that counts as "at its edge"
EDGE_TOLERANCE = 0.05


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    x = float(value)
    return x if math.isfinite(x) else None


def _position(value: float, low: float, high: float, log: bool) -> float | None:
    """Where ``value`` sits in ``[low, high]``, 0 to 1 (log-scaled: on the log axis)."""
    if log:
        if min(value, low, high) <= 0:
            return None
        value, low, high = math.log(value), math.log(low), math.log(high)
    if high <= low:
        return None
    return (value - low) / (high - low)


def edge_of(value: Any, dist: dict, tolerance: float = EDGE_TOLERANCE) -> str | None:
    """``"low"`` or ``"high"`` when ``value`` lies at that edge of the distribution ``dist``, else None."""
    x = _number(value)
    if x is None or not isinstance(dist, dict):
        return None
    kind = dist.get("type")
    if kind == "categorical":
        choices = [c for c in (_number(c) for c in dist.get("choices") or []) if c is not None]
        if len(set(choices)) < 3 or len(choices) != len(dist.get("choices") or []):
            return None  # booleans, strings or two choices: no range to be cut
        low, high = min(choices), max(choices)
        side = "low" if x == low else "high" if x == high else None
        return None if side == "low" and low == 0 else side
    low, high = _number(dist.get("low")), _number(dist.get("high"))
    if low is None or high is None:
        return None
    log = kind == "loguniform" or (kind == "int" and bool(dist.get("log")))
    pos = _position(x, low, high, log)
    if pos is None:
        return None
    if pos <= tolerance and not (low == 0 and not log):
        return "low"
    if pos >= 1 - tolerance:
        return "high"
    return None


def edge_flags(space: dict, chosen: dict, tolerance: float = EDGE_TOLERANCE) -> list[dict]:
    """One ``{param, value, edge, low, high}`` per chosen value at the edge of its range in ``space``."""
    out = []
    for param, dist in (space or {}).items():
        if param not in (chosen or {}):
            continue
        side = edge_of(chosen[param], dist, tolerance)
        if side is None:
            continue
        if dist.get("type") == "categorical":
            numbers = [float(c) for c in dist["choices"]]
            low, high = min(numbers), max(numbers)
        else:
            low, high = dist["low"], dist["high"]
        out.append({"param": param, "value": chosen[param], "edge": side, "low": low, "high": high})
    return out


def method_edges(t: dict | None) -> list[dict]:
    """The edge flags of one method's search. A staged search's are its stages' (each stage's space
    and choice, ``stage`` named in the flag, whether or not the blend kept the component); its blend
    weights are not flagged: their ranking depends on their ratios only, and ``[0, 1]^n`` holds them all."""
    t = t or {}
    stages = (t.get("staged") or {}).get("stages")
    if stages is None:
        return edge_flags(t.get("space") or {}, t.get("chosen") or {})
    return [dict(flag, stage=s.get("name")) for s in stages
            for flag in edge_flags(s.get("space") or {}, s.get("chosen") or {})]


def tuning_edges(tuning: dict | None) -> dict[str, list[dict]]:
    """The edge flags of every tuned method of a report's ``tuning`` data (methods without any left out)."""
    out = {}
    for method, t in (tuning or {}).items():
        flags = method_edges(t)
        if flags:
            out[str(method)] = flags
    return out


def describe_flag(flag: dict) -> str:
    """``params.regularization = 98.2 (high edge of [0.001, 100])``."""
    def fmt(x):
        return f"{x:g}" if isinstance(x, float) else str(x)

    stage = f"stage {flag['stage']}: " if flag.get("stage") else ""
    return (f"{stage}{flag['param']} = {fmt(flag['value'])} ({flag['edge']} edge of [{fmt(flag['low'])}, "
            f"{fmt(flag['high'])}])")
