"""The server's counters and latency histogram, exposed in Prometheus' text format (version 0.0.4).

Written here rather than taken from ``prometheus_client``: the server needs three counters, one
histogram and a few gauges, which are forty lines; the client library would add a process-wide
default registry (tests and two apps in one process would share it) and a dependency. Label
values are the route's template (never the raw path) and the status code, so their number is
bounded whatever clients send. Every update takes one lock: requests run on several threads.
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict

#: latency buckets in seconds: fine below 10 ms (the target), coarse up to the request timeout
BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _labels(**labels) -> str:
    def escape(value) -> str:
        return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')

    return "{" + ",".join(f'{k}="{escape(v)}"' for k, v in labels.items()) + "}"


class Metrics:
    """Request counts by route and code, errors by code, a latency histogram by route, model gauges."""

    def __init__(self):
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.errors: dict[int, int] = defaultdict(int)
        self._buckets: dict[str, list[int]] = {}
        self._sum: dict[str, float] = defaultdict(float)
        self._count: dict[str, int] = defaultdict(int)
        self.reloads: dict[str, int] = defaultdict(int)
        self.in_flight = 0

    def observe(self, method: str, route: str, code: int, seconds: float) -> None:
        """Count one finished request and its latency."""
        with self._lock:
            self.requests[(method, route, code)] += 1
            if code >= 400:
                self.errors[code] += 1
            buckets = self._buckets.setdefault(route, [0] * len(BUCKETS))
            i = bisect.bisect_left(BUCKETS, seconds)
            if i < len(BUCKETS):
                buckets[i] += 1
            self._sum[route] += seconds
            self._count[route] += 1

    def reload(self, result: str) -> None:
        with self._lock:
            self.reloads[result] += 1

    def enter(self) -> None:
        with self._lock:
            self.in_flight += 1

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def exposition(self, model: dict) -> str:
        """The text a Prometheus scrape reads; ``model`` holds the served model's gauges."""
        with self._lock:
            lines = ["# HELP xdplug_requests_total HTTP requests answered, by method, route and status code.",
                     "# TYPE xdplug_requests_total counter"]
            for (method, route, code), n in sorted(self.requests.items()):
                lines.append(f"xdplug_requests_total{_labels(method=method, route=route, code=code)} {n}")
            lines += ["# HELP xdplug_errors_total Requests answered with a 4xx or 5xx status, by code.",
                      "# TYPE xdplug_errors_total counter"]
            for code, n in sorted(self.errors.items()):
                lines.append(f"xdplug_errors_total{_labels(code=code)} {n}")
            lines += ["# HELP xdplug_request_duration_seconds Time from a request's arrival to its answer.",
                      "# TYPE xdplug_request_duration_seconds histogram"]
            for route in sorted(self._buckets):
                cumulative = 0
                for bound, n in zip(BUCKETS, self._buckets[route]):
                    cumulative += n
                    lines.append(f"xdplug_request_duration_seconds_bucket{_labels(route=route, le=bound)} {cumulative}")
                lines.append(f"xdplug_request_duration_seconds_bucket{_labels(route=route, le='+Inf')} "
                             f"{self._count[route]}")
                lines.append(f"xdplug_request_duration_seconds_sum{_labels(route=route)} {self._sum[route]:.6f}")
                lines.append(f"xdplug_request_duration_seconds_count{_labels(route=route)} {self._count[route]}")
            lines += ["# HELP xdplug_reloads_total Reloads of the model, by result (swapped or refused).",
                      "# TYPE xdplug_reloads_total counter"]
            for result in ("swapped", "refused"):
                lines.append(f"xdplug_reloads_total{_labels(result=result)} {self.reloads[result]}")
            lines += ["# HELP xdplug_requests_in_flight Requests being answered now.",
                      "# TYPE xdplug_requests_in_flight gauge", f"xdplug_requests_in_flight {self.in_flight}"]
        lines += ["# HELP xdplug_model_loaded 1 once a model serves, 0 while the first one loads.",
                  "# TYPE xdplug_model_loaded gauge", f"xdplug_model_loaded {int(model['loaded'])}",
                  "# HELP xdplug_model_version The served artifact's version (1 for an export, N for ARTIFACT.vN).",
                  "# TYPE xdplug_model_version gauge", f"xdplug_model_version {model.get('version') or 0}"]
        return "\n".join(lines) + "\n"
