"""Built-in model families: ``embedding`` (the transfer model), ``ease`` (closed-form item-item), ``factor``
(iALS factors across domains) and ``sequence`` (the next-item sequence tower)."""

from xdplug.api import hookimpl


@hookimpl
def register_families(register):
    from .embedding import EmbeddingFamily
    from .factor import FactorFamily
    from .item_item import ItemItemFamily
    from .sequence import SequenceFamily

    for cls in (EmbeddingFamily, ItemItemFamily, FactorFamily, SequenceFamily):
        register(cls)
