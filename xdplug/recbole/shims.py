"""The numpy and scipy names RecBole 1.2.1 calls that numpy 2 and scipy 1.13 removed.

RecBole 1.2.1 (the dependency, installed unchanged with ``pip install --no-deps``) was written
for numpy 1, scipy < 1.13 and pandas 2. On the paths xdplug uses, four things break on a
current stack; each shim below names the RecBole line it serves and is installed only when the
stack lacks what RecBole expects, so the pinned stack (numpy 1.26, scipy 1.12, pandas 2.3) runs
RecBole's code exactly as before.

:func:`install` (called by ``import xdplug``) applies them the moment ``recbole`` is first
imported (the pandas one when ``recbole.data.dataset.dataset`` has loaded), so no module has to
remember to: importing xdplug itself loads neither numpy, scipy nor pandas.
"""

from __future__ import annotations

import importlib.abc
import sys
import warnings

#: numpy 1 names numpy 2 removed -> (the numpy 2 name with the same meaning, the RecBole line they serve).
#: ``Config.compatibility_settings`` (run by every ``Config()``) reads all three to re-create
#: ``np.float``/``np.complex``/``np.unicode``: without them, building any RecBole config raises.
NUMPY_ALIASES = {
    "float_": ("float64", "recbole/config/configurator.py:630 (np.float = np.float_)"),
    "complex_": ("complex128", "recbole/config/configurator.py:631 (np.complex = np.complex_)"),
    "unicode_": ("str_", "recbole/config/configurator.py:635 (np.unicode = np.unicode_)"),
}

#: the RecBole lines that fill a ``dok_matrix`` through the private ``_update`` scipy 1.13 removed
DOK_UPDATE_USERS = (
    "recbole/model/general_recommender/lightgcn.py:111",
    "recbole/model/general_recommender/ngcf.py:110",
    "recbole/model/general_recommender/ncl.py:131",
    "recbole/model/general_recommender/gcmc.py:174",
    "recbole/model/general_recommender/spectralcf.py:123",
)

#: what :func:`apply` installed in this process (name -> the RecBole line it serves); empty on the pinned stack
applied: dict[str, str] = {}
_done = False


def _dok_update(self, data):
    """``dok_matrix._update`` as scipy < 1.13 had it: ``dict.update`` on the stored entries, unchecked.

    RecBole passes ``{(row, col): 1}`` for every interaction (both directions of the user-item
    graph); one bulk update, not a Python loop of ``self[i, j] = v`` (seconds on ML-1M).
    """
    self._dict.update(data)


def apply() -> dict[str, str]:
    """Install every missing name once; returns :data:`applied`. Safe to call again."""
    global _done
    if _done:
        return applied
    import numpy as np

    for name, (target, served) in NUMPY_ALIASES.items():
        if not _has(np, name):
            setattr(np, name, getattr(np, target))
            applied[f"numpy.{name}"] = served
    from scipy.sparse import dok_matrix

    if not hasattr(dok_matrix, "_update"):
        dok_matrix._update = _dok_update
        applied["scipy.sparse.dok_matrix._update"] = ", ".join(DOK_UPDATE_USERS)
    _done = True
    return applied


#: the RecBole lines that fill missing values through ``feat[field].fillna(..., inplace=True)``
FILL_NAN_LINES = "recbole/data/dataset/dataset.py:648, :650 (Dataset._fill_nan)"
_original_fill_nan = None
#: the RecBole line that wraps pandas' (read-only under pandas 3) arrays in tensors without a copy
TO_INTERACTION_LINE = "recbole/data/dataset/dataset.py:2202 (Dataset._dataframe_to_interaction)"


