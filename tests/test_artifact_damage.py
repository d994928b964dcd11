"""A damaged or tampered artifact is one named ArtifactError, before anything is built from it.

The manifest's sha256 catches damage, not intent: each tamper below is re-signed
(the manifest recomputed) so the checks of the values themselves are what refuse it.
Two small methods are fitted once (an ID strategy with weights, EASE refitted at
load); each test tampers its own copy.
"""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import xdplug
from xdplug.artifact.format import _write_manifest
from xdplug.cli import main
from xdplug.errors import ArtifactError

STRATEGY = {"name": "id", "encoder": "id", "fusion": "id", "adaptation": "target-only",
            "params": {"model": {"dim": 8, "batch_users": 32, "user_id": True}}}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def world(artifact_world):
    """Prepared synthetic data, an ID strategy and EASE written as artifacts."""
    return artifact_world("damage", {"id": STRATEGY, "EASE": {"baseline": "EASE"}},
                          train={"epochs": 2, "learning_rate": 0.01, "stopping_step": 3},
                          evaluation={"ks": [10], "valid_metric": "ndcg@10"})


def tampered(world, name: str, tmp_path: Path, edit) -> Path:
    """A copy of artifact ``name`` with ``edit(folder)`` applied and the manifest signed again."""
    folder = tmp_path / f"{name}-copy"
    shutil.copytree(world["paths"][name], folder)
    edit(folder)
    meta = json.loads((folder / "meta.json").read_text())
    _write_manifest(folder, meta)
    return folder


def edit_json(relative: str, change):
    def edit(folder):
        path = folder / relative
        value = json.loads(path.read_text())
        change(value)
        path.write_text(json.dumps(value))
    return edit


def edit_arrays(change):
    def edit(folder):
        path = folder / "data" / "arrays.npz"
        with np.load(path) as npz:
            arrays = {k: npz[k] for k in npz.files}
        change(arrays)
        np.savez_compressed(path, **arrays)
    return edit


def refused(folder, pattern: str):
    with pytest.raises(ArtifactError, match=pattern) as err:
        xdplug.load(folder)
    assert "Traceback" not in str(err.value)
    return str(err.value)


def test_the_untampered_artifacts_load(world):
    assert xdplug.load(world["paths"]["id"]).recommend(user=xdplug.load(world["paths"]["id"]).users[0], k=3)
    assert len(xdplug.load(world["paths"]["EASE"]).users) == world["data"].n_target_users


# -- ids.json ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["id", "EASE"])
def test_ids_list_emptied(world, tmp_path, name):
    folder = tampered(world, name, tmp_path, edit_json("ids.json", lambda ids: ids.update(users=[])))
    n = world["data"].n_target_users
    message = refused(folder, rf"ids\.json: users: 0 listed; expected {n}, one per entry of data/keys\.json "
                              r"target_users")
    assert message.startswith(str(folder / "ids.json"))


@pytest.mark.parametrize("change,pattern", [
    (lambda ids: ids.update(items=[]), r"ids\.json: items: 0 listed; expected \d+"),
    (lambda ids: ids["users"].__setitem__(1, ids["users"][0]), r"ids\.json: users: '[^']+' is listed twice"),
    (lambda ids: ids.update(users=list(range(len(ids["users"])))), r"ids\.json: users: expected a list of strings"),
    (lambda ids: ids.update(align=None), r"ids\.json: align: expected an object"),
    (lambda ids: ids.update(item_aliases={"x": 10**9}), r"ids\.json: item_aliases: expected an object of item "
                                                         r"IDs to catalog rows in \[0, \d+\)"),
    (lambda ids: ids.update(dropped=["u1"]), r"ids\.json: dropped: expected an object"),
])
def test_ids_fields_of_the_wrong_shape(world, tmp_path, change, pattern):
    refused(tampered(world, "id", tmp_path, edit_json("ids.json", change)), pattern)


def test_ids_and_keys_emptied_together(world, tmp_path):
    """Emptied consistently, the counts agree: the data itself must have users."""
    def edit(folder):
        edit_json("ids.json", lambda ids: ids.update(users=[]))(folder)
        edit_json("data/keys.json", lambda keys: keys.update(target_users=[]))(folder)
    refused(tampered(world, "EASE", tmp_path, edit), r"data/keys\.json: target_users: empty; an artifact serves "
                                                     r"at least one target user and item")


@pytest.mark.parametrize("change,pattern", [
    (lambda keys: keys.update(texts=keys["texts"][:-1]), r"keys\.json: texts: \d+ texts for \d+ catalog items"),
    (lambda keys: keys.update(catalog="abc"), r"keys\.json: catalog: expected a list of strings, got str"),
    (lambda keys: keys.pop("source_items"), r"keys\.json: source_items: expected a list of strings, got NoneType"),
])
def test_keys_of_the_wrong_shape(world, tmp_path, change, pattern):
    refused(tampered(world, "EASE", tmp_path, edit_json("data/keys.json", change)), pattern)


