"""Metrics with pytorch-ignite's values, accumulated on the device and read back only in compute()."""

from __future__ import annotations

from ignite_async.metrics import clustering, fairness, gan, nlp, regression
from ignite_async.metrics.accumulation import GeometricAverage, VariableAccumulation
from ignite_async.metrics.accuracy import Accuracy
from ignite_async.metrics.agreement import CohenKappa, MatthewsCorrCoef
from ignite_async.metrics.classification_report import ClassificationReport
from ignite_async.metrics.clustering import CalinskiHarabaszScore, DaviesBouldinScore, SilhouetteScore
from ignite_async.metrics.confusion_matrix import ConfusionMatrix, IoU, cmAccuracy, mIoU
from ignite_async.metrics.curves import PrecisionRecallCurve, RocCurve
from ignite_async.metrics.distance import CosineSimilarity, MeanPairwiseDistance
from ignite_async.metrics.divergence import Entropy, JSDivergence, KLDivergence
from ignite_async.metrics.epoch_metric import EpochMetric, EpochMetricWarning
from ignite_async.metrics.fairness import DemographicParityDifference, SelectionRate, SubgroupAccuracyDifference
from ignite_async.metrics.fbeta import Fbeta
from ignite_async.metrics.frequency import Frequency
from ignite_async.metrics.gan import FID, InceptionScore
from ignite_async.metrics.gpu_info import GpuInfo
from ignite_async.metrics.hsic import HSIC
from ignite_async.metrics.loss import Loss
from ignite_async.metrics.maximum_mean_discrepancy import MaximumMeanDiscrepancy
from ignite_async.metrics.mean_average_precision import MeanAveragePrecision
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
    reinit__is_reduced,
    sync_all_reduce,
)
from ignite_async.metrics.metric_group import MetricGroup
from ignite_async.metrics.metrics_lambda import MetricsLambda
from ignite_async.metrics.multilabel_confusion_matrix import MultiLabelConfusionMatrix
from ignite_async.metrics.mutual_information import MutualInformation
from ignite_async.metrics.nlp import Bleu, CharacterErrorRate, Rouge, RougeL, RougeN
from ignite_async.metrics.object_detection import (
    CommonObjectDetectionMetrics,
    ObjectDetectionAvgPrecisionRecall,
    coco_tensor_list_to_dict_list,
)
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
    "Bleu",
    "CalinskiHarabaszScore",
    "CharacterErrorRate",
    "ClassificationReport",
    "CohenKappa",
    "CommonObjectDetectionMetrics",
    "ConfusionMatrix",
    "CosineSimilarity",
    "DaviesBouldinScore",
    "DemographicParityDifference",
    "DiceCoefficient",
    "Entropy",
    "EpochMetric",
    "EpochMetricWarning",
    "EpochWise",
    "FID",
    "Fbeta",
    "Frequency",
    "GeometricAverage",
    "GpuInfo",
    "HSIC",
    "HitRate",
    "InceptionScore",
    "IoU",
    "JSDivergence",
    "JaccardIndex",
    "KLDivergence",
    "Loss",
    "MatthewsCorrCoef",
    "MaximumMeanDiscrepancy",
    "MeanAbsoluteError",
    "MeanAveragePrecision",
    "MeanPairwiseDistance",
    "MeanSquaredError",
    "Metric",
    "MetricGroup",
    "MetricUsage",
    "MetricsLambda",
    "MultiLabelConfusionMatrix",
    "MutualInformation",
    "NDCG",
    "NotComputableError",
    "ObjectDetectionAvgPrecisionRecall",
    "PSNR",
    "Perplexity",
    "Precision",
    "PrecisionRecallCurve",
    "ROC_AUC",
    "Recall",
    "RocCurve",
    "RootMeanSquaredError",
    "Rouge",
    "RougeL",
    "RougeN",
    "RunningAverage",
    "RunningBatchWise",
    "RunningEpochWise",
    "SSIM",
    "SelectionRate",
    "SilhouetteScore",
    "SingleEpochRunningBatchWise",
    "SubgroupAccuracyDifference",
    "TopKCategoricalAccuracy",
    "TorchMetric",
    "VariableAccumulation",
    "clustering",
    "coco_tensor_list_to_dict_list",
    "cmAccuracy",
    "fairness",
    "gan",
    "mIoU",
    "nlp",
    "regression",
    "reinit__is_reduced",
    "sync_all_reduce",
]
