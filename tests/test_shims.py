"""xdplug/recbole/shims.py: each shim makes the RecBole 1.2.1 code it serves run on numpy 2 / scipy >= 1.13.

On the stack where a name is removed, each test takes the shim away and shows the RecBole call
failing, then puts it back and shows the call working (with exact numbers); on the pinned stack
(numpy 1.26, scipy 1.12) it checks that nothing was replaced.
"""

from __future__ import annotations

import subprocess
import warnings
import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import scipy
import scipy.sparse as sp

from xdplug.recbole import shims
from xdplug.recbole.compat import recbole_config

NUMPY_2 = int(np.__version__.split(".")[0]) >= 2
SCIPY_1_13 = tuple(int(x) for x in scipy.__version__.split(".")[:2]) >= (1, 13)
PANDAS_3 = int(pd.__version__.split(".")[0]) >= 3


def _expected() -> set[str]:
    """The shims this stack needs."""
    expected = {f"numpy.{name}" for name in shims.NUMPY_ALIASES} if NUMPY_2 else set()
    if SCIPY_1_13:
        expected.add("scipy.sparse.dok_matrix._update")
    if PANDAS_3:
        expected |= {"recbole Dataset._fill_nan under pandas copy-on-write",
                     "recbole Dataset._dataframe_to_interaction under pandas copy-on-write"}
    return expected


def test_shims_are_applied_exactly_where_the_stack_removed_the_name():
    import recbole  # noqa: F401 - the import hook applied the shims before this module ran

    import recbole.data.dataset.dataset  # noqa: F401 - the pandas shim patches it once loaded

    assert set(shims.applied) == _expected()
    for name, served in shims.applied.items():
        assert served.startswith("recbole/") and ".py:" in served, (name, served)
    assert (sp.dok_matrix._update is shims._dok_update) == SCIPY_1_13
    assert np.float_ is np.float64 and np.complex_ is np.complex128 and np.unicode_ is np.str_


