"""The confusion matrix, and IoU, mIoU and accuracy derived from it."""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

import torch

from ignite_async.metrics._classification import predicted_classes
from ignite_async.metrics.metric import Metric, NotComputableError, check_pair, sync_all_reduce
from ignite_async.metrics.metrics_lambda import MetricsLambda

__all__ = ["ConfusionMatrix", "IoU", "cmAccuracy", "mIoU"]


class ConfusionMatrix(Metric):
    """Counts of (true class, predicted class) for scores ``y_pred`` of shape ``(N, C, ...)`` and class indices
    ``y`` of shape ``(N, ...)``; targets outside ``[0, num_classes)`` are ignored.

    :param average: ``None`` (counts), ``"samples"`` (counts per sample), ``"recall"`` (rows sum to 1) or
        ``"precision"`` (columns sum to 1).
    :param skip_unrolling: ``True`` (as in pytorch-ignite, for this metric): an output of lists is not unrolled
        into pairs (see :class:`~ignite_async.metrics.metric.Metric`).
    """

    _state_attrs = ("_counts", "_num_examples")

    def __init__(
        self,
        num_classes: int,
        average: str | None = None,
        output_transform: Callable[[Any], Any] = lambda x: x,
        device: str | torch.device = "cpu",
        skip_unrolling: bool = True,
    ) -> None:
        if average is not None and average not in ("samples", "recall", "precision"):
            raise ValueError(f"average must be None, 'samples', 'recall' or 'precision', got {average!r}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        self.num_classes = num_classes
        self.average = average
        super().__init__(output_transform, device, skip_unrolling=skip_unrolling)

    def reset(self) -> None:
        # Row-major [true, predicted] counts, and one more bin where a GPU update sends ignored targets.
        self._counts = torch.zeros(self.num_classes**2 + 1, dtype=torch.int64, device=self._device)
        self._ones = torch.ones(0, dtype=torch.int64, device=self._device)
        self._num_examples = 0
        self._checked_shapes: tuple[torch.Size, torch.Size] | None = None

    def update(self, output: Any) -> None:
        y_pred, y = check_pair(self, output)
        if (y_pred.shape, y.shape) != self._checked_shapes:  # checked once per new pair of shapes
            self._check_shapes(y_pred, y)
            self._checked_shapes = (y_pred.shape, y.shape)
        self._num_examples += y_pred.shape[0]
        c = self.num_classes
        predicted = predicted_classes(output[0]).flatten()
        target = y.flatten()
        # Targets outside [0, C) (an ignore index) are not counted, as in pytorch-ignite. On the CPU a range
        # check is cheapest; on a GPU they are sent to an extra bin instead, so that nothing waits for the device.
        if target.device.type == "cpu" and target.numel():
            low, high = torch.aminmax(target)
            if low.item() < 0 or high.item() >= c:
                keep = (target >= 0) & (target < c)
                target, predicted = target[keep], predicted[keep]
            indices = torch.add(predicted, target, alpha=c)
        else:
            indices = torch.where((target >= 0) & (target < c), torch.add(predicted, target, alpha=c), c * c)
        if self._ones.shape != indices.shape:
            self._ones = torch.ones_like(indices, device=self._device)
        if indices.device != self._device:
            indices = indices.to(self._device)
        self._counts.put_(indices, self._ones, accumulate=True)

    def _check_shapes(self, y_pred: torch.Tensor, y: torch.Tensor) -> None:
        if y_pred.ndim < 2 or y_pred.shape[1] != self.num_classes:
            raise ValueError(f"ConfusionMatrix: y_pred must be (N, {self.num_classes}, ...), got {tuple(y_pred.shape)}")
        if y.ndim + 1 != y_pred.ndim or y.shape[0] != y_pred.shape[0] or y.shape[1:] != y_pred.shape[2:]:
            raise ValueError(
                f"ConfusionMatrix: y must be (N, ...) for y_pred (N, C, ...), got {tuple(y.shape)} and "
                f"{tuple(y_pred.shape)}"
            )

    @property
    def confusion_matrix(self) -> torch.Tensor:
        """The counts so far: ``[true class, predicted class]``."""
        c = self.num_classes
        return self._counts[: c * c].view(c, c)

    @sync_all_reduce("_counts", "_num_examples")
    def compute(self) -> torch.Tensor:
        if self._num_examples == 0:
            raise NotComputableError("ConfusionMatrix must have at least one example before it can be computed")
        if self.average is None:
            return self.confusion_matrix.clone()  # a value, not a view that later updates change
        cm = self.confusion_matrix.float()  # float32, as pytorch-ignite
        if self.average == "samples":
            return cm / self._num_examples  # per sample (not per count), as pytorch-ignite
        if self.average == "recall":
            return cm / (cm.sum(dim=1).unsqueeze(1) + 1e-15)
        return cm / (cm.sum(dim=0) + 1e-15)


def _check(cm: Any) -> None:
    if not isinstance(cm, ConfusionMatrix):
        raise TypeError(f"needs a ConfusionMatrix, got {type(cm).__name__}")
    if cm.average not in (None, "samples"):
        raise ValueError(f"needs a ConfusionMatrix with average None or 'samples', got {cm.average!r}")


def IoU(cm: ConfusionMatrix, ignore_index: int | None = None) -> MetricsLambda:
    """Intersection over union per class, from a confusion matrix (optionally without class ``ignore_index``):
    a float64 tensor, as pytorch-ignite's.

    :raises TypeError: if ``cm`` is not a :class:`ConfusionMatrix`.
    :raises ValueError: if ``cm`` averages by ``"recall"`` or ``"precision"``, or ``ignore_index`` is not a class.

    >>> import torch
    >>> cm = ConfusionMatrix(num_classes=3)
    >>> iou = IoU(cm)
    >>> cm.update((torch.eye(3)[[1, 1, 0, 1, 1]], torch.tensor([0, 1, 0, 1, 2])))
    >>> iou.compute()
    tensor([0.5000, 0.5000, 0.0000], dtype=torch.float64)
    """
    _check(cm)
    if ignore_index is not None and not (
        isinstance(ignore_index, numbers.Integral)
        and not isinstance(ignore_index, bool)
        and 0 <= ignore_index < cm.num_classes
    ):
        raise ValueError(f"ignore_index must be a class index in [0, {cm.num_classes}), got {ignore_index!r}")

    def iou(m: torch.Tensor) -> torch.Tensor:
        m = m.to(torch.float64)
        values = m.diag() / (m.sum(dim=1) + m.sum(dim=0) - m.diag() + 1e-15)
        if ignore_index is None:
            return values
        keep = [i for i in range(len(values)) if i != ignore_index]
        return values[keep]

    return MetricsLambda(iou, cm)


def mIoU(cm: ConfusionMatrix, ignore_index: int | None = None) -> MetricsLambda:
    """The mean of :func:`IoU` over classes: a 0-d float64 tensor, as pytorch-ignite's (a number once attached,
    since ``engine.state.metrics`` holds 0-d tensors as numbers).

    >>> import torch
    >>> cm = ConfusionMatrix(num_classes=3)
    >>> miou = mIoU(cm, ignore_index=0)
    >>> cm.update((torch.eye(3)[[1, 1, 0, 1, 1]], torch.tensor([0, 1, 0, 1, 2])))
    >>> miou.compute()
    tensor(0.2500, dtype=torch.float64)
    """
    return MetricsLambda(lambda values: values.mean(), IoU(cm, ignore_index))


def cmAccuracy(cm: ConfusionMatrix) -> MetricsLambda:
    """Accuracy from a confusion matrix, its diagonal over its total: a 0-d float64 tensor, as pytorch-ignite's
    (a number once attached).

    >>> import torch
    >>> cm = ConfusionMatrix(num_classes=2)
    >>> accuracy = cmAccuracy(cm)
    >>> cm.update((torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]), torch.tensor([0, 1, 1])))
    >>> accuracy.compute()
    tensor(0.6667, dtype=torch.float64)
    """
    if not isinstance(cm, ConfusionMatrix):  # any average: pytorch-ignite takes the matrix as computed
        raise TypeError(f"needs a ConfusionMatrix, got {type(cm).__name__}")

    def accuracy(m: torch.Tensor) -> torch.Tensor:
        m = m.to(torch.float64)
        return m.diag().sum() / (m.sum() + 1e-15)

    return MetricsLambda(accuracy, cm)
