"""A third party adds a model family and an adaptation with a closed form: no name of them in the core.

The one-file example plugin (``examples/one_file_plugin.py``) registers the ``item-popularity``
family (scores every user with the items' training counts, the source's added with the family's
``source_weight`` where the adaptation uses the source) and the ``blend`` adaptation, which runs
in it and carries its own closed form in the item-item family:
``B = (1 - mix) EASE(G_t) + mix EASE(G_s)``. Both run through the grid, tuning, export, recommend
and update like the built-ins.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from xdplug.api import ConfigError
from xdplug.engine.runner import run_benchmark

CORE = Path(__file__).resolve().parents[1] / "xdplug"
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "one_file_plugin.py"


def load_example():
    """The one-file plugin, imported from its path (it is not installed: one file, no package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("one_file_plugin", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


one_file_plugin = load_example()
Blend = one_file_plugin.Blend


BLEND = {"name": "blend-ease", "encoder": "id", "fusion": "id", "adaptation": "blend",
         "params": {"model": {"family": "ease", "reg_weight": 20.0, "source_reg_weight": 30.0},
                    "adaptation": {"mix": 0.25}}}
POPULARITY = {"name": "popularity", "encoder": "id", "fusion": "id", "adaptation": "blend",
              "params": {"model": {"family": "item-popularity"}}}


@pytest.fixture
def family_plugin(register_plugin):
    """The one-file plugin, registered as a module (its hooks are module-level functions)."""
    return register_plugin(one_file_plugin, name="one-file")


def test_the_core_names_neither(family_plugin):
    for file in CORE.rglob("*.py"):
        text = file.read_text()
        assert "item-popularity" not in text and '"blend"' not in text, file


def test_blend_is_its_closed_form(family_plugin, plugin_manager, synthetic_data, fit_context):
    from xdplug.model.strategy import fit_strategy

    data = synthetic_data
    scorer = fit_strategy(BLEND, plugin_manager.registry, fit_context)
    x = np.zeros((data.n_target_users, data.n_target_items))
    x[data.target_train[:, 0], data.target_train[:, 1]] = 1
    to_target = dict(zip(data.shared_items[:, 1], data.shared_items[:, 0]))
    xs = np.zeros((data.n_source_users, data.n_target_items))
    for u, i in data.source_train:
        if i in to_target:
            xs[u, to_target[i]] = 1

    def ease_np(g, reg):
        p = np.linalg.inv(g + reg * np.eye(len(g)))
        b = -p / np.diag(p)
        np.fill_diagonal(b, 0)
        return b

    b = 0.75 * ease_np(x.T @ x, 20.0) + 0.25 * ease_np(xs.T @ xs, 30.0)
    users = torch.arange(data.n_target_users)
    np.testing.assert_allclose(scorer.score(users).numpy(), x @ b, rtol=1e-4, atol=1e-5)


def test_family_and_adaptation_checks_name_the_key(family_plugin, tiny_config):
    with pytest.raises(ConfigError, match=r"strategies\[0\]\.adaptation: 'dann' does not run in params\.model\."
                                           r"family: item-popularity .*adaptations that do: blend"):
        tiny_config(strategies=[dict(POPULARITY, adaptation="dann")])
    with pytest.raises(ConfigError, match=r"strategies\[0\]\.params\.model\.reg_weight: unknown option for family "
                                           r"'item-popularity'; allowed: source_weight"):
        tiny_config(strategies=[dict(POPULARITY, params={"model": {"family": "item-popularity",
                                                                    "reg_weight": 1.0}})])
    with pytest.raises(ConfigError, match=r"strategies\[0\]\.encoder: item-popularity counts item IDs"):
        tiny_config(strategies=[dict(POPULARITY, encoder="bert", fusion="text")])


def test_grid_tuning_export_recommend_and_update(family_plugin, plugin_manager, tiny_config, tmp_path):
    from xdplug.artifact import export_run, load_artifact, update_artifact
    from xdplug.engine.plan import expand

    config = tiny_config(strategies=[BLEND, dict(POPULARITY, tuning={"trials": 2})])
    run_benchmark(config, plugin_manager, progress=False)
    from xdplug.store import RunStore
    from xdplug.engine.plan import store_path

    store = RunStore(store_path(config))
    try:
        specs = expand(config, plugin_manager.registry)
        runs = {(r["method"], r["seed"]): r for r in store.runs([s.run_id for s in specs])}
    finally:
        store.close()
    for method in ("blend-ease", "popularity"):
        run = runs[(method, 0)]
        assert run["status"] == "done", run["error"]
        assert 0 < run["metrics"]["test"]["ndcg@10"] <= 1
    # the tuned family searched its own option (its search_space), and the run stores the value it chose
    assert 0 <= runs[("popularity", 0)]["spec"]["params"]["model"]["source_weight"] <= 1
    for method in ("blend-ease", "popularity"):
        folder, report = export_run(config, method, seed=0, out=tmp_path / method,
                                    registry=plugin_manager.registry)
        assert report["reproduction"]["match"] and report["roundtrip"]["topk_match"]
        rec = load_artifact(folder, registry=plugin_manager.registry)
        user = rec.ids["users"][0]
        recs = rec.recommend(user=user, k=3)
        assert len(recs) == 3 and all(r["item"] in rec.ids["items"] for r in recs)
        # update: a family without weights is fitted again on the grown data (a new user, a new item)
        new = tmp_path / f"{method}-new.csv"
        rows = [(u, i) for u in rec.ids["users"][:30] for i in rec.ids["items"][:40:9]] + [("newbie", "fresh")] * 2
        new.write_text("user,item\n" + "".join(f"{u},{i}\n" for u, i in rows))
        update = update_artifact(folder, new, registry=plugin_manager.registry)
        assert update["result"] == "refitted" and update["new_users"] == 1 and update["new_items"] == 1
        assert update["validation_users"] > 0 and 0 <= update["after"]["ndcg@10"] <= 1
        grown = load_artifact(update["path"], registry=plugin_manager.registry)
        assert grown.meta["version"] == 2 and "fresh" in grown.ids["items"]
        assert len(grown.recommend(user="newbie", k=3)) == 3


def test_the_id_part_comes_from_the_encoder_params_model_id_encoder_names(plugin_manager):
    from xdplug.spec import resolve_strategy

    entry = {"encoder": "bert", "fusion": "gate", "adaptation": "target-only",
             "params": {"model": {"id_encoder": "bert"}}}
    with pytest.raises(ConfigError, match=r"s\.params\.model\.id_encoder: encoder 'bert' gives 'text' vectors; "
                                           r"the ID part needs an encoder with role 'id'"):
        resolve_strategy(entry, plugin_manager.registry, "s")
    entry["params"]["model"]["id_encoder"] = "id"
    assert resolve_strategy(entry, plugin_manager.registry, "s").options["id_encoder"] == "id"


def test_the_adaptation_contract_fits_a_closed_form_only_adaptation(synthetic_data):
    """Blend lists no embedding family: the contract fits it in the first installed family it lists (ease)."""
    from xdplug.testing import check_adaptation

    scorer = check_adaptation(Blend, {"mix": 0.5}, data=synthetic_data)
    assert type(scorer).__name__ == "ItemItemScorer"
