"""xdplug-mlflow: log xdplug benchmarks to MLflow.

Enabled only when a tracking URI is configured: ``XDPLUG_MLFLOW_TRACKING_URI``
(or, failing that, MLflow's own ``MLFLOW_TRACKING_URI``). Then every finished
run of a benchmark becomes an MLflow run (params, test and validation metrics,
the per-epoch curve as steps, tags), nested under one parent run per config
(experiment: the config's ``name``, or ``XDPLUG_MLFLOW_EXPERIMENT``), and the
written report's files are logged as the parent run's artifacts.

This module only holds the hooks and stays light: MLflow is imported inside
them, and only when a tracking URI is set. A tracking failure is a logged
warning; it never fails a run or the benchmark.
"""

from __future__ import annotations

import logging
import os

from xdplug.api import hookimpl

#: the tracking URI for xdplug alone; MLflow's own variable is the fallback
URI_ENV = "XDPLUG_MLFLOW_TRACKING_URI"
MLFLOW_URI_ENV = "MLFLOW_TRACKING_URI"
#: the experiment name (default: the config's ``name``)
EXPERIMENT_ENV = "XDPLUG_MLFLOW_EXPERIMENT"
#: where a new experiment keeps its artifacts (default: MLflow's, ``./mlruns`` for a database store)
ARTIFACTS_ENV = "XDPLUG_MLFLOW_ARTIFACT_LOCATION"

logger = logging.getLogger("xdplug.mlflow")


def tracking_uri() -> str | None:
    """The configured tracking URI, or None: the plugin then does nothing at all."""
    return os.environ.get(URI_ENV) or os.environ.get(MLFLOW_URI_ENV) or None


@hookimpl
def run_finished(record, config):
    """Log one finished xdplug run as an MLflow run (a child of the config's parent run)."""
    uri = tracking_uri()
    if uri is None:
        return
    from .tracker import tracker_for

    tracker_for(uri).log_run(record, config)


@hookimpl
def report_written(paths, config):
    """Log the report's files as artifacts of the config's parent run, then close it."""
    uri = tracking_uri()
    if uri is None:
        return
    from .tracker import tracker_for

    tracker_for(uri).log_report(paths, config)
