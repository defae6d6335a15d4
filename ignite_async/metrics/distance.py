"""Mean cosine similarity and mean p-norm distance between predictions and targets, per sample."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ignite_async.metrics.metric import Metric, NotComputableError, check_pair, sync_all_reduce

__all__ = ["CosineSimilarity", "MeanPairwiseDistance"]


class _PerSampleMean(Metric):
    """The mean over samples of a per-sample value; the sum stays on the device until ``compute``."""

    _state_attrs = ("_sum", "_num_examples")

    def reset(self) -> None:
        self._sum = torch.tensor(0.0, dtype=torch.float64, device=self._device)
        self._num_examples = 0

    def _per_sample(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def update(self, output: Any) -> None:
        y_pred, y = check_pair(self, output)
        if y_pred.ndim == 0 or y.ndim == 0:
            raise ValueError(f"{type(self).__name__}: y_pred and y must be (N, ...), got 0-d tensors")
        if y_pred.shape[0] != y.shape[0]:
            raise ValueError(
                f"{type(self).__name__}: y_pred and y must have as many samples, got {tuple(y_pred.shape)} and "
                f"{tuple(y.shape)}"
            )
        self._sum += self._per_sample(y_pred, y).sum().to(self._device)
        self._num_examples += y.shape[0]

    @sync_all_reduce("_sum", "_num_examples")
    def compute(self) -> float:
        if self._num_examples == 0:
            raise NotComputableError(f"{type(self).__name__} must have at least one example before it can be computed")
        return float(self._sum) / self._num_examples


class CosineSimilarity(_PerSampleMean):
    """The mean cosine similarity of each sample's ``y_pred`` and ``y`` (``(N, ...)``, flattened per sample).

    :param eps: the smallest norm used in the denominator.
    :param skip_unrolling: give ``update`` lists of tensors as they are (see :class:`Metric`).

    >>> import torch
    >>> cos = CosineSimilarity()
    >>> cos.update((torch.tensor([[1.0, 0.0], [1.0, 1.0]]), torch.tensor([[1.0, 0.0], [-1.0, -1.0]])))
    >>> round(cos.compute(), 4)
    0.0
    """

    def __init__(
        self,
        eps: float = 1e-8,
        output_transform: Callable[[Any], Any] = lambda x: x,
        device: str | torch.device = "cpu",
        skip_unrolling: bool = False,
    ) -> None:
        self.eps = eps
        super().__init__(output_transform, device, skip_unrolling)

    def _per_sample(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cosine_similarity(y_pred.flatten(1), y.flatten(1), dim=1, eps=self.eps)


class MeanPairwiseDistance(_PerSampleMean):
    """The mean ``p``-norm distance ``||y_pred - y + eps||_p`` per sample (``torch.pairwise_distance``).

    >>> import torch
    >>> distance = MeanPairwiseDistance(p=1, eps=0.0)
    >>> distance.update((torch.tensor([[1.0, 2.0], [0.0, 0.0]]), torch.tensor([[0.0, 0.0], [0.0, 3.0]])))
    >>> distance.compute()
    3.0
    """

    def __init__(
        self,
        p: int = 2,
        eps: float = 1e-6,
        output_transform: Callable[[Any], Any] = lambda x: x,
        device: str | torch.device = "cpu",
        skip_unrolling: bool = False,
    ) -> None:
        self._p = p
        self._eps = eps
        super().__init__(output_transform, device, skip_unrolling)

    def _per_sample(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.pairwise_distance(y_pred, y, p=self._p, eps=self._eps)
