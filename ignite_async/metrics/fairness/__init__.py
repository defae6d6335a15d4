"""Fairness across groups: pytorch-ignite's ``ignite.metrics.fairness``."""

from __future__ import annotations

from ignite_async.metrics.fairness.accuracy_difference import SubgroupAccuracyDifference
from ignite_async.metrics.fairness.base import SubgroupDifference, SubgroupMetric
from ignite_async.metrics.fairness.demographic_parity import DemographicParityDifference, SelectionRate

__all__ = [
    "DemographicParityDifference",
    "SelectionRate",
    "SubgroupAccuracyDifference",
    "SubgroupDifference",
    "SubgroupMetric",
]
