"""Top-k categorical accuracy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ignite_async.metrics.metric import Metric, NotComputableError, check_pair, sync_all_reduce

__all__ = ["TopKCategoricalAccuracy"]


class TopKCategoricalAccuracy(Metric):
    """The fraction of samples whose true class is among the ``k`` highest scores.

    ``y_pred`` is ``(N, C)`` scores with ``C >= k``, ``y`` is ``(N,)`` class indices.

    >>> import torch
    >>> top2 = TopKCategoricalAccuracy(k=2)
    >>> top2.update((torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7]]), torch.tensor([1, 0])))
    >>> top2.compute()
    0.5
    """

    _state_attrs = ("_num_correct", "_num_examples")

    def __init__(
        self,
        k: int = 5,
        output_transform: Callable[[Any], Any] = lambda x: x,
        device: str | torch.device = "cpu",
        skip_unrolling: bool = False,
    ) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        self._k = k
        super().__init__(output_transform, device, skip_unrolling)

    def reset(self) -> None:
        self._num_correct = torch.tensor(0, dtype=torch.long, device=self._device)
        self._num_examples = 0

    def update(self, output: Any) -> None:
        y_pred, y = check_pair(self, output)
        if y_pred.ndim != 2 or y.shape != y_pred.shape[:1]:
            raise ValueError(
                f"TopKCategoricalAccuracy: y_pred must be (N, C) and y (N,), got {tuple(y_pred.shape)} and "
                f"{tuple(y.shape)}"
            )
        if y_pred.shape[1] < self._k:
            raise ValueError(f"TopKCategoricalAccuracy: k={self._k} but y_pred scores only {y_pred.shape[1]} classes")
        top = torch.topk(y_pred, self._k, dim=1).indices
        correct = torch.eq(top, y.reshape(-1, 1)).sum()
        self._num_correct += correct.to(self._device)
        self._num_examples += y.shape[0]

    @sync_all_reduce("_num_correct", "_num_examples")
    def compute(self) -> float:
        if self._num_examples == 0:
            raise NotComputableError("TopKCategoricalAccuracy must have at least one example before it can be computed")
        return self._num_correct.item() / self._num_examples
