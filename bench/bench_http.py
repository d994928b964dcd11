"""HTTP load benchmark of ``xdplug serve``: throughput and latency by concurrency, memory over a run, a reload.

    python bench/bench_http.py ARTIFACT                        # 1, 8, 32 clients; 60 s memory run; reload
    python bench/bench_http.py ARTIFACT --requests 500 --memory-seconds 20 --clients 1 8

Starts ``xdplug serve ARTIFACT --port 0`` as a subprocess on 127.0.0.1 (loopback only, an admin
token in its environment), waits for ``/health``, then:

1. for each number of concurrent clients (``--clients``, default 1 8 32): every client sends
   ``POST /recommend`` for random known users, one request at a time on a keep-alive
   connection, until ``--requests`` answers or ``--seconds`` passed; throughput, p50/p99
   latency (measured by the client: queueing included) and errors;
2. memory: ``--memory-clients`` clients for ``--memory-seconds``; the server's RSS
   (``/proc/PID/status``) each second, its growth from the first sample after warm-up;
3. reload: 32 clients (``--reload-clients``); after a steady third of ``--reload-seconds``,
   ``POST /admin/reload`` (to ``--reload-to`` or the newest version of ARTIFACT); latency of
   requests sent while the reload ran against the steady p99 before it; failures.

The clients are plain asyncio streams with a hand-written HTTP/1.1 request (an HTTP client
library would spend more of the 2 shared cores than the server). Figures are printed with the
machine's load average and never asserted; targets of issue #29 are printed beside them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

TOKEN_VAR = "XDPLUG_BENCH_TOKEN"


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class Connection:
    """One keep-alive HTTP/1.1 connection that sends a request and reads one answer at a time."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def request(self, method: str, path: str, body: dict | None = None, headers: dict | None = None):
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        data = json.dumps(body).encode() if body is not None else b""
        head = [f"{method} {path} HTTP/1.1", f"host: {self.host}", f"content-length: {len(data)}",
                "content-type: application/json"] + [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)
        await self.writer.drain()
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("the server closed the connection")
        status, length, close = int(status_line.split()[1]), 0, False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "connection" and value.strip().lower() == "close":
                close = True
        payload = await self.reader.readexactly(length)
        if close:
            self.close()
        return status, payload

    def close(self):
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None


async def load(host, port, users, clients: int, requests: int, seconds: float, k: int, during=None,
               hold=None):
    """Run ``clients`` clients for ``requests`` answers or ``seconds`` (longer while ``hold()`` is true);
    returns (start, end, [(sent, latency, status)], errors, what ``during()`` returned)."""
    records, errors = [], []
    deadline = time.perf_counter() + seconds
    budget = [requests]

    def going() -> bool:
        return budget[0] > 0 and (time.perf_counter() < deadline or (hold is not None and hold()))

    async def client(n: int):
        conn = Connection(host, port)
        rng = random.Random(n)
        try:
            while going():
                budget[0] -= 1
                body = {"user": rng.choice(users), "k": k}
                sent = time.perf_counter()
                try:
                    status, payload = await conn.request("POST", "/recommend", body)
                except (OSError, ConnectionError, asyncio.IncompleteReadError) as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                    conn.close()
                    continue
                records.append((sent, time.perf_counter() - sent, status))
                if status != 200:
                    errors.append(f"{status}: {payload[:200]!r}")
        finally:
            conn.close()

    start = time.perf_counter()
    tasks = [asyncio.create_task(client(n)) for n in range(clients)]
    extra = asyncio.create_task(during()) if during is not None else None
    await asyncio.gather(*tasks)
    result = await extra if extra is not None else None
    return start, time.perf_counter(), records, errors, result


def summary(records, start, end) -> dict:
    lat = np.array([r[1] for r in records]) * 1000 if records else np.array([float("nan")])
    return {"requests": len(records), "seconds": round(end - start, 2),
            "throughput": round(len(records) / max(end - start, 1e-9), 1),
            "p50_ms": round(float(np.percentile(lat, 50)), 2), "p99_ms": round(float(np.percentile(lat, 99)), 2)}


