"""Precision and Recall, per class or averaged ("macro", "micro", "weighted", "samples"), as pytorch-ignite."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ignite_async.metrics._classification import ClassificationMetric, predicted_classes
from ignite_async.metrics.metric import NotComputableError, sync_all_reduce

__all__ = ["Precision", "Recall"]

_AVERAGES = (False, None, True, "macro", "micro", "weighted", "samples")
_EPS = 1e-20


class _PrecisionRecall(ClassificationMetric):
    """Counts true positives against predicted (precision) or actual (recall) positives.

    ``average``: ``False`` gives one value per class (multiclass, multilabel) or a single value (binary);
    ``None`` likewise but per class for binary data too; ``True``/``"macro"`` the mean over classes;
    ``"micro"`` pools all classes; ``"weighted"`` weighs classes by their support; ``"samples"`` (multilabel
    only) averages per sample.
    """

    _state_attrs = ("_numerator", "_denominator", "_weight", "_updated", "_type", "_num_classes")

    def __init__(
        self,
        output_transform: Callable[[Any], Any] = lambda x: x,
        average: bool | str | None = False,
        is_multilabel: bool = False,
        device: str | torch.device = "cpu",
        skip_unrolling: bool = False,
    ) -> None:
        if not any(average is a or (isinstance(a, str) and average == a) for a in _AVERAGES):
            raise ValueError(
                f"average must be False, None, True, 'macro', 'micro', 'weighted' or 'samples', got {average!r}"
            )
        self._average: bool | str | None = "macro" if average is True else average
        super().__init__(output_transform, is_multilabel, device, skip_unrolling)

    def reset(self) -> None:
        super().reset()
        # Accumulated on the device; per class unless micro/samples (then scalars).
        self._numerator: Any = 0
        self._denominator: Any = 0
        self._weight: Any = 0
        self._updated = False

    def _positives(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The positives TP is divided by: predicted (precision) or actual (recall), per row of one-hots."""
        raise NotImplementedError

    def update(self, output: Any) -> None:
        y_pred, y = self._check(output)
        if self._type != "multilabel" and self._average == "samples":
            raise ValueError(f"{type(self).__name__}: average='samples' needs multilabel data, got {self._type}")
        if self._type == "multilabel":
            labels = y_pred.shape[1]
            y_pred = torch.transpose(y_pred, 1, -1).reshape(-1, labels)
            y = torch.transpose(y, 1, -1).reshape(-1, labels)
        elif self._type == "binary" and self._average is False:
            y_pred, y = y_pred.reshape(-1), y.reshape(-1)
        else:
            classes = 2 if self._type == "binary" else y_pred.shape[1]
            if self._type == "multiclass" and y.device.type == "cpu" and y.numel() and int(y.max()) >= classes:
                raise ValueError(
                    f"{type(self).__name__}: y has class {int(y.max())} but y_pred scores only {classes} classes"
                )
            indices = predicted_classes(output[0]) if self._type == "multiclass" else y_pred.long()
            y = torch.nn.functional.one_hot(y.reshape(-1).long(), classes)
            y_pred = torch.nn.functional.one_hot(indices.reshape(-1), classes)
        y_pred = y_pred.to(dtype=torch.float64, device=self._device)
        y = y.to(dtype=torch.float64, device=self._device)
        correct = y * y_pred
        positives = self._positives(y_pred, y)
        if self._average == "samples":
            self._numerator += torch.sum(correct.sum(dim=1) / (positives.sum(dim=1) + _EPS))
            self._denominator += y.shape[0]
        elif self._average == "micro":
            self._numerator += correct.sum()
            self._denominator += positives.sum()
        else:
            self._numerator += correct.sum(dim=0)
            self._denominator += positives.sum(dim=0)
            if self._average == "weighted":
                self._weight += y.sum(dim=0)
        self._updated = True

    @sync_all_reduce("_numerator", "_denominator", "_weight")
    def compute(self) -> Any:
        if not self._updated:
            raise NotComputableError(f"{type(self).__name__} must have at least one example before it can be computed")
        fraction = self._numerator / (self._denominator + (0 if self._average == "samples" else _EPS))
        if self._average == "weighted":
            return ((fraction @ self._weight) / (self._weight.sum() + _EPS)).item()
        if self._average in ("micro", "samples"):
            return fraction.item()
        if self._average == "macro":
            return fraction.mean().item()
        return fraction


class Precision(_PrecisionRecall):
    """TP / (TP + FP): of the predicted positives, the fraction that are right.

    >>> import torch
    >>> precision = Precision(average="macro")
    >>> precision.update((torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]), torch.tensor([0, 1, 1])))
    >>> precision.compute()
    0.75
    """

    def _positives(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return y_pred


class Recall(_PrecisionRecall):
    """TP / (TP + FN): of the actual positives, the fraction that are found.

    >>> import torch
    >>> recall = Recall(average="macro")
    >>> recall.update((torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]), torch.tensor([0, 1, 1])))
    >>> recall.compute()
    0.75
    """

    def _positives(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return y
