"""Accuracy for binary, multiclass and multilabel outputs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ignite_async.metrics.metric import Metric, NotComputableError, check_pair

__all__ = ["Accuracy"]


class Accuracy(Metric):
    """The fraction of correct predictions, as pytorch-ignite computes it.

    - binary: ``y_pred`` and ``y`` of the same shape, of 0s and 1s (threshold probabilities first);
    - multiclass: ``y_pred`` of shape ``(N, C, ...)`` (scores), ``y`` of shape ``(N, ...)`` (class indices);
    - multilabel (``is_multilabel=True``): ``y_pred`` and ``y`` of shape ``(N, C, ...)`` of 0s and 1s; a sample
      is correct when all its labels are.

    Values are validated only for CPU tensors, so GPU updates never wait for the device.
    """

    def __init__(
        self,
        output_transform: Callable[[Any], Any] = lambda x: x,
        is_multilabel: bool = False,
        device: str | torch.device = "cpu",
    ) -> None:
        self._is_multilabel = is_multilabel
        super().__init__(output_transform, device)

    def reset(self) -> None:
        self._num_correct = torch.tensor(0, dtype=torch.long, device=self._device)
        self._num_examples = 0
        self._type: str | None = None
        self._num_classes: int | None = None

    def _kind(self, y_pred: torch.Tensor, y: torch.Tensor) -> str:
        if y.ndim + 1 == y_pred.ndim:
            if y_pred.shape[0] != y.shape[0] or y_pred.shape[2:] != y.shape[1:]:
                raise ValueError(
                    f"Accuracy: multiclass y_pred must be (N, C, ...) for y of (N, ...), got "
                    f"{tuple(y_pred.shape)} and {tuple(y.shape)}"
                )
            return "multiclass"
        if y.ndim != y_pred.ndim or y.shape != y_pred.shape:
            raise ValueError(
                f"Accuracy: y_pred and y must have the same shape (binary, multilabel) or y_pred one more "
                f"dimension (multiclass), got {tuple(y_pred.shape)} and {tuple(y.shape)}"
            )
        if self._is_multilabel:
            if y.ndim < 2 or y.shape[1] < 2:
                raise ValueError(f"Accuracy: multilabel data must be (N, C, ...) with C > 1, got {tuple(y.shape)}")
            return "multilabel"
        return "binary"

    def update(self, output: Any) -> None:
        y_pred, y = check_pair(self, output)
        kind = self._kind(y_pred, y)
        if self._type is not None and kind != self._type:
            raise RuntimeError(f"Accuracy: the data type changed from {self._type} to {kind} between updates")
        self._type = kind
        if kind in ("binary", "multilabel") and y.device.type == "cpu":
            for name, t in (("y", y), ("y_pred", y_pred)):
                if not torch.equal(t, t**2):
                    raise ValueError(f"Accuracy: for {kind} data, {name} must be 0s and 1s")
        if kind == "binary":
            correct = torch.eq(y_pred.reshape(-1).to(y), y.reshape(-1))
        elif kind == "multiclass":
            classes = y_pred.shape[1]
            if self._num_classes is not None and classes != self._num_classes:
                raise ValueError(f"Accuracy: the number of classes changed from {self._num_classes} to {classes}")
            self._num_classes = classes
            correct = torch.eq(torch.argmax(y_pred, dim=1), y).reshape(-1)
        else:
            classes = y_pred.shape[1]
            last = y_pred.ndim - 1
            flat_pred = torch.transpose(y_pred, 1, last).reshape(-1, classes)
            flat_y = torch.transpose(y, 1, last).reshape(-1, classes)
            correct = torch.all(flat_y == flat_pred.type_as(flat_y), dim=-1)
        self._num_correct += torch.sum(correct).to(self._device)
        self._num_examples += correct.shape[0]

    def compute(self) -> float:
        if self._num_examples == 0:
            raise NotComputableError("Accuracy must have at least one example before it can be computed")
        return self._num_correct.item() / self._num_examples
