"""``xdplug serve ARTIFACT``: the HTTP server's command line (options checked before anything binds or loads).

::

    xdplug serve ARTIFACT [--host 127.0.0.1] [--port 8000] [--workers 2] [--admin-token-env VAR]
                 [--max-body BYTES] [--max-k 1000] [--max-batch 1000] [--timeout 10] [--device cpu]

The socket is bound here, before uvicorn starts, so a port in use is one error line and
``--port 0`` can print the port the system chose. The admin token is read from an
environment variable, never from the command line (where ``ps`` shows it to every user).
"""

from __future__ import annotations

import logging
import math
import os
import socket
import sys

from ..errors import XdplugError

LOOPBACK = ("127.0.0.1", "::1", "localhost")
MIN_TOKEN = 16


def _positive(name: str, value, kind=int) -> None:
    ok = (kind is int and not isinstance(value, bool) and value >= 1) or (
        kind is float and math.isfinite(value) and value > 0)
    if not ok:
        raise XdplugError(f"--{name} must be {'a positive integer' if kind is int else 'a positive number'}, "
                          f"got {value!r}")


def admin_token(var: str | None) -> str | None:
    """The admin token from environment variable ``var``; None (admin endpoint off) without ``var``."""
    if var is None:
        return None
    token = os.environ.get(var)
    if not token:
        raise XdplugError(f"--admin-token-env {var}: the environment variable {var} is not set or empty; "
                          f"set it to the admin token (at least {MIN_TOKEN} characters), or leave the option out "
                          "to keep the admin endpoint off")
    if len(token.strip()) < MIN_TOKEN:
        raise XdplugError(f"--admin-token-env {var}: the token is {len(token.strip())} characters long; use at "
                          f"least {MIN_TOKEN} (for example: export {var}=$(openssl rand -hex 24))")
    return token.strip()


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (uvicorn listens on it), or one error naming the address."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise XdplugError(f"--host {host}: cannot resolve the address ({exc.strerror})") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        # listening now: a client that connects while the app still imports waits in the backlog
        # (uvicorn accepts from it) instead of being refused between the printed URL and the server
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise XdplugError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --port "
                          "(0: any free port)") from None
    return sock


def cmd_serve(args) -> int:
    from pathlib import Path

    if not 0 <= args.port <= 65535:
        raise XdplugError(f"--port must be between 0 and 65535, got {args.port}")
    for name in ("workers", "max_body", "max_k", "max_batch", "torch_threads"):
        _positive(name.replace("_", "-"), getattr(args, name))
    _positive("timeout", args.timeout, float)
    token = admin_token(args.admin_token_env)
    from ..artifact import verify_artifact

    artifact = Path(args.artifact).expanduser()
    verify_artifact(artifact)  # a wrong path or a damaged artifact is an error now, before binding

    import torch
    import uvicorn

    from ..artifact import load_artifact
    from ..plugins import make_plugin_manager
    from ..recbole.compat import resolve_device
    from .app import Limits, create_app

    torch.set_num_threads(args.torch_threads)
    limits = Limits(max_body=args.max_body, max_k=args.max_k, max_batch=args.max_batch, timeout=args.timeout)
    device = resolve_device(args.device)
    # the command's plugins (xdplug.cli.main's), one registry for the server's life: every reload rebuilds through it
    registry = (getattr(args, "plugins", None) or make_plugin_manager()).registry
    app = create_app(artifact, loader=lambda path: load_artifact(path, device=device, registry=registry),
                     device=device, workers=args.workers, admin_token=token, limits=limits)
    sock = bind(args.host, args.port)
    host, port = sock.getsockname()[:2]
    # graceful shutdown: uvicorn stops accepting, then waits this long for requests in flight
    config = uvicorn.Config(app, lifespan="on", log_level="warning", access_log=False, server_header=False,
                            timeout_graceful_shutdown=int(math.ceil(args.timeout)) + 5)
    server = uvicorn.Server(config)
    app.state.holder.on_load_failure = lambda: setattr(server, "should_exit", True)
    shown = f"[{host}]" if ":" in host else host
    if args.host not in LOOPBACK:
        print(f"warning: listening on {args.host}: reachable from other machines; /recommend has no "
              "authentication (put a proxy with TLS and access control in front)", file=sys.stderr)
    print(f"serving {artifact} at http://{shown}:{port} (loading the model; GET /health answers 200 once it "
          f"serves; admin reload {'on' if token else 'off'}; SIGHUP reloads the newest version)", flush=True)
    # the server's own log lines (load, reloads, refusals) go to stderr whatever the CLI's log level
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s xdplug serve: %(message)s", "%Y-%m-%dT%H:%M:%S"))
    served_log = logging.getLogger("xdplug.serve")
    previous = served_log.level, served_log.propagate
    served_log.addHandler(handler)
    served_log.setLevel(logging.INFO)
    served_log.propagate = False
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises the SIGINT it caught, after its graceful shutdown
        pass
    finally:
        sock.close()
        served_log.removeHandler(handler)
        served_log.setLevel(previous[0])
        served_log.propagate = previous[1]
    if app.state.holder.load_error:
        raise XdplugError(app.state.holder.load_error)
    return 0


def add_command(sub) -> None:
    """Add ``xdplug serve`` to the ``xdplug`` parser."""
    p = sub.add_parser("serve", help="serve an exported artifact over HTTP (recommend, batch, health, model, "
                                     "metrics; hot reload on SIGHUP or an admin endpoint)")
    p.add_argument("artifact", help="an artifact directory written by `xdplug export` or `xdplug update`")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free port, printed)")
    p.add_argument("--workers", type=int, default=2, metavar="N",
                   help="threads that score requests (default 2; one process, one model in memory)")
    p.add_argument("--admin-token-env", metavar="VAR",
                   help="turn POST /admin/reload on, with the bearer token held by environment variable VAR")
    p.add_argument("--max-body", type=int, default=1 << 20, metavar="BYTES",
                   help="largest request body (default 1 MiB; larger: 413)")
    p.add_argument("--max-k", type=int, default=1000, help="largest k (default 1000)")
    p.add_argument("--max-batch", type=int, default=1000, help="most users in one /recommend/batch (default 1000)")
    p.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                   help="longest a request may take before a 504 (default 10)")
    p.add_argument("--torch-threads", type=int, default=1,
                   help="torch threads per scoring thread's work (default 1: requests run side by side instead)")
    p.add_argument("--device", default="cpu", help="cpu (default), auto, cuda or cuda:N")
    p.set_defaults(func=cmd_serve)
