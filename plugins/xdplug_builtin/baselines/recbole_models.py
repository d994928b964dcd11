"""RecBole's general recommenders as baselines, trained on the target split only.

Each model keeps its RecBole hyper-parameters (the defaults come from RecBole's
own ``properties/model/<Model>.yaml``) and any of them can be overridden from
the config. ``pooled: true`` trains the same model on the source's
interactions stacked under the target's: the naive transfer a practitioner
tries first, and the control every strategy must beat.

``Pop`` ranks by exact training counts: RecBole 1.2.1's ``Pop`` counts an item
at most once per batch (``item_cnt[item] += 1`` with repeated indices).

Pooled ``EASE`` and ``ItemKNN`` take ``source_weight``: source rows enter the Gram
matrix (EASE's, or the co-occurrences and norms of ItemKNN's cosine) scaled by it
(1 = plain stacking). On ML-1M -> ML-100K plain stacking lets the
source's 10x more interactions drown the target's co-occurrences and lands
below target-only EASE; a weight chosen on validation makes pooling pay, so a
tuned weight is the control a strategy has to beat.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import yaml

from xdplug.api import (GENERAL, NEXT_ITEM, Baseline, Bool, Choice, ConfigError, Float, Int, List, Mapping,
                        NotApplicableError, Option, Str, evaluates_as_code, fit_recbole, literal_value, load_state,
                        quick_metric, rank_split,
                        recbole_data)

logger = logging.getLogger(__name__)

MODELS = ("Pop", "ItemKNN", "BPR", "NeuMF", "LightGCN", "NGCF", "EASE", "MultiVAE", "MultiDAE",
          "SimpleX", "ENMF", "DMF", "NNCF", "LINE", "SpectralCF", "GCMC")


_LR = {"type": "loguniform", "low": 1.0e-4, "high": 1.0e-2}
_EMB = {"type": "categorical", "choices": [32, 64, 128]}

#: default search spaces of the RecBole baselines (Pop has no hyper-parameters: no trials)
SEARCH_SPACES: dict[str, dict] = {
    "ItemKNN": {"params.k": {"type": "int", "low": 10, "high": 1000, "log": True},
                "params.shrink": {"type": "categorical", "choices": [0.0, 1.0, 10.0, 100.0, 1000.0]}},
    "BPR": {"params.learning_rate": _LR, "params.embedding_size": _EMB},
    "LightGCN": {"params.learning_rate": _LR, "params.embedding_size": _EMB,
                 "params.n_layers": {"type": "int", "low": 1, "high": 4},
                 "params.reg_weight": {"type": "loguniform", "low": 1.0e-6, "high": 1.0e-2}},
    "NGCF": {"params.learning_rate": _LR, "params.embedding_size": _EMB,
             "params.reg_weight": {"type": "loguniform", "low": 1.0e-6, "high": 1.0e-2}},
    # up to 10^5: pooled over a large source the optimum passed 4,000 (configs/user-overlap-sparse.yaml)
    "EASE": {"params.reg_weight": {"type": "loguniform", "low": 1.0, "high": 1.0e5}},
    "MultiVAE": {"params.learning_rate": _LR,
                 "params.dropout_prob": {"type": "uniform", "low": 0.1, "high": 0.7},
                 "params.anneal_cap": {"type": "uniform", "low": 0.1, "high": 0.5}},
    "MultiDAE": {"params.learning_rate": _LR,
                 "params.dropout_prob": {"type": "uniform", "low": 0.1, "high": 0.7}},
    "NeuMF": {"params.learning_rate": _LR,
              "params.dropout_prob": {"type": "uniform", "low": 0.0, "high": 0.5}},
    "SimpleX": {"params.learning_rate": _LR, "params.embedding_size": _EMB,
                "params.margin": {"type": "uniform", "low": 0.0, "high": 0.9}},
    "ENMF": {"params.learning_rate": _LR,
             "params.dropout_prob": {"type": "uniform", "low": 0.3, "high": 0.9},
             "params.negative_weight": {"type": "uniform", "low": 0.05, "high": 0.9}},
    "DMF": {"params.learning_rate": _LR},
    "NNCF": {"params.learning_rate": _LR},
    "LINE": {"params.learning_rate": _LR, "params.embedding_size": _EMB},
    "SpectralCF": {"params.learning_rate": _LR,
                   "params.reg_weight": {"type": "loguniform", "low": 1.0e-5, "high": 1.0e-1}},
    "GCMC": {"params.learning_rate": _LR,
             "params.dropout_prob": {"type": "uniform", "low": 0.0, "high": 0.6}},
}
#: pooled EASE and ItemKNN: how much the source's rows count (above 1 the source counts more than the
#: target; on user-overlap-sparse the study chose 1, the bound of the old range)
POOLED_SEARCH_SPACES: dict[str, dict] = {
    model: {"params.source_weight": {"type": "loguniform", "low": 0.005, "high": 16.0}}
    for model in ("EASE", "ItemKNN")
}
#: the models whose pooled form reads the source rows' weight (their similarity is built from X^T X)
WEIGHTED_POOLING = tuple(POOLED_SEARCH_SPACES)

_YAML11_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")

#: the training options every RecBole baseline takes (None: the value of the config's ``train`` block)
TRAINING_OPTIONS = {
    "learning_rate": Float(None, 0, 10, low_open=True),
    "epochs": Int(None, 1, 100_000),
    "train_batch_size": Int(None, 1, 10_000_000),
    "weight_decay": Float(None, 0, 10),
    # RecBole's own keys (properties/overall.yaml), checked here: a typo would otherwise surface
    # mid-run as RecBole's error or a TypeError of torch's clip_grad_norm_
    "train_neg_sample_args": Mapping(None, {
        "distribution": Choice("uniform", ["uniform", "popularity"]), "sample_num": Int(1, 1, 10_000),
        "alpha": Float(1.0, 0, 10), "dynamic": Bool(False), "candidate_num": Int(0, 0, 1_000_000)},
        required=("distribution",)),
    "stopping_step": Int(None, 1, 100_000),
    "eval_step": Int(None, 1, 100_000),
    "clip_grad_norm": Mapping(None, {  # torch.nn.utils.clip_grad_norm_'s arguments
        "max_norm": Float(None, 0, 1e9, low_open=True), "norm_type": Float(2.0, 0, 1e9, low_open=True),
        "error_if_nonfinite": Bool(False), "foreach": Bool(None)}, required=("max_norm",)),
}
TRAINING_KEYS = tuple(TRAINING_OPTIONS)

#: RecBole's string options: the values its models accept
_STRING_CHOICES = {
    "accum": ("stack", "sum"),
    "aggregator": ("mean", "user_attention", "self_attention"),
    "knn_method": ("user", "item"),
    "neigh_info_method": ("random", "knn", "louvain"),
    "inter_matrix_type": ("01", "rating"),
}


def _declare(key: str, value):
    """An :class:`Option` for one of RecBole's model options, from its name and default.

    RecBole declares no ranges; these are the ranges in which its models compute
    something meaningful (a dropout is a probability, a size is positive).
    """
    if key in _STRING_CHOICES:
        return Choice(value, _STRING_CHOICES[key])
    if key == "use_pretrain":  # NeuMF would torch.load (unpickle) the files named by *_pretrain_path
        return Choice(False, [False], help="loading pretrained NeuMF parts (a pickle) is not supported")
    if key.endswith("_pretrain_path"):
        return Str(value, nullable=True)
    if key == "order":  # LINE: first- or second-order proximity
        return Choice(value, [1, 2])
    if isinstance(value, bool):
        return Bool(value)
    if isinstance(value, list):
        return List(value, int, 1, 65536)
    if isinstance(value, int):
        return Int(value, 0 if key == "negative_weight" else 1, 10_000_000)
    if isinstance(value, float):
        if "dropout" in key:
            return Float(value, 0, 1, high_open=True)
        if key in ("margin",):
            return Float(value, -1, 1)
        if key in ("anneal_cap", "gamma"):
            return Float(value, 0, 1)
        return Float(value, 0, 1e9)
    return value


def _yaml_defaults(model: str) -> dict:
    import recbole

    path = Path(recbole.__file__).parent / "properties" / "model" / f"{model}.yaml"
    values = yaml.safe_load(path.read_text()) if path.is_file() else None
    out = {}
    for key, value in (values or {}).items():
        if isinstance(value, str) and _YAML11_FLOAT.fullmatch(value):  # '1e-5': a float YAML 1.1 missed
            value = float(value)
        out[key] = value
    return out


@lru_cache(maxsize=None)
def _exact_pop_class():
    from recbole.model.general_recommender import Pop

    class ExactPop(Pop):
        """Pop that counts every training interaction (RecBole 1.2.1 undercounts repeats in a batch)."""

        def __init__(self, config, dataset):
            super().__init__(config, dataset)
            items = torch.as_tensor(dataset.inter_feat[self.ITEM_ID])
            counts = torch.bincount(items, minlength=self.n_items).to(self.item_cnt)
            self.item_cnt.copy_(counts.view(-1, 1))
            self.max_cnt = torch.max(self.item_cnt, dim=0)[0]

        def calculate_loss(self, interaction):
            return torch.nn.Parameter(torch.zeros(1)).to(self.device)

    return ExactPop


class _WeightedInteractions:
    """A RecBole dataset whose interaction matrix carries the square root of the ``rating`` column."""

    def __init__(self, dataset):
        self._dataset = dataset

    def __getattr__(self, name):
        return getattr(self._dataset, name)

    def inter_matrix(self, form="coo", value_field=None):
        # EASE's Gram matrix and ItemKNN's cosine read X^T X: a row scaled by sqrt(w) counts w times in
        # every co-occurrence (a target row's value stays 1, so its scores x B or x W are unchanged)
        return self._dataset.inter_matrix(form=form, value_field=value_field or "rating").sqrt()


@lru_cache(maxsize=None)
def _weighted_class(model: str):
    """RecBole's ``model`` counting each source co-occurrence ``source_weight`` times."""
    from recbole.utils import get_model

    class Weighted(get_model(model)):
        def __init__(self, config, dataset):
            super().__init__(config, _WeightedInteractions(dataset))

    Weighted.__name__ = Weighted.__qualname__ = f"Weighted{model}"
    return Weighted


