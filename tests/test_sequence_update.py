"""``xdplug update`` of an exported sequence tower: new events appended to the users' sequences in time
order, a new user and a new item, fine-tuned on the grown windows and validated on each user's latest
new events (keep or revert), a bad timestamp refused; recommend reads the grown history."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import xdplug
from xdplug.artifact import update_artifact, write_artifact
from xdplug.config import load_config
from xdplug.data.prepare import prepare
from xdplug.errors import DataError
from xdplug.model.strategy import fit_strategy
from xdplug.testing.contracts import make_fit_context

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {"family": "sequence", "dim": 16, "max_length": 10, "n_layers": 1, "inner_size": 32, "batch_users": 32}


def exported(registry, tmp_path, encoder="id", fusion="id"):
    """A tower fitted on the synthetic next-item data and exported."""
    spec = {"name": "tower", "encoder": encoder, "fusion": fusion, "adaptation": "target-only",
            "params": {"model": TINY}}
    config = load_config(data={"name": "seq", "dataset": {"recipe": "synthetic", "protocol": {"task": "next-item"}},
                               "seeds": [0], "strategies": [spec], "controls": "none"}, registry=registry)
    data = prepare(registry.get("dataset", "synthetic")({}), config["dataset"], 0)
    spec = config["strategies"][0]
    scorer = fit_strategy(spec, registry, make_fit_context(data, tmp_path / "work", epochs=2))
    return write_artifact(tmp_path / "tower", kind="strategy", method="tower", entry=spec, seed=0, config=config,
                          data=data, registry=registry, scorer=scorer)


@pytest.fixture
def tower(xdplug_home, plugin_manager, tmp_path):
    """An ID-item tower, exported."""
    return exported(plugin_manager.registry, tmp_path)


def new_events(rec, tmp_path, rows) -> str:
    path = tmp_path / "new.csv"
    pd.DataFrame(rows, columns=["user", "item", "timestamp"]).to_csv(path, index=False)
    return str(path)


def test_update_appends_new_events_in_time_order(tower, tmp_path, capsys):
    rec = xdplug.load(tower)
    user = rec.users[0]
    u = rec.user_index(user)
    unseen = [rec.items[i] for i in range(len(rec.items)) if not rec._seen[u, i]]
    cue = unseen[0]
    # the user's new events, out of time order in the file; forty users take the new item right after
    # `cue`: twenty of them then take another item, so the new one trains (each user's latest new event is
    # held out to validate on), for the others it is their latest, the one validated on
    rows = [(user, "brand-new", 30), (user, unseen[1], 10), (user, unseen[2], 20)]
    for n, other in enumerate(rec.users[1:41]):
        later = [it for i, it in enumerate(rec.items) if it != cue and not rec._seen[rec.user_index(other), i]]
        events = [cue, "brand-new", later[0]] if n < 20 else [later[0], cue, "brand-new"]
        rows += [(other, it, 100 + t) for t, it in enumerate(events)]  # cue: dropped where they know it
    rows += [("newcomer", unseen[3], 1), ("newcomer", cue, 2)]
    report = update_artifact(tower, new_events(rec, tmp_path, rows), epochs=3, out=tmp_path / "v2")
    assert (report["new_users"], report["new_items"]) == (1, 1)
    assert report["result"] in ("updated", "previous weights (no epoch beat them on the held-out slice)")
    assert set(report["before"]) >= {"ndcg@10", "recall@10"} and report["served"].startswith("version 2 serves")
    v2 = xdplug.load(report["path"])
    # the user's input is their whole timeline, the new events last in time order: it scores as that history
    timeline = [v2.items[i] for i in v2.data.sequences("test")[u]]
    assert timeline[-3:] == [unseen[1], unseen[2], "brand-new"]
    scores, _ = v2.score_history(timeline)
    torch.testing.assert_close(v2.score_users(np.array([u])), scores)
    assert not {r["item"] for r in v2.recommend(user=user, k=len(v2.items))} & {unseen[1], unseen[2], "brand-new"}
    assert [r["item"] for r in v2.recommend(user="newcomer", k=3)] == \
        [r["item"] for r in v2.recommend(history=[unseen[3], cue], k=3)]
    # the new item is recommendable: after `cue`, as a validated user took it (their input before it)
    validated = [v2.items[i] for i in v2.data.sequences("test")[v2.user_index(rec.users[40])]]
    assert validated[-2:] == [cue, "brand-new"]
    assert "brand-new" in [r["item"] for r in v2.recommend(history=validated[:-1], k=10)]
    # a second update appends to the grown timeline (nothing of it is appended twice)
    (tmp_path / "more").mkdir()
    more = new_events(rec, tmp_path / "more", [(user, unseen[7], 1)])
    v3 = xdplug.load(update_artifact(report["path"], more, epochs=1, out=tmp_path / "v3")["path"])
    assert [v3.items[i] for i in v3.data.sequences("test")[u]] == timeline + [unseen[7]]
    # the CLI's --history reads the grown catalog
    from xdplug.cli import main

    history = tmp_path / "history.txt"
    history.write_text("\n".join(validated[:-1]))
    capsys.readouterr()
    assert main(["recommend", report["path"], "--history", str(history), "-k", "10"]) == 0
    assert "brand-new" in capsys.readouterr().out


def test_an_update_that_no_epoch_improves_keeps_the_previous_weights(tower, tmp_path):
    rec = xdplug.load(tower)
    rows = [(user, rec.items[i], t) for user in rec.users[:30] for t, i in enumerate(
        [i for i in range(len(rec.items)) if not rec._seen[rec.user_index(user), i]][:3])]
    report = update_artifact(tower, new_events(rec, tmp_path, rows), epochs=1, learning_rate=10.0,
                             out=tmp_path / "v2")
    assert report["result"] == "previous weights (no epoch beat them on the held-out slice)"
    assert report["after"] == report["before"] and report["held_out"] == 30
    old, new = xdplug.load(tower).model.state_dict(), xdplug.load(report["path"]).model.state_dict()
    for key, value in old.items():
        torch.testing.assert_close(new[key], value)


def test_a_bad_timestamp_is_one_clear_error(tower, tmp_path):
    rec = xdplug.load(tower)
    path = new_events(rec, tmp_path, [(rec.users[0], rec.items[0], 5), (rec.users[1], rec.items[1], "soon")])
    with pytest.raises(DataError, match=r"new\.csv, field 'timestamp': expected numbers or dates, got 'soon' "
                                        r"\(row 2\)"):
        update_artifact(tower, path, out=tmp_path / "v2")
    path = new_events(rec, tmp_path, [(rec.users[0], rec.items[0], 5), (rec.users[1], rec.items[1], "")])
    with pytest.raises(DataError, match=r"field 'timestamp': expected a time \(a number or a date\), got an empty "
                                        r"cell \(row 2, line 3 of the file\)"):
        update_artifact(tower, path, out=tmp_path / "v2")


def test_a_text_tower_scores_a_new_item_through_its_text(xdplug_home, plugin_manager, tmp_path):
    from xdplug.artifact.update import _new_item_texts
    from xdplug.model.strategy import build_strategy

    folder = exported(plugin_manager.registry, tmp_path, encoder="bert", fusion="gate")
    rec = xdplug.load(folder)
    # the new item is only ever some users' latest event: held out, so no training sequence holds it
    rows = [(user, rec.items[i], 100 + t) for user in rec.users[:10] for t, i in enumerate(
        [i for i in range(len(rec.items)) if not rec._seen[rec.user_index(user), i]][:2])]
    rows += [(user, "t-new", 200) for user in rec.users[:10]]
    items = tmp_path / "items.csv"
    pd.DataFrame({"item": ["t-new"], "title": ["Space Adventure Story 99"], "year": ["1999"],
                  "genres": ["space adventure"]}).to_csv(items, index=False)
    report = update_artifact(folder, new_events(rec, tmp_path, rows), items=items, epochs=1, out=tmp_path / "v2")
    v2 = xdplug.load(report["path"])
    row = v2.data.catalog.target_rows[v2.items.index("t-new")]
    assert not bool(v2.model.id_known[row])  # its ID never trained: the fusion reads its text only
    encoder = build_strategy(v2.meta["spec"], plugin_manager.registry, "strategy")[0]
    text = v2.data.catalog.texts[row]
    torch.testing.assert_close(v2.model.text_encoder.table[row], _new_item_texts(encoder, [text], v2.extras, "cpu")[0])
    scores, _ = v2.score_history([rec.items[0], rec.items[1]])
    assert torch.isfinite(scores[0, v2.items.index("t-new")])
    assert "t-new" in [r["item"] for r in v2.recommend(history=[rec.items[0]], k=len(v2.items))]
