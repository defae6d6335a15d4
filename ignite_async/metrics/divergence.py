"""Entropy of predicted distributions, and KL and JS divergences between predicted and target ones (from logits)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ignite_async.metrics.metric import Metric, NotComputableError, check_pair, sync_all_reduce

__all__ = ["Entropy", "JSDivergence", "KLDivergence"]


def _rows(t: torch.Tensor, name: str) -> torch.Tensor:
    """``(B, C)`` or ``(B, C, ...)`` logits as ``(samples, C)`` rows."""
    if t.ndim < 2:
        raise ValueError(f"{name}: y_pred must be (B, C) or (B, C, ...) logits, got {tuple(t.shape)}")
    return t.movedim(1, -1).reshape(-1, t.shape[1]) if t.ndim > 2 else t


def _prediction_rows(output: Any, name: str) -> torch.Tensor:
    """The ``y_pred`` of ``(y_pred, y)`` or of ``y_pred`` alone, detached, as :func:`_rows`.

    :raises TypeError: for an output that is neither.
    """
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        y_pred = output[0].detach()
    elif isinstance(output, torch.Tensor):
        y_pred = output.detach()
    else:
        raise TypeError(f"{name}.update takes (y_pred, y) or y_pred tensors, got {type(output).__name__}")
    return _rows(y_pred, name)


class _SumOverRows(Metric):
    _state_attrs = ("_sum", "_num_examples")
    _divisor = 1

    def reset(self) -> None:
        self._sum = torch.tensor(0.0, dtype=torch.float64, device=self._device)
        self._num_examples = 0

    @sync_all_reduce("_sum", "_num_examples")
    def compute(self) -> float:
        if self._num_examples == 0:
            raise NotComputableError(f"{type(self).__name__} must have at least one example before it can be computed")
        return float(self._sum) / (self._num_examples * self._divisor)


class Entropy(_SumOverRows):
    """The mean entropy (nats) of ``softmax(y_pred)`` per sample (per position for ``(B, C, ...)``); ``y`` is
    not used.

    >>> import torch
    >>> entropy = Entropy()
    >>> entropy.update((torch.zeros(3, 4), torch.zeros(3)))
    >>> round(entropy.compute(), 4)  # log(4)
    1.3863
    """

    def update(self, output: Any) -> None:
        rows = _prediction_rows(output, "Entropy")
        entropy = -(F.softmax(rows, dim=1) * F.log_softmax(rows, dim=1)).sum()
        self._sum += entropy.to(self._device)
        self._num_examples += rows.shape[0]


class KLDivergence(_SumOverRows):
    """The mean ``KL(softmax(y) || softmax(y_pred))`` per sample, for logits ``y_pred`` and ``y`` of one shape
    ``(B, C)`` or ``(B, C, ...)`` (each position a sample).

    >>> import torch
    >>> kl = KLDivergence()
    >>> kl.update((torch.tensor([[0.0, 0.0]]), torch.tensor([[0.0, 0.0]])))
    >>> kl.compute()
    0.0
    """

    def update(self, output: Any) -> None:
        y_pred, y = check_pair(self, output)
        name = type(self).__name__
        if y_pred.shape != y.shape:
            raise ValueError(
                f"{name}: y_pred and y must have the same shape, got {tuple(y_pred.shape)} and {tuple(y.shape)}"
            )
        y_pred, y = _rows(y_pred, name), _rows(y, name)
        self._num_examples += y_pred.shape[0]
        self._sum += self._divergence(y_pred, y).to(self._device)

    def _divergence(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.kl_div(F.log_softmax(y_pred, dim=1), F.log_softmax(y, dim=1), log_target=True, reduction="sum")


class JSDivergence(KLDivergence):
    """The mean Jensen-Shannon divergence of ``softmax(y_pred)`` and ``softmax(y)`` per sample (same shapes as
    :class:`KLDivergence`).

    >>> import torch
    >>> js = JSDivergence()
    >>> js.update((torch.tensor([[0.0, 0.0]]), torch.tensor([[0.0, 0.0]])))
    >>> js.compute()
    0.0
    """

    _divisor = 2

    def _divergence(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        log_p, log_q = F.log_softmax(y_pred, dim=1), F.log_softmax(y, dim=1)
        log_m = ((log_p.exp() + log_q.exp()) / 2).log()
        return F.kl_div(log_m, log_p, log_target=True, reduction="sum") + F.kl_div(
            log_m, log_q, log_target=True, reduction="sum"
        )
