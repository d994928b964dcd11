"""xdplug: does transferring knowledge from a source domain beat classic CF on the target domain?"""

__version__ = "0.1.0"

from .hookspecs import hookimpl  # noqa: E402,F401


def load(path):
    """Load an exported artifact directory and return a recommender (see :mod:`xdplug.artifact`)."""
    from .artifact import load_artifact

    return load_artifact(path)
