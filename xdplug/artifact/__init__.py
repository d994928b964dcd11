"""Artifacts: a finished run as a directory that serves recommendations.

``xdplug export`` turns a finished run of the store into an artifact
directory (:mod:`.export`, which fits the run with the engine's own task);
:func:`load_artifact` (``xdplug.load``) reads one back into a
:class:`Recommender` (:mod:`.recommender`); :func:`update_artifact`
(``xdplug update``) fine-tunes an exported strategy on new target interactions
and writes the next version beside it (:mod:`.update`). Layout (:mod:`.format`)::

    ARTIFACT/
      manifest.json      format, version and the sha256 and size of every other file
      meta.json          kind, method, seed, run ID, the method's spec, the resolved config
                         and its hash, library versions, encoder name and text-cache key,
                         the run's metrics, the update history
      weights.pt         the best-validation model's state dict (a baseline's ``export_state``)
      extras.pt          tensors outside the state dict (text whitening), when there are any
      ids.json           the target users' and items' IDs as in your files (and item aliases)
      data/arrays.npz    target train/valid/test pairs, catalog rows, model user rows
      data/keys.json     ID maps: target user and item keys, catalog keys and item texts
      data/summary.json  the prepared data's summary
"""

from __future__ import annotations

from .export import check_roundtrip, encoder_info, export_run, raw_ids, write_artifact
from .format import FORMAT, FORMAT_VERSION, MANIFEST, copy_data, next_version_path, verify_artifact
from .recommender import Recommender, build_strategy_model, check_meta, export_kind, load_artifact
from .update import read_new_interactions, update_artifact

__all__ = ["FORMAT", "FORMAT_VERSION", "MANIFEST", "Recommender", "build_strategy_model", "check_meta",
           "check_roundtrip", "copy_data", "encoder_info", "export_kind", "export_run", "load_artifact",
           "next_version_path", "raw_ids", "read_new_interactions", "update_artifact", "verify_artifact",
           "write_artifact"]
