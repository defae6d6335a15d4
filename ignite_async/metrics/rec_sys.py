"""Ranking metrics for recommendations: hit rate and NDCG at several cut-offs ``k``.

Rows without any relevant item are left out (``ignore_zero_hits``) by weighting them 0 rather than by
selecting the others, so that nothing waits for the device in ``update``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ignite_async.metrics.metric import Metric, NotComputableError, check_pair, sync_all_reduce

__all__ = ["NDCG", "HitRate"]


def _cutoffs(top_k: Any, name: str) -> list[int]:
    ks = [top_k] if isinstance(top_k, int) else top_k
    if not isinstance(ks, list) or not ks or not all(isinstance(k, int) and not isinstance(k, bool) for k in ks):
        raise ValueError(f"{name}: top_k must be a positive integer or a non-empty list of them, got {top_k!r}")
    if any(k <= 0 for k in ks):
        raise ValueError(f"{name}: top_k must be positive integers, got {top_k!r}")
    return sorted(ks)


class _PerCutoff(Metric):
    _state_attrs = ("_sums", "_num_examples")

    def __init__(
        self,
        top_k: list[int] | int,
        ignore_zero_hits: bool,
        output_transform: Callable[[Any], Any],
        device: str | torch.device,
        skip_unrolling: bool,
    ) -> None:
        self.top_k = _cutoffs(top_k, type(self).__name__)
        self.ignore_zero_hits = ignore_zero_hits
        super().__init__(output_transform, device, skip_unrolling)

    def reset(self) -> None:
        self._sums = torch.zeros(len(self.top_k), dtype=torch.float64, device=self._device)
        self._num_examples = torch.zeros((), dtype=torch.int64, device=self._device)

    def _pair(self, output: Any) -> tuple[torch.Tensor, torch.Tensor]:
        y_pred, y = check_pair(self, output)
        if y_pred.shape != y.shape or y.ndim != 2:
            raise ValueError(
                f"{type(self).__name__}: y_pred (scores) and y (relevance) must both be (N, items), got "
                f"{tuple(y_pred.shape)} and {tuple(y.shape)}"
            )
        return y_pred, y

    def _add(self, per_row: torch.Tensor, relevant: torch.Tensor) -> None:
        """``per_row`` is ``(N, len(top_k))``; rows whose ``relevant`` is False count only without ignore_zero_hits."""
        if self.ignore_zero_hits:
            per_row = per_row * relevant.unsqueeze(1)
            count = relevant.sum()
        else:
            count = torch.tensor(per_row.shape[0])
        self._sums += per_row.sum(dim=0).to(self._device, torch.float64)
        self._num_examples += count.to(self._device)

    @sync_all_reduce("_sums", "_num_examples")
    def compute(self) -> list[float]:
        n = int(self._num_examples)
        if n == 0:
            raise NotComputableError(f"{type(self).__name__} must have at least one example (a row with a hit)")
        values: list[float] = (self._sums / n).tolist()
        return values


class HitRate(_PerCutoff):
    """The share of rows with a relevant item (``y > 0``) among the ``k`` highest-scored, for each ``k``.

    :param top_k: the cut-offs (sorted); the value is a list in that order.
    :param ignore_zero_hits: leave out rows without any relevant item.
    :param skip_unrolling: give ``update`` lists of tensors as they are (see :class:`Metric`).
    :raises ValueError: for non-positive cut-offs; at ``update``, for shapes other than two ``(N, items)``.

    >>> import torch
    >>> hits = HitRate(top_k=[1, 2])
    >>> hits.update((torch.tensor([[0.9, 0.5, 0.1], [0.2, 0.7, 0.4]]), torch.tensor([[0, 1, 0], [1, 0, 0]])))
    >>> hits.compute()
    [0.0, 0.5]
    """

    def __init__(
        self,
        top_k: list[int] | int = 1,
        ignore_zero_hits: bool = True,
        output_transform: Callable[[Any], Any] = lambda x: x,
        device: str | torch.device = "cpu",
        skip_unrolling: bool = False,
    ) -> None:
        super().__init__(top_k, ignore_zero_hits, output_transform, device, skip_unrolling)

    def update(self, output: Any) -> None:
        y_pred, y = self._pair(output)
        if self.top_k[-1] > y.shape[1]:
            raise ValueError(f"HitRate: top_k {self.top_k[-1]} is more than the {y.shape[1]} items per row")
        _, order = torch.topk(y_pred, k=self.top_k[-1], dim=-1)
        hit = torch.gather(y, -1, order) > 0
        # A hit within the first k: the running count of hits along the ranking, read at each cut-off.
        seen = hit.cumsum(dim=-1)[:, [k - 1 for k in self.top_k]] > 0
        per_row = seen.to(torch.float64)
        self._add(per_row, (y > 0).any(dim=-1))


class NDCG(_PerCutoff):
    """Normalised discounted cumulative gain at each ``k``; relevance below ``relevance_threshold`` counts 0.

    :param gain_function: ``"exp_rank"`` (gain ``2^rel - 1``) or ``"linear_rank"`` (gain ``rel``).
    :param skip_unrolling: give ``update`` lists of tensors as they are (see :class:`Metric`).
    :raises ValueError: for non-positive cut-offs or an unknown ``gain_function``.

    >>> import torch
    >>> ndcg = NDCG(top_k=[1, 3])
    >>> ndcg.update((torch.tensor([[0.9, 0.5, 0.1]]), torch.tensor([[0.0, 1.0, 0.0]])))
    >>> [round(v, 4) for v in ndcg.compute()]
    [0.0, 0.6309]
    """

    def __init__(
        self,
        top_k: list[int] | int,
        ignore_zero_hits: bool = True,
        relevance_threshold: float = 1.0,
        gain_function: str = "exp_rank",
        output_transform: Callable[[Any], Any] = lambda x: x,
        device: str | torch.device = "cpu",
        skip_unrolling: bool = False,
    ) -> None:
        if gain_function not in ("exp_rank", "linear_rank"):
            raise ValueError(f"NDCG: gain_function must be 'exp_rank' or 'linear_rank', got {gain_function!r}")
        self.relevance_threshold = relevance_threshold
        self.gain_function = gain_function
        super().__init__(top_k, ignore_zero_hits, output_transform, device, skip_unrolling)

    def _dcg(self, relevance: torch.Tensor, k: int) -> torch.Tensor:
        top = relevance[:, : min(k, relevance.shape[1])]
        positions = torch.arange(1, top.shape[1] + 1, dtype=torch.float32, device=relevance.device)
        gains = torch.pow(2.0, top) - 1 if self.gain_function == "exp_rank" else top
        return (gains * (1.0 / torch.log2(positions + 1))).sum(dim=-1)

    def update(self, output: Any) -> None:
        y_pred, y = self._pair(output)
        relevant = y >= self.relevance_threshold
        gains = torch.where(relevant, y, 0)
        k_max = self.top_k[-1]
        order = torch.argsort(y_pred, dim=-1, descending=True, stable=True)[:, :k_max]
        ranked = torch.gather(gains, -1, order)
        ideal = torch.sort(gains, dim=-1, descending=True, stable=True)[0][:, :k_max]
        columns = []
        for k in self.top_k:
            dcg, idcg = self._dcg(ranked, k), self._dcg(ideal, k)
            columns.append(torch.where(idcg > 0, dcg / idcg, torch.zeros_like(dcg)))
        self._add(torch.stack(columns, dim=1), relevant.any(dim=-1))
