"""xdplug: does transferring knowledge from a source domain beat classic CF on the target domain?"""

from .hookspecs import hookimpl  # noqa: F401
from .version import __version__  # noqa: F401


def load(path):
    """Load an exported artifact directory and return a recommender (see :mod:`xdplug.artifact`)."""
    from .artifact import load_artifact

    return load_artifact(path)
