"""What pytorch-ignite's regression metrics share: the input checks and a sum accumulated on the device."""

from __future__ import annotations

from typing import Any

import torch

from ignite_async.metrics.metric import Metric, NotComputableError, check_pair, sync_all_reduce

_FLOATS = (torch.float16, torch.float32, torch.float64)


def regression_pair(metric: Metric, output: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """``(y_pred, y)`` checked as pytorch-ignite checks regression outputs, ``(N, 1)`` squeezed to ``(N,)``.

    Only shapes and dtypes are checked, never values: nothing is read back from the device.

    :raises ValueError: unless both are ``(N,)`` or ``(N, 1)`` and of one shape.
    :raises TypeError: unless both are float16, float32 or float64.
    """
    y_pred, y = check_pair(metric, output)
    name = type(metric).__name__
    for label, t in (("y_pred", y_pred), ("y", y)):
        if not (t.ndim == 1 or (t.ndim == 2 and t.shape[1] == 1)):
            raise ValueError(f"{name}: {label} must be (N,) or (N, 1), got {tuple(t.shape)}")
    if y_pred.shape != y.shape:
        shapes = f"{tuple(y_pred.shape)} and {tuple(y.shape)}"
        raise ValueError(f"{name}: y_pred and y must have the same shape, got {shapes}")
    for label, t in (("y_pred", y_pred), ("y", y)):
        if t.dtype not in _FLOATS:
            raise TypeError(f"{name}: {label} must be float16, float32 or float64, got {t.dtype} (convert it first)")
    if y_pred.ndim == 2:
        y_pred, y = y_pred.squeeze(-1), y.squeeze(-1)
    return y_pred, y


def not_computable(metric: Metric) -> NotComputableError:
    return NotComputableError(f"{type(metric).__name__} must have at least one example before it can be computed")


class RegressionSum(Metric):
    """Sums ``_errors(y_pred, y)`` over the examples, on the device (float64), read back in ``compute()``.

    ``_value(total, n)`` makes the metric's value of the sum and the count of examples.
    """

    _state_attrs: tuple[str, ...] = ("_sum", "_num_examples")
    # Sums over nothing are 0 in pytorch-ignite (distances); means over nothing are not computable.
    _needs_examples = True

    def reset(self) -> None:
        self._sum = torch.tensor(0.0, dtype=torch.float64, device=self._device)
        self._num_examples = 0

    def _errors(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _value(self, total: float, n: int) -> float:
        return total / n

    def update(self, output: Any) -> None:
        y_pred, y = regression_pair(self, output)
        self._sum += torch.sum(self._errors(y_pred, y)).to(self._device, dtype=torch.float64)
        self._num_examples += y.shape[0]

    @sync_all_reduce("_sum", "_num_examples")
    def compute(self) -> float:
        if self._num_examples == 0 and self._needs_examples:
            raise not_computable(self)
        return self._value(self._sum.item(), self._num_examples)
