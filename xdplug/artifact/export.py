"""Export: a finished run of the store, trained again by the engine's own task, written as an artifact.

``xdplug export`` finds the run in the store, prepares its split and fits its
method with :func:`xdplug.engine.task.fit_method` (the function the runner's
grid cells use), checks the retrained validation metric against the stored one,
writes the artifact directory (aside, then renamed into place) and loads it
back to check that it scores like the model in memory.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..config import config_hash, output_dir, parse_metric, store_path
from ..data.prepare import _item_keys
from ..engine.plan import expand, library_versions
from ..engine.task import fit_context as task_context
from ..engine.task import fit_method, prepare_data
from ..errors import ArtifactError, RunError, XdplugError
from ..evaluation import rank_split
from ..metrics import quick_metric
from ..model.strategy import build_strategy, default_user_rows
from ..paths import prepared_dir
from ..plugins import installed_registry
from ..recbole.compat import quiet_recbole_logging, resolve_device
from ..store import RunStore
from ..textcache import TextEmbeddingCache
from .format import FORMAT, _slug, _write_data, _write_manifest, check_replaceable
from .recommender import export_kind, load_artifact, refitted

logger = logging.getLogger(__name__)


def raw_ids(config: dict, data, registry) -> dict:
    """The target users' and items' IDs as they are in the user's files, plus item aliases.

    Prepared keys carry a domain prefix where entities do not align (``t:42``)
    and a normalised title where items align by key (``k:toy story 1995``).
    For key alignment the recipe is read once more to map keys back to IDs.
    """
    align = data.summary.get("align", {})
    users = [k[2:] if align.get("users") != "id" and k.startswith("t:") else k for k in data.keys["target_users"]]
    mode = align.get("items")
    aliases: dict[str, int] = {}
    item_key = None
    raw = None
    if mode != "key":  # only to tell `update` which IDs the filters dropped: not worth failing an export
        try:
            raw = _raw_domains(config, registry)
        except (XdplugError, OSError) as exc:
            logger.info("the recipe's data could not be read again (%s); the artifact will not know which "
                        "IDs the preparation dropped", exc)
    if mode == "key":
        raw = _raw_domains(config, registry)
        item_key = raw.item_key_field
        row_of = {k: i for i, k in enumerate(data.keys["catalog"])}
        for role, domain in (("target", raw.target), ("source", raw.source)):
            for item, key in _item_keys(raw, domain, role, "key").items():
                if key in row_of:
                    aliases.setdefault(str(item), row_of[key])
        by_row: dict[int, list[str]] = {}
        for item, row in aliases.items():
            by_row.setdefault(row, []).append(item)
        items = []
        for key, row in zip(data.keys["target_items"], data.catalog.target_rows):
            names = sorted(by_row.get(int(row), []))
            items.append(names[0] if names else key)
    else:
        items = [k[2:] if mode != "id" and k.startswith("t:") else k for k in data.keys["target_items"]]
    out = {"align": {"users": align.get("users"), "items": mode, "item_key": item_key},
           "users": users, "items": items,
           "item_aliases": aliases}
    if raw is not None:
        out["dropped"] = dropped_ids(raw, config["dataset"]["protocol"], data, align.get("users"), mode)
    return out


def _raw_domains(config: dict, registry):
    """The recipe's raw domains, read once more (from its cache)."""
    recipe_cls = registry.get("dataset", config["dataset"]["recipe"], "dataset.recipe")
    recipe = recipe_cls(config["dataset"]["params"], "dataset.params")
    cache = prepared_dir() / "raw" / recipe.name
    cache.mkdir(parents=True, exist_ok=True)
    return recipe.load(str(cache))


def dropped_ids(raw, protocol: dict, data, align_users: str | None, align_items: str | None) -> dict:
    """The target's raw user and item IDs the preparation dropped, by reason.

    ``below_min_rating``: every interaction rated below ``protocol["min_rating"]``;
    ``too_few_interactions``: some positives, yet fewer than ``min_user_inter`` /
    ``min_item_inter`` after the iterated filter. ``xdplug update`` tells these
    apart from IDs that are new to the data.
    """
    inter = raw.target.inter
    rating = pd.to_numeric(inter["rating"], errors="coerce")  # raw tables may hold ratings as text
    positive = (rating.isna() | (rating >= protocol["min_rating"])).to_numpy()
    item_keys = _item_keys(raw, raw.target, "target", align_items)
    out = {}
    for kind, column, key_of, kept in (
            ("users", "user", lambda u: u if align_users == "id" else f"t:{u}", set(data.keys["target_users"])),
            ("items", "item", item_keys.get, set(data.keys["target_items"]))):
        ids = inter[column].astype(str)
        with_positive = set(ids[positive])
        dropped = sorted(i for i in pd.unique(ids) if key_of(i) not in kept)
        out[kind] = {"below_min_rating": [i for i in dropped if i not in with_positive],
                     "too_few_interactions": [i for i in dropped if i in with_positive]}
    return out


