"""The default executor: grid cells one after the other in this process."""

from __future__ import annotations

from typing import TYPE_CHECKING

import xdplug.engine.task as task

if TYPE_CHECKING:  # pragma: no cover - for type checkers only
    from ..plan import RunSpec


class LocalExecutor:
    """Runs tasks one after the other in this process (the default)."""

    def __init__(self, config: dict, registry):
        self.config = config
        self.registry = registry  # the driver's: the components the config was validated against
        self.data_cache: dict = {}

    def run(self, specs: list[RunSpec], on_start, on_done, progress=None):
        for spec in specs:
            on_start(spec)
            on_done(spec, task.run_task(spec, self.config, self.data_cache,
                                   progress=(lambda m, s=spec: progress(f"{s.method}: {m}")) if progress else None,
                                   registry=self.registry))

    def close(self):
        pass
