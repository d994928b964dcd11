"""Executors beyond the local one: the grid as Ray tasks.

``executor: {kind: ray}`` (or ``xdplug run --executor ray``) runs every grid
cell as a ``ray.remote`` task calling :func:`xdplug.engine.task.run_task` with
declared resources: ``executor.cpus_per_task`` CPUs (1 by default) and
``executor.gpus_per_task`` GPUs (1 by default; 0.25 packs four runs on a GPU)
when the config's device is CUDA (``auto`` asks for a GPU when the cluster
has any). Without ``executor.address`` a local Ray instance is started with
``executor.workers`` CPUs (0: this machine's cores); ``address: auto`` or
``HOST:PORT`` joins a running cluster (``ray start --head`` ...).

The driver alone writes the run store: results come back through
``ray.wait`` and go through the same ``on_start``/``on_done`` callbacks as the
local executor, so resume, skip, ``--force`` and failure isolation are
unchanged. Failures:

* a run that raises is already a ``failed`` record (``run_task`` catches it);
* a worker process that dies (killed, out of memory, segfault) surfaces as a
  Ray error; the run is resubmitted up to ``executor.max_retries`` times and
  then recorded ``failed`` with the error; the grid goes on;
* Ctrl-C cancels the outstanding tasks and re-raises; runs that were in
  flight stay ``running`` in the store, and the next ``xdplug run`` runs them.

Only as many tasks as the cluster can run at once are in flight, so
``on_start`` means started and the progress bar's running count is true.
Worker output is not forwarded to the driver (``log_to_driver=False``) and
Ray's driver-side logger is quieted, so nothing garbles the progress bars;
a failed run's error is in its record.

Workers import xdplug and load plugins from their own environment (entry
points), so every plugin a config names must be installed on every node.
``XDPLUG_LOAD_PLUGINS``/``XDPLUG_BLOCK_PLUGINS``/``XDPLUG_STRICT_PLUGINS``/``XDPLUG_EVAL_MEMORY_MB`` are
forwarded to the tasks; ``XDPLUG_HOME`` too when Ray runs on this machine
(a cluster's nodes use their own, or a shared file system).
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections import deque

from ...config import canonical_json, output_dir
from ...errors import RunError

logger = logging.getLogger(__name__)

FORWARDED_ENV = ("XDPLUG_LOAD_PLUGINS", "XDPLUG_BLOCK_PLUGINS", "XDPLUG_STRICT_PLUGINS", "XDPLUG_EVAL_MEMORY_MB")
LOCAL_ENV = ("XDPLUG_HOME",)

# -- the worker side ----------------------------------------------------------------------

#: per worker process: the environment its plugins were loaded under, their registry and the prepared data
_WORKER = {"env": None, "registry": None, "data_key": None, "data": {}}


def _worker_task(spec, config: dict, env: dict, threads: int) -> dict:
    """Body of the remote task: one grid cell in a Ray worker process."""
    import torch

    from ...plugins import make_plugin_manager
    from ...recbole.compat import quiet_recbole_logging
    from ..task import run_task

    if env != _WORKER["env"]:
        for key in FORWARDED_ENV + LOCAL_ENV:
            if key in env:
                if env[key] is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = env[key]
        # the worker's own plugins, loaded under the driver's allow/block lists
        _WORKER.update(env=env, registry=make_plugin_manager().registry, data_key=None, data={})
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*GradScaler.*")
    quiet_recbole_logging()
    if threads > 0:
        torch.set_num_threads(threads)
    data_key = canonical_json(config["dataset"])
    if data_key != _WORKER["data_key"]:  # keep the prepared splits of one dataset section
        _WORKER.update(data_key=data_key, data={})
    return run_task(spec, config, _WORKER["data"], registry=_WORKER["registry"])


# -- the driver side ------------------------------------------------------------------------


def import_ray():
    """``import ray`` with its setuptools deprecation warning silenced; a clear error when it is missing."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import ray
    except ImportError as exc:
        hint = " (ray 2.6.3 imports pkg_resources: pip install 'setuptools<81')" if "pkg_resources" in str(exc) \
            else " (pip install 'xdplug[ray]', or 'ray' into this environment)"
        raise RunError(f"executor ray: cannot import ray: {exc}{hint}") from None
    return ray


def _quiet_ray_loggers(level=logging.ERROR) -> None:
    # Ray's driver logs worker deaths as warnings on stderr; the record carries them
    for name in ("ray", "ray._private.worker", "ray.worker"):
        logging.getLogger(name).setLevel(level)


def wants_gpu(device: str, ray) -> bool:
    if device.startswith("cuda"):
        return True
    if device == "auto":
        return ray.cluster_resources().get("GPU", 0) > 0
    return False