def patch_fill_nan(module) -> None:
    """pandas 3 (copy-on-write always on): ``Dataset._fill_nan`` fills the frame, not a copy, and
    ``Dataset._dataframe_to_interaction`` makes tensors that own their memory.

    RecBole's ``feat[field].fillna(value, inplace=True)`` fills a temporary copy under pandas 3
    and raises ``ChainedAssignmentError`` as a warning: missing token/float values would stay
    NaN, and the warning escapes into every run. The wrapper fills the frame itself with the same
    values first (0 for tokens, the column mean for floats), then runs RecBole's own method, whose
    now empty ``fillna`` calls are the only thing silenced. Nothing changes on pandas 2.
    """
    global _original_fill_nan
    import pandas as pd

    dataset_class = module.Dataset
    if int(pd.__version__.split(".")[0]) < 3 or _original_fill_nan is not None:
        return
    from recbole.utils import FeatureType

    original = _original_fill_nan = dataset_class._fill_nan

    def _fill_nan(self):
        for feat_name in self.feat_name_list:
            feat = getattr(self, feat_name)
            for field in feat:
                ftype = self.field2type[field]
                if ftype == FeatureType.TOKEN:
                    feat[field] = feat[field].fillna(value=0)
                elif ftype == FeatureType.FLOAT:
                    feat[field] = feat[field].fillna(value=feat[field].mean())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", pd.errors.ChainedAssignmentError)
            original(self)

    _fill_nan.__doc__ = original.__doc__
    dataset_class._fill_nan = _fill_nan
    applied["recbole Dataset._fill_nan under pandas copy-on-write"] = FILL_NAN_LINES

    to_interaction = dataset_class._dataframe_to_interaction

    def _dataframe_to_interaction(self, data):
        # pandas 3's Series.values is a read-only view; torch.LongTensor(value) (dataset.py:2202)
        # wraps it without a copy and warns that writing to it is undefined: own the memory instead
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "The given NumPy array is not writable", UserWarning)
            interaction = to_interaction(self, data)
        for key, tensor in interaction.interaction.items():
            interaction.interaction[key] = tensor.clone()
        return interaction

    _dataframe_to_interaction.__doc__ = to_interaction.__doc__
    dataset_class._dataframe_to_interaction = _dataframe_to_interaction
    applied["recbole Dataset._dataframe_to_interaction under pandas copy-on-write"] = TO_INTERACTION_LINE


#: modules patched right after they load: name -> patch
_AFTER_LOAD = {"recbole.data.dataset.dataset": patch_fill_nan}


def _has(module, name: str) -> bool:
    try:  # numpy 1.2x raises (with a warning) for some removed aliases through its module __getattr__
        getattr(module, name)
    except AttributeError:
        return False
    return True


class _ApplyBeforeRecbole(importlib.abc.MetaPathFinder):
    """The first ``import recbole`` applies the shims first; the modules of :data:`_AFTER_LOAD`
    are patched once they have loaded (their loader is wrapped). Finds nothing itself."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname == "recbole":
            apply()
        patch = _AFTER_LOAD.get(fullname)
        if patch is None:
            return None
        remove_hook()  # the last module it waits for
        for finder in sys.meta_path:
            spec = finder.find_spec(fullname, path, target) if hasattr(finder, "find_spec") else None
            if spec is not None:
                break
        else:
            return None
        exec_module = spec.loader.exec_module

        def exec_then_patch(module):
            exec_module(module)
            patch(module)

        spec.loader.exec_module = exec_then_patch
        return spec


_HOOK = _ApplyBeforeRecbole()


def install() -> None:
    """Apply the shims before RecBole is imported (now, for what is already imported)."""
    if "recbole" in sys.modules:
        apply()
    loaded = [name for name in _AFTER_LOAD if name in sys.modules]
    for name in loaded:
        _AFTER_LOAD[name](sys.modules[name])
    if not loaded and _HOOK not in sys.meta_path:
        sys.meta_path.insert(0, _HOOK)


def remove_hook() -> None:
    if _HOOK in sys.meta_path:
        sys.meta_path.remove(_HOOK)
