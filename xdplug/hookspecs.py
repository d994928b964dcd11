"""Hook specifications: the whole plugin API of xdplug.

Pluggy reads only each function's name and argument names; the docstrings are
the contract for plugin authors (also rendered in ``docs/plugin_hooks.md``).
A hook implementation may accept a subset of the arguments, so adding an
argument later breaks no plugin.

Every ``register_*`` hook is a plain collect-all hook: each plugin calls the
``register`` callback once per component it provides. The engine records which
plugin registered what, so a duplicate name names both plugins.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("xdplug")
hookimpl = pluggy.HookimplMarker("xdplug")


@hookspec
def register_encoders(register) -> None:
    """Register encoder classes, which turn items into vectors.

    :param register: call ``register(cls)`` once per :class:`xdplug.components.Encoder`
        subclass. ``cls.name`` is the name configs use.

    .. note:: Registration checks the class at once: a missing ``name`` or
       ``description``, or a class that is not an ``Encoder``, is an error.
    """


@hookspec
def register_fusions(register) -> None:
    """Register fusion classes, which combine the text and ID parts of an item vector.

    :param register: call ``register(cls)`` once per :class:`xdplug.components.Fusion`
        subclass.
    """


@hookspec
def register_adaptations(register) -> None:
    """Register adaptation classes: how source knowledge reaches the target domain.

    :param register: call ``register(cls)`` once per
        :class:`xdplug.components.Adaptation` subclass.
    """


@hookspec
def register_evaluators(register) -> None:
    """Register evaluator classes, which turn a method's rankings into metrics.

    :param register: call ``register(cls)`` once per
        :class:`xdplug.components.Evaluator` subclass.
    """


@hookspec
def register_baselines(register) -> None:
    """Register baseline classes: the classic collaborative-filtering controls.

    :param register: call ``register(cls)`` once per
        :class:`xdplug.components.Baseline` subclass.
    """


@hookspec
def register_datasets(register) -> None:
    """Register dataset recipes, which prepare a source and a target domain.

    :param register: call ``register(cls)`` once per
        :class:`xdplug.components.DatasetRecipe` subclass.
    """


@hookspec
def run_finished(record) -> None:
    """React to one finished benchmark run (for example, send it to a tracker).

    :param record: the run as stored: a ``dict`` with ``run_id``, ``method``,
        ``seed``, ``status`` (``"done"``, ``"failed"`` or ``"not_applicable"``), ``metrics`` and ``error``.

    .. note:: Called in the driver process after the run store holds the record.
       An exception here is logged as a warning and never fails the run.
    """
