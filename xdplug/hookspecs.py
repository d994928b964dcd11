"""Hook specifications: the whole plugin API of xdplug.

Pluggy reads only each function's name and argument names; the signatures and
docstrings are the contract for plugin authors (also rendered in
``docs/plugin_hooks.md``). A hook implementation may accept a subset of the
arguments, so adding an argument later breaks no plugin. A hook
implementation whose name matches no specification (a misspelling such as
``register_encoder``) is an error when the plugin loads (``pm.check_pending``):
the plugin is recorded as failed, and strict mode raises.

Every ``register_*`` hook is a plain collect-all hook: each plugin calls the
``register`` callback once per component it provides. The engine records which
plugin registered what, so a duplicate name names both plugins, and it checks
each class when it registers (name, description, option declarations, declared
capabilities and search space), not when a run uses it.

Plugins import what they need from :mod:`xdplug.api`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import pluggy

if TYPE_CHECKING:  # pragma: no cover - imports for type checkers only
    from pathlib import Path

    from .components import Adaptation, Baseline, DatasetRecipe, Encoder, Evaluator, Fusion, ModelFamily

hookspec = pluggy.HookspecMarker("xdplug")
hookimpl = pluggy.HookimplMarker("xdplug")


@hookspec
def register_encoders(register: Callable[[type[Encoder]], type[Encoder]]) -> None:
    """Register encoder classes, which turn items into vectors.

    :param register: call ``register(cls)`` once per :class:`xdplug.api.Encoder`
        subclass; ``cls.name`` is the name configs use.

    .. note:: ``role`` must be ``"text"`` or ``"id"``. A missing ``name`` or
       ``description``, a class that is not an ``Encoder``, an option default
       outside its own declaration or a ``search_space`` that names no option
       of the class raises :class:`xdplug.api.ComponentDefinitionError` at once.
    """


@hookspec
def register_fusions(register: Callable[[type[Fusion]], type[Fusion]]) -> None:
    """Register fusion classes, which combine the text and ID parts of an item vector.

    :param register: call ``register(cls)`` once per :class:`xdplug.api.Fusion`
        subclass.

    .. note:: ``uses`` must be a non-empty subset of ``{"text", "id"}``.
    """


@hookspec
def register_adaptations(register: Callable[[type[Adaptation]], type[Adaptation]]) -> None:
    """Register adaptation classes: how source knowledge reaches the target domain.

    :param register: call ``register(cls)`` once per :class:`xdplug.api.Adaptation`
        subclass.

    .. note:: ``uses_source`` and ``uses_target`` are bools, not both ``False``;
       ``families`` is a non-empty set of the model family names it runs in.
       ``search_space`` (the embedding family's) and ``closed_form_search_space``
       (a closed-form family's, with ``closed_form(problem)``) give its default tuning ranges.
    """


@hookspec
def register_families(register: Callable[[type[ModelFamily]], type[ModelFamily]]) -> None:
    """Register model family classes: what a strategy's components become and how it is fitted.

    :param register: call ``register(cls)`` once per :class:`xdplug.api.ModelFamily`
        subclass; ``cls.name`` is the value of ``params.model.family``.

    .. note:: ``export`` must be ``"state"``, ``"refit"`` or ``None``; ``search_space``
       paths are ``params.model.OPTION`` of the family's own options. A strategy runs
       in a family only where its adaptation lists the family in ``families``.
    """


@hookspec
def register_evaluators(register: Callable[[type[Evaluator]], type[Evaluator]]) -> None:
    """Register evaluator classes, which turn a method's rankings into metrics.

    :param register: call ``register(cls)`` once per :class:`xdplug.api.Evaluator`
        subclass.

    .. note:: ``scope`` must be ``"run"`` (``evaluate`` one run's rankings) or
       ``"report"`` (``compare`` every finished run against the reference); a
       report-scope evaluator declares its rows' ``row_keys`` (starting with
       ``method``, ``reference``, ``metric``) and the ``p_value_keys`` behind the
       report's significance markers.
    """


@hookspec
def register_baselines(register: Callable[[type[Baseline]], type[Baseline]]) -> None:
    """Register baseline classes: the classic collaborative-filtering controls.

    :param register: call ``register(cls)`` once per :class:`xdplug.api.Baseline`
        subclass.

    .. note:: ``export`` says how an artifact restores the fitted baseline:
       ``"state"`` (implement ``export_state`` and ``restore``), ``"refit"``
       (training-free and deterministic: fitted again at load) or ``None``.
    """


@hookspec
def register_datasets(register: Callable[[type[DatasetRecipe]], type[DatasetRecipe]]) -> None:
    """Register dataset recipes, which prepare a source and a target domain.

    :param register: call ``register(cls)`` once per :class:`xdplug.api.DatasetRecipe`
        subclass.
    """


@hookspec
def run_finished(record: dict, config: dict) -> None:
    """React to one finished benchmark run (for example, send it to a tracker).

    :param record: the run as stored: a ``dict`` with ``run_id``, ``method``,
        ``seed``, ``status`` (``"done"``, ``"failed"`` or ``"not_applicable"``), ``metrics`` and ``error``.
    :param config: the benchmark's validated config (read-only): its ``name``, ``dataset``, ...

    .. note:: Called in the driver process after the run store holds the record.
       An exception here is logged as a warning and never fails the run.
    """


@hookspec
def report_written(paths: dict[str, Path], config: dict) -> None:
    """React to a written report (for example, upload its files to a tracker).

    :param paths: report file kind -> path: ``markdown``, ``html``, ``results``, ``summary``,
        ``json`` and ``per_user``.
    :param config: the validated config the report is of (read-only).

    .. note:: Called in the driver process once every report file is written, by
       ``xdplug run`` (and ``xdplug.run``) and by ``xdplug report``. An exception
       here is logged as a warning and never fails the benchmark or the command.
    """
