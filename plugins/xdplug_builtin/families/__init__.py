"""Built-in model families: ``embedding`` (the transfer model), ``ease`` (closed-form item-item) and ``factor``
(iALS factors across domains)."""

from xdplug.api import hookimpl


@hookimpl
def register_families(register):
    from .embedding import EmbeddingFamily
    from .factor import FactorFamily
    from .item_item import ItemItemFamily

    for cls in (EmbeddingFamily, ItemItemFamily, FactorFamily):
        register(cls)
