"""The sequence tower: a causal transformer over fused item vectors, next item by softmax over a domain.

The items are the embedding family's (``FusedItems``: text through the encoder and an adaptor, the
ID part, the fusion), so a tower pretrained on the source's sequences carries to the target
through shared item rows or through text, and an item no training sequence held is scored through
its text vector (``id_known`` is False for it: the fusion ignores its untrained ID).

Training rows are windows of the time-ordered training sequences: a sequence longer than
``max_length + 1`` is cut from its end into windows that overlap by one item, so every position
after the first is a next-item target exactly once per epoch (what RecBole's prefix augmentation
gives SASRec, without one example per prefix). Position ``t``'s output reads the items at ``0..t``
only (a causal mask) and is scored against every item of the domain (full softmax) or, above
``SOFTMAX_MAX_ITEMS`` items or with ``loss: sampled_softmax``, against ``negatives`` shared uniform
negatives (accidental hits masked).

``cross_domain: interleave`` reads each target user's two domains merged in time (source events
strictly before the target predicted, ``xdplug.api.merged_sequences``) with a domain embedding per
event; the target loss counts the positions whose next event is a target one.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from xdplug.api import SOFTMAX_MAX_ITEMS, FusedItems, Sequences, amp_dtype, autocast, text_adaptor

#: source users whose last item validates a source phase (the rest of their sequence trains)
SOURCE_VALID_USERS = 1000


def windows(seqs: Sequences, max_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (flat indices into ``seqs.indices``) of the training windows of every sequence of
    at least two items: cut from the end, ``max_length + 1`` items each, consecutive windows sharing
    one item."""
    starts, ends = [], []
    span = max_length + 1
    lengths = seqs.lengths()
    for row in np.flatnonzero(lengths >= 2):
        lo, end = seqs.indptr[row], seqs.indptr[row + 1]
        while end - lo >= 2:
            start = max(lo, end - span)
            starts.append(start)
            ends.append(end)
            end = start + 1
    return np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64)


def padded(values: np.ndarray, starts: np.ndarray, ends: np.ndarray, width: int, fill: int = -1) -> np.ndarray:
    """``values[start:end]`` of each window, left-aligned in a ``[len(starts), width]`` array padded with ``fill``."""
    out = np.full((len(starts), width), fill, dtype=np.int64)
    offsets = np.arange(width)[None, :]
    inside = offsets < (ends - starts)[:, None]
    index = np.minimum(starts[:, None] + offsets, max(len(values) - 1, 0))
    if len(values):
        out[inside] = np.asarray(values, dtype=np.int64)[index[inside]]
    return out


