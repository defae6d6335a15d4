"""Regression metrics over all of an epoch's examples: medians of errors, a geometric mean of relative errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ignite_async.metrics.epoch_metric import EpochMetric
from ignite_async.metrics.metric import NotComputableError, ResultMode
from ignite_async.metrics.regression._base import regression_pair

__all__ = [
    "GeometricMeanRelativeAbsoluteError",
    "MedianAbsoluteError",
    "MedianAbsolutePercentageError",
    "MedianRelativeAbsoluteError",
]


def _median(values: torch.Tensor) -> float:
    """The median of all of ``values``: the mean of the two middle ones when there are evenly many."""
    if values.device.type == "mps":  # kthvalue is not implemented there
        values = values.cpu()
    flat = values.reshape(-1)
    n = flat.numel()
    if n == 0:
        raise NotComputableError("a median of no examples is undefined")
    upper = torch.kthvalue(flat, n // 2 + 1).values
    if n % 2:
        return float(upper)
    return float((torch.kthvalue(flat, n // 2).values + upper) / 2)


def _median_absolute_error(y_pred: torch.Tensor, y: torch.Tensor) -> float:
    return _median(torch.abs(y.view_as(y_pred) - y_pred))


def _median_absolute_percentage_error(y_pred: torch.Tensor, y: torch.Tensor) -> float:
    y = y.view_as(y_pred)
    return 100.0 * _median(torch.abs(y - y_pred) / torch.abs(y))


def _median_relative_absolute_error(y_pred: torch.Tensor, y: torch.Tensor) -> float:
    y = y.view_as(y_pred)
    return _median(torch.abs(y - y_pred) / torch.abs(y - torch.mean(y)))


def _geometric_mean_relative_absolute_error(y_pred: torch.Tensor, y: torch.Tensor) -> float:
    return float(torch.exp(torch.log(torch.abs(y - y_pred) / torch.abs(y - y.mean())).mean()))


class MedianAbsoluteError(EpochMetric):
    r"""The median of :math:`|y_j - \hat y_j|` over every example since the last reset.

    ``y_pred`` and ``y`` are ``(N,)`` or ``(N, T)`` (all ``N * T`` errors make the median), kept on ``device``
    until ``compute()``, as :class:`~ignite_async.metrics.EpochMetric` keeps them.

    :param output_transform: turns the engine's output into ``(y_pred, y)``.
    :param device: where the examples are kept.
    :raises NotComputableError: from ``compute()`` before any example.

    >>> import torch
    >>> metric = MedianAbsoluteError()
    >>> metric.update((torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.5, 4.0, 3.0])))
    >>> metric.update((torch.tensor([0.0]), torch.tensor([1.0])))
    >>> metric.compute()
    0.75
    """

    def __init__(
        self, output_transform: Callable[[Any], Any] = lambda x: x, device: str | torch.device = "cpu"
    ) -> None:
        super().__init__(_median_absolute_error, output_transform=output_transform, device=device)


class MedianAbsolutePercentageError(EpochMetric):
    r"""100 times the median of :math:`|y_j - \hat y_j| / |y_j|` over every example since the last reset.

    ``y_pred`` and ``y`` are ``(N,)`` or ``(N, T)``, kept on ``device`` until ``compute()``.

    :param output_transform: turns the engine's output into ``(y_pred, y)``.
    :param device: where the examples are kept.
    :raises NotComputableError: from ``compute()`` before any example.

    >>> import torch
    >>> metric = MedianAbsolutePercentageError()
    >>> metric.update((torch.tensor([1.0, 3.0, 5.0]), torch.tensor([2.0, 4.0, 5.0])))
    >>> metric.compute()
    25.0
    """

    def __init__(
        self, output_transform: Callable[[Any], Any] = lambda x: x, device: str | torch.device = "cpu"
    ) -> None:
        super().__init__(_median_absolute_percentage_error, output_transform=output_transform, device=device)


class MedianRelativeAbsoluteError(EpochMetric):
    r"""The median of :math:`|y_j - \hat y_j| / |y_j - \bar y|` over every example since the last reset.

    ``y_pred`` and ``y`` are ``(N,)`` or ``(N, T)``, kept on ``device`` until ``compute()``; :math:`\bar y` is
    the mean of every ``y``.

    :param output_transform: turns the engine's output into ``(y_pred, y)``.
    :param device: where the examples are kept.
    :raises NotComputableError: from ``compute()`` before any example.

    >>> import torch
    >>> metric = MedianRelativeAbsoluteError()
    >>> metric.update((torch.tensor([1.0, 1.5, 3.5]), torch.tensor([0.0, 1.0, 5.0])))
    >>> metric.compute()
    0.5
    """

    def __init__(
        self, output_transform: Callable[[Any], Any] = lambda x: x, device: str | torch.device = "cpu"
    ) -> None:
        super().__init__(_median_relative_absolute_error, output_transform=output_transform, device=device)


class GeometricMeanRelativeAbsoluteError(EpochMetric):
    r"""The geometric mean of :math:`|y_j - \hat y_j| / |y_j - \bar y|` over every example since the last reset.

    :math:`\bar y` is the mean of every ``y``, so the examples are kept on ``device`` until ``compute()``.
    ``y_pred`` and ``y`` are ``(N,)`` or ``(N, 1)``, float, of one shape.

    :param output_transform: turns the engine's output into ``(y_pred, y)``.
    :param device: where the examples are kept.
    :param skip_unrolling: give ``update`` lists of tensors as they are (see :class:`Metric`).
    :param metrics_result_mode: as :class:`Metric` (the result is a number).
    :raises NotComputableError: from ``compute()`` before any example.

    >>> import torch
    >>> metric = GeometricMeanRelativeAbsoluteError()
    >>> metric.update((torch.tensor([1.0, 1.5, 3.5]), torch.tensor([0.0, 1.0, 5.0])))
    >>> round(metric.compute(), 6)
    0.5
    """

    def __init__(
        self,
        output_transform: Callable[[Any], Any] = lambda x: x,
        device: str | torch.device = "cpu",
        skip_unrolling: bool = False,
        metrics_result_mode: ResultMode = "both",
    ) -> None:
        # pytorch-ignite's is no EpochMetric: it does not try the computation on the first batch.
        super().__init__(
            _geometric_mean_relative_absolute_error,
            output_transform=output_transform,
            check_compute_fn=False,
            device=device,
            skip_unrolling=skip_unrolling,
            metrics_result_mode=metrics_result_mode,
        )

    def update(self, output: Any) -> None:
        super().update(regression_pair(self, output))
