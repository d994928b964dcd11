"""The HTTP app: recommendation, health, model, metrics and admin routes over a :class:`ModelHolder`.

Starlette, not FastAPI: six routes whose input is checked by hand with the same messages as
``xdplug recommend`` need no pydantic models or generated schema, and Starlette (with anyio
and uvicorn) is small, typed and well kept. Scoring is CPU-bound torch/numpy work, so it runs
on a pool of ``workers`` threads (torch releases the GIL in its kernels) and the event loop
stays free to accept requests, answer ``/health`` and ``/metrics`` and time requests out.
Every error is JSON ``{"error": message, "status": code}``.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from ..errors import ArtifactError, XdplugError
from .holder import ModelHolder, ReloadBusy
from .metrics import Metrics

log = logging.getLogger("xdplug.serve")

ROUTES = ("/recommend", "/recommend/batch", "/health", "/model", "/metrics", "/admin/reload")
SINGLE_KEYS = ("user", "history", "k", "exclude_seen")
BATCH_KEYS = ("users", "k", "exclude_seen")


@dataclass(frozen=True)
class Limits:
    """What one request may ask for (each has a ``xdplug serve`` option)."""

    max_body: int = 1 << 20  # bytes of a request body (--max-body)
    max_k: int = 1000  # items per answer (--max-k)
    max_batch: int = 1000  # users per /recommend/batch call (--max-batch)
    timeout: float = 10.0  # seconds a request may take (--timeout)


class HTTPError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def error(status: int, message: str, **extra) -> JSONResponse:
    return JSONResponse({"error": message, "status": status, **extra}, status_code=status)


class MetricsMiddleware:
    """Counts every HTTP request by route template and status code and times it (pure ASGI)."""

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), [500]
        route = scope["path"] if scope["path"] in ROUTES else "other"

        async def send_status(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        self.metrics.enter()
        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.leave()
            self.metrics.observe(scope["method"], route, status[0], time.perf_counter() - start)


async def read_json(request: Request, limit: int, keys: tuple[str, ...]) -> dict:
    """The request's JSON object, refused when over ``limit`` bytes (413) or not the expected shape (400)."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise HTTPError(413, f"request body of {int(length)} bytes is over this server's limit of {limit} bytes "
                             "(xdplug serve --max-body)")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPError(413, f"request body over this server's limit of {limit} bytes (xdplug serve --max-body)")
    try:
        payload = json.loads(bytes(body) or b"{}", parse_constant=_no_constant)
    except ValueError as exc:
        raise HTTPError(400, f"the request body is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise HTTPError(400, f"the request body must be a JSON object with keys {', '.join(keys)}; "
                             f"got a {type(payload).__name__}")
    unknown = sorted(set(payload) - set(keys))
    if unknown:
        raise HTTPError(400, f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} in the "
                             f"request; expected {', '.join(keys)}")
    return payload


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def check_k(payload: dict, limits: Limits) -> int:
    k = payload.get("k", 10)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise HTTPError(400, f"k must be a positive integer, got {k!r}")
    if k > limits.max_k:
        raise HTTPError(400, f"k must be at most {limits.max_k} on this server (xdplug serve --max-k), got {k}")
    return k


def check_exclude_seen(payload: dict) -> bool:
    value = payload.get("exclude_seen", True)
    if not isinstance(value, bool):
        raise HTTPError(400, f"exclude_seen must be true or false, got {value!r}")
    return value


