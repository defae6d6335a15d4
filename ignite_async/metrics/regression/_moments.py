"""Regression metrics of a few running sums or a running maximum: R2Score, PearsonCorrelation, MaximumAbsoluteError."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from ignite_async.distributed.comm import all_reduce
from ignite_async.metrics.metric import Metric, NotComputableError, sync_all_reduce
from ignite_async.metrics.regression._base import not_computable, regression_pair

__all__ = ["MaximumAbsoluteError", "PearsonCorrelation", "R2Score"]


def _zero(device: torch.device) -> torch.Tensor:
    return torch.tensor(0.0, dtype=torch.float64, device=device)


class MaximumAbsoluteError(Metric):
    r"""The largest absolute error :math:`\max_j |y_j - \hat y_j|` seen since the last reset.

    The maximum is kept on the device (pytorch-ignite reads each batch's maximum back with ``.item()``), and
    over the ranks of a distributed job it is their maximum.

    :param output_transform: turns the engine's output into ``(y_pred, y)``.
    :param device: where the maximum is kept.
    :raises NotComputableError: from ``compute()`` before any example.

    >>> import torch
    >>> metric = MaximumAbsoluteError()
    >>> metric.update((torch.tensor([1.0, 2.0]), torch.tensor([3.0, 2.5])))
    >>> metric.update((torch.tensor([0.0]), torch.tensor([-1.0])))
    >>> metric.compute()
    2.0
    """

    _state_attrs = ("_max_of_absolute_errors", "_num_examples")

    def reset(self) -> None:
        self._max_of_absolute_errors = torch.tensor(-math.inf, dtype=torch.float64, device=self._device)
        self._num_examples = 0

    def update(self, output: Any) -> None:
        y_pred, y = regression_pair(self, output)
        if y.shape[0] == 0:  # the maximum of nothing is undefined (and torch refuses it)
            return
        batch_max = torch.amax(torch.abs(y_pred - y)).to(self._device, dtype=torch.float64)
        self._max_of_absolute_errors = torch.maximum(self._max_of_absolute_errors, batch_max)
        self._num_examples += y.shape[0]

    @sync_all_reduce("_num_examples")
    def compute(self) -> float:
        if self._num_examples == 0:
            raise not_computable(self)
        return float(all_reduce(self._max_of_absolute_errors, "MAX").item())


class R2Score(Metric):
    r"""The coefficient of determination :math:`1 - \sum_j (y_j - \hat y_j)^2 / \sum_j (y_j - \bar y)^2`.

    :param output_transform: turns the engine's output into ``(y_pred, y)``.
    :param device: where the sums are accumulated.
    :raises NotComputableError: from ``compute()`` before any example, or when every ``y`` was the same
        (pytorch-ignite raises ZeroDivisionError there).

    >>> import torch
    >>> metric = R2Score()
    >>> metric.update((torch.tensor([1.0, 2.0, 4.0]), torch.tensor([1.0, 3.0, 5.0])))
    >>> round(metric.compute(), 6)
    0.75
    """

    _state_attrs = ("_num_examples", "_sum_of_errors", "_y_sq_sum", "_y_sum")

    def reset(self) -> None:
        self._num_examples = 0
        self._sum_of_errors = _zero(self._device)
        self._y_sq_sum = _zero(self._device)
        self._y_sum = _zero(self._device)

    def update(self, output: Any) -> None:
        y_pred, y = regression_pair(self, output)
        self._num_examples += y.shape[0]
        self._sum_of_errors += torch.sum(torch.pow(y_pred - y, 2)).to(self._device, dtype=torch.float64)
        self._y_sum += torch.sum(y).to(self._device, dtype=torch.float64)
        self._y_sq_sum += torch.sum(torch.pow(y, 2)).to(self._device, dtype=torch.float64)

    @sync_all_reduce("_num_examples", "_sum_of_errors", "_y_sq_sum", "_y_sum")
    def compute(self) -> float:
        if self._num_examples == 0:
            raise not_computable(self)
        spread = self._y_sq_sum.item() - self._y_sum.item() ** 2 / self._num_examples
        if spread == 0:
            raise NotComputableError(
                f"R2Score: every y was the same ({self._num_examples} examples), so R2 is undefined"
            )
        return 1 - self._sum_of_errors.item() / spread


class PearsonCorrelation(Metric):
    r"""Pearson's correlation coefficient :math:`r` of ``y_pred`` and ``y``, from running sums.

    :param eps: the least the product of the standard deviations is taken to be (no division by 0).
    :param output_transform: turns the engine's output into ``(y_pred, y)``.
    :param device: where the sums are accumulated.
    :raises NotComputableError: from ``compute()`` before any example.

    >>> import torch
    >>> metric = PearsonCorrelation()
    >>> metric.update((torch.tensor([1.0, 2.0, 3.0]), torch.tensor([2.0, 4.0, 7.0])))
    >>> round(metric.compute(), 6)
    0.993399
    """

    _state_attrs = (
        "_sum_of_y_preds",
        "_sum_of_ys",
        "_sum_of_y_pred_squares",
        "_sum_of_y_squares",
        "_sum_of_products",
        "_num_examples",
    )

    def __init__(
        self,
        eps: float = 1e-8,
        output_transform: Callable[[Any], Any] = lambda x: x,
        device: str | torch.device = "cpu",
    ) -> None:
        self.eps = eps
        super().__init__(output_transform, device)

    def reset(self) -> None:
        for name in self._state_attrs[:-1]:
            setattr(self, name, _zero(self._device))
        self._num_examples = 0

    def update(self, output: Any) -> None:
        y_pred, y = regression_pair(self, output)
        for name, t in (
            ("_sum_of_y_preds", y_pred),
            ("_sum_of_ys", y),
            ("_sum_of_y_pred_squares", y_pred.square()),
            ("_sum_of_y_squares", y.square()),
            ("_sum_of_products", y_pred * y),
        ):
            getattr(self, name).add_(t.sum().to(self._device, dtype=torch.float64))
        self._num_examples += y.shape[0]

    @sync_all_reduce(
        "_sum_of_y_preds",
        "_sum_of_ys",
        "_sum_of_y_pred_squares",
        "_sum_of_y_squares",
        "_sum_of_products",
        "_num_examples",
    )
    def compute(self) -> float:
        n = self._num_examples
        if n == 0:
            raise not_computable(self)
        pred_mean, y_mean = self._sum_of_y_preds / n, self._sum_of_ys / n
        cov = self._sum_of_products / n - pred_mean * y_mean
        # E[x^2] - E[x]^2 may come out a hair below 0 by rounding
        pred_var = torch.clamp(self._sum_of_y_pred_squares / n - pred_mean * pred_mean, min=0.0)
        y_var = torch.clamp(self._sum_of_y_squares / n - y_mean * y_mean, min=0.0)
        return float((cov / torch.clamp(torch.sqrt(pred_var * y_var), min=self.eps)).item())
