"""Hilbert-Schmidt Independence Criterion: Song et al.'s unbiased estimate per batch, averaged over batches."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ignite_async.metrics.metric import Metric, NotComputableError, check_pair, sync_all_reduce

__all__ = ["HSIC"]


def _sigma(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value == 0 or value != value:
        raise ValueError(
            f"HSIC: {name} must be a positive bandwidth, or negative for the median heuristic; got {value!r}"
        )
    return float(value)


def _features(t: torch.Tensor, name: str) -> torch.Tensor:
    """``(B, ...)`` as ``(B, features)`` floats."""
    if t.ndim < 2:
        raise ValueError(f"HSIC: {name} must be (B, ...) with a feature dimension, got shape {tuple(t.shape)}")
    t = t.flatten(start_dim=1)
    return t if t.is_floating_point() else t.to(torch.get_default_dtype())


def _gaussian_gram(z: torch.Tensor, sigma: float, off_diagonal: torch.Tensor) -> torch.Tensor:
    """``exp(-|z_i - z_j|² / 2 v)`` for i != j, 0 on the diagonal; ``v`` is ``sigma²``, or for a negative
    ``sigma`` the median (interpolated, diagonal zeros included) of the squared distances."""
    gram = z @ z.T
    norms = gram.diagonal().unsqueeze(0)
    # |a-b|² = |a|² + |b|² - 2 a.b, from the Gram matrix, which is exactly 0 on the diagonal.
    squared = norms.T + norms - 2 * gram
    v: torch.Tensor | float = torch.quantile(squared, 0.5) if sigma < 0 else sigma**2
    return torch.exp(-0.5 * squared / v) * off_diagonal


class HSIC(Metric):
    """The mean over batches of the unbiased HSIC estimate (Song et al. 2012, eq. 5) between ``y_pred`` and
    ``y``, with Gaussian kernels: how dependent the two are (0 when they are independent).

    ``y_pred`` and ``y`` are ``(B, ...)`` with the same ``B`` (each flattened to ``(B, features)``; their
    feature counts may differ). A batch's estimate below 0 counts as 0. The estimate needs at least four
    samples per batch.

    :param sigma_x: the kernel bandwidth for ``y_pred``; negative: the median heuristic (the median of the
        batch's squared pairwise distances is the kernel's variance).
    :param sigma_y: the same for ``y``.
    :param ignore_invalid_batch: skip a batch of fewer than four samples (``False``: raise ValueError).
    :param output_transform: turns the engine's output into ``(y_pred, y)``.
    :param device: where the sum of estimates is kept.
    :param skip_unrolling: ``True``: an attached metric gets lists of outputs as they are, not one pair at a
        time (see :class:`~ignite_async.metrics.metric.Metric`).
    :raises ValueError: for a bandwidth of 0 (ignite would give nan); at ``update``, for inputs without a feature
        dimension, different batch sizes, or a batch under four samples with ``ignore_invalid_batch=False``.
    :raises NotComputableError: from ``compute()`` before any batch of four samples or more.

    >>> import torch
    >>> hsic = HSIC()
    >>> x = torch.arange(50.0).reshape(10, 5)
    >>> hsic.update((x, torch.sin(x * torch.pi * 2 / 50)))
    >>> round(hsic.compute(), 6)
    0.092266
    """

    _state_attrs = ("_sum_of_hsic", "_num_batches")

    def __init__(
        self,
        sigma_x: float = -1,
        sigma_y: float = -1,
        ignore_invalid_batch: bool = True,
        output_transform: Callable[[Any], Any] = lambda x: x,
        device: str | torch.device = "cpu",
        skip_unrolling: bool = False,
    ) -> None:
        self.sigma_x = _sigma(sigma_x, "sigma_x")
        self.sigma_y = _sigma(sigma_y, "sigma_y")
        self.ignore_invalid_batch = bool(ignore_invalid_batch)
        super().__init__(output_transform, device, skip_unrolling=skip_unrolling)

    def reset(self) -> None:
        self._sum_of_hsic = torch.tensor(0.0, dtype=torch.float64, device=self._device)
        self._num_batches = 0

    def update(self, output: Any) -> None:
        x_in, y_in = check_pair(self, output)
        x, y = _features(x_in, "y_pred"), _features(y_in, "y")
        b = x.shape[0]
        if y.shape[0] != b:
            raise ValueError(
                f"HSIC: y_pred and y must have the same batch size, got {tuple(x_in.shape)} and {tuple(y_in.shape)}"
            )
        if b < 4:
            if self.ignore_invalid_batch:
                return
            raise ValueError(
                f"HSIC: a batch must contain at least four samples, got {b}; use larger batches, or "
                "ignore_invalid_batch=True to skip such batches"
            )
        off_diagonal = 1.0 - torch.eye(b, device=x.device)
        k = _gaussian_gram(x, self.sigma_x, off_diagonal)
        l_ = _gaussian_gram(y, self.sigma_y, off_diagonal)
        kl = k @ l_
        estimate = kl.trace() + k.sum() * l_.sum() / ((b - 1) * (b - 2)) - 2.0 * kl.sum() / (b - 2)
        self._sum_of_hsic += (estimate / (b * (b - 3))).clamp(min=0.0).to(self._device)
        self._num_batches += 1

    @sync_all_reduce("_sum_of_hsic", "_num_batches")
    def compute(self) -> float:
        if self._num_batches == 0:
            raise NotComputableError(
                "HSIC must have at least one batch of four samples or more before it can be computed"
            )
        return float(self._sum_of_hsic) / self._num_batches
