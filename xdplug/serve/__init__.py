"""Serving an artifact over HTTP: ``xdplug serve ARTIFACT`` (docs/serving.md).

:mod:`.app` holds the Starlette routes, :mod:`.holder` the served model and its hot swap,
:mod:`.metrics` the Prometheus counters, :mod:`.command` the command line. Nothing here is
imported by ``xdplug`` itself until the command runs, so the CLI starts without Starlette.
"""

from __future__ import annotations


def create_app(*args, **kwargs):
    """The ASGI app serving an artifact: see :func:`xdplug.serve.app.create_app`."""
    from .app import create_app as build

    return build(*args, **kwargs)