def encoder_info(entry: dict, registry) -> dict | None:
    """The encoder's name, options and text-cache key (the cache namespace of its vectors)."""
    if "encoder" not in entry:
        return None
    encoder, _, _, _ = build_strategy(entry, registry, "strategy")
    info = {"name": encoder.name, "role": encoder.role, "params": encoder.params}
    if encoder.role == "text" and hasattr(encoder, "model_id"):
        try:
            info["model_id"] = encoder.model_id
            # an encoder whose namespace holds more options than pooling and max_length names it itself
            info["text_cache_key"] = getattr(encoder, "cache_namespace", None) or TextEmbeddingCache.namespace(
                encoder.model_id, encoder.params.get("pooling", "mean"), encoder.params.get("max_length", 64))
        except XdplugError as exc:  # the model files are gone: the artifact still serves known items
            info["model_id"] = None
            info["note"] = str(exc)
    return info


def write_artifact(folder: str | Path, *, kind: str, method: str, entry: dict, seed: int, config: dict,
                   data, registry, scorer=None, model=None, run_id: str | None = None,
                   metrics: dict | None = None, ids: dict | None = None, parent: dict | None = None,
                   updates: list | None = None, version: int = 1, user_rows=None, n_union_users=None,
                   extra_meta: dict | None = None, extras: dict | None = None, overwrite: bool = False) -> Path:
    """Write an artifact directory (aside, then renamed into place) for a fitted method.

    ``extras`` are the tensors a strategy keeps beside its weights (a frozen text table's whitening);
    an update passes on the ones of the version it grew from.
    """
    folder = check_replaceable(folder, overwrite)
    if kind == "strategy" and refitted(entry, registry):
        # the family refits deterministically: loading fits it again from the stored data (source kept)
        state, extra_arrays, extras, keep_source, rebuild = {}, {}, {}, True, "refit"
        n_union_users = data.n_target_users
    elif kind == "strategy":
        model = model if model is not None else scorer.model
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        if user_rows is None:
            user_rows, n_union_users = default_user_rows(data)
        extra_arrays = {"model_user_rows_target": np.asarray(user_rows["target"], dtype=np.int64),
                        "model_user_rows_source": np.asarray(user_rows["source"], dtype=np.int64)}
        # a frozen text table fitted with whitening maps new texts the same way (update)
        whitening = getattr(getattr(model, "text_encoder", None), "whitening", None)
        if whitening is not None:
            extras = {"whiten_mean": torch.as_tensor(whitening[0]), "whiten_matrix": torch.as_tensor(whitening[1])}
        else:
            extras = dict(extras or {})
        # a model whose target users read their source history needs that history to score
        keep_source = bool(getattr(model, "reads_source_history", False))
        rebuild = "state"
    else:
        baseline = registry.get("baseline", entry["baseline"])(entry.get("params"), "baseline.params")
        rebuild = export_kind(baseline)
        state = baseline.export_state(scorer) if rebuild == "state" else {}
        extra_arrays, extras, keep_source = {}, {}, True
    ids = ids if ids is not None else raw_ids(config, data, registry)
    meta = {
        "format": FORMAT, "kind": kind, "method": method, "seed": int(seed), "run_id": run_id,
        "spec": entry, "config": config, "config_hash": config_hash(config),
        "versions": library_versions(), "encoder": encoder_info(entry, registry) if kind == "strategy" else None,
        "rebuild": rebuild, "metrics": metrics or {}, "version": version, "parent": parent,
        "updates": updates or [], "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "text_template": config["dataset"]["text_template"],
        "model": {"n_union_users": int(n_union_users)} if kind == "strategy" else {},
        **(extra_meta or {}),
    }
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".tmp-", dir=folder.parent))
    try:
        torch.save(state, tmp / "weights.pt")
        if extras:
            torch.save(extras, tmp / "extras.pt")
        _write_data(tmp / "data", data, keep_source, extra_arrays)
        (tmp / "ids.json").write_text(json.dumps(ids))
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
        _write_manifest(tmp, meta)
        mask = os.umask(0)
        os.umask(mask)
        for directory in (tmp, tmp / "data"):  # mkdtemp makes them private; an artifact is shared
            os.chmod(directory, 0o777 & ~mask)
        if folder.exists():
            # the old artifact moves aside first: a failure below leaves one of the two in place
            aside = Path(tempfile.mkdtemp(prefix=folder.name + ".old-", dir=folder.parent))
            os.replace(folder, aside / "artifact")
            os.replace(tmp, folder)
            shutil.rmtree(aside, ignore_errors=True)
        else:
            os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def _valid_metric(scorer_fn, data, config, device) -> float:
    metric, k = parse_metric(config["evaluation"]["valid_metric"])
    result = rank_split(scorer_fn, data, "valid", [k], device, config["evaluation"]["user_groups"])
    return quick_metric(result, metric, k)