def start_server(args) -> tuple[subprocess.Popen, str, int, str]:
    env = {**os.environ, TOKEN_VAR: secrets.token_hex(24), "OMP_NUM_THREADS": "1"}
    xdplug = Path(sys.executable).with_name("xdplug")
    command = [str(xdplug), "serve", args.artifact, "--port", "0", "--workers", str(args.workers),
               "--admin-token-env", TOKEN_VAR, "--max-k", str(max(args.k, 10))]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    threading.Thread(target=lambda: [sys.stderr.write("  server: " + line) for line in proc.stderr],
                     daemon=True).start()
    line = proc.stdout.readline()
    if not line.startswith("serving "):
        proc.wait(10)
        raise SystemExit(f"the server did not start: {line}")
    url = line.split(" at ")[1].split()[0]
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return proc, host, int(port), env[TOKEN_VAR]


async def wait_ready(host, port, timeout: float) -> float:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        conn = Connection(host, port)
        try:
            status, _ = await conn.request("GET", "/health")
            if status == 200:
                return time.perf_counter() - t0
        except OSError:
            pass
        finally:
            conn.close()
        await asyncio.sleep(0.1)
    raise SystemExit(f"the server was not ready after {timeout:.0f} s")


async def run(args) -> dict:
    users = json.loads((Path(args.artifact) / "ids.json").read_text())["users"]
    proc, host, port, token = start_server(args)
    out = {"artifact": args.artifact, "machine": f"{platform.machine()}, {os.cpu_count()} cores",
           "load_before": [round(x, 2) for x in os.getloadavg()], "workers": args.workers}
    try:
        out["ready_seconds"] = round(await wait_ready(host, port, args.ready_timeout), 1)
        conn = Connection(host, port)
        model = json.loads((await conn.request("GET", "/model"))[1])
        conn.close()
        out["model"] = {k: model[k] for k in ("method", "version", "users", "items")}
        print(f"serving {model['method']} v{model['version']}: {model['users']:,} users, {model['items']:,} items; "
              f"ready after {out['ready_seconds']} s; RSS {rss_mb(proc.pid):.0f} MB; load {out['load_before']}")
        await load(host, port, users, 4, 200, 10, args.k)  # warm-up
        out["levels"] = {}
        for clients in args.clients:
            start, end, records, errors, _ = await load(host, port, users, clients, args.requests, args.seconds, args.k)
            row = {**summary(records, start, end), "errors": len(errors)}
            out["levels"][clients] = row
            print(f"{clients:>3} clients: {row['throughput']:8.1f} req/s  p50 {row['p50_ms']:7.2f} ms  "
                  f"p99 {row['p99_ms']:7.2f} ms  {row['requests']} requests in {row['seconds']} s, "
                  f"{row['errors']} errors" + (f" (first: {errors[0]})" if errors else ""))

        if args.memory_seconds > 0:
            samples = []

            async def sample():
                t0 = time.perf_counter()
                while time.perf_counter() - t0 < args.memory_seconds:
                    samples.append(rss_mb(proc.pid))
                    await asyncio.sleep(1.0)

            start, end, records, errors, _ = await load(host, port, users, args.memory_clients, 10**9,
                                                        args.memory_seconds, args.k, during=sample)
            base = samples[min(2, len(samples) - 1)]  # after a couple of seconds of warm-up
            row = {**summary(records, start, end), "errors": len(errors), "rss_start_mb": round(base, 1),
                   "rss_end_mb": round(samples[-1], 1), "rss_max_mb": round(max(samples), 1),
                   "rss_growth_pct": round(100 * (samples[-1] - base) / base, 2)}
            out["memory"] = row
            print(f"memory, {args.memory_clients} clients for {row['seconds']} s: RSS {row['rss_start_mb']} -> "
                  f"{row['rss_end_mb']} MB (max {row['rss_max_mb']}; {row['rss_growth_pct']:+.2f} %), "
                  f"{row['requests']} requests, {row['errors']} errors")

        if args.reload_seconds > 0:
            window = {}

            async def reload():
                await asyncio.sleep(args.reload_seconds / 3)
                conn = Connection(host, port)
                body = {"path": args.reload_to} if args.reload_to else {}
                window["start"] = time.perf_counter()
                status, payload = await conn.request("POST", "/admin/reload", body,
                                                     {"authorization": f"Bearer {token}"})
                window["end"] = time.perf_counter()
                conn.close()
                return status, json.loads(payload)

            def hold():  # the clients go on until a third of the run after the reload's answer
                return "end" not in window or time.perf_counter() < window["end"] + args.reload_seconds / 3

            start, end, records, errors, (status, answer) = await load(
                host, port, users, args.reload_clients, 10**9, args.reload_seconds, args.k, during=reload, hold=hold)
            before = [r for r in records if r[0] < window["start"]]
            swap = [r for r in records if window["start"] <= r[0] <= window["end"]]
            steady, during = summary(before, start, window["start"]), summary(swap, window["start"], window["end"])
            row = {"clients": args.reload_clients, "reload_status": status, "reload": answer,
                   "reload_seconds": round(window["end"] - window["start"], 2), "steady": steady,
                   "during": during, "errors": len(errors),
                   "ratio": round(during["p99_ms"] / steady["p99_ms"], 2) if steady["p99_ms"] else None,
                   "rss_after_mb": round(rss_mb(proc.pid), 1)}
            out["reload"] = row
            print(f"reload under {args.reload_clients} clients: HTTP {status} "
                  f"({answer.get('status') or answer.get('error')}, to version {answer.get('version')}) "
                  f"in {row['reload_seconds']} s; steady p99 {steady['p99_ms']} ms, during the swap p99 "
                  f"{during['p99_ms']} ms ({row['ratio']}x) over {during['requests']} requests; "
                  f"{row['errors']} errors" + (f" (first: {errors[0]})" if errors else "")
                  + f"; RSS after {row['rss_after_mb']} MB")
    finally:
        proc.send_signal(2)
        try:
            out["server_exit"] = proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out["server_exit"] = "killed"
    out["load_after"] = [round(x, 2) for x in os.getloadavg()]
    return out


