"""Built-in adaptations: how source knowledge reaches the target domain."""

from xdplug.api import hookimpl


@hookimpl
def register_adaptations(register):
    from .alignment import CoralAlignment, DANN, MMDAlignment
    from .finetune import Finetune
    from .freeze import Freeze
    from .joint import Joint
    from .l2sp import L2SP
    from .controls import TargetOnly, ZeroShot
    from .consistency import Consistency
    from .bridges import EMCDR, PTUPCDR

    for cls in (TargetOnly, ZeroShot, Finetune, Freeze, L2SP, Joint, DANN, MMDAlignment,
                CoralAlignment, Consistency, EMCDR, PTUPCDR):
        register(cls)
