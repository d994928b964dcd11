"""RecBole's sequential recommenders (SASRec, GRU4Rec, BERT4Rec) as next-item baselines.

They run under ``dataset.protocol.task: next-item`` only (a shuffled general split has no order
to read). Training goes through the same path as the general RecBole baselines: RecBole's
``SequentialDataset`` built from the protocol's training sequences (``xdplug.api.sequence_data``:
``item_id_list`` / ``item_length`` per prefix), RecBole's trainer with xdplug's validation and
the best validation state kept in memory (``fit_recbole``). Ranking reads the input sequence of
the split ranked (``score_split``): a validation target follows the training sequence, a test
target follows it and the validation target. BERT4Rec trains on RecBole's own masking transform
(``transform: mask_itemseq``, applied by its train loader) and ranks with a mask appended to the input.

``pooled: true`` trains on each user's two domains merged in time (source events strictly
before the held-out target; source-only users' sequences where items are shared) and ranks the
target's items only: the naive sequential transfer control.
"""

from __future__ import annotations

import numpy as np
import torch

from xdplug.api import NEXT_ITEM, Choice, ConfigError, Float, Int, Sequences, input_batch, merged_sequences, sequence_data

from .recbole_models import TRAINING_OPTIONS, RecboleBaseline, _declare, _yaml_defaults

MODELS = ("SASRec", "GRU4Rec", "BERT4Rec")

_LR = {"type": "loguniform", "low": 1.0e-4, "high": 1.0e-2}
#: default search spaces (small: a trial trains a transformer on 2 CPU cores)
SEQUENTIAL_SEARCH_SPACES: dict[str, dict] = {
    "SASRec": {"params.learning_rate": _LR,
               "params.n_layers": {"type": "int", "low": 1, "high": 3},
               "params.hidden_dropout_prob": {"type": "uniform", "low": 0.1, "high": 0.6},
               "params.attn_dropout_prob": {"type": "uniform", "low": 0.1, "high": 0.6}},
    "GRU4Rec": {"params.learning_rate": _LR,
                "params.hidden_size": {"type": "categorical", "choices": [64, 128, 256]},
                "params.dropout_prob": {"type": "uniform", "low": 0.0, "high": 0.6}},
    "BERT4Rec": {"params.learning_rate": _LR,
                 "params.n_layers": {"type": "int", "low": 1, "high": 3},
                 "params.hidden_dropout_prob": {"type": "uniform", "low": 0.1, "high": 0.6},
                 "params.attn_dropout_prob": {"type": "uniform", "low": 0.1, "high": 0.6},
                 "params.mask_ratio": {"type": "uniform", "low": 0.1, "high": 0.6}},
}

#: RecBole's string options of these models and the values they accept
_CHOICES = {"hidden_act": ("gelu", "relu", "swish", "tanh", "sigmoid"), "loss_type": ("CE", "BPR"),
            # BERT4Rec's training examples come from RecBole's masking transform; nothing else trains it
            "transform": ("mask_itemseq",)}


class RecboleSequenceScorer:
    """Scores canonical target users over canonical target items from their input sequences."""

    def __init__(self, model, rb, data, pooled: bool, device):
        self.model, self.rb, self.data, self.pooled, self.device = model, rb, data, pooled, device
        self.catalog_ids = rb.extra["catalog_ids"]
        self.item_index = torch.as_tensor(rb.item_ids, device=device)
        self.target_rows = np.asarray(data.catalog.target_rows)
        self._inputs: dict = {}
        # an ID-based model learns nothing about items that no training sequence holds
        seen = np.zeros(int(self.catalog_ids.max(initial=0)) + 1, dtype=bool)
        seen[rb.dataset.inter_feat[rb.config["ITEM_ID_FIELD"]].numpy()] = True
        list_field = rb.config["ITEM_ID_FIELD"] + rb.config["LIST_SUFFIX"]
        seen[rb.dataset.inter_feat[list_field].numpy().ravel()] = True
        seen[0] = False
        self.item_known = seen[rb.item_ids]

    def inputs(self, split: str):
        """The input sequences of ``split`` (items as catalog rows), built once."""
        if split not in self._inputs:
            if self.pooled:
                self._inputs[split] = merged_sequences(self.data, split)
            else:
                seqs = self.data.sequences(split)
                self._inputs[split] = type(seqs)(seqs.indptr, self.target_rows[seqs.indices], seqs.times)
        return self._inputs[split]

    def _scores(self, interaction) -> torch.Tensor:
        self.model.eval()
        with torch.no_grad():
            scores = self.model.full_sort_predict(interaction)
        return scores.view(interaction.length, -1)[:, self.item_index]

    def score_split(self, users: torch.Tensor, split: str) -> torch.Tensor:
        batch = input_batch(self.rb.config, self.catalog_ids, self.inputs(split), users.cpu().numpy(), self.device)
        return self._scores(batch)

    def score(self, users: torch.Tensor) -> torch.Tensor:
        """Scores from each user's latest known history (the test targets' input)."""
        return self.score_split(users, "test")

    def score_history(self, items: list[int]) -> torch.Tensor:
        """A new user's scores from their target items, oldest first."""
        seqs = Sequences(np.array([0, len(items)]), self.target_rows[np.asarray(items, dtype=np.int64)])
        return self._scores(input_batch(self.rb.config, self.catalog_ids, seqs, np.array([0]), self.device))


