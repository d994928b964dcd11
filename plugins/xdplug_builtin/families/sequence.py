"""The sequence family (``params.model.family: sequence``): next-item recommendation by a sequence tower.

A causal transformer over the fused item vectors of the embedding family's encoders and fusions
(``sequence_model.SequenceTower``), trained with a full softmax over the domain's items (sampled
above ``SOFTMAX_MAX_ITEMS``). It ranks for ``dataset.protocol.task: next-item`` only. The
adaptations' schedules run unchanged: each phase trains through the core's ``TrainingSession``,
handed this family's :class:`SequenceScorer` (the windows a phase batches, the source-validation
slice, the validation score), so ``finetune`` pretrains on the source's sequences and fine-tunes
on the target's, ``freeze`` then trains only the text adaptor, the IDs and the biases (UniSRec's
parameter-efficient step), ``l2sp`` pulls towards the pretrained weights, ``joint`` trains both.
"""

from __future__ import annotations

import numpy as np
import torch

from xdplug.api import (NEXT_ITEM, Choice, ConfigError, Float, Int, ModelFamily, ModelOptions, Sequences,
                        TrainingSession, UserItems, id_part_encoder, item_parts, merged_sequences,
                        source_sequences, trainer_config, validate_target, validate_users)

from .sequence_model import SOURCE_VALID_USERS, SequenceTower


def target_training_sequences(data, interleave: bool) -> Sequences:
    """The target users' training sequences, items as catalog rows (merged with their source events in
    time where the tower reads both domains)."""
    if interleave:
        return merged_sequences(data, "train")
    seqs = data.sequences("train")
    return Sequences(seqs.indptr, np.asarray(data.catalog.target_rows)[seqs.indices], seqs.times)


class SequenceScorer:
    """The tower's side of a :class:`TrainingSession` (windows to batch, source validation, validation
    score) and the fitted strategy's scorer (``score_split`` under the next-item protocol)."""

    def __init__(self, ctx, model: SequenceTower):
        self.ctx, self.model = ctx, model
        self.source_valid = None
        target_rows = np.asarray(ctx.data.catalog.target_rows)
        self._target_rows = target_rows

    @property
    def item_known(self) -> np.ndarray:
        """Target items the tower can score from what it learned: a trained ID, or any item through text."""
        return self.model.id_known.cpu().numpy()[self._target_rows] | bool(self.model.uses_text)

    # -- the session's side -----------------------------------------------------------------------
    def hold_out_source(self) -> None:
        """The last item of up to ``SOURCE_VALID_USERS`` source users (3+ items) validates source phases;
        the rest of every source sequence trains."""
        data = self.ctx.data
        src = source_sequences(data)
        lengths = src.lengths()
        rng = np.random.default_rng(self.ctx.seed + 101)
        eligible = np.flatnonzero(lengths >= 3)
        users = np.sort(rng.choice(eligible, size=min(SOURCE_VALID_USERS, len(eligible)), replace=False))
        held = np.zeros(len(src.indices), dtype=bool)
        held[src.indptr[users + 1] - 1] = True
        keep_lengths = lengths - np.isin(np.arange(len(src)), users)
        rows = np.asarray(data.catalog.source_rows)[src.indices[~held]]
        train = Sequences(np.concatenate([[0], np.cumsum(keep_lengths)]), rows, src.times[~held])
        self.model.set_sequences("source", train)
        positives = UserItems(np.arange(len(users) + 1), src.indices[held])
        masked = [src[u][:-1] for u in users]
        self.source_valid = users, positives, masked

    def train_users(self, domain: str) -> np.ndarray:
        """The rows a phase on ``domain`` batches: its training windows."""
        return np.arange(self.model.n_windows(domain))

    def validate(self, on: str) -> float:
        if on == "target":
            return validate_target(self.ctx, self.score)
        model = self.model
        users, positives, masked = self.source_valid

        def source_scores(batch):
            vectors = model.item_vectors()
            u = model.last_outputs(vectors, model.sequences["source"], batch.cpu().numpy())
            return model.scores_against(u, vectors, model.domain_rows["source"].to(vectors.device))

        with torch.no_grad():
            return validate_users(self.ctx, source_scores, users, positives, masked, self.ctx.data.n_source_items)

    # -- the scorer -------------------------------------------------------------------------------
    def score_split(self, users: torch.Tensor, split: str) -> torch.Tensor:
        return self.model.score_split(users, split)

    def score(self, users: torch.Tensor) -> torch.Tensor:
        """Scores from each user's latest known history (the test targets' input)."""
        return self.score_split(users, "test")

    @torch.no_grad()
    def score_history(self, items: list[int]) -> torch.Tensor:
        """A new user's scores from their target items, oldest first."""
        model = self.model
        vectors = model.item_vectors()
        rows = torch.as_tensor(self._target_rows[np.asarray(items, dtype=np.int64)], device=vectors.device)
        u = model.new_user_vector(vectors, rows)
        return model.scores_against(u, vectors, model.domain_rows["target"].to(vectors.device))


