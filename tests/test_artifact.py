"""Artifacts: export -> load -> recommend equals the trained model; history users; tampering; update.

One text strategy, EASE and BPR are trained once on the synthetic fixture
(genre-driven: an item's genre is in its text) and written as artifacts; each
test works on its own copy where it changes files.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

import xdplug
from xdplug.artifact import export_run, update_artifact, verify_artifact, write_artifact
from xdplug.cli import main
from xdplug.config import load_config
from xdplug.context import FitContext
from xdplug.errors import ArtifactError, DataError, RunError, XdplugError
from xdplug.testing.synthetic import GENRES

EASE_STRATEGY = {"name": "ease-l2sp", "encoder": "id", "fusion": "id", "adaptation": "l2sp",
                 "params": {"model": {"family": "ease", "reg_weight": 20.0}, "adaptation": {"weight": 30.0}}}
STRATEGY = {"name": "text", "encoder": "bert", "fusion": "text", "adaptation": "target-only",
            "params": {"model": {"dim": 16, "batch_users": 16}}}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def world(artifact_world):
    """Prepared synthetic data; the text strategy, an EASE strategy and four baselines as artifacts."""
    return artifact_world("art", {
        "text": STRATEGY, "ease-l2sp": EASE_STRATEGY, "EASE": {"baseline": "EASE"},
        "BPR": {"baseline": "BPR", "params": {"epochs": 1}}, "ItemKNN": {"baseline": "ItemKNN"},
        "Pop": {"baseline": "Pop"},
    }, train={"epochs": 10, "learning_rate": 0.01, "stopping_step": 3},
        evaluation={"ks": [5, 10], "valid_metric": "ndcg@10", "user_groups": [5, 10]})


def test_a_closed_form_strategy_is_fitted_again_on_the_grown_data(world, tmp_path):
    """ease-l2sp has no weights (its family refits at load): its update writes the grown data, and the new
    version scores like the closed form fitted on it."""
    from xdplug.model.strategy import fit_strategy
    from xdplug.plugins import make_plugin_manager

    data = world["data"]
    rec = xdplug.load(world["paths"]["ease-l2sp"])
    seen = {tuple(p) for p in np.concatenate([data.target_train, data.target_valid, data.target_test]).tolist()}
    rows = [(rec.users[u], rec.items[i]) for u in range(20) for i in range(0, len(rec.items), 7) if (u, i) not in seen]
    new = tmp_path / "new.csv"
    pd.DataFrame(rows, columns=["user", "item"]).to_csv(new, index=False)
    report = update_artifact(copy_of(world, "ease-l2sp", tmp_path), new, holdout=0.0)
    assert report["result"] == "refitted" and report["new_interactions"] == len(rows)
    assert "fitted again from its data when loaded" in report["served"]
    grown = xdplug.load(report["path"])
    assert len(grown.data.target_train) == len(data.target_train) + len(rows)
    ctx = FitContext(data=grown.data, seed=0, device=torch.device("cpu"), train=world["config"]["train"],
                     evaluation=world["config"]["evaluation"], workdir=tmp_path / "fit")
    expected = fit_strategy(EASE_STRATEGY, make_plugin_manager().registry, ctx).score(torch.arange(5))
    np.testing.assert_allclose(grown.score_users(np.arange(5)).numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)


def copy_of(world, name, tmp_path) -> Path:
    target = tmp_path / name
    shutil.copytree(world["paths"][name], target)
    return target


def genre_of(text: str) -> str:
    return next(g for g in GENRES if g in text)


def in_memory_topk(world, name, users, k=10):
    data = world["data"]
    scores = world["scorers"][name].score(torch.as_tensor(users)).to(torch.float32).clone()
    seen = np.concatenate([data.target_train, data.target_valid, data.target_test])
    for row, u in enumerate(users):
        scores[row, torch.as_tensor(seen[seen[:, 0] == u, 1])] = -torch.inf
    values, index = torch.topk(scores, k, dim=1)
    return values.numpy(), index.numpy()


# -- export -> load -> recommend ---------------------------------------------------------

@pytest.mark.parametrize("name", ["text", "EASE", "BPR", "ease-l2sp"])
def test_loaded_artifact_recommends_exactly_the_trained_models_topk(world, name):
    rec = xdplug.load(world["paths"][name])
    users = np.arange(12)
    values, index = in_memory_topk(world, name, users)
    for row, u in enumerate(users):
        got = rec.recommend(user=rec.users[u], k=10)
        assert [g["item"] for g in got] == [rec.items[i] for i in index[row]], (name, u)
        assert np.allclose([g["score"] for g in got], values[row], rtol=1e-5, atol=1e-6)
        assert all(g["text"] == rec.texts[rec.items.index(g["item"])] for g in got)


def test_artifact_layout_and_meta(world):
    folder = world["paths"]["text"]
    manifest = verify_artifact(folder)
    assert set(manifest["files"]) == {"meta.json", "weights.pt", "ids.json", "data/arrays.npz",
                                      "data/keys.json", "data/summary.json"}
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["spec"] == STRATEGY and meta["config_hash"] and meta["versions"]["torch"]
    assert meta["encoder"]["name"] == "bert" and meta["encoder"]["text_cache_key"].startswith("bert-")
    assert meta["run_id"] == "run-text" and meta["version"] == 1
    keys = json.loads((folder / "data" / "keys.json").read_text())
    assert keys["target_users"] == world["data"].keys["target_users"] and len(keys["texts"]) == len(keys["catalog"])
    state = torch.load(folder / "weights.pt", weights_only=True)
    assert "text_encoder.table" in state  # the frozen text vectors travel with the weights


def test_history_user_gets_the_history_genre(world):
    rec = xdplug.load(world["paths"]["text"])
    shares = {}
    for genre in GENRES:
        history = [it for it, text in zip(rec.items, rec.texts) if genre_of(text) == genre][:3]
        recs = rec.recommend(history=history, k=5)
        assert len(recs) == 5 and not set(history) & {r["item"] for r in recs}
        shares[genre] = sum(genre_of(r["text"]) == genre for r in recs) / 5
    # at random a quarter of the top 5 would share the history's genre
    assert min(shares.values()) >= 0.6 and np.mean(list(shares.values())) >= 0.7, shares


def test_history_of_source_items_reaches_target_items(world):
    """A new user known only from the source domain: its items pool into a vector that ranks target items."""
    rec = xdplug.load(world["paths"]["text"])
    data = world["data"]
    source_only = [k for k in data.keys["source_items"] if k not in set(data.keys["target_items"])]
    texts = {k: data.catalog.texts[data.catalog.source_rows[i]] for i, k in enumerate(data.keys["source_items"])}
    history = [k for k in source_only if genre_of(texts[k]) == GENRES[0]][:3]
    recs = rec.recommend(history=history, k=5)
    assert sum(genre_of(r["text"]) == GENRES[0] for r in recs) >= 3, [r["text"] for r in recs]


def test_seen_items_are_excluded_unless_asked(world):
    rec = xdplug.load(world["paths"]["EASE"])
    data = world["data"]
    user = 3
    pairs = np.concatenate([data.target_train, data.target_valid, data.target_test])
    seen = {rec.items[i] for i in pairs[pairs[:, 0] == user, 1]}
    everything = rec.recommend(user=rec.users[user], k=10_000)
    assert len(everything) == data.n_target_items - len(seen) and not seen & {r["item"] for r in everything}
    with_seen = rec.recommend(user=rec.users[user], k=10_000, exclude_seen=False)
    assert {r["item"] for r in with_seen} == set(rec.items)


def test_recommend_users_in_batches_equals_one_by_one(world):
    rec = xdplug.load(world["paths"]["text"])
    batch = rec.recommend_users(k=5, batch_size=7)
    assert len(batch) == len(rec.users)
    for user in rec.users[:5]:
        assert [r["item"] for r in batch[user]] == [r["item"] for r in rec.recommend(user=user, k=5)]


def test_unknown_users_and_items_are_clear_errors(world):
    rec = xdplug.load(world["paths"]["text"])
    with pytest.raises(ArtifactError, match=r"unknown user 'nobody': not one of the 80 target users"):
        rec.recommend(user="nobody")
    with pytest.raises(ArtifactError, match=r"unknown items 'zzz', 'yyy': not in the catalog"):
        rec.recommend(history=["t1", "zzz", "yyy"])
    with pytest.raises(ArtifactError, match="the history is empty"):
        rec.recommend(history=[])
    with pytest.raises(XdplugError, match="give exactly one of user= .* and history="):
        rec.recommend(user=rec.users[0], history=["t1"])
    with pytest.raises(XdplugError, match="k must be a positive integer, got 0"):
        rec.recommend(user=rec.users[0], k=0)
    bpr = xdplug.load(world["paths"]["BPR"])
    with pytest.raises(ArtifactError, match=r"baseline 'BPR' has no inductive path"):
        bpr.recommend(history=["t1"])


@pytest.mark.parametrize("name", ["EASE", "ItemKNN", "Pop", "ease-l2sp"])
def test_item_based_baselines_score_a_history_like_the_user_it_is(world, name):
    """EASE (x B), ItemKNN (x W) and Pop need no user vector: the history path gives the user's scores."""
    rec = xdplug.load(world["paths"][name])
    data = world["data"]
    for user in (0, 5, 11):
        train = data.target_train[data.target_train[:, 0] == user, 1]
        by_history, _ = rec.score_history([rec.items[i] for i in train])
        assert torch.allclose(by_history[0].float(), rec.score_users(np.array([user]))[0].float(), atol=1e-5)


