"""The average of a loss function over the examples seen."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from ignite_async.metrics.metric import Metric, NotComputableError, sync_all_reduce

__all__ = ["Loss"]


class Loss(Metric):
    """``loss_fn(y_pred, y, **kwargs)`` averaged over examples, weighting each batch by ``batch_size(y)``.

    ``update`` takes ``(y_pred, y)`` or ``(y_pred, y, kwargs)`` (items after those are ignored); ``loss_fn``
    must return the batch's mean loss.
    """

    required_output_keys = ("y_pred", "y")
    _optional_output_keys = ("criterion_kwargs",)

    _state_attrs = ("_sum", "_num_examples")

    def __init__(
        self,
        loss_fn: Callable[..., torch.Tensor],
        output_transform: Callable[[Any], Any] = lambda x: x,
        batch_size: Callable[[torch.Tensor], int] = len,
        device: str | torch.device = "cpu",
        skip_unrolling: bool = False,
    ) -> None:
        if not callable(loss_fn):
            raise TypeError(f"loss_fn must be callable, got {loss_fn!r}")
        self._loss_fn = loss_fn
        self._batch_size = batch_size
        super().__init__(output_transform, device, skip_unrolling)

    def reset(self) -> None:
        self._sum = torch.tensor(0.0, dtype=torch.float64, device=self._device)
        self._num_examples = 0

    def update(self, output: Any) -> None:
        if not isinstance(output, (tuple, list)) or len(output) < 2:
            got = f"{len(output)} items" if isinstance(output, (tuple, list)) else type(output).__name__
            raise ValueError(f"Loss.update takes (y_pred, y) or (y_pred, y, kwargs), got {got}")
        y_pred, y = output[0], output[1]
        # A third item that is a mapping is loss_fn's kwargs (pytorch-ignite's criterion_kwargs); any other
        # items after the pair are ignored, as every metric ignores them.
        kwargs: Mapping[str, Any] = output[2] if len(output) > 2 and isinstance(output[2], Mapping) else {}
        average = self._loss_fn(y_pred, y, **kwargs).detach()
        if average.ndim != 0:
            raise ValueError(f"loss_fn must return the batch's mean loss (a scalar), got shape {tuple(average.shape)}")
        n = self._batch_size(y)
        self._sum.add_(average.to(self._device), alpha=n)
        self._num_examples += n

    @sync_all_reduce("_sum", "_num_examples")
    def compute(self) -> float:
        if self._num_examples == 0:
            raise NotComputableError("Loss must have at least one example before it can be computed")
        return self._sum.item() / self._num_examples
