"""Metrics with pytorch-ignite's values, accumulated on the device and read back only in compute()."""

from __future__ import annotations

from ignite_async.metrics.accuracy import Accuracy
from ignite_async.metrics.confusion_matrix import ConfusionMatrix, IoU, cmAccuracy, mIoU
from ignite_async.metrics.epoch_metric import EpochMetric, EpochMetricWarning
from ignite_async.metrics.fbeta import Fbeta
from ignite_async.metrics.frequency import Frequency
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
from ignite_async.metrics.precision_recall import Precision, Recall
from ignite_async.metrics.ranking import ROC_AUC, AveragePrecision
from ignite_async.metrics.regression import MeanAbsoluteError, MeanSquaredError, RootMeanSquaredError
from ignite_async.metrics.running_average import Average, RunningAverage
from ignite_async.metrics.top_k import TopKCategoricalAccuracy

__all__ = [
    "Accuracy",
    "Average",
    "AveragePrecision",
    "BatchFiltered",
    "BatchWise",
    "ConfusionMatrix",
    "EpochMetric",
    "EpochMetricWarning",
    "EpochWise",
    "Fbeta",
    "Frequency",
    "IoU",
    "Loss",
    "MeanAbsoluteError",
    "MeanSquaredError",
    "Metric",
    "MetricUsage",
    "MetricsLambda",
    "NotComputableError",
    "Precision",
    "ROC_AUC",
    "Recall",
    "RootMeanSquaredError",
    "RunningAverage",
    "RunningBatchWise",
    "RunningEpochWise",
    "SingleEpochRunningBatchWise",
    "TopKCategoricalAccuracy",
    "cmAccuracy",
    "mIoU",
]