def test_ease_scores_a_history_like_a_user_with_that_history(world):
    rec = xdplug.load(world["paths"]["EASE"])
    data = world["data"]
    train = data.target_train[data.target_train[:, 0] == 5, 1]
    by_history = rec.recommend(history=[rec.items[i] for i in train], k=15)
    by_user = {r["item"]: r["score"] for r in rec.recommend(user=rec.users[5], k=50)}
    held = np.concatenate([data.target_valid, data.target_test])
    held_items = {rec.items[i] for i in held[held[:, 0] == 5, 1]}
    # EASE scores x B: a history equal to the user's training items scores like the user;
    # only the seen items differ (the user's valid and test items are seen, the history's are not)
    rest = [r for r in by_history if r["item"] not in held_items]
    assert [r["item"] for r in rest] == list(by_user)[: len(rest)]
    assert all(r["score"] == pytest.approx(by_user[r["item"]], abs=1e-5) for r in rest)


# -- the CLI ------------------------------------------------------------------------------

def test_cli_recommend_json_and_table(world, tmp_path, capsys):
    path = str(world["paths"]["text"])
    rec = xdplug.load(path)
    user = rec.users[2]
    assert main(["recommend", path, "--user", user, "-k", "3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(rec.recommend(user=user, k=3)))
    history = tmp_path / "history.txt"
    history.write_text("# a new user\nt1\n\nt5\n")
    assert main(["recommend", path, "--history", str(history), "-k", "2"]) == 0
    header, rule, *rows = capsys.readouterr().out.splitlines()
    assert header.split() == ["rank", "item", "score", "text"] and len(rows) == 2
    assert main(["recommend", path]) == 2
    assert "give exactly one of --user USER" in capsys.readouterr().err
    assert main(["recommend", path, "--user", "nobody"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown user 'nobody'") and "Traceback" not in err


# -- a damaged artifact is a named error -----------------------------------------------------

def test_tampered_missing_and_foreign_files(world, tmp_path):
    folder = copy_of(world, "text", tmp_path)
    weights = folder / "weights.pt"
    blob = bytearray(weights.read_bytes())
    blob[-20] ^= 0xFF
    weights.write_bytes(bytes(blob))
    with pytest.raises(ArtifactError, match=r"weights\.pt: sha256 does not match the manifest"):
        xdplug.load(folder)

    folder = copy_of(world, "EASE", tmp_path)
    (folder / "ids.json").unlink()
    with pytest.raises(ArtifactError, match=r"ids\.json: missing \(listed in the manifest\)"):
        xdplug.load(folder)

    folder = copy_of(world, "EASE", tmp_path / "b")
    (folder / "notes.pt").write_bytes(b"x")
    with pytest.raises(ArtifactError, match=r"notes\.pt: foreign file, not part of the artifact's manifest"):
        xdplug.load(folder)

    folder = copy_of(world, "EASE", tmp_path / "c")
    (folder / "manifest.json").unlink()
    with pytest.raises(ArtifactError, match=r"manifest\.json: missing; .* is not an xdplug artifact"):
        xdplug.load(folder)
    with pytest.raises(ArtifactError, match="no such artifact directory"):
        xdplug.load(tmp_path / "nothing-here")


def _rewrite_manifest(folder):
    from xdplug.artifact.format import _write_manifest

    meta = json.loads((folder / "meta.json").read_text())
    _write_manifest(folder, meta)


class NotATensor:
    pass


def test_weights_are_read_with_weights_only(world, tmp_path):
    """Even with a consistent manifest, weights that are not plain tensors are refused."""
    folder = copy_of(world, "text", tmp_path)
    torch.save({"item_bias": NotATensor()}, folder / "weights.pt")
    _rewrite_manifest(folder)
    with pytest.raises(ArtifactError, match=r"weights\.pt: cannot be read as tensors with "
                                            r"torch\.load\(weights_only=True\)"):
        xdplug.load(folder)
    # weights of another model: the shapes do not fit the spec
    shutil.copy(world["paths"]["EASE"] / "weights.pt", folder / "weights.pt")
    _rewrite_manifest(folder)
    with pytest.raises(ArtifactError, match=r"weights\.pt: the weights do not fit the model built from the "
                                            r"artifact's spec \(missing item_bias"):
        xdplug.load(folder)


# -- update ---------------------------------------------------------------------------------

def new_interactions(world, tmp_path, n_users=40, per_user=4, seed=1):
    """Genre-consistent new interactions of known users, a new user and two new items."""
    rec = xdplug.load(world["paths"]["text"])
    data = world["data"]
    rng = np.random.default_rng(seed)
    seen = np.concatenate([data.target_train, data.target_valid, data.target_test])
    genres = np.array([genre_of(t) for t in rec.texts])
    rows = []
    for u in rng.choice(data.n_target_users, size=n_users, replace=False):
        mine = seen[seen[:, 0] == u, 1]
        favourite = pd.Series(genres[mine]).mode()[0]
        fresh = [i for i in np.flatnonzero(genres == favourite) if i not in set(mine)]
        for i in rng.permutation(fresh)[:per_user]:
            rows.append((rec.users[u], rec.items[i], 5))
    rows += [("newbie", it, 5) for it in ("t1", "t5", "t9", "fresh1")] + [(rec.users[0], "fresh2", 4)]
    path = tmp_path / "new.csv"
    pd.DataFrame(rows, columns=["user", "item", "rating"]).to_csv(path, index=False)
    items = tmp_path / "new_items.csv"
    pd.DataFrame({"item": ["fresh1", "fresh2"], "title": ["Romantic Comedy Story 901", "Crime Thriller Story 902"],
                  "year": ["2024", "2025"], "genres": ["romantic comedy", "crime thriller"]}).to_csv(items, index=False)
    return path, items


def test_update_writes_a_new_version_and_keeps_the_old_one(world, tmp_path):
    folder = copy_of(world, "text", tmp_path)
    before_manifest = (folder / "manifest.json").read_text()
    new, items = new_interactions(world, tmp_path)
    with pytest.raises(DataError, match=r"new items 'fresh1', 'fresh2' are not in the artifact \(new, or dropped "
                                        r"by the preparation's filters\) and the strategy reads item text: give "
                                        r"their fields with --items FILE"):
        update_artifact(folder, new)
    report = update_artifact(folder, new, items=items, epochs=3)
    assert Path(report["path"]) == tmp_path / "text.v2" and report["version"] == 2
    assert report["new_users"] == 1 and report["new_items"] == 2 and report["validation_users"] >= 30
    assert report["after"]["ndcg@10"] >= report["before"]["ndcg@10"]
    # the old version is untouched and still loads
    assert (folder / "manifest.json").read_text() == before_manifest
    old = xdplug.load(folder)
    assert "newbie" not in old.users and "fresh1" not in old.items
    new_rec = xdplug.load(report["path"])
    assert new_rec.meta["parent"]["path"] == str(folder) and new_rec.meta["updates"][-1]["new_items"] == 2
    assert new_rec.texts[new_rec.items.index("fresh1")] == "Romantic Comedy Story 901 (2024). Genres: romantic comedy."
    recs = new_rec.recommend(user="newbie", k=5)
    assert len(recs) == 5 and not {"t1", "t5", "t9", "fresh1"} & {r["item"] for r in recs}
    # known users keep their recommendations' quality: their histories grew, nothing else moved
    assert new_rec.users[: len(old.users)] == old.users and new_rec.items[: len(old.items)] == old.items
    # the same interactions again are nothing new
    with pytest.raises(DataError, match="no new interactions: every row is already known"):
        update_artifact(report["path"], new, items=items)


def test_versions_number_on(tmp_path):
    from xdplug.artifact import next_version_path

    (tmp_path / "m.v2").mkdir()
    assert next_version_path(tmp_path / "m") == tmp_path / "m.v3"
    assert next_version_path(tmp_path / "m.v3") == tmp_path / "m.v4"
    assert next_version_path(tmp_path / "other") == tmp_path / "other.v2"


def test_update_stops_on_the_configured_valid_metric(world, tmp_path, monkeypatch):
    """The fine-tuning is a phase of the training session: it early-stops and keeps weights by the
    artifact's own ``evaluation.valid_metric`` (here recall@5), not by a fixed ndcg@10."""
    import xdplug.model.session as session
    from xdplug.frozen import thaw
    from xdplug.plugins import make_plugin_manager

    config = thaw(world["config"])
    config["evaluation"]["valid_metric"] = "recall@5"
    folder = write_artifact(tmp_path / "recall", kind="strategy", method="text", entry=STRATEGY, seed=0,
                            config=config, data=world["data"], registry=make_plugin_manager().registry,
                            scorer=world["scorers"]["text"], run_id="run-text")
    measured, real = [], session.quick_metric
    monkeypatch.setattr(session, "quick_metric",
                        lambda result, metric, k: measured.append((metric, k)) or real(result, metric, k))
    new, items = new_interactions(world, tmp_path)
    report = update_artifact(folder, new, items=items, epochs=2)
    assert report["valid_metric"] == "recall@5" and report["validation_users"] > 0
    assert measured and set(measured) == {("recall", 5)}  # every validation of the phase, before and after
    assert report["after"]["recall@5"] >= report["before"]["recall@5"]  # the kept weights are the best by it
    assert "recall@5" in report["served"] or report["result"] != "updated"


def test_update_cli_and_baselines(world, tmp_path, capsys):
    folder = copy_of(world, "text", tmp_path)
    new, items = new_interactions(world, tmp_path, n_users=20, per_user=3)
    assert main(["update", str(folder), str(new), "--items", str(items), "--epochs", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"new version 2: {folder}.v2" in out and "ndcg@10:" in out and "before ->" in out
    assert main(["update", str(world["paths"]["EASE"]), str(new)]) == 2
    assert "update fine-tunes strategies; 'EASE' is a baseline" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("person,thing\na,b\n")
    assert main(["update", str(folder), str(bad)]) == 2
    assert "field 'user': missing column 'user'" in capsys.readouterr().err


# -- export from the run store ----------------------------------------------------------------

def test_export_from_the_store_reproduces_the_run(tmp_path, capsys, plugin_manager):
    from xdplug.engine.runner import run_benchmark

    config_path = tmp_path / "cfg.yaml"
    config_path.write_text(yaml.safe_dump({
        "name": "exp", "dataset": {"recipe": "synthetic"}, "seeds": [0], "device": "cpu",
        "evaluation": {"ks": [5, 10], "valid_metric": "ndcg@10", "user_groups": [5, 10], "evaluators": ["ranking"]},
        "train": {"epochs": 2}, "baselines": [{"baseline": "EASE"}, {"baseline": "Pop"}],
        "output": {"dir": str(tmp_path / "out")}}))
    config = load_config(config_path, registry=plugin_manager.registry)
    run_benchmark(config, progress=False)
    assert main(["export", str(config_path), "--method", "EASE", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "(reproduced)" in out
    folder = tmp_path / "out" / "artifacts" / "EASE-0"
    rec = xdplug.load(folder)
    # the artifact is the run: its validation metric, recomputed from the artifact, is the stored one
    from xdplug.artifact.export import _valid_metric
    from xdplug.store import RunStore

    store = RunStore(tmp_path / "out" / "runs.sqlite")
    stored = next(r for r in store.runs() if r["method"] == "EASE")["metrics"]["valid"]["ndcg@10"]
    store.close()
    assert _valid_metric(lambda u: rec.score_users(u.numpy()), rec.data, config, "cpu") == pytest.approx(stored, abs=1e-9)
    assert rec.meta["run_id"] and rec.meta["reproduction"]["match"]
    assert main(["export", str(config_path), "--method", "EASE"]) == 2
    assert "already exists" in capsys.readouterr().err
    with pytest.raises(RunError, match=r"no method 'ItemKNN' in the config; its methods are EASE, Pop"):
        export_run(config, "ItemKNN")
    # --force replaces an artifact and nothing else: the working directory, a user's folder, a folder
    # holding a file the artifact did not write and a link are refused before training, and keep every file
    (tmp_path / "notes.txt").write_text("mine")
    user_folder = tmp_path / "photos"
    user_folder.mkdir()
    (user_folder / "cat.jpg").write_text("meow")
    (tmp_path / "link").symlink_to(folder)
    cases = {".": "is the working directory", str(tmp_path): "is the working directory",
             str(user_folder): "is not an xdplug artifact", str(tmp_path / "notes.txt"): "not an artifact directory",
             str(tmp_path / "link"): "is a symbolic link"}
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path)
        for out, message in cases.items():
            capsys.readouterr()
            assert main(["export", str(config_path), "--method", "EASE", "-o", out, "--force", "--quiet"]) == 2, out
            err = capsys.readouterr().err
            assert message in err and "--force replaces only an artifact" in err, (out, err)
    assert (tmp_path / "notes.txt").read_text() == "mine" and (user_folder / "cat.jpg").read_text() == "meow"
    assert (tmp_path / "cfg.yaml").is_file() and (tmp_path / "out" / "runs.sqlite").is_file()
    (folder / "data" / "extra.csv").write_text("x")
    assert main(["export", str(config_path), "--method", "EASE", "--force", "--quiet"]) == 2
    assert "holds files that are not part of the artifact (data/extra.csv)" in capsys.readouterr().err
    (folder / "data" / "extra.csv").unlink()
    before = (folder / "meta.json").read_text()
    assert main(["export", str(config_path), "--method", "EASE", "--force", "--quiet"]) == 0
    assert (folder / "meta.json").read_text() != before  # replaced (a new created time), and loads
    assert xdplug.load(folder).meta["method"] == "EASE"
    assert not [p.name for p in folder.parent.iterdir() if ".old-" in p.name or ".tmp-" in p.name]


def test_run_store_lock_that_is_a_link_is_refused(tmp_path):
    """A pid is never written through a link into someone else's file."""
    from xdplug.store import lock_path, store_lock

    victim = tmp_path / "somefile"
    victim.write_text("precious")
    store = tmp_path / "runs" / "runs.sqlite"
    store.parent.mkdir()
    lock_path(store).symlink_to(victim)
    with pytest.raises(RunError, match=r"runs\.sqlite\.lock: the run store's lock file is a symbolic link"):
        with store_lock(store):
            pass
    assert victim.read_text() == "precious"
    lock_path(store).unlink()
    lock_path(store).mkdir()
    with pytest.raises(XdplugError, match=r"runs\.sqlite\.lock"):
        with store_lock(store):
            pass


def test_serving_gathers_the_candidate_vectors_once(world):
    """Every request scores against the same loaded vectors: gathered once, regathered after a change."""
    rec = xdplug.load(world["paths"]["text"])
    first = rec.recommend(user=rec.users[0], k=5)
    cached = rec.model._candidate_cache[3]
    assert rec.recommend(user=rec.users[1], k=5) and rec.model._candidate_cache[3] is cached
    assert rec.recommend(user=rec.users[0], k=5) == first
    with torch.no_grad():
        rec._vectors.add_(0.0)  # an in-place change (its version moves): the cache must not answer
    rec.recommend(user=rec.users[0], k=5)
    assert rec.model._candidate_cache[3] is not cached


def test_a_source_only_user_is_named_with_what_to_do(world):
    """Without the source domain's interactions (or a target-only scorer) the error says why, and what works."""
    data = world["data"]
    targets = set(data.keys["target_users"])
    source_only = next(key for key in data.keys["source_users"] if key not in targets)
    with pytest.raises(ArtifactError, match=r"known only in the source domain.*does not keep the source domain's "
                                            r"interactions.*history=\[\.\.\.\]"):
        xdplug.load(world["paths"]["text"]).recommend(user=source_only)
    with pytest.raises(ArtifactError, match=r"known only in the source domain.*baseline 'EASE' scores a user from "
                                            r"target items only"):
        xdplug.load(world["paths"]["EASE"]).recommend(user=source_only)