class SequenceFamily(ModelFamily):
    name = "sequence"
    description = ("Next-item sequence tower: a causal transformer over fused item vectors (text, ID, gate), "
                   "full softmax; inductive through text")
    tasks = (NEXT_ITEM,)
    export = "state"
    #: the options it shares with the embedding family are declared as there (one meaning per name)
    defaults = {
        **{key: ModelOptions._options[key] for key in (
            "dim", "id_encoder", "loss", "negatives", "adaptor", "id_dropout", "item_bias", "temperature", "amp",
            "batch_users", "epochs", "learning_rate", "weight_decay")},
        "n_layers": Int(2, 1, 64),
        "n_heads": Int(2, 1, 64),
        "inner_size": Int(256, 1, 65536),  # the transformer's feed-forward width
        "dropout": Float(0.2, 0, 1, high_open=True),
        "max_length": Int(50, 1, 10_000),  # the most recent items an input keeps
        # interleave: a target user's input holds their source events in time (domain embedding per event)
        "cross_domain": Choice("off", ["off", "interleave"]),
    }
    search_space = {
        "params.model.learning_rate": {"type": "loguniform", "low": 1.0e-4, "high": 1.0e-2},
        "params.model.dropout": {"type": "uniform", "low": 0.0, "high": 0.6},
        "params.model.n_layers": {"type": "int", "low": 1, "high": 3},
    }

    def check(self, strategy):
        options = strategy.options
        if options["loss"] == "bpr":
            raise ConfigError(f"{strategy.path}.params.model.loss", "the sequence tower trains with softmax or "
                              "sampled_softmax (auto: softmax up to 20,000 items), not bpr")
        if options["dim"] % options["n_heads"]:
            raise ConfigError(f"{strategy.path}.params.model.n_heads", f"params.model.dim ({options['dim']}) must "
                              f"be a multiple of n_heads ({options['n_heads']}): the attention splits it across heads")
        if "id" in strategy.fusion.uses and strategy.encoder.role != "id":
            id_part_encoder(options, strategy.registry, strategy.path)

    def build(self, strategy, data, device, seed, text_module=None, **_):
        text, ids, fusion = item_parts(strategy.encoder, strategy.fusion, strategy.options, strategy.registry,
                                       data, device, text_module, strategy.path)
        model = SequenceTower(data, text, ids, fusion, frozenset(strategy.fusion.uses), strategy.options, seed)
        return model.to(device)

    def fit(self, ctx, strategy):
        from recbole.utils import init_seed

        data, options, adaptation = ctx.data, strategy.options, strategy.adaptation
        interleave = options["cross_domain"] == "interleave"
        if interleave and not len(data.shared_users):
            raise ConfigError(f"{strategy.path}.params.model.cross_domain", "interleave reads a target user's "
                              "source events, but no user is in both domains here; use cross_domain: off")
        init_seed(ctx.seed, True)
        config = trainer_config(ctx)
        init_seed(ctx.seed, True)
        model = self.build(strategy, data, ctx.device, ctx.seed)
        model.set_sequences("target", target_training_sequences(data, interleave))
        scorer = SequenceScorer(ctx, model)
        session = TrainingSession(ctx, model, config, options, adaptation.uses_source, adaptation.uses_target,
                                  scorer=scorer)
        adaptation.fit(session)
        model.eval()
        return scorer

    def update_rows(self, ctx, model, users):
        """``xdplug update``: the tower trains on the grown training sequences (``ctx.data``, new events
        appended in time), batching the windows of ``users``."""
        if model.interleave:
            raise ConfigError("strategy.params.model.cross_domain", "update reads the target's events only; a "
                              "tower with cross_domain: interleave is retrained on the grown data with `xdplug run`")
        model.set_sequences("target", target_training_sequences(ctx.data, False))
        starts, _ = model._windows["target"]
        owners = model.sequences["target"].owners()[starts] if len(starts) else np.zeros(0, dtype=np.int64)
        return SequenceScorer(ctx, model), np.flatnonzero(np.isin(owners, users))
