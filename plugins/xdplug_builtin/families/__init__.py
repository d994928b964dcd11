"""Built-in model families: ``embedding`` (the transfer model) and ``ease`` (closed-form item-item)."""

from xdplug.api import hookimpl


@hookimpl
def register_families(register):
    from .embedding import EmbeddingFamily
    from .item_item import ItemItemFamily

    for cls in (EmbeddingFamily, ItemItemFamily):
        register(cls)
