"""The MLflow side: one MLflow run per xdplug run, nested under one parent run per config.

Layout in the tracking store:

* experiment: ``$XDPLUG_MLFLOW_EXPERIMENT`` or the config's ``name``;
* parent run (tag ``xdplug.role = benchmark``), one per config hash and reused
  when a benchmark resumes: the config's identity as params, the report's files
  as artifacts under ``report/`` and the config as ``config.json``;
* child run per (method, seed) (tag ``mlflow.parentRunId``): params (``method``,
  ``kind``, ``seed``, ``config_hash``, ``dataset.*``, ``train.*`` and the method's
  spec flattened as ``spec.*``), metrics (``test/<metric>``, ``valid/<metric>``,
  ``time_s``, ``peak_rss_mb`` and the per-epoch curve as steps:
  ``curve/loss``, ``curve/valid_<valid metric>``), tags (``xdplug.status``,
  ``xdplug.run_id``, ``xdplug.notes``, ``xdplug.did_not_learn``, ...).

Metric and param names keep xdplug's, made legal for MLflow: ``ndcg@10`` is
``ndcg_at_10`` and a user group's ``ndcg@10|users 1-5`` is ``test/users 1-5/ndcg_at_10``.

Every call goes through :meth:`Tracker._guard`: a failure (an unreachable
server, a refused file store) is one logged warning, and the tracker skips the
rest of the benchmark instead of waiting on the same server once per run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import time
from pathlib import Path

from xdplug.api import config_hash

from . import ARTIFACTS_ENV, EXPERIMENT_ENV, logger

#: MLflow's run status for each xdplug status
STATUS = {"done": "FINISHED", "failed": "FAILED", "not_applicable": "FINISHED"}
#: MLflow's HTTP client retries an unreachable server for minutes by default; these hold while
#: the plugin calls MLflow, unless the user set them
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
}
PARENT_ROLE = "benchmark"
#: longest param value logged (MLflow 2 and 3 accept 6000; shorter values read better in the UI)
MAX_PARAM = 500
MAX_TAG = 5000
BATCH = 100  # MLflow's limit of params (and tags) per log_batch call
METRIC_BATCH = 1000

_trackers: dict[str, Tracker] = {}


def tracker_for(uri: str) -> Tracker:
    """The process's tracker for ``uri`` (it caches the experiment and the parent run)."""
    if uri not in _trackers:
        _trackers[uri] = Tracker(uri)
    return _trackers[uri]


# -- names and values -------------------------------------------------------------------

def mlflow_name(name: str) -> str:
    """A legal MLflow metric or param name: ``test/ndcg@10`` -> ``test/ndcg_at_10``."""
    name = str(name).replace("@", "_at_")
    name = re.sub(r"[^\w./\- ]", "_", name)
    parts = [p.strip() for p in name.split("/")]
    parts = [p if p not in (".", "..") else p.replace(".", "_") for p in parts if p]
    return "/".join(parts)[:250] or "_"


def metric_name(split: str, name: str) -> str:
    """``test``, ``ndcg@10|users 1-5`` -> ``test/users 1-5/ndcg_at_10``: a user group is a folder beside
    the metrics (the file store keeps a metric as a file, so ``test/ndcg_at_10`` cannot also be one)."""
    metric, _, group = str(name).partition("|")
    return mlflow_name("/".join([split, group, metric] if group else [split, metric]))


