"""Maximum mean discrepancy between two samples, with a Gaussian kernel, from per-batch unbiased kernel means."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ignite_async.metrics.metric import Metric, NotComputableError, check_pair, sync_all_reduce

__all__ = ["MaximumMeanDiscrepancy"]


class MaximumMeanDiscrepancy(Metric):
    """The maximum mean discrepancy (MMD) between the samples ``x`` and ``y`` (Gretton et al. 2012), with the
    Gaussian kernel ``k(a, b) = exp(-|a - b|² / 2 var)``.

    Each batch gives three kernel means: over pairs ``i != j`` of ``x`` (unbiased), over pairs ``i != j`` of
    ``y``, and over all pairs of ``x`` with ``y``. Each is averaged over batches, and the value is
    ``sqrt(max(0, mean_xx + mean_yy - 2 mean_xy))``.

    ``x`` and ``y`` have one shape ``(B, ...)`` (flattened to ``(B, features)``), with ``B >= 2``.

    :param var: the kernel's bandwidth ``sigma²``, positive.
    :param output_transform: turns the engine's output into ``(x, y)``.
    :param device: where the sums of kernel means are kept.
    :param skip_unrolling: ``True``: an attached metric gets lists of outputs as they are, not one pair at a
        time (see :class:`~ignite_async.metrics.metric.Metric`).
    :raises ValueError: for a ``var`` that is not positive; at ``update``, for different shapes, inputs without a
        feature dimension, or a batch of one sample (ignite would turn the whole value into nan).
    :raises NotComputableError: from ``compute()`` before any batch.

    >>> import torch
    >>> mmd = MaximumMeanDiscrepancy(var=1.0)
    >>> mmd.update((torch.tensor([[0.0, 0.0], [0.0, 1.0]]), torch.tensor([[3.0, 0.0], [3.0, 1.0]])))
    >>> round(mmd.compute(), 4)
    1.0933
    """

    _state_attrs = ("_xx_sum", "_yy_sum", "_xy_sum", "_num_batches")

    def __init__(
        self,
        var: float = 1.0,
        output_transform: Callable[[Any], Any] = lambda x: x,
        device: str | torch.device = "cpu",
        skip_unrolling: bool = False,
    ) -> None:
        if isinstance(var, bool) or not isinstance(var, (int, float)) or not var > 0:
            raise ValueError(
                f"MaximumMeanDiscrepancy: var (the kernel's bandwidth sigma²) must be positive, got {var!r}"
            )
        self.var = float(var)
        super().__init__(output_transform, device, skip_unrolling=skip_unrolling)

    def reset(self) -> None:
        self._xx_sum = torch.tensor(0.0, dtype=torch.float64, device=self._device)
        self._yy_sum = torch.tensor(0.0, dtype=torch.float64, device=self._device)
        self._xy_sum = torch.tensor(0.0, dtype=torch.float64, device=self._device)
        self._num_batches = 0

    def update(self, output: Any) -> None:
        x, y = check_pair(self, output)
        if x.shape != y.shape:
            raise ValueError(
                f"MaximumMeanDiscrepancy: x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}"
            )
        if x.ndim < 2:
            raise ValueError(f"MaximumMeanDiscrepancy: x and y must be (B, ...), got shape {tuple(x.shape)}")
        n = x.shape[0]
        if n < 2:
            raise ValueError(
                f"MaximumMeanDiscrepancy: a batch must contain at least two samples, got {n} "
                "(the unbiased within-sample means need pairs); use larger batches or drop_last=True"
            )
        x, y = x.flatten(start_dim=1), y.flatten(start_dim=1)
        if not x.is_floating_point():
            x, y = x.to(torch.get_default_dtype()), y.to(torch.get_default_dtype())
        xx, yy, xy = x @ x.T, y @ y.T, x @ y.T
        x_norms, y_norms = xx.diagonal().unsqueeze(0), yy.diagonal().unsqueeze(0)
        # Squared distances |a-b|² = |a|² + |b|² - 2 a.b; exactly 0 on the diagonals of the within-sample ones,
        # whose kernel values (exactly 1) are then taken out of the sums.
        k_xx = torch.exp(-0.5 * (x_norms.T + x_norms - 2.0 * xx) / self.var)
        k_yy = torch.exp(-0.5 * (y_norms.T + y_norms - 2.0 * yy) / self.var)
        k_xy = torch.exp(-0.5 * (x_norms.T + y_norms - 2.0 * xy) / self.var)
        self._xx_sum += ((k_xx.sum() - n) / (n * (n - 1))).to(self._device)
        self._yy_sum += ((k_yy.sum() - n) / (n * (n - 1))).to(self._device)
        self._xy_sum += (k_xy.sum() / (n * n)).to(self._device)
        self._num_batches += 1

    @sync_all_reduce("_xx_sum", "_yy_sum", "_xy_sum", "_num_batches")
    def compute(self) -> float:
        if self._num_batches == 0:
            raise NotComputableError("MaximumMeanDiscrepancy must have at least one batch before it can be computed")
        squared = (self._xx_sum + self._yy_sum - 2.0 * self._xy_sum).clamp(min=0.0) / self._num_batches
        return float(squared.sqrt())
