"""Built-in evaluators, registered like any third-party plugin.

``ranking``, ``beyond-accuracy`` and ``cold-start`` turn one run's
:class:`~xdplug.evaluation.RankingResult` into metrics; ``significance``
compares every method of a report with the reference baseline.
"""

from xdplug.api import hookimpl

from .beyond_accuracy import BeyondAccuracyEvaluator
from .cold_start import ColdStartEvaluator
from .ranking import RankingEvaluator
from .significance import SignificanceEvaluator

__all__ = [
    "BeyondAccuracyEvaluator",
    "ColdStartEvaluator",
    "RankingEvaluator",
    "SignificanceEvaluator",
]


@hookimpl
def register_evaluators(register):
    for cls in (RankingEvaluator, BeyondAccuracyEvaluator, ColdStartEvaluator, SignificanceEvaluator):
        register(cls)
