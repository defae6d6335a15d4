"""The largest gap in accuracy between groups."""

from __future__ import annotations

from ignite_async.metrics.accuracy import Accuracy
from ignite_async.metrics.fairness.base import ClassificationSubgroupDifference

__all__ = ["SubgroupAccuracyDifference"]


class SubgroupAccuracyDifference(ClassificationSubgroupDifference):
    """The largest gap between groups in :class:`~ignite_async.metrics.Accuracy` (max - min): 0 when the model
    is as accurate for every group (accuracy parity).

    ``update`` takes ``(y_pred, y, group_labels)`` or ``{"y_pred": ..., "y": ..., "group_labels": ...}``:
    ``y_pred`` and ``y`` as ``Accuracy`` takes them, ``group_labels`` of ``(N,)``.

    Takes the arguments of :class:`~ignite_async.metrics.fairness.base.ClassificationSubgroupDifference`.

    >>> import torch
    >>> metric = SubgroupAccuracyDifference(groups=[0, 1])
    >>> y_pred = torch.tensor([[0.1, 0.9], [0.2, 0.8], [0.9, 0.1], [0.9, 0.1]])
    >>> metric.update((y_pred, torch.tensor([1, 1, 1, 1]), torch.tensor([0, 0, 1, 1])))
    >>> metric.compute()
    1.0
    """

    _base_metric_class = Accuracy
