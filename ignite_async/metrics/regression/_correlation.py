"""Rank correlations over all of an epoch's examples, computed natively in torch (no scipy needed).

The values are those of ``scipy.stats.kendalltau`` (tau-b, tau-c) and ``scipy.stats.spearmanr``, which
pytorch-ignite calls: ties get average ranks (Spearman) or are left out of the pairs' count (Kendall).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from ignite_async.metrics.epoch_metric import EpochMetric
from ignite_async.metrics.regression._base import regression_pair

__all__ = ["KendallRankCorrelation", "SpearmanRankCorrelation"]


def _average_ranks(values: torch.Tensor) -> torch.Tensor:
    """1-based ranks of ``values`` (float64), tied values sharing the mean of their ranks."""
    ordered, order = torch.sort(values, stable=True)
    _, group, counts = torch.unique_consecutive(ordered, return_inverse=True, return_counts=True)
    ends = torch.cumsum(counts, 0).to(torch.float64)
    mean_rank = ends - (counts.to(torch.float64) - 1) / 2  # of the ranks ends - counts + 1 ... ends
    ranks = torch.empty(values.shape, dtype=torch.float64, device=values.device)
    ranks[order] = mean_rank[group]
    return ranks


def _spearman(y_pred: torch.Tensor, y: torch.Tensor) -> float:
    """Pearson's r of the average ranks; NaN for fewer than 2 examples or a constant input (as scipy, silently)."""
    if y_pred.numel() < 2 or _has_nan(y_pred, y):
        return math.nan
    a, b = _average_ranks(y_pred.reshape(-1)), _average_ranks(y.reshape(-1))
    a, b = a - a.mean(), b - b.mean()
    norm = torch.sqrt(torch.sum(a * a) * torch.sum(b * b))
    if float(norm) == 0:
        return math.nan
    return max(-1.0, min(1.0, float(torch.sum(a * b) / norm)))


def _has_nan(*tensors: torch.Tensor) -> bool:
    """A NaN makes the correlation NaN (scipy's default ``nan_policy="propagate"``), not a rank of its own."""
    return any(bool(torch.isnan(t).any()) for t in tensors)


def _dense_ranks(values: torch.Tensor) -> torch.Tensor:
    ranks: torch.Tensor = torch.unique(values, sorted=True, return_inverse=True)[1]
    return ranks


