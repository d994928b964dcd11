"""Built-in encoders: ``bert`` (BERT-family text) and ``id`` (learned item IDs)."""

from xdplug.api import hookimpl


@hookimpl
def register_encoders(register):
    from .bert import BertEncoder
    from .id import IdEncoder

    register(BertEncoder)
    register(IdEncoder)
