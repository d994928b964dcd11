"""xdplug: does transferring knowledge from a source domain beat classic CF on the target domain?"""

from .hookspecs import hookimpl  # noqa: F401
from .version import __version__  # noqa: F401


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
