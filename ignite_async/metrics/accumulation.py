"""Accumulations of the outputs: any binary operation, and the geometric mean."""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

import torch

from ignite_async.metrics.metric import Metric, NotComputableError, sync_all_reduce

__all__ = ["GeometricAverage", "VariableAccumulation"]


class VariableAccumulation(Metric):
    """``accumulator = op(accumulator, output)`` from a float64 ``0.0``; ``compute()`` is
    ``(accumulator, num_examples)``, counting a tensor's first dimension when it has more than one, else 1.

    Tensor outputs are moved to the accumulator's device and dtype first.

    :param op: the binary operation, e.g. ``lambda a, x: a + x.sum()``.
    :param skip_unrolling: give ``update`` lists of tensors as they are (see :class:`Metric`).
    :raises TypeError: if ``op`` is not callable; at ``update``, for an output that is neither a number nor
        a tensor.

    >>> import torch
    >>> total = VariableAccumulation(lambda a, x: a + x.sum())
    >>> total.update(torch.tensor([1.0, 2.0]))
    >>> total.update(torch.tensor([[3.0], [4.0]]))
    >>> value, count = total.compute()
    >>> value.item(), count
    (10.0, 3)
    """

    required_output_keys = None
    _state_attrs = ("accumulator", "num_examples")

    def __init__(
        self,
        op: Callable[[Any, Any], Any],
        output_transform: Callable[[Any], Any] = lambda x: x,
        device: str | torch.device = "cpu",
        skip_unrolling: bool = False,
    ) -> None:
        if not callable(op):
            raise TypeError(f"VariableAccumulation: op must be callable, got {type(op).__name__}")
        self._op = op
        super().__init__(output_transform, device, skip_unrolling)

    def reset(self) -> None:
        self.accumulator: Any = torch.tensor(0.0, dtype=torch.float64, device=self._device)
        self.num_examples = 0

    def update(self, output: Any) -> None:
        if isinstance(output, torch.Tensor):
            output = output.detach().to(self.accumulator)
        elif isinstance(output, bool) or not isinstance(output, numbers.Number):
            raise TypeError(f"{type(self).__name__} takes numbers or tensors, got {type(output).__name__}")
        self.accumulator = self._op(self.accumulator, output)
        self.num_examples += output.shape[0] if isinstance(output, torch.Tensor) and output.ndim > 1 else 1

    @sync_all_reduce("accumulator", "num_examples")
    def compute(self) -> tuple[Any, int]:
        return self.accumulator, self.num_examples


def _add_logs(accumulator: torch.Tensor, x: Any) -> torch.Tensor:
    logs = torch.log(x if isinstance(x, torch.Tensor) else torch.tensor(x, dtype=torch.float64))
    return accumulator + (logs.sum(dim=0) if logs.ndim > 1 else logs.to(accumulator.device))


class GeometricAverage(VariableAccumulation):
    """The geometric mean of positive outputs: numbers, or tensors whose first dimension is the batch (a
    number when the mean is one value, else a tensor).

    >>> import torch
    >>> mean = GeometricAverage()
    >>> mean.update(torch.tensor([[1.0], [4.0]]))
    >>> mean.update(2.0)
    >>> round(mean.compute(), 6)
    2.0
    """

    def __init__(
        self,
        output_transform: Callable[[Any], Any] = lambda x: x,
        device: str | torch.device = "cpu",
        skip_unrolling: bool = False,
    ) -> None:
        super().__init__(_add_logs, output_transform, device, skip_unrolling)

    @sync_all_reduce("accumulator", "num_examples")
    def compute(self) -> Any:
        if self.num_examples < 1:
            raise NotComputableError("GeometricAverage must have at least one example before it can be computed")
        mean = torch.exp(self.accumulator / self.num_examples)
        return mean.item() if mean.numel() == 1 else mean
