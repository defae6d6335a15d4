"""Errors of regressions: mean squared, mean absolute, root mean squared."""

from __future__ import annotations

import math
from typing import Any

import torch

from ignite_async.metrics.metric import Metric, NotComputableError, check_pair, sync_all_reduce

__all__ = ["MeanAbsoluteError", "MeanSquaredError", "RootMeanSquaredError"]


class _ErrorSum(Metric):
    """Sums an elementwise error over the examples, on the device (float64), read back in compute()."""

    _state_attrs = ("_sum", "_num_examples")

    def reset(self) -> None:
        self._sum = torch.tensor(0.0, dtype=torch.float64, device=self._device)
        self._num_examples = 0

    def _errors(self, diff: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def update(self, output: Any) -> None:
        y_pred, y = check_pair(self, output)
        if y_pred.numel() != y.numel() or y_pred.shape[0] != y.shape[0]:
            shapes = f"{tuple(y_pred.shape)} and {tuple(y.shape)}"
            raise ValueError(f"{type(self).__name__}: y_pred and y must have the same shape, got {shapes}")
        self._sum += torch.sum(self._errors(y_pred - y.view_as(y_pred))).to(self._device, dtype=torch.float64)
        self._num_examples += y.shape[0]

    @sync_all_reduce("_sum", "_num_examples")
    def compute(self) -> float:
        if self._num_examples == 0:
            raise NotComputableError(f"{type(self).__name__} must have at least one example before it can be computed")
        return self._sum.item() / self._num_examples


class MeanSquaredError(_ErrorSum):
    """Sum of squared errors divided by the number of examples (pytorch-ignite's definition)."""

    def _errors(self, diff: torch.Tensor) -> torch.Tensor:
        return torch.pow(diff, 2)


class MeanAbsoluteError(_ErrorSum):
    """Sum of absolute errors divided by the number of examples."""

    def _errors(self, diff: torch.Tensor) -> torch.Tensor:
        return torch.abs(diff)


class RootMeanSquaredError(MeanSquaredError):
    """The square root of :class:`MeanSquaredError`."""

    def compute(self) -> float:
        return math.sqrt(super().compute())
