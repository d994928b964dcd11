"""Built-in evaluators, registered like any third-party plugin."""

from xdplug import hookimpl


@hookimpl
def register_evaluators(register):
    pass
