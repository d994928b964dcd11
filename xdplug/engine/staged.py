"""A staged search: an ensemble's components tuned one by one, then its blend weights on stored scores.

``tune_methods`` runs a staged method (``tuning.staged``, plan in ``xdplug/stages.py``) one stage
per round beside the flat searches: stage k's trials fit the strategy with its component alone
(``TuningStage.alone``) and the earlier stages' choices fixed, so the method spends its ``trials``
fits as the controls do. Then, in this process, each tuned component is fitted once more with
every stage's choice and scores every target user; the blend search only weighs those stored
scores (``ModelFamily.blend``, which scores exactly as the fitted blend does) and ranks the
validation split: no fit per blend trial. The blend study's first trials are each component alone
(weight 1, the others 0) and all of them at weight 1, so the blend it returns is never worse on
validation than its best component. A family whose stages refine one model
(``ModelFamily.blends_stages = False``) has no blend: the best stage's model is the result.

Every study lives in the tuning storage beside the flat ones, so a second ``xdplug run`` resumes.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import replace
from pathlib import Path

from ..config import canonical_json
from ..progress import progress_bar
from ..spec import family_class
from ..stages import BLEND_WEIGHT
from .studies import apply_params, counted, open_study, redact, resumed_study, study_name, suggest, summarize

#: users scored per call when the components' scores are stored
SCORE_BATCH = 1024


class StagedSearch:
    """The state of one staged method's search across ``tune_methods``' rounds."""

    def __init__(self, config: dict, mt, url: str):
        self.config, self.mt, self.url = config, mt, url
        self.opened: list[tuple] = []  # (planned stage, its unit's MethodTuning)
        self.results: list[dict] = []  # each finished stage's summary
        self.chosen: dict = {}  # every finished stage's choice

    def unit(self, k: int):
        """Stage ``k`` as a flat search: its component alone, the earlier choices fixed."""
        stage = self.mt.staged.stages[k]
        entry = apply_params(self.mt.entry, {**self.chosen, **stage.stage.alone})
        return replace(self.mt, method=f"{self.mt.method}.{stage.stage.name}", entry=entry, trials=stage.trials,
                       space=stage.space, staged=None, start="sampler")

    def next_stage(self, studies: dict):
        """Close the stage that ran last (its choice joins the fixed values) and open the next:
        ``(tuning, study)``, or None once every stage has run."""
        if self.opened:
            stage, unit = self.opened[-1]
            if len(self.results) < len(self.opened):
                summary = summarize(studies[unit.method], unit, self.url)
                summary["stage"] = stage.stage.name
                self.results.append(summary)
                self.chosen.update(summary["chosen"])
        k = len(self.opened)
        if k == len(self.mt.staged.stages):
            return None
        unit = self.unit(k)
        self.opened.append((self.mt.staged.stages[k], unit))
        return unit, open_study(self.config, unit, self.url)

    def finish(self, spec, registry, progress: bool = True) -> dict:
        """Run the blend search (storing the components' scores when trials are missing); the method's
        ``tuning`` meta: every stage's record, the blend's, the chosen parameters."""
        plan, mt = self.mt.staged, self.mt
        tuned = [(s, r) for s, r in zip(plan.stages, self.results) if "best_value" in r]
        base = {"space": plan.space, "budget": mt.trials, "metric": mt.metric, "direction": "maximize",
                "split": "valid", "storage": redact(self.url), "sampler": f"TPE(seed={mt.sampler_seed})",
                "staged": {"stages": [_stage_record(s, r) for s, r in zip(plan.stages, self.results)]}}
        rows = [dict(row, stage=r["stage"]) for r in self.results for row in r["trials"]]
        if not tuned:
            return {**base, "trials": rows, "chosen": {},
                    "note": "every trial of every stage failed; the method's configured parameters are used"}
        if not plan.blend:
            return {**base, **self._refined(), "trials": rows}
        stages = [s for s, _ in tuned]
        space = {s.stage.weight: dict(BLEND_WEIGHT) for s in stages}
        study = self._blend_study(space, stages)
        missing = plan.blend_trials - len(counted(study))
        if missing > 0:
            BlendScores(self.config, registry, spec, self.chosen, stages, mt).search(study, space, missing, progress)
        alone = _alone(study, stages)
        best = max((t for t in counted(study)[:plan.blend_trials] if t.value is not None and math.isfinite(t.value)),
                   key=lambda t: t.value, default=None)
        blend_rows = [{"number": t.number, "value": t.value, "params": dict(t.params), "state": t.state.name.lower(),
                       "stage": "weights", **({"error": t.user_attrs["error"]} if "error" in t.user_attrs else {})}
                      for t in counted(study)[:plan.blend_trials]]
        weights = dict(best.params) if best else {}
        chosen = dict(self.chosen)
        for s, _ in tuned:
            w = weights.get(s.stage.weight, 0.0)
            chosen.update({s.stage.weight: w} if w > 0 else s.stage.off)
        for s, r in zip(plan.stages, self.results):
            if "best_value" not in r:
                chosen.update(s.stage.off)  # a stage whose every fit failed is left out
        base["staged"]["weights"] = {"budget": plan.blend_trials, "trials": len(blend_rows), "space": space,
                                   "weights": weights, "study": study.study_name,
                                   "best_value": best.value if best else None, "alone": alone}
        out = {**base, "trials": rows + blend_rows, "chosen": chosen, "study": study.study_name}
        if best:
            out["best_value"] = best.value
        return out

    def _refined(self) -> dict:
        """A family whose stages refine one model: the stage with the best validation value (the
        earliest on a tie) gives the result, every choice up to it fixed and its ``alone`` written
        over them, i.e. exactly the model its best trial fitted. So the result is never worse on
        validation than the first stage's best (the core with the later levers off)."""
        best, chosen, result = None, {}, {}
        for planned, r in zip(self.mt.staged.stages, self.results):
            chosen = {**chosen, **r.get("chosen", {})}
            if "best_value" in r and (best is None or r["best_value"] > best):
                best = r["best_value"]
                result = {"chosen": {**chosen, **planned.stage.alone}, "best_value": best, "study": r.get("study"),
                          "stage": planned.stage.name}
        stage = result.pop("stage")
        return {**result, "staged": {"stages": [_stage_record(s, r) for s, r in zip(self.mt.staged.stages, self.results)],
                                     "result": stage}}

    def _blend_study(self, space: dict, stages: list):
        import optuna

        identity = canonical_json({"search": study_name(self.config, self.mt), "chosen": self.chosen,
                                   "stages": [s.stage.name for s in stages]})
        name = f"{self.mt.method}.blend-{hashlib.sha256(identity.encode()).hexdigest()[:12]}"
        sampler = optuna.samplers.TPESampler(seed=self.mt.sampler_seed, n_startup_trials=10)
        # a new study: each component alone, then all at weight 1
        starts = [{p: 1.0 if p == s.stage.weight else 0.0 for p in space} for s in stages]
        starts.append({p: 1.0 for p in space})
        return resumed_study(name, self.url, sampler, starts)


def _stage_record(stage, result: dict) -> dict:
    return {"name": stage.stage.name, "budget": stage.trials, "trials": len(result.get("trials") or []),
            "space": stage.space, "chosen": result.get("chosen") or {}, "best_value": result.get("best_value"),
            "study": result.get("study")}


class BlendScores:
    """The tuned components' stored scores on the first seed's split, and the blend search over them."""

    def __init__(self, config: dict, registry, spec, chosen: dict, stages: list, mt):
        import torch

        from ..recbole.compat import quiet_recbole_logging, resolve_device
        from ..tempdirs import make as scratch_dir
        from .task import fit_context, fit_method, prepare_data

        quiet_recbole_logging()
        self.config, self.registry, self.mt = config, registry, mt
        seed = config["seeds"][0]
        self.device = resolve_device(config["device"])
        self.data = prepare_data(config, registry, seed)
        self.family = family_class(mt.entry, registry, mt.path or mt.method)
        self.scores, known = [], None
        n = self.data.n_target_users
        for stage in stages:
            entry = apply_params(mt.entry, {**chosen, **stage.stage.alone})
            run = replace(spec, run_id=f"{mt.method}.{stage.stage.name}#stored", seed=seed, entry=entry, evaluate_test=False)
            with scratch_dir("blend-scores") as work, torch.no_grad():
                ctx = fit_context(run, config, self.data, self.device, Path(work), tensorboard=False, registry=registry)
                scorer = fit_method(run, config, registry, ctx)
                self.scores.append(torch.cat([
                    scorer.score(torch.arange(i, min(i + SCORE_BATCH, n), device=self.device)).float().cpu()
                    for i in range(0, n, SCORE_BATCH)]))
            item_known = getattr(scorer, "item_known", None)
            if item_known is not None:
                known = item_known if known is None else (known | item_known)
        self.item_known = known
        self.stages = stages

    def value(self, weights: list[float]) -> float | None:
        """The validation metric of the blend with ``weights`` (None: the metric was not recorded)."""
        from ..evaluation import rank_split
        from .task import run_evaluators

        blended = self.family.blend(self.scores, weights)
        ev = self.config["evaluation"]
        result = rank_split(lambda users: blended[users.cpu()].to(self.device), self.data, "valid", ev["ks"],
                            self.device, ev["user_groups"], item_known=self.item_known)
        metrics, _ = run_evaluators(self.config, self.registry, result)
        return metrics.get(self.mt.metric)

    def search(self, study, space: dict, trials: int, progress: bool) -> None:
        """Run ``trials`` blend trials (the enqueued ones first). An interrupted trial is marked FAIL
        (``interrupted``, not counted) and the interrupt goes on up, as in the flat searches."""
        from optuna.trial import TrialState

        bar = progress_bar(trials, f"blend {self.mt.method}", unit="trial", disable=not progress)
        try:
            for _ in range(trials):
                trial = study.ask()
                try:
                    params = suggest(trial, space)
                    weights = [params[s.stage.weight] for s in self.stages]
                    value = self.value(weights) if any(w > 0 for w in weights) else None
                except BaseException:
                    trial.set_user_attr("interrupted", True)
                    study.tell(trial, state=TrialState.FAIL)
                    raise
                if value is None or not math.isfinite(value):
                    trial.set_user_attr("error", "every weight is 0" if not any(w > 0 for w in weights)
                                        else f"validation metric {self.mt.metric!r} is {value}")
                    study.tell(trial, state=TrialState.FAIL)
                else:
                    study.tell(trial, float(value))
                bar.update(1)
        finally:
            bar.close()


def _alone(study, stages: list) -> dict:
    """Each component's validation value alone in the blend (its weight 1, the others 0)."""
    out = {}
    for t in counted(study):
        hot = [s.stage.name for s in stages if t.params.get(s.stage.weight) == 1.0]
        if len(hot) == 1 and sum(t.params.values()) == 1.0 and t.value is not None:
            out.setdefault(hot[0], t.value)
    return out
