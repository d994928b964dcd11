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
* the registry: :func:`registered` and :func:`registered_names`, for a component that reads
  another one by name (a text baseline's ``params.encoder.name``).
"""

from __future__ import annotations

from .components import (DEFAULT_FAMILY, Adaptation, Baseline, Component, DatasetRecipe, Encoder, Evaluator, Fusion,
                         ModelFamily, Strategy, declared_options, resolve_params)
from .config import config_hash
from .context import FitContext
from .data.catalog import ItemCatalog
from .data.crossdomain import CrossDomainData
from .data.sequences import Sequences, merged_sequences, pooled_training_sequences, source_sequences
from .data.raw import RawDomain, RawDomains, read_atomic, refuse_nonfinite, validate_inter
from .data.tables import read_table, sniff_separator
from .data.text import normalise_key
from .errors import (ArtifactError, ComponentDefinitionError, ConfigError, DataError, NotApplicableError,
                     XdplugError)
from .evaluation import RankingResult, UserItems, rank_split, rank_users
from .hookspecs import hookimpl
from .metrics import METRICS, csr_lists, hit_matrix, mean, metric_matrix, pad_columns, per_user_metrics, quick_metric
from .model.als import fit_als
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
from .plugins import get_plugins as _get_plugins
from .recbole.compat import evaluates_as_code, literal_value
from .recbole.dataset import RecboleData, pooled_matrix, recbole_data
from .recbole.sequences import input_batch, sequence_data
from .recbole.trainer import fit_recbole
from .textcache import TextEmbeddingCache, text_key
from .weights import load_state

__all__ = [
    # hooks and components
    "hookimpl", "Component", "Encoder", "Fusion", "Adaptation", "Evaluator", "Baseline", "DatasetRecipe",
    "declared_options", "resolve_params",
    # model families: the base class, a resolved strategy, the transfer model's options and fit (the embedding
    # family's), the item-item family's closed forms (ItemItemProblem) and EASE's solution
    "ModelFamily", "DEFAULT_FAMILY", "Strategy", "ModelOptions", "fit_transfer", "build_model", "id_part_encoder",
    "ItemItemProblem", "ease_matrix",
    # a family's own model over the fused item vectors: its parts, its trainer settings and session scorer
    # (validate_target / validate_users), mixed precision (amp_dtype: bf16 autocast on CUDA)
    "item_parts", "FusedItems", "text_adaptor", "trainer_config", "validate_target", "validate_users",
    "amp_dtype", "autocast", "SOFTMAX_MAX_ITEMS", "UserItems",
    # options
    "Option", "Int", "Float", "Bool", "Str", "Choice", "List", "Mapping",
    # errors
    "XdplugError", "ConfigError", "DataError", "NotApplicableError", "ArtifactError", "ComponentDefinitionError",
    # training and evaluation
    "FitContext", "TrainingSession", "RecboleData", "recbole_data", "pooled_matrix", "fit_recbole", "RankingResult", "rank_split",
    "rank_users", "METRICS", "csr_lists", "hit_matrix", "pad_columns", "metric_matrix", "per_user_metrics", "mean",
    "quick_metric", "evaluates_as_code", "literal_value",
    # the next-item task: its sequences, the pooled merge, RecBole's sequential fields
    "GENERAL", "NEXT_ITEM", "Sequences", "merged_sequences", "pooled_training_sequences", "source_sequences",
    "sequence_data",
    "input_batch",
    # the sparse EASE solver (item-item baselines beyond the dense limit) and iALS's fit
    "sparse_ease", "fit_als",
    # data
    "RawDomain", "RawDomains", "read_atomic", "refuse_nonfinite", "validate_inter", "read_table", "sniff_separator",
    "normalise_key", "ItemCatalog", "CrossDomainData", "downloads_dir", "TextEmbeddingCache", "text_key",
    "TextTable",
    # export
    "load_state",
    # identity (trackers: the config hash a run record carries)
    "config_hash",
    # the registry (a component that reads another by name)
    "registered", "registered_names",
]


def registered(kind: str, name: str, path: str | None = None) -> type:
    """The class registered as ``name`` of ``kind`` by any loaded plugin.

    A component that names another one in its params (a text baseline's encoder) resolves it
    here, so a third-party component serves it like a built-in one, without importing either
    plugin. An unknown name raises :class:`~xdplug.errors.UnknownComponentError` listing the
    registered names, with ``path`` (the config key) in front.
    """
    return _get_plugins().registry.get(kind, name, path)


def registered_names(kind: str) -> list[str]:
    """The names registered for ``kind``, sorted (what an error lists as the choices)."""
    return _get_plugins().registry.names(kind)
