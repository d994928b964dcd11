"""Executors run grid cells: :class:`~.local.LocalExecutor` here, :class:`~.ray.RayExecutor` as Ray tasks.

Both have ``run(specs, on_start, on_done, progress=None)`` and ``close()``; the
driver alone writes the run store, through ``on_start``/``on_done``.
"""

from __future__ import annotations


def make_executor(config: dict, registry):
    """The config's executor; the local one runs with the driver's ``registry``, Ray workers load their own."""
    kind = config["executor"]["kind"]
    if kind == "local":
        from .local import LocalExecutor

        return LocalExecutor(config, registry)
    from .ray import RayExecutor

    return RayExecutor(config)