class RayExecutor:
    """Runs grid cells as Ray tasks; the same interface as :class:`xdplug.engine.executors.local.LocalExecutor`."""

    def __init__(self, config: dict):
        """``config``: the validated config. No registry: each worker loads its own plugins (the
        driver's allow/block lists forwarded), so every plugin a config names is installed on every node."""
        ex = config["executor"]
        self.config = config
        self.address = ex.get("address") or None
        self.workers = int(ex.get("workers") or 0)
        self.max_retries = int(ex.get("max_retries") or 0)
        self.cpus = float(ex.get("cpus_per_task") or 1)
        self.ray = ray = import_ray()
        self._owned = False
        if not ray.is_initialized():
            kwargs = {"log_to_driver": False, "include_dashboard": False, "logging_level": logging.WARNING}
            try:
                if self.address:
                    ray.init(address=self.address, **kwargs)
                else:
                    ray.init(num_cpus=self.workers or os.cpu_count() or 1, **kwargs)
            except Exception as exc:  # connection refused, bad address, ...
                where = f"the Ray cluster at {self.address!r}" if self.address else "a local Ray instance"
                raise RunError(f"executor ray: cannot start or join {where}: {type(exc).__name__}: {exc}") from None
            self._owned = True
        _quiet_ray_loggers()
        self.gpus = float(ex.get("gpus_per_task") or 1) if wants_gpu(config["device"], ray) else 0
        self.slots = self._slots()
        env = {key: os.environ.get(key) for key in FORWARDED_ENV}
        if not self.address:
            env.update({key: os.environ.get(key) for key in LOCAL_ENV})
        self.env = env
        self._task = ray.remote(_worker_task).options(num_cpus=self.cpus, num_gpus=self.gpus, max_retries=0,
                                                     retry_exceptions=False)

    def _slots(self) -> int:
        """How many tasks the cluster can run at once (capped by ``workers`` when joining a cluster)."""
        resources = self.ray.cluster_resources()
        slots = int(resources.get("CPU", 1) // self.cpus) if self.cpus else 1 << 30
        if self.gpus:
            slots = min(slots, int(resources.get("GPU", 0) / self.gpus + 1e-9))
            if slots < 1:
                raise RunError("executor ray: the config's device is CUDA but the Ray cluster has no GPU")
        if self.address and self.workers:
            slots = min(slots, self.workers)
        return max(1, slots)

    def _task_config(self) -> dict:
        """The config as workers see it: output paths absolute when they share this machine's disk."""
        if self.address:
            return self.config
        config = dict(self.config)
        config["output"] = dict(config["output"], dir=str(output_dir(self.config).resolve()))
        return config

    def run(self, specs: list, on_start, on_done, progress=None):
        ray = self.ray
        from ray.exceptions import RayError

        queue = deque(specs)
        pending: dict = {}  # ObjectRef -> (spec, attempt, submitted at)
        config_ref = ray.put(self._task_config())
        threads = max(1, int(self.cpus))
        failed = 0

        def submit(spec, attempt):
            ref = self._task.remote(spec, config_ref, self.env, threads)
            pending[ref] = (spec, attempt, time.perf_counter())

        def show():
            if progress:
                names = ", ".join(f"{s.method} s{s.seed}" for s, _, _ in pending.values())
                progress(f"running {len(pending)} [{names}] queued {len(queue)} failed {failed}")

        try:
            while queue or pending:
                while queue and len(pending) < self.slots:
                    spec = queue.popleft()
                    on_start(spec)
                    submit(spec, 0)
                show()
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
                for ref in ready:
                    spec, attempt, submitted = pending.pop(ref)
                    try:
                        record = ray.get(ref)
                    except RayError as exc:  # the worker died, the task could not run, ...
                        summary = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"
                        if attempt < self.max_retries:
                            logger.info("run %s (seed %s): %s; retrying (%d of %d)", spec.method, spec.seed,
                                        summary, attempt + 1, self.max_retries)
                            submit(spec, attempt + 1)
                            continue
                        record = {"status": "failed",
                                  "error": f"the Ray worker running this task was lost ({summary}) on attempt "
                                           f"{attempt + 1} of {self.max_retries + 1}\n\n{exc}",
                                  "time_s": time.perf_counter() - submitted}
                    if attempt:
                        note = f"its Ray worker died {attempt} time(s); resubmitted"
                        record = dict(record, notes="; ".join(n for n in (record.get("notes"), note) if n))
                    failed += record.get("status") == "failed"
                    on_done(spec, record)
        except BaseException:  # Ctrl-C (or a failing callback): stop what is still running
            for ref in pending:
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # pragma: no cover - best effort on the way out
                    pass
            raise

    def close(self):
        if self._owned and self.ray.is_initialized():
            self.ray.shutdown()
        self._owned = False
