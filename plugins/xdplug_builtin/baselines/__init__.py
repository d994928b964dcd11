"""Built-in baselines, registered like any third-party plugin."""

from xdplug import hookimpl


@hookimpl
def register_baselines(register):
    pass