def flatten(value, prefix: str) -> dict[str, str]:
    """Nested mappings -> ``{"prefix.a.b": "value"}``; lists and scalars as JSON-ish text."""
    out: dict[str, str] = {}
    if isinstance(value, dict):
        for key, sub in value.items():
            out.update(flatten(sub, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, (list, tuple)):
        text = json.dumps(value, default=str)
    elif value is None or isinstance(value, bool):
        text = json.dumps(value)
    else:
        text = str(value)
    out[prefix] = text if len(text) <= MAX_PARAM else text[: MAX_PARAM - 1] + "…"
    return out


def finite(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def millis(seconds) -> int | None:
    return int(float(seconds) * 1000) if seconds is not None else None


@contextlib.contextmanager
def quiet_mlflow(print_url: bool = False):
    """MLflow without its console output (a run URL per run, INFO lines, deprecation warnings) and
    with short HTTP retries, unless the user set them; everything is put back afterwards."""
    import warnings

    import mlflow.tracking  # noqa: F401 - MLflow sets its loggers up on import: before their levels are saved

    env = dict(HTTP_DEFAULTS)
    if not print_url:
        env["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    added = [key for key in env if key not in os.environ]
    # MLflow's INFO lines, and urllib3's line per retry of an unreachable server (the plugin warns once)
    loggers = {logging.getLogger("mlflow"): logging.WARNING, logging.getLogger("urllib3.connectionpool"): logging.ERROR}
    levels = {lg: lg.level for lg in loggers}
    try:
        for key in added:
            os.environ[key] = env[key]
        for lg, quiet in loggers.items():
            lg.setLevel(max(quiet, lg.level))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        for key in added:
            os.environ.pop(key, None)
        for lg, level in levels.items():
            lg.setLevel(level)


class Tracker:
    """Logs to one tracking URI."""

    def __init__(self, uri: str):
        self.uri = uri
        self._client = None
        self._experiments: dict[str, str] = {}
        self._parents: dict[tuple[str, str], str] = {}
        #: the first failure's message; later calls are skipped until the report is written
        self.broken: str | None = None

    # -- the hooks --------------------------------------------------------------------
    def log_run(self, record: dict, config: dict) -> None:
        if self.broken:
            return
        with self._guard(f"run {record.get('method')} seed {record.get('seed')}"), quiet_mlflow():
            self._log_run(record, config)

    def log_report(self, paths: dict, config: dict) -> None:
        try:
            if self.broken:
                logger.warning("MLflow: the report of %r is not logged to %s (tracking failed earlier: %s)",
                               config.get("name"), self.uri, self.broken)
                return
            with self._guard(f"the report of {config.get('name')!r}"), quiet_mlflow(print_url=True):
                self._log_report(paths, config)
        finally:  # the next benchmark starts afresh: a server back up, runs deleted in the UI
            self.broken = None
            self._experiments.clear()
            self._parents.clear()

    @contextlib.contextmanager
    def _guard(self, what: str):
        try:
            yield
        except Exception as exc:  # a tracker must never fail a benchmark
            message = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            self.broken = message
            logger.warning("MLflow tracking to %s failed while logging %s (%s); the benchmark goes on "
                           "without MLflow", self.uri, what, message)

    # -- MLflow -----------------------------------------------------------------------
    @property
    def client(self):
        if self._client is None:
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(tracking_uri=self.uri)
        return self._client

    def experiment_id(self, config: dict) -> str:
        name = os.environ.get(EXPERIMENT_ENV) or config["name"]
        if name not in self._experiments:
            experiment = self.client.get_experiment_by_name(name)
            if experiment is None:
                self._experiments[name] = self.client.create_experiment(
                    name, artifact_location=os.environ.get(ARTIFACTS_ENV) or None)
            else:
                if experiment.lifecycle_stage == "deleted":
                    self.client.restore_experiment(experiment.experiment_id)
                self._experiments[name] = experiment.experiment_id
        return self._experiments[name]

    def parent_run(self, experiment_id: str, chash: str, config: dict) -> str:
        """The config's parent run: found by its tags (a resumed benchmark reuses it) or created."""
        key = (experiment_id, chash)
        if key not in self._parents:
            found = self.client.search_runs(
                [experiment_id], max_results=1, order_by=["attributes.start_time DESC"],
                filter_string=f"tags.`xdplug.config_hash` = '{chash}' and tags.`xdplug.role` = '{PARENT_ROLE}'")
            if found:
                run_id = found[0].info.run_id
            else:
                tags = {"xdplug.role": PARENT_ROLE, "xdplug.config_hash": chash, "xdplug.config": config["name"]}
                run_id = self.client.create_run(experiment_id, run_name=f"{config['name']} ({chash[:8]})",
                                                tags=tags).info.run_id
                params = {"config_hash": chash, "seeds": json.dumps(list(config.get("seeds") or []))}
                params.update(flatten(config.get("dataset") or {}, "dataset"))
                params.update(flatten(config.get("train") or {}, "train"))
                params.update(flatten(config.get("evaluation") or {}, "evaluation"))
                self._log_batch(run_id, params=params)
            self._parents[key] = run_id
        return self._parents[key]

    def _log_batch(self, run_id: str, params: dict | None = None, metrics: list | None = None,
                   tags: dict | None = None) -> None:
        from mlflow.entities import Metric, Param, RunTag

        named = {mlflow_name(k): v for k, v in (params or {}).items()}  # one value per legal name
        param_list = [Param(k, v) for k, v in named.items()]
        tag_list = [RunTag(k, v) for k, v in (tags or {}).items()]
        for start in range(0, len(param_list), BATCH):
            self.client.log_batch(run_id, params=param_list[start:start + BATCH])
        for start in range(0, len(tag_list), BATCH):
            self.client.log_batch(run_id, tags=tag_list[start:start + BATCH])
        metric_list = [Metric(name, value, timestamp, step) for name, value, timestamp, step in metrics or []]
        for start in range(0, len(metric_list), METRIC_BATCH):
            self.client.log_batch(run_id, metrics=metric_list[start:start + METRIC_BATCH])

    def _log_run(self, record: dict, config: dict) -> None:
        chash = record.get("config_hash") or config_hash(config)
        experiment_id = self.experiment_id(config)
        parent = self.parent_run(experiment_id, chash, config)
        status = record.get("status") or "done"
        notes = record.get("notes") or ""
        tags = {
            "mlflow.parentRunId": parent,
            "xdplug.run_id": str(record.get("run_id")),
            "xdplug.status": status,
            "xdplug.method": str(record.get("method")),
            "xdplug.kind": str(record.get("kind")),
            "xdplug.seed": str(record.get("seed")),
            "xdplug.config_hash": chash,
            "xdplug.attempts": str(record.get("attempts") or 1),
        }
        if notes:
            tags["xdplug.notes"] = notes[:MAX_TAG]
            tags["xdplug.did_not_learn"] = str("did not learn" in notes).lower()
        if record.get("error"):
            tags["xdplug.error"] = str(record["error"])[-MAX_TAG:]  # a traceback's end says what failed
        description = "\n\n".join(part for part in (notes, record.get("error") and f"```\n{record['error']}\n```")
                                  if part)
        if description:
            tags["mlflow.note.content"] = description[:MAX_TAG]
        started = millis(record.get("started_at"))
        finished = millis(record.get("finished_at")) or int(time.time() * 1000)

        params = {"method": record.get("method"), "kind": record.get("kind"), "seed": record.get("seed"),
                  "config_hash": chash}
        params.update(flatten(config.get("dataset") or {}, "dataset"))
        params.update(flatten(config.get("train") or {}, "train"))
        params.update(flatten(record.get("spec") or {}, "spec"))
        params = {k: v if isinstance(v, str) else str(v) for k, v in params.items()}

        metrics = []
        for split, values in (record.get("metrics") or {}).items():
            for name, value in (values or {}).items():
                if (number := finite(value)) is not None:
                    metrics.append((metric_name(split, name), number, finished, 0))
        for name in ("time_s", "peak_rss_mb"):
            if (number := finite(record.get(name))) is not None:
                metrics.append((name, number, finished, 0))
        metrics += self._curve(record.get("curves") or [], config, started or finished, tags)

        run = self.client.create_run(experiment_id, start_time=started, tags=tags,
                                     run_name=f"{record.get('method')} seed={record.get('seed')}")
        run_id = run.info.run_id
        self._log_batch(run_id, params=params, metrics=metrics)
        self.client.set_terminated(run_id, STATUS.get(status, "FINISHED"), end_time=finished)

    @staticmethod
    def _curve(rows: list[dict], config: dict, start_ms: int, tags: dict) -> list[tuple]:
        """The per-epoch curve as steps, phases one after the other (step = epoch over all phases)."""
        valid_name = mlflow_name("curve/valid_" + str((config.get("evaluation") or {}).get("valid_metric", "")))
        out, clock, phases = [], start_ms, []
        for step, row in enumerate(rows):
            clock += int((finite(row.get("seconds")) or 0.0) * 1000)
            if not phases or phases[-1][0] != row.get("phase"):
                phases.append([row.get("phase"), step, step])
            phases[-1][2] = step
            for name, key in ((valid_name, "valid"), ("curve/loss", "loss")):
                number = finite(row.get(key))
                # a closed-form fit records loss 0.0 for its one "epoch": no loss to plot
                if number is not None and not (key == "loss" and number == 0.0):
                    out.append((name, number, clock, step))
        if phases:
            tags["xdplug.curve_phases"] = "; ".join(f"{p}: steps {a}-{b}" for p, a, b in phases)
        return out

    def _log_report(self, paths: dict, config: dict) -> None:
        chash = config_hash(config)
        parent = self.parent_run(self.experiment_id(config), chash, config)
        for kind, path in paths.items():
            if path and Path(path).is_file():
                self.client.log_artifact(parent, str(path), artifact_path="report")
        self.client.log_text(parent, json.dumps(config, indent=2, default=str), "config.json")
        tags = {}
        try:  # the verdict in one line: the run list in MLflow then says what the report concluded
            verdict = json.loads(Path(paths["json"]).read_text())["verdict"]
            tags["mlflow.note.content"] = str(verdict.get("text", ""))[:MAX_TAG]
            for key in ("best_method", "best_baseline", "metric", "significant"):
                if verdict.get(key) is not None:
                    tags[f"xdplug.{key}"] = str(verdict[key])
        except (KeyError, TypeError, ValueError, AttributeError, OSError):
            pass
        if tags:
            self._log_batch(parent, tags=tags)
        self.client.set_terminated(parent, "FINISHED")