class RecboleScorer:
    """Scores canonical target users over canonical target items with a RecBole model."""

    def __init__(self, model, rb, device):
        self.model, self.rb, self.device = model, rb, device
        self.item_index = torch.as_tensor(rb.item_ids, device=device)
        # an ID-based model learns nothing about items without training interactions
        counts = np.bincount(rb.dataset.inter_feat[rb.config["ITEM_ID_FIELD"]].numpy(),
                             minlength=rb.dataset.item_num)
        self.item_known = counts[rb.item_ids] > 0

    def score_history(self, items: list[int]) -> torch.Tensor:
        """A new user's scores from their target items, for the models that are item-based."""
        x = np.zeros(self.rb.dataset.item_num, dtype=np.float32)
        x[self.rb.item_ids[items]] = 1.0
        model = self.model
        if hasattr(model, "item_similarity"):  # EASE: scores = x B
            full = x @ np.asarray(model.item_similarity)
        elif hasattr(model, "w") and getattr(model, "method", "item") == "item":  # ItemKNN: x W
            full = np.asarray(model.w.T.dot(x)).ravel()
        elif hasattr(model, "item_cnt"):  # Pop: counts over the largest, as its full_sort_predict
            full = (model.item_cnt.double() / model.max_cnt.double()).cpu().numpy().ravel()
        else:
            raise NotApplicableError(
                "it learns one vector per training user, so it cannot score a new user's history; use --user "
                "for a known user, or export a strategy (or EASE, ItemKNN, Pop, text-knn)")
        return torch.as_tensor(np.asarray(full, dtype=np.float32)[self.rb.item_ids], device=self.device)[None]

    def score(self, users: torch.Tensor) -> torch.Tensor:
        from recbole.data.interaction import Interaction

        field = self.rb.config["USER_ID_FIELD"]
        uid = torch.as_tensor(self.rb.user_ids[users.cpu().numpy()], device=self.device)
        self.model.eval()
        with torch.no_grad():
            try:
                scores = self.model.full_sort_predict(Interaction({field: uid}).to(self.device))
                scores = scores.view(len(uid), -1)
            except NotImplementedError:
                scores = self._predict_all(uid)
        return scores[:, self.item_index]

    def _predict_all(self, uid):
        from recbole.data.interaction import Interaction

        cfg = self.rb.config
        items = self.item_index
        rows = []
        for u in uid:
            inter = Interaction({cfg["USER_ID_FIELD"]: u.repeat(len(items)), cfg["ITEM_ID_FIELD"]: items})
            rows.append(self.model.predict(inter.to(self.device)))
        full = torch.full((len(uid), self.rb.dataset.item_num), -torch.inf, device=self.device)
        full[:, items] = torch.stack(rows)
        return full


