"""The Davies-Bouldin index of a clustering, in torch, with scikit-learn's values."""

from __future__ import annotations

import math

import torch

from ignite_async.metrics.clustering._base import ClusteringMetric, centroids_of

__all__ = ["DaviesBouldinScore"]

# numpy.isclose(x, 0)'s absolute tolerance, which scikit-learn uses to find all-zero spreads or separations
_ATOL = 1e-8


def davies_bouldin(features: torch.Tensor, labels: torch.Tensor) -> float:
    """The Davies-Bouldin index of ``features`` (``(N, D)``) clustered as ``labels`` (``(N,)``): NaN unless there
    are 2 to ``N - 1`` clusters (as pytorch-ignite); 0.0 when all spreads or all centroid distances are 0 (as
    scikit-learn).

    >>> import torch
    >>> davies_bouldin(torch.tensor([[0.0], [2.0], [10.0], [12.0]]), torch.tensor([0, 0, 1, 1]))
    0.2
    """
    clusters = centroids_of(features, labels)
    if clusters is None:
        return float("nan")
    x, index, sizes, centroids = clusters
    k = sizes.shape[0]
    # the mean distance of each cluster's samples to its centroid
    spread = torch.zeros(k, dtype=torch.float64, device=x.device).index_add_(
        0, index, (x - centroids[index]).norm(dim=1)
    )
    spread /= sizes
    separation = (centroids[:, None, :] - centroids[None, :, :]).norm(dim=2)
    if bool((spread.abs() <= _ATOL).all()) or bool((separation.abs() <= _ATOL).all()):
        return 0.0
    separation = torch.where(separation == 0, math.inf, separation)
    ratios = (spread[:, None] + spread[None, :]) / separation
    return float(ratios.max(dim=1).values.mean())


class DaviesBouldinScore(ClusteringMetric):
    """The `Davies-Bouldin index <https://en.wikipedia.org/wiki/Davies%E2%80%93Bouldin_index>`_: the mean, over
    clusters, of the largest ratio of two clusters' spreads (mean distance to the centroid) summed to the distance
    of their centroids. 0 is the lowest; lower is better separated.

    Computed in torch (float64, on ``device``) with ``sklearn.metrics.davies_bouldin_score``'s values, as
    pytorch-ignite's ``DaviesBouldinScore``; NaN unless there are 2 to ``N - 1`` clusters.

    Takes :class:`ClusteringMetric`'s arguments and ``update`` input.

    >>> import torch
    >>> metric = DaviesBouldinScore()
    >>> metric.update((torch.tensor([[0.0, 0.0], [0.0, 1.0], [5.0, 5.0], [5.0, 6.0]]), torch.tensor([0, 0, 1, 1])))
    >>> round(metric.compute(), 4)
    0.1414
    """

    _score = staticmethod(davies_bouldin)
