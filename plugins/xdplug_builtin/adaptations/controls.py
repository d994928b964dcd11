"""The two ends of transfer, as controls: ``target-only`` (no source: the no-transfer control) and
``zero-shot`` (no target training: what the source alone gives). In the item-item family they are the
target's EASE and the source's EASE over the shared items."""

from __future__ import annotations

from xdplug.api import Adaptation

from ._families import FAMILIES


class TargetOnly(Adaptation):
    name = "target-only"
    description = "No transfer: train on the target only (the no-transfer control)"
    uses_source = False
    families = FAMILIES

    def fit(self, session):
        session.train(["target"], phase="target")

    def closed_form(self, problem):
        return problem.target()  # the EASE baseline


class ZeroShot(Adaptation):
    name = "zero-shot"
    description = "Train on the source only, score the target with no target training"
    uses_target = False
    families = FAMILIES

    def fit(self, session):
        session.train(["source"], phase="source", validate_on="source")

    def closed_form(self, problem):
        return problem.source()  # the source's EASE over the shared items
