"""The mean silhouette coefficient of a clustering, in torch, with scikit-learn's values."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from ignite_async.metrics.clustering._base import ClusteringMetric, encode_labels, is_undefined

__all__ = ["SilhouetteScore"]

_EUCLIDEAN = ("euclidean", "l2")
_MANHATTAN = ("manhattan", "cityblock", "l1")
_METRICS = (*_EUCLIDEAN, *_MANHATTAN, "cosine", "sqeuclidean", "chebyshev", "minkowski", "precomputed")
_KWARGS = ("metric", "p", "sample_size", "random_state")
# Distances are worked out for this many (row, sample) pairs at a time: N x N would not fit for large N.
_CHUNK_ELEMENTS = 1 << 22


def _checked_kwargs(kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    if kwargs is None:
        return {}
    if not isinstance(kwargs, Mapping):
        raise TypeError(f"silhouette_kwargs must be a dict, got {type(kwargs).__name__}")
    unknown = sorted(set(kwargs) - set(_KWARGS))
    if unknown:
        raise ValueError(f"silhouette_kwargs: unsupported keys {unknown}; the supported ones are {list(_KWARGS)}")
    metric = kwargs.get("metric", "euclidean")
    if metric not in _METRICS:
        raise ValueError(f"silhouette_kwargs: metric must be one of {list(_METRICS)}, got {metric!r}")
    if "p" in kwargs and metric != "minkowski":
        raise ValueError(f"silhouette_kwargs: p is for metric='minkowski', not {metric!r}")
    p = kwargs.get("p", 2)
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not p > 0:
        raise ValueError(f"silhouette_kwargs: p must be a positive number, got {p!r}")
    size = kwargs.get("sample_size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise ValueError(f"silhouette_kwargs: sample_size must be a positive int or None, got {size!r}")
    state = kwargs.get("random_state")
    if state is not None and not isinstance(state, (int, np.random.RandomState)):
        raise ValueError(f"silhouette_kwargs: random_state must be None, an int or a RandomState, got {state!r}")
    return dict(kwargs)


def _distances(rows: torch.Tensor, x: torch.Tensor, metric: str, p: float) -> torch.Tensor:
    """Distances from each of ``rows`` to each sample of ``x`` (both float64)."""
    if metric in _EUCLIDEAN:
        return torch.cdist(rows, x)
    if metric == "sqeuclidean":
        return torch.cdist(rows, x).square()
    if metric in _MANHATTAN:
        return torch.cdist(rows, x, p=1.0)
    if metric == "chebyshev":
        return torch.cdist(rows, x, p=math.inf)
    if metric == "minkowski":
        return torch.cdist(rows, x, p=float(p))

    # cosine: a zero vector is at distance 1 from everything else, as scikit-learn has it
    def unit(t: torch.Tensor) -> torch.Tensor:
        norm = t.norm(dim=1, keepdim=True)
        return t / torch.where(norm == 0, torch.ones_like(norm), norm)

    return (1.0 - unit(rows) @ unit(x).T).clamp(0.0, 2.0)


def silhouette(features: torch.Tensor, labels: torch.Tensor, **kwargs: Any) -> float:
    """The mean silhouette coefficient of ``features`` (``(N, D)``) clustered as ``labels`` (``(N,)``): NaN
    unless there are 2 to ``N - 1`` clusters, as pytorch-ignite. ``kwargs`` as ``silhouette_kwargs``.

    >>> import torch
    >>> round(silhouette(torch.tensor([[0.0], [1.0], [10.0], [11.0]]), torch.tensor([0, 0, 1, 1])), 4)
    0.8997
    """
    index, counts, k = encode_labels(labels)
    n = labels.shape[0]
    if is_undefined(k, n):
        return float("nan")
    metric, p = kwargs.get("metric", "euclidean"), kwargs.get("p", 2)
    x = features.to(torch.float64)
    if metric == "precomputed":
        _check_precomputed(features, n)
    size = kwargs.get("sample_size")
    if size is not None:
        # scikit-learn's subset: the same random permutation, from the same numpy generator
        state = kwargs.get("random_state")
        generator = np.random.RandomState(state) if isinstance(state, int) else state
        order = (generator or np.random.mtrand._rand).permutation(n)[:size]
        picked = torch.from_numpy(order).to(x.device)
        x = x[picked][:, picked] if metric == "precomputed" else x[picked]
        index, counts, k = encode_labels(labels[picked])
        n = int(picked.shape[0])
        if is_undefined(k, n):
            raise ValueError(f"SilhouetteScore: sample_size={size} gives {k} clusters of {n} samples; need 2 to n - 1")
    one_hot = torch.nn.functional.one_hot(index, k).to(torch.float64)
    sizes = counts.to(torch.float64)
    step = max(1, _CHUNK_ELEMENTS // n)
    total = torch.zeros((), dtype=torch.float64, device=x.device)
    for start in range(0, n, step):
        stop = min(n, start + step)
        block = x[start:stop] if metric == "precomputed" else _distances(x[start:stop], x, metric, p)
        rows = torch.arange(stop - start, device=x.device)
        block[rows, rows + start] = 0.0  # a sample's distance to itself (as scikit-learn sets it)
        per_cluster = block @ one_hot  # summed distances from each row to each cluster
        own = index[start:stop]
        intra = per_cluster[rows, own] / (sizes[own] - 1.0)  # 0/0 = NaN for a cluster of one
        per_cluster[rows, own] = math.inf
        inter = (per_cluster / sizes).min(dim=1).values
        score = (inter - intra) / torch.maximum(intra, inter)
        total += torch.nan_to_num(score, nan=0.0).sum()
    return float(total) / n


def _check_precomputed(distances: torch.Tensor, n: int) -> None:
    if distances.shape != (n, n):
        raise ValueError(
            f"SilhouetteScore with metric='precomputed' takes an (N, N) distance matrix over all N samples, got "
            f"{tuple(distances.shape)}"
        )
    diagonal = distances.diagonal()
    atol = 100 * torch.finfo(distances.dtype).eps if distances.is_floating_point() else 0
    if bool((diagonal.abs() > atol).any()):
        raise ValueError(
            "SilhouetteScore: the precomputed distance matrix contains non-zero elements on the diagonal; "
            "set them to 0 (distances.fill_diagonal_(0))"
        )


class SilhouetteScore(ClusteringMetric):
    """The mean `silhouette coefficient <https://en.wikipedia.org/wiki/Silhouette_(clustering)>`_ of all samples:
    ``(b - a) / max(a, b)`` per sample, with ``a`` its mean distance to the rest of its cluster and ``b`` its mean
    distance to the nearest other cluster (0 for a cluster of one). From -1 to 1; higher is better separated.

    Computed in torch (float64, on ``device``) with ``sklearn.metrics.silhouette_score``'s values, as
    pytorch-ignite's ``SilhouetteScore``; NaN unless there are 2 to ``N - 1`` clusters.

    Takes :class:`ClusteringMetric`'s arguments and ``update`` input.

    :param silhouette_kwargs: as scikit-learn's ``silhouette_score`` takes them: ``metric`` (``"euclidean"``,
        ``"l2"``, ``"manhattan"``, ``"cityblock"``, ``"l1"``, ``"cosine"``, ``"sqeuclidean"``, ``"chebyshev"``,
        ``"minkowski"`` with ``p``, or ``"precomputed"``: features are then the rows of an ``(N, N)`` distance
        matrix), ``sample_size`` and ``random_state`` (the same subset as scikit-learn picks).
    :raises ValueError: for unsupported ``silhouette_kwargs``.

    >>> import torch
    >>> metric = SilhouetteScore()
    >>> metric.update((torch.tensor([[0.0, 0.0], [0.0, 1.0], [5.0, 5.0], [5.0, 6.0]]), torch.tensor([0, 0, 1, 1])))
    >>> round(metric.compute(), 4)
    0.8586
    """

    def __init__(
        self,
        output_transform: Callable[[Any], Any] = lambda x: x,
        check_compute_fn: bool = True,
        device: str | torch.device = "cpu",
        skip_unrolling: bool = False,
        silhouette_kwargs: dict[str, Any] | None = None,
        background: bool = False,
    ) -> None:
        self._silhouette_kwargs = _checked_kwargs(silhouette_kwargs)
        super().__init__(output_transform, check_compute_fn, device, skip_unrolling, background)

    def _score(self, features: torch.Tensor, labels: torch.Tensor) -> float:
        return silhouette(features, labels, **self._silhouette_kwargs)