def export_run(config: dict, method: str, seed: int | None = None, out: str | Path | None = None,
               overwrite: bool = False, progress=None, check_users: int = 64, registry=None) -> tuple[Path, dict]:
    """Export a finished run of the store as an artifact: retrain it from its spec, check, write.

    The run is trained again with its seed on the same prepared split (training is
    seeded end to end, so this reproduces the stored run); its validation metric is
    compared with the stored one, and the written artifact is loaded back and must
    score like the model in memory. Returns the artifact path and a report.
    """
    quiet_recbole_logging()
    registry = installed_registry(registry)
    path = store_path(config)
    if not path.is_file():
        raise RunError(f"no run store at {path}; run `xdplug run` on this config first")
    specs = expand(config, registry)
    methods = sorted({s.method for s in specs})
    chosen = [s for s in specs if s.method == method]
    if not chosen:
        raise RunError(f"no method {method!r} in the config; its methods are {', '.join(methods)}")
    store = RunStore(path)
    try:
        records = {r["run_id"]: r for r in store.runs([s.run_id for s in chosen])}
    finally:
        store.close()
    if seed is not None:
        chosen = [s for s in chosen if s.seed == seed]
        if not chosen:
            raise RunError(f"seed {seed} is not one of the config's seeds {config['seeds']}")
    done = [s for s in chosen if records.get(s.run_id, {}).get("status") == "done"]
    if not done:
        status = records.get(chosen[0].run_id, {}).get("status", "not run")
        raise RunError(f"{method} (seed {chosen[0].seed}) has no finished run in {path} (status: {status}); "
                       "only finished runs can be exported")
    spec = done[0]
    record = records[spec.run_id]
    stored = record.get("spec")
    if isinstance(stored, dict) and stored and stored != spec.entry:
        # the store holds what was trained (a tuned method: its chosen parameters)
        spec = dataclasses.replace(spec, entry=stored)
    out = Path(out) if out else output_dir(config) / "artifacts" / f"{_slug(spec.method)}-{spec.seed}"
    out = check_replaceable(out, overwrite)  # before training: --force replaces an artifact, nothing else
    device = resolve_device(config["device"])
    data = prepare_data(config, registry, spec.seed)
    started = time.perf_counter()
    if progress:
        progress(f"training {spec.method} (seed {spec.seed}) again from its spec")
    with tempfile.TemporaryDirectory(prefix="xdplug-export-") as work:
        if spec.kind == "baseline":  # fail before training when it cannot be exported
            export_kind(registry.get("baseline", spec.entry["baseline"], f"{spec.path}.baseline")(
                spec.entry.get("params"), f"{spec.path}.params"))
        ctx = task_context(spec, config, data, device, Path(work), progress, tensorboard=False, registry=registry)
        scorer = fit_method(spec, config, registry, ctx)
        retrained = _valid_metric(scorer.score, data, config, device)
        metric_name = config["evaluation"]["valid_metric"]
        stored_metric = (record.get("metrics") or {}).get("valid", {}).get(metric_name)
        reproduction = {"valid_metric": metric_name, "stored": stored_metric, "retrained": retrained,
                        "match": stored_metric is not None and abs(stored_metric - retrained) <= 1e-6,
                        "train_seconds": time.perf_counter() - started}
        written = write_artifact(out, kind=spec.kind, method=spec.method, entry=spec.entry, seed=spec.seed,
                                 config=config, data=data, registry=registry, scorer=scorer, run_id=spec.run_id,
                                 metrics=record.get("metrics") or {}, overwrite=overwrite,
                                 extra_meta={"reproduction": reproduction})
        check = check_roundtrip(written, scorer, data, n_users=check_users, registry=registry)
    return written, {"run_id": spec.run_id, "method": spec.method, "seed": spec.seed,
                     "reproduction": reproduction, "roundtrip": check}


def check_roundtrip(folder: Path, scorer, data, n_users: int = 64, k: int = 10, *, registry) -> dict:
    """Load ``folder`` back and compare its top-``k`` with ``scorer``'s for some users."""
    rec = load_artifact(folder, registry=registry)
    users = np.arange(min(n_users, data.n_target_users))
    with torch.no_grad():
        ours = scorer.score(torch.as_tensor(users)).to(torch.float32).cpu()
    theirs = rec.score_users(users).cpu()
    if ours.shape != theirs.shape or not torch.allclose(ours, theirs, rtol=1e-4, atol=1e-4):
        shutil.rmtree(folder, ignore_errors=True)
        raise ArtifactError(f"{folder}: the exported model does not score like the trained one "
                            "(removed); please report this with the method's spec")
    same = bool((torch.topk(ours, min(k, ours.shape[1]), dim=1).indices ==
                 torch.topk(theirs, min(k, theirs.shape[1]), dim=1).indices).all())
    return {"users": len(users), "scores_match": True, "topk_match": same}
