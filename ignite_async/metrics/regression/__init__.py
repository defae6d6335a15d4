"""pytorch-ignite's regression metrics (``ignite.metrics.regression``), accumulated on the device.

Sums are kept as float64 tensors and read back only in ``compute()``; the medians, the geometric mean of
relative errors and the rank correlations keep the examples (as :class:`~ignite_async.metrics.EpochMetric`).
"""

from __future__ import annotations

from ignite_async.metrics.regression._correlation import KendallRankCorrelation, SpearmanRankCorrelation
from ignite_async.metrics.regression._error_sums import (
    CanberraMetric,
    FractionalAbsoluteError,
    FractionalBias,
    GeometricMeanAbsoluteError,
    ManhattanDistance,
    MeanAbsoluteError,
    MeanAbsoluteRelativeError,
    MeanError,
    MeanNormalizedBias,
    MeanSquaredError,
    RootMeanSquaredError,
    WaveHedgesDistance,
)
from ignite_async.metrics.regression._median import (
    GeometricMeanRelativeAbsoluteError,
    MedianAbsoluteError,
    MedianAbsolutePercentageError,
    MedianRelativeAbsoluteError,
)
from ignite_async.metrics.regression._moments import MaximumAbsoluteError, PearsonCorrelation, R2Score

__all__ = [
    "CanberraMetric",
    "FractionalAbsoluteError",
    "FractionalBias",
    "GeometricMeanAbsoluteError",
    "GeometricMeanRelativeAbsoluteError",
    "KendallRankCorrelation",
    "ManhattanDistance",
    "MaximumAbsoluteError",
    "MeanAbsoluteError",
    "MeanAbsoluteRelativeError",
    "MeanError",
    "MeanNormalizedBias",
    "MeanSquaredError",
    "MedianAbsoluteError",
    "MedianAbsolutePercentageError",
    "MedianRelativeAbsoluteError",
    "PearsonCorrelation",
    "R2Score",
    "RootMeanSquaredError",
    "SpearmanRankCorrelation",
    "WaveHedgesDistance",
]