class RecboleBaseline(Baseline):
    """One RecBole general recommender; subclasses fix ``model_name``.

    Its options reach RecBole's ``Config``, which would ``eval`` a string: every
    string option is checked at construction (that is, at validation).
    """

    model_name = ""
    supports_pooling = True
    #: an artifact stores the RecBole model's state dict and rebuilds the model on the stored data
    export = "state"

    @staticmethod
    def plain_token(text: str) -> bool:
        """Letters, digits and ``_`` only: what a string option (its default is a string) may be."""
        return bool(text) and text.isascii() and text.replace("_", "a").isalnum()

    @staticmethod
    def check_value(value, default, path: str) -> None:
        """A value RecBole gets as what its option declares, never a string it would evaluate as code.

        A string option (its default is a string) takes a plain token that stays that
        string (``stack``, ``item``, ``01``); an option whose default is a number, list
        or bool takes no string; any other string, and any string nested in a list or
        mapping, must not be one :func:`xdplug.recbole_compat.evaluates_as_code` flags.
        """
        if isinstance(value, str):
            if isinstance(default, str):
                if not RecboleBaseline.plain_token(value) or literal_value(value) != value:
                    raise ConfigError(path, f"expected a plain word of letters, digits and _ (like {default!r}), "
                                      f"got {value!r}; RecBole reads other strings as Python values or code")
            elif isinstance(default, (bool, int, float, list, tuple)):
                kind = "true or false" if isinstance(default, bool) else \
                    "a list" if isinstance(default, (list, tuple)) else "a number"
                raise ConfigError(path, f"expected {kind} (like {default!r}), got the string {value!r}")
            elif evaluates_as_code(value):
                raise ConfigError(path, f"got {value!r}, which RecBole would evaluate as Python code; expected a "
                                  "number, a word, a path or a literal such as [64, 32]")
        elif isinstance(value, dict):
            for key, item in value.items():
                RecboleBaseline.check_value(key, None, f"{path}.{key}")
                RecboleBaseline.check_value(item, None, f"{path}.{key}")
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                RecboleBaseline.check_value(item, None, f"{path}[{i}]")

    def __init__(self, params: dict | None = None, path: str | None = None):
        super().__init__(params, path)
        path = path or f"{self.kind}:{self.name}"
        for key, value in self.params.items():
            self.check_value(value, type(self).defaults.get(key), f"{path}.{key}")

    def build(self, ctx, pooled: bool = False) -> RecboleScorer:
        """The RecBole model on ``ctx.data``, constructed and seeded as training starts, not trained."""
        from recbole.utils import get_model, init_seed

        overrides = {k: v for k, v in self.params.items() if v is not None}
        source_weight = overrides.pop("source_weight", None)  # checked by xdplug.config.check_pooling
        if source_weight is not None:
            model_class = _weighted_class(self.model_name)
        elif self.model_name == "Pop":
            model_class = _exact_pop_class()
        else:
            model_class = get_model(self.model_name)
        rb = recbole_data(ctx, model_class, overrides, pooled=pooled, source_weight=source_weight)
        init_seed(ctx.seed, True)
        model = model_class(rb.config, rb.dataset).to(ctx.device)
        return RecboleScorer(model, rb, ctx.device)

    def export_state(self, scorer: RecboleScorer) -> dict:
        return {k: v.detach().cpu() for k, v in scorer.model.state_dict().items()}

    def restore(self, ctx, state: dict, pooled: bool = False) -> RecboleScorer:
        scorer = self.build(ctx, pooled)
        load_state(scorer.model, state)
        scorer.model.eval()
        return scorer

    def fit(self, ctx, pooled: bool = False):
        scorer = self.build(ctx, pooled)
        model, rb = scorer.model, scorer.rb
        metric, k = ctx.valid_metric

        def validate() -> float:
            result = rank_split(scorer.score, ctx.data, "valid", [k], ctx.device, ctx.evaluation["user_groups"])
            return quick_metric(result, metric, k)

        ctx.log(f"training {self.model_name}{' (pooled)' if pooled else ''}")
        fit_recbole(ctx, rb.config, model, rb.train_loader, validate, phase="train")
        return scorer


def recbole_baselines() -> list[type]:
    classes = []
    for model in MODELS:
        defaults = {key: _declare(key, value) for key, value in _yaml_defaults(model).items()}
        defaults.update(TRAINING_OPTIONS)
        if model in WEIGHTED_POOLING:  # pooled only: weight of the source's rows
            defaults["source_weight"] = Float(None, 0, 1e6, low_open=True)
        cls = type(f"Recbole{model}Baseline", (RecboleBaseline,), {
            "name": model,
            "search_space": SEARCH_SPACES.get(model, {}),
            "pooled_search_space": POOLED_SEARCH_SPACES.get(model, {}),
            "model_name": model,
            # popularity reads no order: it ranks the same under both tasks
            "tasks": (GENERAL, NEXT_ITEM) if model == "Pop" else (GENERAL,),
            "description": f"RecBole {model} trained on the target split (pooled: true adds the source)",
            "defaults": defaults,
            "__module__": __name__,
        })
        classes.append(cls)
    return classes
