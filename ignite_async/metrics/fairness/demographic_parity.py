"""The rate of each predicted class, and its largest gap between groups (demographic parity)."""

from __future__ import annotations

from typing import Any

import torch

from ignite_async.metrics._classification import ClassificationMetric
from ignite_async.metrics.fairness.base import ClassificationSubgroupDifference
from ignite_async.metrics.metric import NotComputableError, sync_all_reduce

__all__ = ["DemographicParityDifference", "SelectionRate"]


class SelectionRate(ClassificationMetric):
    """The fraction of predictions of each class (``y`` is checked but not used), as pytorch-ignite's
    ``SelectionRate``: a float32 tensor of ``(2,)`` (the rates of 0 and 1) for binary ``y_pred`` of 0s and 1s,
    ``(C,)`` for multiclass scores ``(N, C, ...)`` (the rate of each argmax), ``(C,)`` for multilabel 0s and 1s
    (the rate of each label).

    Counts stay on the device as integers until ``compute``.

    :param output_transform: the engine's output to ``(y_pred, y)``.
    :param is_multilabel: ``y_pred`` and ``y`` are ``(N, C, ...)`` 0s and 1s.
    :param device: where the counts live.
    :param skip_unrolling: give ``update`` lists of tensors as they are (see :class:`Metric`).
    :raises ValueError: in ``update``, for shapes that fit no data type, or 0/1 data with other values.

    >>> import torch
    >>> rate = SelectionRate()
    >>> rate.update((torch.tensor([[0.1, 0.9], [0.2, 0.8], [0.9, 0.1], [0.9, 0.1]]), torch.tensor([1, 1, 0, 0])))
    >>> rate.compute()
    tensor([0.5000, 0.5000])
    """

    _state_attrs = ("_num_positives", "_num_examples", "_type", "_num_classes")

    def reset(self) -> None:
        super().reset()
        # 0-d until the first update tells the number of classes
        self._num_positives = torch.tensor(0, dtype=torch.long, device=self._device)
        self._num_examples = 0

    def update(self, output: Any) -> None:
        y_pred, _ = self._check(output)
        if self._type == "binary":
            flat = y_pred.reshape(-1)
            positives = torch.stack([(flat == 0).sum(), (flat == 1).sum()])
            total = flat.numel()
        elif self._type == "multiclass":
            classes = torch.argmax(y_pred, dim=1).reshape(-1)
            count = self._num_classes or 0
            positives = torch.zeros(count, dtype=torch.long, device=classes.device)
            positives.index_add_(0, classes, torch.ones_like(classes))
            total = classes.numel()
        else:
            count = self._num_classes or 0
            positives = y_pred.movedim(1, -1).reshape(-1, count).sum(dim=0).to(torch.long)
            total = y_pred.numel() // count
        positives = positives.to(self._device)
        self._num_positives = positives if self._num_positives.ndim == 0 else self._num_positives + positives
        self._num_examples += total

    @sync_all_reduce("_num_examples", "_num_positives")
    def compute(self) -> torch.Tensor:
        """The rate of each class, as a float32 tensor on ``device``.

        :raises NotComputableError: before any update.
        """
        if self._num_examples == 0 or self._num_positives.ndim == 0:
            raise NotComputableError("SelectionRate must have at least one example before it can be computed.")
        return self._num_positives.to(torch.float32) / self._num_examples


class DemographicParityDifference(ClassificationSubgroupDifference):
    """The largest gap between groups in the rate of any predicted class (:class:`SelectionRate` per group):
    0 when every group gets every outcome at the same rate (statistical parity).

    ``update`` takes ``(y_pred, y, group_labels)`` or ``{"y_pred": ..., "y": ..., "group_labels": ...}``:
    ``y_pred`` and ``y`` as :class:`SelectionRate` takes them, ``group_labels`` of ``(N,)``.

    Takes the arguments of :class:`~ignite_async.metrics.fairness.base.ClassificationSubgroupDifference`.

    >>> import torch
    >>> metric = DemographicParityDifference(groups=[0, 1])
    >>> y_pred = torch.tensor([[0.1, 0.9], [0.2, 0.8], [0.9, 0.1], [0.9, 0.1]])
    >>> metric.update((y_pred, torch.tensor([1, 1, 0, 0]), torch.tensor([0, 0, 1, 1])))
    >>> metric.compute()
    1.0
    """

    _base_metric_class = SelectionRate
