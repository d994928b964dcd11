"""Built-in encoders: ``bert`` (BERT-family text), ``llm`` (decoder-LLM text), ``wordllama``
(static token-embedding text) and ``id`` (learned item IDs)."""

from xdplug.api import hookimpl


@hookimpl
def register_encoders(register):
    from .bert import BertEncoder
    from .id import IdEncoder
    from .llm import LlmEncoder
    from .wordllama import WordLlamaEncoder

    register(BertEncoder)
    register(LlmEncoder)
    register(WordLlamaEncoder)
    register(IdEncoder)
