"""What the clustering metrics share: ``(features, labels)`` rows kept for the epoch, and the label encoding."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch

from ignite_async.metrics.epoch_metric import EpochMetric

__all__ = ["ClusteringMetric", "centroids_of", "encode_labels", "is_undefined"]


def encode_labels(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """``labels`` as cluster indices ``0..K-1`` (in sorted label order), the cluster sizes and ``K``."""
    _, index = torch.unique(labels, return_inverse=True)
    counts = torch.bincount(index)
    return index, counts, int(counts.shape[0])


def is_undefined(n_clusters: int, n_samples: int) -> bool:
    """The indices are defined for 2 to ``n_samples - 1`` clusters; pytorch-ignite gives NaN outside that."""
    return n_clusters < 2 or n_clusters >= n_samples


class Clusters(NamedTuple):
    """The samples in float64, each one's cluster index, the cluster sizes (float64) and the centroids."""

    x: torch.Tensor
    cluster_of: torch.Tensor
    sizes: torch.Tensor
    centroids: torch.Tensor


def centroids_of(features: torch.Tensor, labels: torch.Tensor) -> Clusters | None:
    """The clusters of ``features`` (``(N, D)``) labelled ``labels`` (``(N,)``) with their centroids, in float64;
    ``None`` where the indices are undefined (see :func:`is_undefined`).

    >>> import torch
    >>> centroids_of(torch.tensor([[0.0], [2.0], [10.0]]), torch.tensor([0, 0, 1])).centroids
    tensor([[ 1.],
            [10.]], dtype=torch.float64)
    """
    index, counts, k = encode_labels(labels)
    if is_undefined(k, labels.shape[0]):
        return None
    x = features.to(torch.float64)
    sizes = counts.to(torch.float64)
    centroids = torch.zeros(k, x.shape[1], dtype=torch.float64, device=x.device).index_add_(0, index, x)
    centroids /= sizes[:, None]
    return Clusters(x, index, sizes, centroids)


class ClusteringMetric(EpochMetric):
    """An :class:`EpochMetric` over ``(features, labels)``: ``features`` of ``(B, D)``, ``labels`` of ``(B,)``.

    Unlike ``EpochMetric``, ``(B, 1)`` features stay 2-d (one feature per sample), and the checks name
    features and labels. A subclass gives the score as ``_score(features, labels)``.

    - ``update`` takes ``(features, labels)`` or ``{"features": ..., "labels": ...}``: ``(B, D)`` and ``(B,)``.

    :param output_transform: the engine's output to ``(features, labels)``.
    :param check_compute_fn: run the computation on the first batch, and warn (``EpochMetricWarning``) if it fails.
    :param device: where the samples are kept and the score computed.
    :param skip_unrolling: give ``update`` lists of tensors as they are (see :class:`Metric`).
    :param background: compute the attached metric in a worker thread (see :class:`EpochMetric`).
    :raises ValueError: in ``update``, for features not ``(B, D)`` or labels not ``(B,)``, or dtypes that change
        between batches.
    """

    required_output_keys = ("features", "labels")

    def __init__(
        self,
        output_transform: Callable[[Any], Any] = lambda x: x,
        check_compute_fn: bool = True,
        device: str | torch.device = "cpu",
        skip_unrolling: bool = False,
        background: bool = False,
    ) -> None:
        super().__init__(self._score, output_transform, check_compute_fn, device, skip_unrolling, background)

    def _score(self, features: torch.Tensor, labels: torch.Tensor) -> float:
        """The score of all the samples: ``features`` of ``(N, D)``, ``labels`` of ``(N,)``."""
        raise NotImplementedError(f"{type(self).__name__} must define _score(features, labels)")

    def update(self, output: Any) -> None:
        name = type(self).__name__
        if not isinstance(output, (tuple, list)) or len(output) < 2:
            got = f"{len(output)} items" if isinstance(output, (tuple, list)) else type(output).__name__
            raise ValueError(f"{name}.update takes (features, labels), got {got}")
        features, labels = output[0], output[1]
        if not isinstance(features, torch.Tensor) or not isinstance(labels, torch.Tensor):
            raise TypeError(
                f"{name}.update takes tensors (features, labels), got {type(features).__name__} and "
                f"{type(labels).__name__}"
            )
        if features.ndim != 2:
            raise ValueError(
                f"{name}: features should be of shape (batch_size, n_features), got {tuple(features.shape)}"
            )
        if labels.ndim != 1:
            raise ValueError(f"{name}: labels should be of shape (batch_size,), got {tuple(labels.shape)}")
        if features.shape[0] != labels.shape[0]:
            raise ValueError(
                f"{name}: features and labels must have as many rows, got {tuple(features.shape)} and "
                f"{tuple(labels.shape)}"
            )
        if self._predictions:
            for label, t, kept in (
                ("features", features, self._predictions[-1]),
                ("labels", labels, self._targets[-1]),
            ):
                if t.dtype != kept.dtype:
                    raise ValueError(
                        f"{name}: the {label} dtype changed from {kept.dtype} to {t.dtype} between updates "
                        "(give every batch the same dtype)"
                    )
            if features.shape[1] != self._predictions[-1].shape[1]:
                raise ValueError(
                    f"{name}: features changed from {self._predictions[-1].shape[1]} to {features.shape[1]} "
                    "per sample between updates"
                )
        self._keep(features.detach(), labels.detach())
