"""Built-in fusions: ``text``, ``id``, ``weighted``, ``concat`` and ``gate``."""

from xdplug.api import hookimpl


@hookimpl
def register_fusions(register):
    from .fusions import ConcatFusion, GateFusion, IdOnlyFusion, TextOnlyFusion, WeightedFusion

    for cls in (TextOnlyFusion, IdOnlyFusion, WeightedFusion, ConcatFusion, GateFusion):
        register(cls)