# -- data/arrays.npz ------------------------------------------------------------------------------

def _set(name, row, col, value):
    def change(arrays):
        arrays[name][row, col] = value
    return change


@pytest.mark.parametrize("name", ["id", "EASE"])
def test_an_out_of_range_index_in_arrays(world, tmp_path, name):
    n = world["data"].n_target_users
    folder = tampered(world, name, tmp_path, edit_arrays(_set("target_train", 0, 0, 10**6)))
    message = refused(folder, rf"arrays\.npz: target_train \(users\): index 1000000 out of range; expected target "
                              rf"user indices in \[0, {n}\)")
    assert message.startswith(str(folder / "data" / "arrays.npz"))


@pytest.mark.parametrize("change,pattern", [
    (_set("target_test", 2, 1, -1), r"target_test \(items\): index -1 out of range; expected target item indices"),
    (lambda a: a.update(source_train=np.array([[0, 10**7]])), r"source_train \(items\): index 10000000 out of range; "
                                                              r"expected source item"),
    (lambda a: a["catalog_target_rows"].__setitem__(0, 10**6), r"catalog_target_rows: index 1000000 out of range; "
                                                               r"expected catalog rows"),
    (lambda a: a.update(cold_items=np.array([10**6])), r"cold_items: index 1000000 out of range"),
    (lambda a: a.update(catalog_target_rows=a["catalog_target_rows"][:-1]),
     r"catalog_target_rows: \d+ entries; expected \d+, one per target item of data/keys\.json"),
    (lambda a: a.update(target_train=a["target_train"].astype(np.float64)),
     r"target_train: expected \[n, 2\] integer \(user, item\) pairs, got shape \(\d+, 2\) of float64"),
    (lambda a: a.update(target_valid=a["target_valid"][:, :1]), r"target_valid: expected \[n, 2\] integer"),
    (lambda a: a.pop("target_test"), r"target_test: missing; not a complete artifact"),
    (lambda a: a.update(extra=np.zeros(3, dtype=np.int64)), r"foreign array 'extra'"),
])
def test_arrays_of_the_wrong_shape_or_range(world, tmp_path, change, pattern):
    refused(tampered(world, "id", tmp_path, edit_arrays(change)), r"arrays\.npz: " + pattern)


def _npy(shape, dtype, payload: bytes) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                                  "fortran_order": False, "shape": shape})
    return buffer.getvalue() + payload


def test_a_tampered_array_size_is_refused_before_anything_is_allocated(world, tmp_path, monkeypatch):
    """A header declaring 2**28 pairs (4 GiB of int64) over a few real bytes: np.load would allocate the
    declared size before its short read failed. Refused from the headers, np.load never called."""
    def edit(folder):
        path = folder / "data" / "arrays.npz"
        with np.load(path) as npz:
            arrays = {k: npz[k] for k in npz.files}
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, value in arrays.items():
                payload = value.tobytes()
                shape = (2**28, 2) if name == "target_train" else value.shape
                archive.writestr(f"{name}.npy", _npy(shape, value.dtype, payload))

    folder = tampered(world, "id", tmp_path, edit)

    def no_load(*args, **kwargs):
        raise AssertionError("np.load called before the declared sizes were checked")

    monkeypatch.setattr(np, "load", no_load)
    refused(folder, r"arrays\.npz: target_train: its header declares shape \(268435456, 2\) \(4,294,967,296 "
                    r"bytes of int64\) but the archive holds [\d,]+ bytes for it; the archive was tampered with")


def test_a_consistent_but_oversized_array_is_refused_by_the_counts(world, tmp_path):
    n_items = world["data"].n_target_items
    folder = tampered(world, "id", tmp_path, edit_arrays(
        lambda a: a.update(cold_items=np.zeros(n_items + 1, dtype=np.int64))))
    refused(folder, rf"cold_items: {n_items + 1:,} entries; at most {n_items:,} fit the users and items")


def test_an_archive_that_is_not_npz(world, tmp_path):
    folder = tampered(world, "id", tmp_path, lambda f: (f / "data" / "arrays.npz").write_bytes(b"not a zip"))
    refused(folder, r"arrays\.npz: not a readable \.npz archive \(BadZipFile")


# -- meta.json -----------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [-1, 2**70, 2**32])
def test_meta_seed_out_of_range(world, tmp_path, seed):
    folder = tampered(world, "id", tmp_path, edit_json("meta.json", lambda m: m.update(seed=seed)))
    message = refused(folder, rf"meta\.json: seed: expected an integer in \[0, 4294967295\] \(a config's seeds\), "
                              rf"got {seed}")
    assert message.startswith(str(folder / "meta.json"))