def test_importing_recbole_applies_the_shims_in_a_fresh_process():
    """Whoever imports recbole first (here a bare ``import recbole.config`` after ``import xdplug``)."""
    code = ("import xdplug, sys; assert 'numpy' not in sys.modules and 'scipy' not in sys.modules\n"
            "import recbole.config, recbole.data.dataset\nfrom xdplug.recbole import shims\n"
            "print(sorted(shims.applied))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == repr(sorted(_expected()))


def _config(tmp_path):
    import torch

    return recbole_config("Pop", "target", tmp_path, {}, torch.device("cpu"))


@pytest.mark.parametrize("name", sorted(shims.NUMPY_ALIASES))
def test_numpy_alias_lets_recbole_build_its_config(name, tmp_path, monkeypatch):
    """configurator.py:630-635 reads np.float_, np.complex_ and np.unicode_ in every Config()."""
    if not NUMPY_2:
        assert f"numpy.{name}" not in shims.applied  # numpy 1 has it: nothing replaced
        assert getattr(np, name) is getattr(np, shims.NUMPY_ALIASES[name][0])
    else:
        monkeypatch.delattr(np, name)
        with pytest.raises(AttributeError, match=name):
            _config(tmp_path)
        monkeypatch.undo()
    config = _config(tmp_path)
    assert config["model"] == "Pop"
    assert np.float is np.float64 and np.unicode is np.str_  # what RecBole's metrics and dataset code then use


def _lightgcn_adjacency():
    """RecBole's LightGCN.get_norm_adj_mat (lightgcn.py:95-125, dok_matrix._update at :111) on 2 users x 3 items."""
    from recbole.model.general_recommender.lightgcn import LightGCN

    inter = sp.coo_matrix((np.ones(3, dtype=np.float32), ([0, 0, 1], [0, 2, 2])), shape=(2, 3))
    holder = SimpleNamespace(n_users=2, n_items=3, interaction_matrix=inter)
    return LightGCN.get_norm_adj_mat(holder).to_dense().numpy()


def test_dok_update_lets_recbole_build_the_lightgcn_graph(monkeypatch):
    if not SCIPY_1_13:
        assert "scipy.sparse.dok_matrix._update" not in shims.applied
        assert sp.dok_matrix._update is not shims._dok_update
    else:
        monkeypatch.delattr(sp.dok_matrix, "_update")
        with pytest.raises(AttributeError, match="_update"):
            _lightgcn_adjacency()
        monkeypatch.undo()
    adjacency = _lightgcn_adjacency()
    # D^-1/2 A D^-1/2 over the bipartite graph: degrees users (2, 1), items (1, 0, 2)
    expected = np.zeros((5, 5))
    for u, i in ((0, 0), (0, 2), (1, 2)):
        degree_u, degree_i = (2, 1)[u], (1, 0, 2)[i]
        expected[u, 2 + i] = expected[2 + i, u] = 1 / np.sqrt(degree_u * degree_i)
    assert np.allclose(adjacency, expected, atol=1e-6)


def _fill_nan_holder():
    from recbole.utils import FeatureType

    feat = pd.DataFrame({"item_id": [1.0, None, 3.0], "price": [1.0, None, 4.0]})
    return SimpleNamespace(feat_name_list=["item_feat"], item_feat=feat, logger=SimpleNamespace(debug=lambda _: None),
                           field2type={"item_id": FeatureType.TOKEN, "price": FeatureType.FLOAT})


def test_fill_nan_fills_the_frame_under_pandas_copy_on_write(monkeypatch):
    """dataset.py:648/650: under pandas 3 RecBole's inplace fillna fills a copy and warns."""
    from recbole.data.dataset.dataset import Dataset

    pandas_3 = PANDAS_3
    assert ("recbole Dataset._fill_nan under pandas copy-on-write" in shims.applied) == pandas_3
    if pandas_3:
        monkeypatch.setattr(Dataset, "_fill_nan", shims._original_fill_nan)
        holder = _fill_nan_holder()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            Dataset._fill_nan(holder)
        assert holder.item_feat.isna().sum().sum() == 2  # RecBole's own method left both NaN
        with pytest.warns(pd.errors.ChainedAssignmentError):
            Dataset._fill_nan(_fill_nan_holder())
        monkeypatch.undo()
    holder = _fill_nan_holder()
    with warnings.catch_warnings():
        warnings.simplefilter("error" if pandas_3 else "ignore")  # pandas 2 may warn FutureWarning; nothing escapes on 3
        Dataset._fill_nan(holder)
    assert holder.item_feat["item_id"].tolist() == [1.0, 0.0, 3.0]
    assert holder.item_feat["price"].tolist() == [1.0, 2.5, 4.0]


def test_interaction_tensors_own_their_memory_under_pandas_copy_on_write(monkeypatch):
    """dataset.py:2202: torch.LongTensor wraps pandas 3's read-only array (torch warns: writes are undefined)."""
    from recbole.data.dataset.dataset import Dataset
    from recbole.utils import FeatureType

    holder = SimpleNamespace(field2type={"item_id": FeatureType.TOKEN}, config={"numerical_features": []})
    frame = pd.DataFrame({"item_id": np.array([3, 1, 2], dtype=np.int64)})
    key = "recbole Dataset._dataframe_to_interaction under pandas copy-on-write"
    assert (key in shims.applied) == PANDAS_3
    if PANDAS_3:
        assert not frame["item_id"].values.flags.writeable
        cells = Dataset.__dict__["_dataframe_to_interaction"].__closure__  # the wrapper holds RecBole's method
        original = next(c.cell_contents for c in cells if getattr(c.cell_contents, "__qualname__", "") ==
                        "Dataset._dataframe_to_interaction")
        with warnings.catch_warnings():  # torch warns once per process, so the warning itself is not asserted
            warnings.simplefilter("ignore")
            shared = original(holder, frame)["item_id"]
        # RecBole's tensor is pandas' read-only buffer: a write would change the frame behind its back
        assert shared.data_ptr() == frame["item_id"].values.ctypes.data
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        interaction = Dataset._dataframe_to_interaction(holder, frame)
    tensor = interaction["item_id"]
    tensor[0] = 7  # pandas 3: the tensor's own memory, the frame keeps its values (pandas 2: RecBole's sharing)
    assert tensor.tolist() == [7, 1, 2] and frame["item_id"].tolist() == ([3, 1, 2] if PANDAS_3 else [7, 1, 2])