class RecboleSequentialBaseline(RecboleBaseline):
    """One RecBole sequential recommender; subclasses fix ``model_name``."""

    tasks = (NEXT_ITEM,)
    #: ``xdplug export`` serves general models; a sequence model's artifact is not built yet
    export = None

    def __init__(self, params: dict | None = None, path: str | None = None):
        super().__init__(params, path)
        path = path or f"{self.kind}:{self.name}"
        heads, hidden = self.params.get("n_heads"), self.params.get("hidden_size")
        if "mask_ratio" in self.params and int(self.params["mask_ratio"] * self.params["max_length"]) < 1:
            raise ConfigError(f"{path}.mask_ratio", f"{self.params['mask_ratio']} x max_length "
                              f"{self.params['max_length']} masks no item: BERT4Rec would have nothing to predict")
        if heads and hidden and hidden % heads:
            raise ConfigError(f"{path}.hidden_size", f"{hidden} must be a multiple of n_heads ({heads}): "
                              "the attention splits the hidden state across the heads")

    def build(self, ctx, pooled: bool = False) -> RecboleSequenceScorer:
        from recbole.utils import get_model, init_seed

        overrides = {k: v for k, v in self.params.items() if v is not None and k != "max_length"}
        overrides["MAX_ITEM_LIST_LENGTH"] = self.params["max_length"]
        if overrides.get("loss_type", "CE") == "CE":  # full softmax: RecBole refuses negative sampling
            overrides["train_neg_sample_args"] = None
        else:
            overrides["train_neg_sample_args"] = {"distribution": "uniform", "sample_num": 1}
        model_class = get_model(self.model_name)
        rb = sequence_data(ctx, model_class, overrides, pooled=pooled)
        init_seed(ctx.seed, True)
        model = model_class(rb.config, rb.dataset).to(ctx.device)
        return RecboleSequenceScorer(model, rb, ctx.data, pooled, ctx.device)


def recbole_sequential_baselines() -> list[type]:
    classes = []
    for model in MODELS:
        defaults = {key: Choice(value, _CHOICES[key]) if key in _CHOICES else _declare(key, value)
                    for key, value in _yaml_defaults(model).items()}
        if "mask_ratio" in defaults:  # a probability (BERT4Rec's share of masked items)
            defaults["mask_ratio"] = Float(defaults["mask_ratio"].default, 0, 1, low_open=True)
        defaults.update({k: v for k, v in TRAINING_OPTIONS.items() if k != "train_neg_sample_args"})
        defaults["max_length"] = Int(50, 1, 10_000, help="the most recent items a sequence keeps "
                                     "(RecBole's MAX_ITEM_LIST_LENGTH)")
        classes.append(type(f"Recbole{model}Baseline", (RecboleSequentialBaseline,), {
            "name": model,
            "search_space": SEQUENTIAL_SEARCH_SPACES[model],
            "pooled_search_space": {},
            "model_name": model,
            "description": f"RecBole {model} on the next-item training sequences (pooled: each user's two "
                           "domains merged in time)",
            "defaults": defaults,
            "__module__": __name__,
        }))
    return classes

