"""Accuracy for binary, multiclass and multilabel outputs."""

from __future__ import annotations

from typing import Any

import torch

from ignite_async.metrics._classification import ClassificationMetric, predicted_classes
from ignite_async.metrics.metric import NotComputableError, sync_all_reduce

__all__ = ["Accuracy"]


class Accuracy(ClassificationMetric):
    """The fraction of correct predictions, as pytorch-ignite computes it.

    - binary: ``y_pred`` and ``y`` of the same shape, of 0s and 1s (threshold probabilities first);
    - multiclass: ``y_pred`` of shape ``(N, C, ...)`` (scores), ``y`` of shape ``(N, ...)`` (class indices);
    - multilabel (``is_multilabel=True``): ``y_pred`` and ``y`` of shape ``(N, C, ...)`` of 0s and 1s; a sample
      is correct when all its labels are.

    >>> import torch
    >>> accuracy = Accuracy()
    >>> accuracy.update((torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]), torch.tensor([0, 0, 0])))
    >>> round(accuracy.compute(), 4)
    0.6667
    """

    _state_attrs = ("_num_correct", "_num_examples", "_type", "_num_classes")

    def reset(self) -> None:
        super().reset()
        self._num_correct = torch.tensor(0, dtype=torch.long, device=self._device)
        self._num_examples = 0

    def update(self, output: Any) -> None:
        y_pred, y = self._check(output)
        if self._type == "multiclass":  # the common case, kept to three tensor ops
            self._num_correct += torch.eq(predicted_classes(output[0]), y).sum().to(self._device)
            self._num_examples += y.numel()
            return
        if self._type == "binary":
            correct = torch.eq(y_pred.reshape(-1).to(y), y.reshape(-1))
        else:
            classes = y_pred.shape[1]
            last = y_pred.ndim - 1
            flat_pred = torch.transpose(y_pred, 1, last).reshape(-1, classes)
            flat_y = torch.transpose(y, 1, last).reshape(-1, classes)
            correct = torch.all(flat_y == flat_pred.type_as(flat_y), dim=-1)
        self._num_correct += torch.sum(correct).to(self._device)
        self._num_examples += correct.shape[0]

    @sync_all_reduce("_num_correct", "_num_examples")
    def compute(self) -> float:
        if self._num_examples == 0:
            raise NotComputableError("Accuracy must have at least one example before it can be computed")
        return self._num_correct.item() / self._num_examples