def targets(out: dict) -> None:
    levels = out.get("levels", {})
    print("\ntargets of issue #29 (2 CPU cores):")
    if 1 in levels:
        print(f"  p99 < 10 ms with one client: {levels[1]['p99_ms']} ms "
              f"({'met' if levels[1]['p99_ms'] < 10 else 'NOT met'})")
    if 32 in levels:
        print(f"  p99 < 50 ms at 32 clients: {levels[32]['p99_ms']} ms "
              f"({'met' if levels[32]['p99_ms'] < 50 else 'NOT met'})")
    errors = sum(r["errors"] for r in levels.values()) + out.get("memory", {}).get("errors", 0) + \
        out.get("reload", {}).get("errors", 0)
    print(f"  zero errors in every run: {errors} ({'met' if errors == 0 else 'NOT met'})")
    if "reload" in out:
        r = out["reload"]
        print(f"  reload: {r['errors']} failed requests; p99 during the swap {r['ratio']}x the steady p99 "
              f"({'met' if r['errors'] == 0 and r['ratio'] is not None and r['ratio'] < 3 else 'NOT met'})")
    if "memory" in out:
        m = out["memory"]
        print(f"  RSS growth over {m['seconds']} s: {m['rss_growth_pct']:+.2f} % "
              f"({'met' if m['rss_growth_pct'] < 5 else 'NOT met'})")
    print(f"  machine: {out['machine']}; load average before {out['load_before']}, after {out['load_after']}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifact", help="an artifact directory (xdplug export / xdplug update)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--requests", type=int, default=2000, help="most requests per concurrency level")
    parser.add_argument("--seconds", type=float, default=30.0, help="most seconds per concurrency level")
    parser.add_argument("--memory-seconds", type=float, default=60.0, help="length of the memory run (0: skip)")
    parser.add_argument("--memory-clients", type=int, default=8)
    parser.add_argument("--reload-seconds", type=float, default=30.0, help="length of the reload run (0: skip)")
    parser.add_argument("--reload-clients", type=int, default=32)
    parser.add_argument("--reload-to", help="artifact the reload loads (default: the newest version of ARTIFACT)")
    parser.add_argument("--workers", type=int, default=2, help="the server's scoring threads")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--ready-timeout", type=float, default=600.0)
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    args.artifact = str(Path(args.artifact).expanduser().resolve())
    out = asyncio.run(run(args))
    targets(out)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
