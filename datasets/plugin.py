"""The built-in dataset recipes, registered like any third-party plugin."""

from xdplug import hookimpl


@hookimpl
def register_datasets(register):
    pass