@pytest.mark.parametrize("field,value,pattern", [
    ("seed", True, r"seed: expected int, got True"),
    ("seed", "7", r"seed: expected int, got '7'"),
    ("version", "2", r"version: expected a positive integer, got '2'"),
    ("version", 0, r"version: expected a positive integer, got 0"),
    ("updates", {}, r"updates: expected an object \(model\) and a list \(updates\)"),
])
def test_meta_fields_of_the_wrong_type(world, tmp_path, field, value, pattern):
    refused(tampered(world, "id", tmp_path, edit_json("meta.json", lambda m: m.update({field: value}))),
            r"meta\.json: " + pattern)


def test_a_tampered_user_count_is_refused_before_the_model_allocates_it(world, tmp_path, monkeypatch):
    """``model.n_union_users`` sizes the user-ID embedding: 2**27 rows of dim 8 would be 4 GiB of floats,
    allocated before the weights were found not to fit. Refused before any model is built."""
    data = world["data"]
    high = data.n_target_users + data.n_source_users
    folder = tampered(world, "id", tmp_path, edit_json("meta.json", lambda m: m["model"].update(n_union_users=2**27)))

    def no_build(*args, **kwargs):
        raise AssertionError("the model was built before the user count was checked")

    monkeypatch.setattr("xdplug.artifact.recommender.build_strategy_model", no_build)
    refused(folder, rf"meta\.json: model\.n_union_users: 134217728; expected 1 to {high} \(the target plus the "
                    r"source users of data/keys\.json\)")
    monkeypatch.undo()
    # within the bound, yet not the weights' rows
    folder = tampered(world, "id", tmp_path / "b", edit_json("meta.json", lambda m: m["model"].update(
        n_union_users=high)))
    expected = xdplug.load(world["paths"]["id"]).model.user_id.weight.shape[0]
    refused(folder, rf"model\.n_union_users: {high}; the weights' user_id\.weight has {expected} rows")
    folder = tampered(world, "id", tmp_path / "c", edit_arrays(
        lambda a: a["model_user_rows_target"].__setitem__(0, expected + 5)))
    refused(folder, rf"arrays\.npz: model_user_rows_target: row {expected + 5} out of range; expected rows in "
                    rf"\[0, {expected}\)")


# -- manifest.json -------------------------------------------------------------------------------

@pytest.mark.parametrize("version", ["1", [1], None, 0, True, 1.0])
def test_manifest_format_version_of_the_wrong_type(world, tmp_path, version):
    folder = tmp_path / "copy"
    shutil.copytree(world["paths"]["EASE"], folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["format_version"] = version
    (folder / "manifest.json").write_text(json.dumps(manifest))
    message = refused(folder, rf"manifest\.json: format_version: expected a positive integer \(this xdplug writes "
                              rf"1\), got {__import__('re').escape(repr(version))}$")
    assert message.startswith(str(folder / "manifest.json"))


# -- weights.pt ----------------------------------------------------------------------------------

def test_all_nan_weights_are_refused_at_load(world, tmp_path, capsys):
    """All-NaN weights scored NaN everywhere: `recommend` printed an empty table with exit 0."""
    def edit(folder):
        state = torch.load(folder / "weights.pt", weights_only=True)
        torch.save({k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in state.items()},
                   folder / "weights.pt")

    folder = tampered(world, "id", tmp_path, edit)
    refused(folder, r"weights\.pt: [\w.]+: every value is NaN or infinite; expected trained weights")
    user = xdplug.load(world["paths"]["id"]).users[0]
    assert main(["recommend", str(folder), "--user", user]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {folder / 'weights.pt'}: ") and "Traceback" not in err


def test_some_nan_weights_are_refused_naming_the_tensor(world, tmp_path):
    def edit(folder):
        state = torch.load(folder / "weights.pt", weights_only=True)
        state["item_id.embedding.weight" if "item_id.embedding.weight" in state else next(
            k for k, v in state.items() if v.is_floating_point() and v.numel() > 3)].view(-1)[:3] = float("nan")
        torch.save(state, folder / "weights.pt")

    refused(tampered(world, "id", tmp_path, edit), r"weights\.pt: [\w.]+: 3 of \d+ values are NaN; expected finite")


@pytest.mark.parametrize("extras,pattern", [
    ({"whiten_mean": torch.zeros(4), "whiten_matrix": torch.zeros(5, 8)},
     r"whiten_mean \(4,\) and whiten_matrix \(5, 8\) do not fit: expected \[d\] and \[d, k\]"),
    ({"whiten_mean": torch.zeros(4)}, r"expected the tensors whiten_mean and whiten_matrix, got \['whiten_mean'\]"),
    ({"whiten_mean": torch.full((4,), float("nan")), "whiten_matrix": torch.zeros(4, 8)},
     r"whiten_mean: every value is NaN or infinite"),
])
def test_extras_that_do_not_fit(world, tmp_path, extras, pattern):
    folder = tampered(world, "id", tmp_path, lambda f: torch.save(extras, f / "extras.pt"))
    refused(folder, r"extras\.pt: " + pattern)
