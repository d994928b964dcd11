"""Testing harness for xdplug and its plugins.

- :mod:`xdplug.testing.pytest_plugin` is a pytest plugin (entry point
  ``pytest11``, active wherever xdplug is installed) with the fixtures
  ``xdplug_home``, ``plugin_manager``, ``register_plugin``, ``synthetic_data``,
  ``fit_context`` and ``tiny_config``.
- :mod:`xdplug.testing.contracts` holds ``check_<kind>(cls)`` functions and
  the ``<Kind>Contract`` test-case classes that built-in and third-party
  components both subclass.
- :mod:`xdplug.testing.synthetic` is a tiny synthetic cross-domain dataset,
  the dataset recipe ``synthetic`` (registered by the built-in datasets
  plugin, or by the ``plugin_manager`` fixture when that plugin is not loaded).

Importing this package imports neither torch nor RecBole.
"""

from __future__ import annotations

from ..hookspecs import hookimpl
from .contracts import (
    AdaptationContract,
    BaselineContract,
    DatasetContract,
    EncoderContract,
    EvaluatorContract,
    FusionContract,
    check_adaptation,
    check_baseline,
    check_component,
    check_dataset,
    check_encoder,
    check_evaluator,
    check_family,
    check_fusion,
    make_fit_context,
    synthetic_catalog,
    tiny_ranking_result,
)

#: the plugin name the ``plugin_manager`` fixture registers :class:`SyntheticPlugin` under
SYNTHETIC_PLUGIN_NAME = "xdplug-testing"


class SyntheticPlugin:
    """An in-process plugin that registers the ``synthetic`` dataset recipe.

    For managers that do not load the built-in datasets plugin:
    ``Plugins.register(SyntheticPlugin(), name=SYNTHETIC_PLUGIN_NAME)`` makes
    ``dataset: {recipe: synthetic}`` configs valid again.
    """

    __name__ = "xdplug.testing.SyntheticPlugin"

    @hookimpl
    def register_datasets(self, register):
        from .synthetic import SyntheticRecipe

        register(SyntheticRecipe)


__all__ = [
    "AdaptationContract",
    "BaselineContract",
    "DatasetContract",
    "EncoderContract",
    "EvaluatorContract",
    "FusionContract",
    "SYNTHETIC_PLUGIN_NAME",
    "SyntheticPlugin",
    "check_adaptation",
    "check_baseline",
    "check_component",
    "check_dataset",
    "check_encoder",
    "check_evaluator",
    "check_family",
    "check_fusion",
    "make_fit_context",
    "synthetic_catalog",
    "tiny_ranking_result",
]
