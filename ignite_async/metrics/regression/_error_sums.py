"""Errors summed over the examples on the device: means of errors, and distances (sums of errors)."""

from __future__ import annotations

import math
from typing import Any

import torch

from ignite_async.metrics.metric import Metric, NotComputableError, check_pair, sync_all_reduce
from ignite_async.metrics.regression._base import RegressionSum, not_computable, regression_pair

__all__ = [
    "CanberraMetric",
    "FractionalAbsoluteError",
    "FractionalBias",
    "GeometricMeanAbsoluteError",
    "ManhattanDistance",
    "MeanAbsoluteError",
    "MeanAbsoluteRelativeError",
    "MeanError",
    "MeanNormalizedBias",
    "MeanSquaredError",
    "RootMeanSquaredError",
    "WaveHedgesDistance",
]


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


# ---------------------------------------------------------------- pytorch-ignite's regression family
# Each takes (y_pred, y) of shape (N,) or (N, 1), both float, of one shape (see regression_pair).


class CanberraMetric(RegressionSum):
    r"""The Canberra distance :math:`\sum_j |y_j - \hat y_j| / (|y_j| + |\hat y_j|)` (a sum, 0.0 before any update).

    As pytorch-ignite, ``1e-15`` is added to each denominator, so that a pair of zeros adds 0.

    :param output_transform: turns the engine's output into ``(y_pred, y)``.
    :param device: where the sum is accumulated.

    >>> import torch
    >>> metric = CanberraMetric()
    >>> metric.update((torch.tensor([1.0, 2.0]), torch.tensor([3.0, 2.0])))
    >>> metric.compute()
    0.5
    """

    _needs_examples = False

    def _errors(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.abs(y - y_pred) / (torch.abs(y_pred) + torch.abs(y) + 1e-15)

    def _value(self, total: float, n: int) -> float:
        return total


class ManhattanDistance(RegressionSum):
    r"""The Manhattan distance :math:`\sum_j |y_j - \hat y_j|` (a sum, 0.0 before any update).

    :param output_transform: turns the engine's output into ``(y_pred, y)``.
    :param device: where the sum is accumulated.

    >>> import torch
    >>> metric = ManhattanDistance()
    >>> metric.update((torch.tensor([1.0, 2.0]), torch.tensor([3.0, 2.5])))
    >>> metric.compute()
    2.5
    """

    _needs_examples = False

    def _errors(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.abs(y - y_pred)

    def _value(self, total: float, n: int) -> float:
        return total


class WaveHedgesDistance(RegressionSum):
    r"""The Wave Hedges distance :math:`\sum_j |y_j - \hat y_j| / \max(y_j, \hat y_j)` (0.0 before any update).

    As pytorch-ignite, ``1e-30`` is added to each denominator.

    :param output_transform: turns the engine's output into ``(y_pred, y)``.
    :param device: where the sum is accumulated.

    >>> import torch
    >>> metric = WaveHedgesDistance()
    >>> metric.update((torch.tensor([1.0, 2.0]), torch.tensor([4.0, 2.0])))
    >>> metric.compute()
    0.75
    """

    _needs_examples = False

    def _errors(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.abs(y - y_pred) / (torch.maximum(y_pred, y) + 1e-30)

    def _value(self, total: float, n: int) -> float:
        return total


class FractionalAbsoluteError(RegressionSum):
    r"""The mean of :math:`2 |y_j - \hat y_j| / (|\hat y_j| + |y_j|)` over the examples.

    :param output_transform: turns the engine's output into ``(y_pred, y)``.
    :param device: where the sum is accumulated.
    :raises NotComputableError: from ``compute()`` before any example.

    >>> import torch
    >>> metric = FractionalAbsoluteError()
    >>> metric.update((torch.tensor([1.0, 2.0]), torch.tensor([3.0, 2.0])))
    >>> metric.compute()
    0.5
    """

    def _errors(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return 2 * torch.abs(y - y_pred) / (torch.abs(y_pred) + torch.abs(y))


class FractionalBias(RegressionSum):
    r"""The mean of :math:`2 (y_j - \hat y_j) / (\hat y_j + y_j)` over the examples.

    As pytorch-ignite, ``1e-30`` is added to each denominator.

    :param output_transform: turns the engine's output into ``(y_pred, y)``.
    :param device: where the sum is accumulated.
    :raises NotComputableError: from ``compute()`` before any example.

    >>> import torch
    >>> metric = FractionalBias()
    >>> metric.update((torch.tensor([1.0, 2.0]), torch.tensor([3.0, 2.0])))
    >>> metric.compute()
    0.5
    """

    def _errors(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return 2 * (y - y_pred) / (y_pred + y + 1e-30)


class GeometricMeanAbsoluteError(RegressionSum):
    r"""The geometric mean of the absolute errors, :math:`\exp(\frac{1}{n} \sum_j \log |y_j - \hat y_j|)`.

    An exact prediction makes it 0.0 (a log of 0 is minus infinity), as in pytorch-ignite.

    :param output_transform: turns the engine's output into ``(y_pred, y)``.
    :param device: where the sum of logs is accumulated.
    :raises NotComputableError: from ``compute()`` before any example.

    >>> import torch
    >>> metric = GeometricMeanAbsoluteError()
    >>> metric.update((torch.tensor([1.0, 2.0]), torch.tensor([2.0, 6.0])))
    >>> round(metric.compute(), 6)
    2.0
    """

    def _errors(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.log(torch.abs(y - y_pred))

    def _value(self, total: float, n: int) -> float:
        return math.exp(total / n)


class MeanError(RegressionSum):
    r"""The mean of :math:`y_j - \hat y_j` over the examples (the bias of the predictions, with its sign).

    :param output_transform: turns the engine's output into ``(y_pred, y)``.
    :param device: where the sum is accumulated.
    :raises NotComputableError: from ``compute()`` before any example.

    >>> import torch
    >>> metric = MeanError()
    >>> metric.update((torch.tensor([1.0, 2.0]), torch.tensor([3.0, 1.0])))
    >>> metric.compute()
    0.5
    """

    def _errors(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return y - y_pred


class _RelativeSum(RegressionSum):
    """A mean of errors divided by ``y``: zeros in ``y`` are counted on the device and refused in ``compute()``.

    pytorch-ignite checks ``y`` for zeros in ``update``; checking there would read a value back from the
    device at every iteration, so the zeros are counted instead and ``compute()`` raises.
    """

    _state_attrs = ("_sum", "_num_examples", "_zero_targets")

    def reset(self) -> None:
        super().reset()
        self._zero_targets = torch.tensor(0, dtype=torch.int64, device=self._device)

    def update(self, output: Any) -> None:
        y_pred, y = regression_pair(self, output)
        self._zero_targets += torch.count_nonzero(y == 0).to(self._device)
        self._sum += torch.sum(self._errors(y_pred, y)).to(self._device, dtype=torch.float64)
        self._num_examples += y.shape[0]

    @sync_all_reduce("_sum", "_num_examples", "_zero_targets")
    def compute(self) -> float:
        if self._num_examples == 0:
            raise not_computable(self)
        zeros = int(self._zero_targets.item())
        if zeros:
            raise NotComputableError(
                f"{type(self).__name__}: the ground truth y had {zeros} zero(s) since the last reset, and a relative "
                "error divides by y; drop or shift those targets"
            )
        return self._sum.item() / self._num_examples


class MeanAbsoluteRelativeError(_RelativeSum):
    r"""The mean of :math:`|y_j - \hat y_j| / |y_j|` over the examples.

    :param output_transform: turns the engine's output into ``(y_pred, y)``.
    :param device: where the sums are accumulated.
    :raises NotComputableError: from ``compute()`` before any example, or if some ``y`` was 0 (pytorch-ignite
        raises this from the ``update`` that sees the 0).

    >>> import torch
    >>> metric = MeanAbsoluteRelativeError()
    >>> metric.update((torch.tensor([1.0, 3.0]), torch.tensor([2.0, 4.0])))
    >>> metric.compute()
    0.375
    """

    def _errors(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.abs(y_pred - y) / torch.abs(y)


class MeanNormalizedBias(_RelativeSum):
    r"""The mean of :math:`(y_j - \hat y_j) / y_j` over the examples.

    :param output_transform: turns the engine's output into ``(y_pred, y)``.
    :param device: where the sums are accumulated.
    :raises NotComputableError: from ``compute()`` before any example, or if some ``y`` was 0 (pytorch-ignite
        raises this from the ``update`` that sees the 0).

    >>> import torch
    >>> metric = MeanNormalizedBias()
    >>> metric.update((torch.tensor([1.0, 5.0]), torch.tensor([2.0, 4.0])))
    >>> metric.compute()
    0.125
    """

    def _errors(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (y - y_pred) / y
