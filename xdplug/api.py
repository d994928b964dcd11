"""The public API of xdplug for plugin authors: import everything a component needs from here.

A plugin never imports engine internals; what built-in and third-party
components use is re-exported here and documented in ``docs/plugin_authors.md``
and ``docs/plugin_hooks.md``::

    from xdplug.api import Baseline, Float, hookimpl

Groups:

* hooks: :data:`hookimpl`;
* component base classes (one per kind, model families included) and their option declarations;
* errors a component raises;
* training: :class:`FitContext` (what ``Baseline.fit`` gets), :class:`TrainingSession`
  (what ``Adaptation.fit`` gets), RecBole's data and trainer with xdplug's
  validation (:func:`recbole_data`, :func:`fit_recbole`), ranking the fixed
  split (:func:`rank_split`) and the ranking metrics (:func:`quick_metric`,
  :func:`per_user_metrics`, ...);
* the next-item task (:data:`NEXT_ITEM`): per-user input sequences (:class:`Sequences`, read
  through ``ctx.data.sequences(split)``), the pooled controls' merged sequences and RecBole's
  sequential datasets (:func:`sequence_data`, :func:`input_batch`);
* data: raw domains for dataset recipes, the table reader, text keys, the text
  embedding cache, the place for downloads;
* export: :func:`load_state` for ``Baseline.restore`` (``export = "state"``).
* identity: :func:`config_hash`, the hash each run record carries (``record["config_hash"]``).

A component that reads another one by name (a text baseline's ``params.encoder.name``) gets
the run's registry from its context (``ctx.registry``, ``ctx.component(kind, name)``) and
checks the name in ``check_components(registry)``: there is no global registry to import.
Nothing the engine alone calls is here (the registry's checks, the default family, the
ranking of one user slice); ``tests/test_architecture.py`` keeps every name used by a plugin
or the plugin docs.
"""

from __future__ import annotations

from .components import (Adaptation, Baseline, DatasetRecipe, Encoder, Evaluator, Fusion, ModelFamily, Strategy,
                         TuningStage, declared_options)
from .config import config_hash
from .context import FitContext
from .data.catalog import ItemCatalog
from .data.crossdomain import CrossDomainData
from .data.sequences import Sequences, merged_sequences, pooled_training_sequences, source_sequences
from .data.raw import RawDomain, RawDomains, column_numbers, read_atomic, validate_inter
from .data.tables import read_table, sniff_separator
from .data.text import normalise_key
from .errors import (ArtifactError, ConfigError, DataError, NotApplicableError,
                     XdplugError)
from .evaluation import RankingResult, UserItems, rank_split
from .hookspecs import hookimpl
from .metrics import METRICS, csr_lists, hit_matrix, mean, metric_matrix, pad_columns, per_user_metrics, quick_metric
from .model.als import fit_als
from .model.factor import Block as FactorBlock, FactorModel, FixedPrior, TextMap, TextPrior
from .model.linear import ItemItemProblem, ease_matrix
from .model.sampling import SOFTMAX_MAX_ITEMS, amp_dtype, autocast
from .model.session import TrainingSession, validate_target, validate_users
from .model.sparse_item_item import sparse_ease
from .model.strategy import build_model, fit_transfer, id_part_encoder, item_parts, trainer_config
from .model.transfer import FusedItems, ModelOptions, text_adaptor
from .model.text_table import TextTable
from .options import Bool, Choice, Float, Int, List, Mapping, Option, Str
from .tasks import GENERAL, NEXT_ITEM
from .paths import downloads_dir
from .recbole.compat import evaluates_as_code, literal_value
from .recbole.dataset import pooled_matrix, recbole_data
from .recbole.sequences import input_batch, sequence_data
from .recbole.trainer import fit_recbole
from .textcache import TextEmbeddingCache, text_key
from .weights import load_state

__all__ = [
    # hooks and components
    "hookimpl", "Encoder", "Fusion", "Adaptation", "Evaluator", "Baseline", "DatasetRecipe",
    "declared_options",
    # model families: the base class, a resolved strategy, the transfer model's options and fit (the embedding
    # family's), the item-item family's closed forms (ItemItemProblem) and EASE's solution
    "ModelFamily", "Strategy", "TuningStage", "ModelOptions", "fit_transfer", "build_model", "id_part_encoder",
    "ItemItemProblem", "ease_matrix",
    # a family's own model over the fused item vectors: its parts, its trainer settings and session scorer
    # (validate_target / validate_users), mixed precision (amp_dtype: bf16 autocast on CUDA)
    "item_parts", "FusedItems", "text_adaptor", "trainer_config", "validate_target", "validate_users",
    "amp_dtype", "autocast", "SOFTMAX_MAX_ITEMS", "UserItems",
    # options
    "Option", "Int", "Float", "Bool", "Str", "Choice", "List", "Mapping",
    # errors
    "XdplugError", "ConfigError", "DataError", "NotApplicableError", "ArtifactError",
    # training and evaluation
    "FitContext", "TrainingSession", "recbole_data", "pooled_matrix", "fit_recbole", "RankingResult", "rank_split",
    "METRICS", "csr_lists", "hit_matrix", "pad_columns", "metric_matrix", "per_user_metrics", "mean",
    "quick_metric", "evaluates_as_code", "literal_value",
    # the next-item task: its sequences, the pooled merge, RecBole's sequential fields
    "GENERAL", "NEXT_ITEM", "Sequences", "merged_sequences", "pooled_training_sequences", "source_sequences",
    "sequence_data",
    "input_batch",
    # the sparse EASE solver (item-item baselines beyond the dense limit) and iALS's fit
    "sparse_ease", "fit_als",
    # collective weighted ALS with prior means (the factor family's solver)
    "FactorModel", "FactorBlock", "FixedPrior", "TextMap", "TextPrior",
    # data
    "RawDomain", "RawDomains", "column_numbers", "read_atomic", "validate_inter", "read_table", "sniff_separator",
    "normalise_key", "ItemCatalog", "CrossDomainData", "downloads_dir", "TextEmbeddingCache", "text_key",
    "TextTable",
    # export
    "load_state",
    # identity (trackers: the config hash a run record carries)
    "config_hash",
]

