"""The ``id`` encoder: one learned vector per catalog item, the classic CF representation."""

from __future__ import annotations

from torch import nn

from xdplug.api import Encoder, Float, Int


class IdEmbedding(nn.Embedding):
    """An embedding table with the ``out_dim`` attribute every encoder module has."""

    @property
    def out_dim(self) -> int:
        return self.embedding_dim


class IdEncoder(Encoder):
    name = "id"
    role = "id"
    description = "Learned ID embeddings per item; aligned items share a row, so IDs transfer where items overlap"
    defaults = {"dim": Int(0, 0, 4096, help="0: the model dimension"), "init_std": Float(0.05, 0, 10)}

    def build(self, catalog, device):
        table = IdEmbedding(len(catalog), self.params["dim"] or 64)
        nn.init.normal_(table.weight, std=self.params["init_std"])
        return table.to(device)
