"""Perplexity of a language model: ``exp`` of the mean cross-entropy per counted token."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from ignite_async.metrics.metric import Metric, NotComputableError, check_pair, sync_all_reduce

__all__ = ["Perplexity"]


class Perplexity(Metric):
    """``exp(sum of token NLLs / tokens)`` for logits ``(N, C, ...)`` and token ids ``(N, ...)``; tokens equal
    to ``ignore_index`` are not counted.

    :raises ValueError: at ``update``, for shapes that ``cross_entropy`` does not take.

    >>> import torch
    >>> perplexity = Perplexity()
    >>> perplexity.update((torch.zeros(2, 4, 3), torch.tensor([[0, 1, -100], [2, 3, 1]])))
    >>> round(perplexity.compute(), 4)  # uniform over 4 tokens
    4.0
    """

    _state_attrs = ("_sum_of_nll", "_num_tokens")

    def __init__(
        self,
        output_transform: Callable[[Any], Any] = lambda x: x,
        device: str | torch.device = "cpu",
        ignore_index: int = -100,
    ) -> None:
        self._ignore_index = ignore_index
        super().__init__(output_transform, device)

    def reset(self) -> None:
        self._sum_of_nll = torch.tensor(0.0, dtype=torch.float64, device=self._device)
        self._num_tokens = torch.tensor(0, device=self._device)

    def update(self, output: Any) -> None:
        y_pred, y = check_pair(self, output)
        shapes = f"{tuple(y_pred.shape)} and {tuple(y.shape)}"
        if y.ndim < 1 or y_pred.ndim != y.ndim + 1 or y_pred.shape[0] != y.shape[0] or y_pred.shape[2:] != y.shape[1:]:
            raise ValueError(f"Perplexity: y_pred must be (N, C, ...) logits for y (N, ...) token ids, got {shapes}")
        nll = F.cross_entropy(y_pred, y, reduction="sum", ignore_index=self._ignore_index)
        self._sum_of_nll += nll.to(self._device)
        self._num_tokens += (y != self._ignore_index).sum().to(self._device)

    @sync_all_reduce("_sum_of_nll", "_num_tokens")
    def compute(self) -> float:
        if int(self._num_tokens) == 0:
            raise NotComputableError("Perplexity must have at least one token before it can be computed")
        return float(torch.exp(self._sum_of_nll / self._num_tokens))
