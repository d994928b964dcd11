"""Built-in adaptations, registered like any third-party plugin."""

from xdplug import hookimpl


@hookimpl
def register_adaptations(register):
    pass
