"""Built-in encoders, registered like any third-party plugin."""

from xdplug import hookimpl


@hookimpl
def register_encoders(register):
    pass
