"""The Calinski-Harabasz index of a clustering, in torch, with scikit-learn's values."""

from __future__ import annotations

import torch

from ignite_async.metrics.clustering._base import ClusteringMetric, centroids_of

__all__ = ["CalinskiHarabaszScore"]


def calinski_harabasz(features: torch.Tensor, labels: torch.Tensor) -> float:
    """The Calinski-Harabasz index of ``features`` (``(N, D)``) clustered as ``labels`` (``(N,)``): NaN unless
    there are 2 to ``N - 1`` clusters (as pytorch-ignite), 1.0 when every cluster is a single point repeated
    (as scikit-learn).

    >>> import torch
    >>> calinski_harabasz(torch.tensor([[0.0], [2.0], [10.0], [12.0]]), torch.tensor([0, 0, 1, 1]))
    50.0
    """
    clusters = centroids_of(features, labels)
    if clusters is None:
        return float("nan")
    x, index, sizes, centroids = clusters
    n, k = x.shape[0], sizes.shape[0]
    between = (sizes * (centroids - x.mean(dim=0)).square().sum(dim=1)).sum()
    within = (x - centroids[index]).square().sum()
    if float(within) == 0.0:
        return 1.0
    return float(between * (n - k) / (within * (k - 1.0)))


class CalinskiHarabaszScore(ClusteringMetric):
    """The `Calinski-Harabasz index <https://en.wikipedia.org/wiki/Calinski%E2%80%93Harabasz_index>`_: the
    between-cluster dispersion over the within-cluster dispersion, each per degree of freedom. Higher is better
    separated.

    Computed in torch (float64, on ``device``) with ``sklearn.metrics.calinski_harabasz_score``'s values, as
    pytorch-ignite's ``CalinskiHarabaszScore``; NaN unless there are 2 to ``N - 1`` clusters.

    Takes :class:`ClusteringMetric`'s arguments and ``update`` input.

    >>> import torch
    >>> metric = CalinskiHarabaszScore()
    >>> metric.update((torch.tensor([[0.0, 0.0], [0.0, 1.0], [5.0, 5.0], [5.0, 6.0]]), torch.tensor([0, 0, 1, 1])))
    >>> metric.compute()
    100.0
    """

    _score = staticmethod(calinski_harabasz)
