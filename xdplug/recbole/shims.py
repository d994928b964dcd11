"""The numpy and scipy names RecBole 1.2.1 calls that numpy 2 and scipy 1.13 removed.

RecBole 1.2.1 (the dependency, installed unchanged with ``pip install --no-deps``) was written
for numpy 1 and scipy < 1.13. On the paths xdplug uses, three things break on a current stack;
each shim below names the RecBole line it serves and is installed only when the name is
missing, so the pinned stack (numpy 1.26, scipy 1.12) runs RecBole's code exactly as before.

:func:`install` (called by ``import xdplug``) applies them the moment ``recbole`` is first
imported, so no module has to remember to: importing xdplug itself loads neither numpy nor scipy.
"""

from __future__ import annotations

import importlib.abc
import sys

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


def _has(module, name: str) -> bool:
    try:  # numpy 1.2x raises (with a warning) for some removed aliases through its module __getattr__
        getattr(module, name)
    except AttributeError:
        return False
    return True


class _ApplyBeforeRecbole(importlib.abc.MetaPathFinder):
    """Finds nothing; the first ``import recbole`` (or ``recbole.*``) applies the shims first."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname == "recbole":
            remove_hook()
            apply()
        return None


_HOOK = _ApplyBeforeRecbole()


def install() -> None:
    """Apply the shims before RecBole is imported (now, if it already is)."""
    if "recbole" in sys.modules:
        apply()
    elif _HOOK not in sys.meta_path:
        sys.meta_path.insert(0, _HOOK)


def remove_hook() -> None:
    if _HOOK in sys.meta_path:
        sys.meta_path.remove(_HOOK)
