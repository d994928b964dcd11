"""Built-in fusions, registered like any third-party plugin."""

from xdplug import hookimpl


@hookimpl
def register_fusions(register):
    pass
