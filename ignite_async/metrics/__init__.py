"""Metrics with pytorch-ignite's values, accumulated on the device and read back only in compute()."""

from __future__ import annotations

from ignite_async.metrics import regression
from ignite_async.metrics.accumulation import GeometricAverage, VariableAccumulation
from ignite_async.metrics.accuracy import Accuracy
from ignite_async.metrics.agreement import CohenKappa, MatthewsCorrCoef
from ignite_async.metrics.classification_report import ClassificationReport
from ignite_async.metrics.confusion_matrix import ConfusionMatrix, IoU, cmAccuracy, mIoU
from ignite_async.metrics.curves import PrecisionRecallCurve, RocCurve
from ignite_async.metrics.distance import CosineSimilarity, MeanPairwiseDistance
from ignite_async.metrics.divergence import Entropy, JSDivergence, KLDivergence
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
from ignite_async.metrics.metric_group import MetricGroup
from ignite_async.metrics.metrics_lambda import MetricsLambda
from ignite_async.metrics.multilabel_confusion_matrix import MultiLabelConfusionMatrix
from ignite_async.metrics.overlap import DiceCoefficient, JaccardIndex
from ignite_async.metrics.perplexity import Perplexity
from ignite_async.metrics.precision_recall import Precision, Recall
from ignite_async.metrics.ranking import ROC_AUC, AveragePrecision
from ignite_async.metrics.rec_sys import NDCG, HitRate
from ignite_async.metrics.regression import MeanAbsoluteError, MeanSquaredError, RootMeanSquaredError
from ignite_async.metrics.running_average import Average, RunningAverage
from ignite_async.metrics.top_k import TopKCategoricalAccuracy
from ignite_async.metrics.torchmetric import TorchMetric
from ignite_async.metrics.vision import PSNR, SSIM

__all__ = [
    "Accuracy",
    "Average",
    "AveragePrecision",
    "BatchFiltered",
    "BatchWise",
    "ClassificationReport",
    "CohenKappa",
    "ConfusionMatrix",
    "CosineSimilarity",
    "DiceCoefficient",
    "Entropy",
    "EpochMetric",
    "EpochMetricWarning",
    "EpochWise",
    "Fbeta",
    "Frequency",
    "GeometricAverage",
    "HitRate",
    "IoU",
    "JSDivergence",
    "JaccardIndex",
    "KLDivergence",
    "Loss",
    "MatthewsCorrCoef",
    "MeanAbsoluteError",
    "MeanPairwiseDistance",
    "MeanSquaredError",
    "Metric",
    "MetricGroup",
    "MetricUsage",
    "MetricsLambda",
    "MultiLabelConfusionMatrix",
    "NDCG",
    "NotComputableError",
    "PSNR",
    "Perplexity",
    "Precision",
    "PrecisionRecallCurve",
    "ROC_AUC",
    "Recall",
    "RocCurve",
    "RootMeanSquaredError",
    "RunningAverage",
    "RunningBatchWise",
    "RunningEpochWise",
    "SSIM",
    "SingleEpochRunningBatchWise",
    "TopKCategoricalAccuracy",
    "TorchMetric",
    "VariableAccumulation",
    "cmAccuracy",
    "mIoU",
    "regression",
]
