"""Built-in baselines: RecBole's general recommenders by name, the transfer controls, and the
non-RecBole CF controls (RP3beta, iALS, GF-CF, SANSA, NeighborEASE), AlphaRec and its
LightGCN-InfoNCE control; under the next-item task RecBole's SASRec and GRU4Rec and the
transition control seq-ease."""

from xdplug.api import hookimpl


@hookimpl
def register_baselines(register):
    from .alpharec import AlphaRec, LightGCNInfoNCE
    from .controls import SourcePop, TextKNN
    from .gfcf import GFCF
    from .ials import IALS
    from .neighbor_ease import NeighborEASE
    from .recbole_models import recbole_baselines
    from .recbole_sequential import recbole_sequential_baselines
    from .rp3beta import RP3beta
    from .sansa import SANSA
    from .seq_ease import SeqEASE
    from .textcf import TextCF, TextGCN

    for cls in recbole_baselines():
        register(cls)
    for cls in recbole_sequential_baselines():  # the next-item task
        register(cls)
    register(SeqEASE)
    register(TextKNN)
    register(SourcePop)
    register(TextCF)
    register(TextGCN)
    register(AlphaRec)
    register(LightGCNInfoNCE)
    for cls in (RP3beta, IALS, GFCF, SANSA, NeighborEASE):
        register(cls)
