"""Metrics with pytorch-ignite's values, accumulated on the device and read back only in compute()."""

from __future__ import annotations

from ignite_async.metrics.accuracy import Accuracy
from ignite_async.metrics.confusion_matrix import ConfusionMatrix, IoU, cmAccuracy, mIoU
from ignite_async.metrics.loss import Loss
from ignite_async.metrics.metric import (
    BatchFiltered,
    BatchWise,
    EpochWise,
    Metric,
    MetricUsage,
    NotComputableError,
    RunningBatchWise,
    RunningEpochWise,
    SingleEpochRunningBatchWise,
)
from ignite_async.metrics.metrics_lambda import MetricsLambda
from ignite_async.metrics.regression import MeanAbsoluteError, MeanSquaredError, RootMeanSquaredError
from ignite_async.metrics.running_average import Average, RunningAverage

__all__ = [
    "Accuracy",
    "Average",
    "BatchFiltered",
    "BatchWise",
    "ConfusionMatrix",
    "EpochWise",
    "IoU",
    "Loss",
    "MeanAbsoluteError",
    "MeanSquaredError",
    "Metric",
    "MetricUsage",
    "MetricsLambda",
    "NotComputableError",
    "RootMeanSquaredError",
    "RunningAverage",
    "RunningBatchWise",
    "RunningEpochWise",
    "SingleEpochRunningBatchWise",
    "cmAccuracy",
    "mIoU",
]
