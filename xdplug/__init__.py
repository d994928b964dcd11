"""xdplug: does transferring knowledge from a source domain beat classic CF on the target domain?"""

import os as _os

# torch's OpenMP threads spin-wait between parallel regions; on a busy machine (more runnable
# threads than cores) the spinning steals the cores the work needs: the quickstart's id-joint
# strategy trained in 71 s instead of 25 s under load 6 on 2 cores (bench/bench_busy_machine.py).
# A passive wait changes no number (same threads, same reductions). It takes effect only when
# xdplug is imported before torch; set OMP_WAIT_POLICY yourself to choose otherwise.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .hookspecs import hookimpl  # noqa: F401
from .recbole import shims as _shims
from .version import __version__  # noqa: F401

# RecBole 1.2.1 calls numpy/scipy names that numpy 2 and scipy 1.13 removed: supply them before
# it is first imported, whoever imports it (xdplug/recbole/shims.py; nothing changes on numpy 1)
_shims.install()


def load(path):
    """Load an exported artifact directory and return a recommender (see :mod:`xdplug.artifact`)."""
    from .artifact import load_artifact

    return load_artifact(path)


def run(config, overrides=(), **options):
    """Run a benchmark config (a path or a mapping) and return its verdict, summary and report paths.

    See :func:`xdplug.benchmark.run` for the options; ``xdplug run CONFIG`` is the same from the shell.
    """
    from .benchmark import run as run_benchmark

    return run_benchmark(config, overrides, **options)