def check_id(value, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise HTTPError(400, f"{what} must be a string or an integer ID, got {json.dumps(value)[:80]}")
    return str(value)


def create_app(artifact, *, loader=None, device: str = "cpu", workers: int = 2, admin_token: str | None = None,
               limits: Limits = Limits(), handle_sighup: bool = True) -> Starlette:
    """The ASGI app serving ``artifact``; ``app.state.holder`` holds the model, ``app.state.metrics`` the counters.

    The model loads in a thread when the app starts (``/health`` answers 503 until then);
    ``admin_token`` turns ``POST /admin/reload`` on; SIGHUP reloads when the app runs in
    the main thread (``xdplug serve``).
    """
    metrics = Metrics()
    holder = ModelHolder(artifact, loader=loader, device=device, metrics=metrics)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="xdplug-score")

    def serving():
        served = holder.current
        if served is None:
            if holder.load_error:
                raise HTTPError(503, f"no model: loading failed: {holder.load_error}")
            raise HTTPError(503, f"the model is loading ({holder.path}); try again shortly")
        return served

    async def score(fn):
        """Run ``fn`` on the scoring pool within the request timeout."""
        future = pool.submit(fn)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), limits.timeout)
        except asyncio.TimeoutError:
            future.cancel()
            raise HTTPError(504, f"the request took longer than this server's limit of {limits.timeout:g} s "
                                 "(xdplug serve --timeout)") from None

    def answer(served, items) -> dict:
        return {"items": items, "version": served.version, "method": served.meta.get("method")}

    async def recommend(request: Request):
        payload = await read_json(request, limits.max_body, SINGLE_KEYS)
        k, exclude_seen = check_k(payload, limits), check_exclude_seen(payload)
        user, history = payload.get("user"), payload.get("history")
        if (user is None) == (history is None):
            raise HTTPError(400, 'give exactly one of "user" (a known target user) and "history" '
                                 "(a new user's item IDs)")
        if user is not None:
            user = check_id(user, "user")
        elif not isinstance(history, list):
            raise HTTPError(400, "history must be a list of item IDs, not one string" if isinstance(history, str)
                            else f"history must be a list of item IDs, got {json.dumps(history)[:80]}")
        else:
            history = [check_id(item, "each history item") for item in history]
        served = serving()

        def run():
            rec = served.rec
            if user is not None:
                try:
                    rec.check_user(user)  # a target user, or one known only in the source that the model reads
                except ArtifactError as exc:
                    raise HTTPError(404, str(exc)) from None
                return rec.recommend(user=user, k=k, exclude_seen=exclude_seen)
            return rec.recommend(history=history, k=k, exclude_seen=exclude_seen)

        return JSONResponse(answer(served, await score(run)))

    async def recommend_batch(request: Request):
        payload = await read_json(request, limits.max_body, BATCH_KEYS)
        k, exclude_seen = check_k(payload, limits), check_exclude_seen(payload)
        users = payload.get("users")
        if not isinstance(users, list) or not users:
            raise HTTPError(400, f'"users" must be a non-empty list of known users\' IDs (target users, or '
                                 'users known only in the source that the model reads), got '
                                 f"{json.dumps(users)[:80]}")
        if len(users) > limits.max_batch:
            raise HTTPError(413, f"{len(users)} users in one batch is over this server's limit of "
                                 f"{limits.max_batch} (xdplug serve --max-batch)")
        users = [check_id(u, "each user") for u in users]
        served = serving()

        def run():
            rec = served.rec
            canonical = []
            for u in users:
                try:  # a target user, or one known only in the source that the model reads (as /recommend)
                    canonical.append(rec.user_key(u))
                except ArtifactError as exc:
                    raise HTTPError(404, str(exc)) from None
            out = rec.recommend_users(users=users, k=k, exclude_seen=exclude_seen)
            return [{"user": u, "items": out[c]} for u, c in zip(users, canonical)]

        results = await score(run)
        return JSONResponse({"results": results, "version": served.version, "method": served.meta.get("method")})

    async def health(request: Request):
        served = holder.current
        if served is None:
            if holder.load_error:
                return error(503, f"no model: loading failed: {holder.load_error}", state="failed")
            return error(503, f"the model is loading ({holder.path}); try again shortly", state="loading")
        return JSONResponse({"state": "ready", "version": served.version, "method": served.meta.get("method")})

    async def model(request: Request):
        served = serving()
        return JSONResponse({**served.describe(), "last_reload": holder.last_reload,
                             "admin_reload": admin_token is not None})

    async def prometheus(request: Request):
        served = holder.current
        gauges = {"loaded": served is not None, "version": served.version if served else 0}
        return PlainTextResponse(metrics.exposition(gauges), media_type="text/plain; version=0.0.4")

    async def admin_reload(request: Request):
        if admin_token is None:
            raise HTTPError(404, "the admin endpoint is off: start xdplug serve with --admin-token-env VAR "
                                 "(an environment variable holding the token)")
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer "):
            raise HTTPError(401, "the admin endpoint needs the header 'Authorization: Bearer TOKEN' (the token "
                                 "given at start)")
        if not hmac.compare_digest(header[7:].strip().encode(), admin_token.encode()):
            raise HTTPError(403, "wrong admin token")
        payload = await read_json(request, limits.max_body, ("path",))
        path = payload.get("path")
        if path is not None and (not isinstance(path, str) or not path.strip()):
            raise HTTPError(400, f"path must be an artifact directory's path, got {json.dumps(path)[:80]}")
        if holder.loading:
            raise HTTPError(503, f"the model is loading ({holder.path}); reload when it serves")
        try:
            record = await asyncio.wrap_future(holder.start_reload(path))
        except ReloadBusy as exc:
            raise HTTPError(409, str(exc)) from None
        if record["status"] == "refused":
            return error(422, f"refused: {record['error']}; still serving {record['serving']}", reload=record)
        return JSONResponse(record)

    async def on_http_error(request: Request, exc: HTTPError):
        return error(exc.status, exc.message)

    async def on_xdplug_error(request: Request, exc: XdplugError):
        return error(400, str(exc))

    async def on_other_error(request: Request, exc: Exception):
        log.exception("internal error on %s", request.url.path)
        return error(500, f"internal error ({type(exc).__name__}); see the server's log")

    @asynccontextmanager
    async def lifespan(app):
        threading.Thread(target=holder.load_initial, name="xdplug-load", daemon=True).start()
        loop = asyncio.get_running_loop()
        hooked = False
        if handle_sighup and hasattr(signal, "SIGHUP") and threading.current_thread() is threading.main_thread():
            loop.add_signal_handler(signal.SIGHUP, _reload_on_signal, holder)
            hooked = True
        try:
            yield
        finally:
            if hooked:
                loop.remove_signal_handler(signal.SIGHUP)
            pool.shutdown(wait=True)

    app = Starlette(
        routes=[Route("/recommend", recommend, methods=["POST"]),
                Route("/recommend/batch", recommend_batch, methods=["POST"]),
                Route("/health", health, methods=["GET"]),
                Route("/model", model, methods=["GET"]),
                Route("/metrics", prometheus, methods=["GET"]),
                Route("/admin/reload", admin_reload, methods=["POST"])],
        exception_handlers={HTTPError: on_http_error, XdplugError: on_xdplug_error, Exception: on_other_error,
                            404: _not_found, 405: _not_allowed},
        lifespan=lifespan)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.state.holder, app.state.metrics, app.state.limits = holder, metrics, limits
    return app


async def _not_found(request: Request, exc):
    return error(404, f"no route {request.url.path}; routes: {', '.join(ROUTES)}")


async def _not_allowed(request: Request, exc):
    return error(405, f"{request.method} is not allowed on {request.url.path}")


def _reload_on_signal(holder: ModelHolder) -> None:
    """SIGHUP: reload the newest version in the background (the outcome goes to the log and /model)."""
    if holder.loading:
        log.warning("SIGHUP ignored: the first model is still loading")
        return

    def done(future):
        if isinstance(future.exception(), ReloadBusy):
            log.warning("SIGHUP ignored: %s", future.exception())

    holder.start_reload().add_done_callback(done)