def _tied_pairs(keys: torch.Tensor) -> int:
    """How many pairs of positions hold equal ``keys``."""
    counts = torch.unique(keys, return_counts=True)[1]
    return int(torch.sum(counts * (counts - 1) // 2))


def _inversions(values: torch.Tensor) -> int:
    """How many pairs ``i < j`` have ``values[i] > values[j]`` (``values``: int64 in ``[0, n)``), in O(n log^2 n).

    Bottom-up, as a merge sort counts them but without merging: at width ``w``, each pair of neighbouring
    blocks (left, right) counts, for each right element, the left elements above it, by a search in the
    sorted left blocks. Every pair of positions is counted at the one width where it straddles two blocks.
    """
    n = values.numel()
    index = torch.arange(n, device=values.device)
    total = 0
    width = 1
    while width < n:
        pair = torch.div(index, 2 * width, rounding_mode="floor")
        left = (index % (2 * width)) < width
        # Keys sort by pair first: every left block's values come out sorted, blocks in order.
        left_keys = torch.sort(pair[left] * n + values[left]).values
        right_pair, right_values = pair[~left], values[~left]
        below_next = torch.searchsorted(left_keys, (right_pair + 1) * n, right=False)
        up_to_own = torch.searchsorted(left_keys, right_pair * n + right_values, right=True)
        total += int(torch.sum(below_next - up_to_own))
        width *= 2
    return total


def _kendall(variant: str) -> Callable[[torch.Tensor, torch.Tensor], float]:
    def tau(y_pred: torch.Tensor, y: torch.Tensor) -> float:
        if _has_nan(y_pred, y):
            return math.nan
        x, z = _dense_ranks(y_pred.reshape(-1)), _dense_ranks(y.reshape(-1))
        n = x.numel()
        pairs = n * (n - 1) // 2
        x_ties, z_ties = _tied_pairs(x), _tied_pairs(z)
        if n < 2 or x_ties == pairs or z_ties == pairs:
            return math.nan
        joint = x * n + z
        # Sorted by (x, z), the discordant pairs are the strict inversions of z; pairs tied in x are in
        # ascending z, so they add none.
        discordant = _inversions(z[torch.sort(joint).indices])
        both_ties = _tied_pairs(joint)
        concordant_minus_discordant = pairs - x_ties - z_ties + both_ties - 2 * discordant
        if variant == "b":
            value = concordant_minus_discordant / math.sqrt(pairs - x_ties) / math.sqrt(pairs - z_ties)
        else:
            classes = min(int(x.max()) + 1, int(z.max()) + 1)
            value = 2 * concordant_minus_discordant / (n**2 * (classes - 1) / classes)
        return max(-1.0, min(1.0, value))

    return tau


class KendallRankCorrelation(EpochMetric):
    r"""Kendall's rank correlation :math:`\tau` (``variant`` ``"b"`` or ``"c"``) over every example since the reset.

    Computed in torch on ``device`` (pytorch-ignite calls scipy), in O(n log^2 n); NaN when it is undefined
    (fewer than 2 examples, or an input with a single value). ``y_pred`` and ``y`` are ``(N,)`` or ``(N, 1)``,
    float, of one shape.

    :param variant: ``"b"`` (ties adjusted, the default) or ``"c"`` (for tables that are not square).
    :param output_transform: turns the engine's output into ``(y_pred, y)``.
    :param check_compute_fn: compute on the first batch too, to warn early if it fails.
    :param device: where the examples are kept.
    :param skip_unrolling: give ``update`` lists of tensors as they are (see :class:`Metric`).
    :raises ValueError: if ``variant`` is not ``"b"`` or ``"c"``.
    :raises NotComputableError: from ``compute()`` before any example.

    >>> import torch
    >>> metric = KendallRankCorrelation()
    >>> metric.update((torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([1.0, 3.0, 2.0, 4.0])))
    >>> round(metric.compute(), 6)
    0.666667
    """

    def __init__(
        self,
        variant: str = "b",
        output_transform: Callable[[Any], Any] = lambda x: x,
        check_compute_fn: bool = True,
        device: str | torch.device = "cpu",
        skip_unrolling: bool = False,
    ) -> None:
        if variant not in ("b", "c"):
            raise ValueError(f"KendallRankCorrelation: variant must be 'b' or 'c', got {variant!r}")
        self.variant = variant
        super().__init__(_kendall(variant), output_transform, check_compute_fn, device, skip_unrolling)

    def update(self, output: Any) -> None:
        super().update(regression_pair(self, output))


class SpearmanRankCorrelation(EpochMetric):
    r"""Spearman's rank correlation :math:`\rho` over every example since the last reset.

    Pearson's correlation of the ranks (tied values share the mean of their ranks), computed in torch on
    ``device`` (pytorch-ignite calls scipy); NaN when it is undefined (fewer than 2 examples, or an input
    with a single value). ``y_pred`` and ``y`` are ``(N,)`` or ``(N, 1)``, float, of one shape.

    :param output_transform: turns the engine's output into ``(y_pred, y)``.
    :param check_compute_fn: compute on the first batch too, to warn early if it fails.
    :param device: where the examples are kept.
    :param skip_unrolling: give ``update`` lists of tensors as they are (see :class:`Metric`).
    :raises NotComputableError: from ``compute()`` before any example.

    >>> import torch
    >>> metric = SpearmanRankCorrelation()
    >>> metric.update((torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([1.0, 3.0, 2.0, 4.0])))
    >>> round(metric.compute(), 6)
    0.8
    """

    def __init__(
        self,
        output_transform: Callable[[Any], Any] = lambda x: x,
        check_compute_fn: bool = True,
        device: str | torch.device = "cpu",
        skip_unrolling: bool = False,
    ) -> None:
        super().__init__(_spearman, output_transform, check_compute_fn, device, skip_unrolling)

    def update(self, output: Any) -> None:
        super().update(regression_pair(self, output))