class SequenceTower(FusedItems, nn.Module):
    """Fused item vectors -> causal transformer -> the next item's scores."""

    #: a history is read in its order (an artifact keeps the order a request gives)
    reads_order = True

    def __init__(self, data, text_module, id_module, fusion_module, fusion_uses, options: dict, seed: int):
        super().__init__()
        d = options["dim"]
        self.options, self.data = options, data
        self.n_catalog = len(data.catalog)
        self.uses_text, self.uses_id = "text" in fusion_uses, "id" in fusion_uses
        self.text_encoder = text_module if self.uses_text else None
        if self.uses_text:
            self.adaptor = text_adaptor(text_module.out_dim, d, options["adaptor"])
        self.item_id = id_module if self.uses_id else None
        self.fusion = fusion_module
        self.item_bias = nn.Parameter(torch.zeros(self.n_catalog)) if options["item_bias"] else None
        self.position = nn.Embedding(options["max_length"], d)
        self.interleave = options["cross_domain"] == "interleave"
        self.domain_embedding = nn.Embedding(2, d) if self.interleave else None
        for table in (self.position, self.domain_embedding):  # on the item vectors' scale, not N(0, 1)
            if table is not None:
                nn.init.normal_(table.weight, std=0.02)
        self.input_norm = nn.LayerNorm(d)  # SASRec's: items + positions normalised before the blocks
        layer = nn.TransformerEncoderLayer(d, options["n_heads"], dim_feedforward=options["inner_size"],
                                           dropout=options["dropout"], activation="gelu", batch_first=True,
                                           norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, options["n_layers"], enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.dropout = nn.Dropout(options["dropout"])
        self.register_buffer("id_known", torch.zeros(self.n_catalog, dtype=torch.bool))
        self.domain_rows = {"target": torch.as_tensor(np.asarray(data.catalog.target_rows)),
                            "source": torch.as_tensor(np.asarray(data.catalog.source_rows))}
        #: catalog row -> index among the domain's items (-1: not an item of the domain)
        self.local_of = {}
        for domain, rows in self.domain_rows.items():
            local = np.full(self.n_catalog, -1, dtype=np.int64)
            local[rows.numpy()] = np.arange(len(rows))
            self.local_of[domain] = torch.as_tensor(local)
        #: each domain's training sequences (items as catalog rows; ``domains``: 0 target, 1 source event)
        self.sequences: dict[str, Sequences] = {}
        self._windows: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._inputs: dict[str, Sequences] = {}
        self.negative_rng = np.random.default_rng([seed, 1])
        self.domain_weight = {"source": 1.0, "target": 1.0}
        self.extra_losses: list = []
        self.last_batch: dict = {}

    # -- the data a phase trains on ---------------------------------------------------------------
    def set_sequences(self, domain: str, seqs: Sequences) -> None:
        self.sequences[domain] = seqs
        self._windows[domain] = windows(seqs, self.options["max_length"])

    def n_windows(self, domain: str) -> int:
        return len(self._windows[domain][0])

    def mark_trained(self, domain: str) -> None:
        """Items that a training sequence of ``domain`` holds now have trained IDs."""
        items = np.unique(self.sequences[domain].indices)
        self.id_known[torch.as_tensor(items, device=self.id_known.device)] = True

    # -- the transformer ---------------------------------------------------------------------------
    def hidden(self, vectors: torch.Tensor, rows: torch.Tensor, domains: torch.Tensor | None = None) -> torch.Tensor:
        """Outputs ``[B, T, d]`` of left-aligned sequences ``rows`` (indices into ``vectors``, -1 pads);
        position ``t`` reads positions ``0..t`` only."""
        present = rows >= 0
        x = vectors[rows.clamp_min(0)] * present.unsqueeze(-1).to(vectors.dtype)
        length = rows.shape[1]
        x = x + self.position(torch.arange(length, device=rows.device))[None]
        if self.domain_embedding is not None and domains is not None:
            x = x + self.domain_embedding(domains.long().clamp_min(0))
        mask = nn.Transformer.generate_square_subsequent_mask(length, device=rows.device, dtype=x.dtype)
        return self.norm(self.transformer(self.dropout(self.input_norm(x)), mask=mask, is_causal=True))

    def scores_against(self, u: torch.Tensor, vectors: torch.Tensor, item_rows: torch.Tensor) -> torch.Tensor:
        """Scores of outputs ``u`` against catalog ``item_rows``."""
        s = u @ vectors[item_rows].T / self.options["temperature"]
        return s + self.item_bias[item_rows] if self.item_bias is not None else s

    def last_outputs(self, vectors: torch.Tensor, seqs: Sequences, users: np.ndarray) -> torch.Tensor:
        """The output at the last item of each of ``users``' sequences (their most recent ``max_length``)."""
        device = vectors.device
        rows, length = seqs.last(np.asarray(users, dtype=np.int64), self.options["max_length"])
        domains = None
        if seqs.domains is not None:
            index = seqs.indptr[np.asarray(users)][:, None] + np.maximum(
                seqs.lengths()[np.asarray(users)] - length, 0)[:, None] + np.arange(rows.shape[1])[None, :]
            domains = np.where(rows >= 0, seqs.domains[np.minimum(index, max(len(seqs.domains) - 1, 0))], 0)
            domains = torch.as_tensor(domains, device=device)
        h = self.hidden(vectors, torch.as_tensor(rows, device=device), domains)
        at = torch.as_tensor(np.maximum(length - 1, 0), device=device)
        return h[torch.arange(len(at), device=device), at]

    # -- training ---------------------------------------------------------------------------------
    def domain_loss(self, domain: str, batch: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
        """Next-item cross-entropy of a batch of ``domain``'s training windows."""
        device = vectors.device
        seqs = self.sequences[domain]
        starts, ends = self._windows[domain]
        ids = batch.cpu().numpy()
        width = self.options["max_length"] + 1
        rows = padded(seqs.indices, starts[ids], ends[ids], width)
        doms = padded(seqs.domains, starts[ids], ends[ids], width) if seqs.domains is not None else None
        inp = torch.as_tensor(rows[:, :-1], device=device)
        h = self.hidden(vectors, inp, None if doms is None else torch.as_tensor(doms[:, :-1], device=device))
        nxt = torch.as_tensor(rows[:, 1:], device=device)
        take = nxt >= 0
        if doms is not None:  # only events of this domain are its targets (merged sequences)
            take &= torch.as_tensor(doms[:, 1:], device=device) == (0 if domain == "target" else 1)
        local = self.local_of[domain].to(device)[nxt.clamp_min(0)]
        take &= local >= 0
        out, target = h[take], local[take]
        self.last_batch[domain] = {"outputs": out, "ids": batch}
        if not len(target):
            return h.sum() * 0.0
        domain_rows = self.domain_rows[domain].to(device)
        loss = self.options["loss"]
        if loss == "softmax" or (loss == "auto" and len(domain_rows) <= SOFTMAX_MAX_ITEMS):  # (bpr: refused)
            return F.cross_entropy(self.scores_against(out, vectors, domain_rows), target)
        k = self.options["negatives"]
        negatives = torch.as_tensor(self.negative_rng.integers(0, len(domain_rows), k), device=device)
        pos = ((out * vectors[domain_rows[target]]).sum(-1) / self.options["temperature"]
               + (self.item_bias[domain_rows[target]] if self.item_bias is not None else 0.0))
        neg = self.scores_against(out, vectors, domain_rows[negatives])
        neg = neg.masked_fill(negatives[None, :] == target[:, None], float("-inf"))  # accidental hits
        return F.cross_entropy(torch.cat([pos[:, None], neg], dim=1), torch.zeros_like(target))

    def calculate_loss(self, interaction):
        """One step (RecBole's trainer calls it): each domain's windows in the batch, weighted."""
        device = self.id_known.device
        domains = [d for d in ("source", "target") if d in interaction.interaction]
        with autocast(amp_dtype(self.options["amp"], device), device):
            vectors = self.item_vectors(train=True).float()
            self.last_batch = {"vectors": vectors, "item_rows": torch.arange(self.n_catalog, device=device)}
            total = 0.0
            for domain in domains:
                total = total + self.domain_weight[domain] * self.domain_loss(domain, interaction[domain], vectors)
            for extra in self.extra_losses:
                total = total + extra(self, self.last_batch)
        return total

    # -- scoring ----------------------------------------------------------------------------------
    def inputs(self, split: str) -> Sequences:
        """The target users' input sequences of ``split`` (items as catalog rows), built once."""
        if split not in self._inputs:
            if self.interleave:
                from xdplug.api import merged_sequences

                self._inputs[split] = merged_sequences(self.data, split)
            else:
                seqs = self.data.sequences(split)
                self._inputs[split] = Sequences(seqs.indptr, np.asarray(self.data.catalog.target_rows)[seqs.indices])
        return self._inputs[split]

    @torch.no_grad()
    def score_split(self, users: torch.Tensor, split: str, vectors: torch.Tensor | None = None) -> torch.Tensor:
        """Scores of target ``users`` over the target's items from their input of ``split``."""
        vectors = self.item_vectors() if vectors is None else vectors
        u = self.last_outputs(vectors, self.inputs(split), users.cpu().numpy())
        return self.scores_against(u, vectors, self.domain_rows["target"].to(vectors.device))

    @torch.no_grad()
    def score_users(self, domain: str, users: torch.Tensor, vectors: torch.Tensor | None = None) -> torch.Tensor:
        """Scores of known target users from their latest input (an artifact's known users)."""
        if domain != "target":
            raise ValueError("the sequence tower scores target users")
        return self.score_split(users, "test", vectors)

    @torch.no_grad()
    def new_user_vector(self, vectors: torch.Tensor, item_rows: torch.Tensor) -> torch.Tensor:
        """The output after a new user's history (catalog rows, oldest first); a source-only item is a
        source event where the tower reads both domains."""
        rows = item_rows.cpu().numpy().astype(np.int64)
        domains = None
        if self.interleave:
            domains = np.where(self.local_of["target"].numpy()[rows] >= 0, 0, 1).astype(np.int8)
        seqs = Sequences(np.array([0, len(rows)]), rows, domains=domains)
        return self.last_outputs(vectors, seqs, np.array([0]))
