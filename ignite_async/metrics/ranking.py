"""Area under the ROC curve and average precision, computed with torch alone (sklearn's definitions)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch

from ignite_async.metrics.epoch_metric import EpochMetric
from ignite_async.metrics.metric import check_pair

__all__ = ["ROC_AUC", "AveragePrecision", "average_precision_score", "roc_auc_score"]


def _curve(y_true: torch.Tensor, y_score: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """False and true positives counted above each distinct score, highest first."""
    if y_true.numel() and not torch.equal(y_true, y_true**2):
        raise ValueError("y must be 0s and 1s (one column per label for multilabel data)")
    order = torch.argsort(y_score, descending=True, stable=True)
    score, truth = y_score[order], y_true[order].to(torch.float64)
    last = torch.nonzero(score[1:] != score[:-1]).flatten()
    ends = torch.cat([last, torch.tensor([score.numel() - 1], device=last.device)])
    tps = torch.cumsum(truth, 0)[ends]
    return 1 + ends - tps, tps


def _binary_roc_auc(y_true: torch.Tensor, y_score: torch.Tensor) -> float:
    fps, tps = _curve(y_true, y_score)
    if tps[-1] == 0 or fps[-1] == 0:
        warnings.warn("only one class is present in y: ROC AUC is not defined, it is nan", UserWarning, stacklevel=4)
        return float("nan")
    zero = torch.zeros(1, dtype=torch.float64, device=tps.device)
    return float(torch.trapezoid(torch.cat([zero, tps]) / tps[-1], torch.cat([zero, fps]) / fps[-1]))


def _binary_average_precision(y_true: torch.Tensor, y_score: torch.Tensor) -> float:
    fps, tps = _curve(y_true, y_score)
    if tps[-1] == 0:
        return 0.0  # sklearn's value: precision is 0 wherever recall could grow
    recall_steps = torch.diff(tps, prepend=torch.zeros(1, dtype=tps.dtype, device=tps.device)) / tps[-1]
    return float(torch.sum(recall_steps * tps / (tps + fps)))


def _per_label(fn: Callable[[torch.Tensor, torch.Tensor], float], y_pred: torch.Tensor, y: torch.Tensor) -> float:
    if y_pred.shape != y.shape:
        raise ValueError(
            f"y_pred and y must have the same shape, (N,) or (N, labels), got {tuple(y_pred.shape)} and "
            f"{tuple(y.shape)}"
        )
    if y.ndim == 1:
        return fn(y, y_pred)
    return sum(fn(y[:, k], y_pred[:, k]) for k in range(y.shape[1])) / y.shape[1]


def roc_auc_score(y_pred: torch.Tensor, y: torch.Tensor) -> float:
    """Area under the ROC curve: binary ``(N,)``, or the mean over labels of ``(N, labels)`` (sklearn's macro).

    >>> import torch
    >>> roc_auc_score(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1]))
    0.75
    """
    return _per_label(_binary_roc_auc, y_pred, y)


def average_precision_score(y_pred: torch.Tensor, y: torch.Tensor) -> float:
    """Average precision (the step sum of precision over recall, not interpolated), per label then averaged.

    >>> import torch
    >>> round(average_precision_score(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1])), 4)
    0.8333
    """
    return _per_label(_binary_average_precision, y_pred, y)


class _Ranking(EpochMetric):
    """An epoch metric of scores against 0/1 targets of the same shape, checked at each update."""

    _score: Callable[[torch.Tensor, torch.Tensor], float]

    def __init__(
        self,
        output_transform: Callable[[Any], Any] = lambda x: x,
        check_compute_fn: bool = False,
        device: str | torch.device = "cpu",
        skip_unrolling: bool = False,
        background: bool = False,
    ) -> None:
        super().__init__(type(self)._score, output_transform, check_compute_fn, device, skip_unrolling, background)

    def update(self, output: Any) -> None:
        y_pred, y = check_pair(self, output)
        if y_pred.squeeze(-1).shape != y.squeeze(-1).shape:
            raise ValueError(
                f"{type(self).__name__}: y_pred and y must have the same shape, (N,) or (N, labels), got "
                f"{tuple(y_pred.shape)} and {tuple(y.shape)}"
            )
        if y.device.type == "cpu" and not torch.equal(y, y**2):
            raise ValueError(f"{type(self).__name__}: y must be 0s and 1s")
        super().update((y_pred, y))


class ROC_AUC(_Ranking):
    """Area under the ROC curve over the epoch; scores ``(N,)`` against 0/1 targets, or ``(N, labels)``.

    Equals ``sklearn.metrics.roc_auc_score`` (what pytorch-ignite calls) without needing sklearn;
    ``background=True`` computes it in a worker thread while the next epoch runs (see :class:`EpochMetric`).

    >>> import torch
    >>> auc = ROC_AUC()
    >>> auc.update((torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1])))
    >>> auc.compute()
    0.75
    """

    _score = staticmethod(roc_auc_score)


class AveragePrecision(_Ranking):
    """Average precision over the epoch, equal to ``sklearn.metrics.average_precision_score``.

    >>> import torch
    >>> ap = AveragePrecision()
    >>> ap.update((torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1])))
    >>> round(ap.compute(), 4)
    0.8333
    """

    _score = staticmethod(average_precision_score)
