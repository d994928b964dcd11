"""Built-in baselines: RecBole's general recommenders by name, and the transfer controls."""

from xdplug import hookimpl


@hookimpl
def register_baselines(register):
    from .controls import SourcePop, TextKNN
    from .recbole_models import recbole_baselines

    for cls in recbole_baselines():
        register(cls)
    register(TextKNN)
    register(SourcePop)
