"""One 2x2 confusion matrix per label, for multilabel 0/1 predictions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ignite_async.metrics.metric import Metric, NotComputableError, check_pair, sync_all_reduce

__all__ = ["MultiLabelConfusionMatrix"]

_INTEGER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


class MultiLabelConfusionMatrix(Metric):
    """``[[tn, fp], [fn, tp]]`` per label, for integer 0/1 ``y_pred`` and ``y`` of shape ``(N, C, ...)``.

    :param num_classes: ``C``, the number of labels (> 1).
    :param normalized: divide each label's matrix by its total (float64).
    :param skip_unrolling: give ``update`` lists of tensors as they are (see :class:`Metric`).
    :raises ValueError: for ``num_classes < 2``; at ``update``, for wrong shapes, dtypes or values.

    >>> import torch
    >>> cm = MultiLabelConfusionMatrix(num_classes=2)
    >>> cm.update((torch.tensor([[1, 0], [1, 1]]), torch.tensor([[1, 1], [0, 1]])))
    >>> cm.compute().tolist()
    [[[0, 1], [0, 1]], [[0, 0], [1, 1]]]
    """

    _state_attrs = ("confusion_matrix", "_num_examples")

    def __init__(
        self,
        num_classes: int,
        output_transform: Callable[[Any], Any] = lambda x: x,
        device: str | torch.device = "cpu",
        normalized: bool = False,
        skip_unrolling: bool = False,
    ) -> None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes <= 1:
            raise ValueError(f"MultiLabelConfusionMatrix: num_classes must be an integer > 1, got {num_classes!r}")
        self.num_classes = num_classes
        self.normalized = normalized
        super().__init__(output_transform, device, skip_unrolling)

    def reset(self) -> None:
        self.confusion_matrix = torch.zeros(self.num_classes, 2, 2, dtype=torch.int64, device=self._device)
        self._num_examples = 0

    def update(self, output: Any) -> None:
        y_pred, y = check_pair(self, output)
        self._check(y_pred, y)
        self._num_examples += y.shape[0]
        c = self.num_classes
        truth = y.transpose(0, 1).reshape(c, -1).long()
        predicted = y_pred.transpose(0, 1).reshape(c, -1).long()
        tp = (truth * predicted).sum(dim=1)
        fp = predicted.sum(dim=1) - tp
        fn = truth.sum(dim=1) - tp
        tn = truth.shape[1] - tp - fp - fn
        self.confusion_matrix += torch.stack([tn, fp, fn, tp], dim=1).reshape(c, 2, 2).to(self._device)

    def _check(self, y_pred: torch.Tensor, y: torch.Tensor) -> None:
        c = self.num_classes
        shapes = f"{tuple(y_pred.shape)} and {tuple(y.shape)}"
        if y_pred.ndim < 2 or y.ndim < 2 or y_pred.shape != y.shape or y.shape[1] != c:
            raise ValueError(f"MultiLabelConfusionMatrix: y_pred and y must both be (N, {c}, ...), got {shapes}")
        for label, t in (("y_pred", y_pred), ("y", y)):
            if t.dtype not in _INTEGER_DTYPES:
                raise ValueError(
                    f"MultiLabelConfusionMatrix: {label} must be an integer tensor of 0s and 1s, got {t.dtype}"
                )
            # A value check on a GPU would wait for the device: only CPU tensors are checked.
            if t.device.type == "cpu" and not torch.equal(t, t**2):
                raise ValueError(f"MultiLabelConfusionMatrix: {label} must be 0s and 1s")

    @sync_all_reduce("confusion_matrix", "_num_examples")
    def compute(self) -> torch.Tensor:
        if self._num_examples == 0:
            raise NotComputableError(
                "MultiLabelConfusionMatrix must have at least one example before it can be computed"
            )
        if self.normalized:
            conf = self.confusion_matrix.to(torch.float64)
            return conf / conf.sum(dim=(1, 2))[:, None, None]
        return self.confusion_matrix.clone()
