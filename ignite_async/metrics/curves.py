"""Precision-recall and ROC curves over an epoch, computed with torch alone (sklearn's definitions)."""

from __future__ import annotations

import warnings
from typing import Any

import torch

from ignite_async.metrics.metric import check_pair
from ignite_async.metrics.ranking import _curve, _Ranking

__all__ = ["PrecisionRecallCurve", "RocCurve", "precision_recall_curve", "roc_curve"]

Curve = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def _binary(y_pred: torch.Tensor, y: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Counts above each distinct score, and the scores (descending), for ``(N,)`` scores and 0/1 targets."""
    y_pred, y = y_pred.squeeze(-1) if y_pred.ndim == 2 else y_pred, y.squeeze(-1) if y.ndim == 2 else y
    if y_pred.ndim != 1 or y.shape != y_pred.shape:
        raise ValueError(f"{name}: y_pred and y must be (N,) (binary data only), got {y_pred.shape} and {y.shape}")
    fps, tps = _curve(y, y_pred)
    # _curve counts at the end of each run of equal scores, highest first: the distinct scores, descending.
    thresholds = torch.unique(y_pred).flip(0).to(torch.float64)
    return fps, tps, thresholds


def precision_recall_curve(y_pred: torch.Tensor, y: torch.Tensor) -> Curve:
    """``(precision, recall, thresholds)`` as ``sklearn.metrics.precision_recall_curve`` (float64 tensors).

    >>> import torch
    >>> p, r, t = precision_recall_curve(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1]))
    >>> [round(v, 4) for v in p.tolist()], r.tolist(), [round(v, 2) for v in t.tolist()]
    ([0.5, 0.6667, 0.5, 1.0, 1.0], [1.0, 1.0, 0.5, 0.5, 0.0], [0.1, 0.35, 0.4, 0.8])
    """
    fps, tps, thresholds = _binary(y_pred, y, "PrecisionRecallCurve")
    predicted = tps + fps
    precision = torch.where(predicted != 0, tps / predicted.clamp(min=1), 0.0)
    if tps[-1] == 0:
        warnings.warn("no positive class in y: recall is set to 1 at every threshold", UserWarning, stacklevel=2)
        recall = torch.ones_like(tps)
    else:
        recall = tps / tps[-1]
    one = torch.ones(1, dtype=torch.float64, device=tps.device)
    return torch.cat([precision.flip(0), one]), torch.cat([recall.flip(0), one * 0]), thresholds.flip(0)


def roc_curve(y_pred: torch.Tensor, y: torch.Tensor) -> Curve:
    """``(fpr, tpr, thresholds)`` as ``sklearn.metrics.roc_curve`` (collinear points dropped; float64).

    >>> import torch
    >>> fpr, tpr, t = roc_curve(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1]))
    >>> fpr.tolist(), tpr.tolist(), t.tolist()[0]
    ([0.0, 0.0, 0.5, 0.5, 1.0], [0.0, 0.5, 0.5, 1.0, 1.0], inf)
    """
    fps, tps, thresholds = _binary(y_pred, y, "RocCurve")
    if fps.numel() > 2:
        # Keep the ends and each point where the curve turns (a nonzero second difference).
        turns = (torch.diff(fps, 2) != 0) | (torch.diff(tps, 2) != 0)
        edge = torch.ones(1, dtype=torch.bool, device=fps.device)
        keep = torch.cat([edge, turns, edge])
        fps, tps, thresholds = fps[keep], tps[keep], thresholds[keep]
    zero = torch.zeros(1, dtype=torch.float64, device=fps.device)
    fps, tps = torch.cat([zero, fps]), torch.cat([zero, tps])
    thresholds = torch.cat([torch.full_like(zero, float("inf")), thresholds])
    rates = []
    for counts, kind in ((fps, "negative"), (tps, "positive")):
        if counts[-1] <= 0:
            warnings.warn(f"no {kind} sample in y: its rate is nan", UserWarning, stacklevel=2)
            rates.append(torch.full_like(counts, float("nan")))
        else:
            rates.append(counts / counts[-1])
    return rates[0], rates[1], thresholds


class _BinaryCurve(_Ranking):
    """A ranking epoch metric of binary data only: ``(N,)`` or ``(N, 1)``, checked at each update."""

    def update(self, output: Any) -> None:
        y_pred, y = check_pair(self, output)
        if y_pred.ndim > 2 or (y_pred.ndim == 2 and y_pred.shape[1] != 1):
            raise ValueError(
                f"{type(self).__name__}: y_pred and y must be (N,) or (N, 1) (binary data only), got "
                f"{tuple(y_pred.shape)} and {tuple(y.shape)}"
            )
        super().update(output)


class PrecisionRecallCurve(_BinaryCurve):
    """The precision-recall curve of the epoch's ``(N,)`` scores against 0/1 targets: a tuple of float64 tensors
    ``(precision, recall, thresholds)``, equal to sklearn's (which pytorch-ignite calls) without sklearn.

    >>> import torch
    >>> curve = PrecisionRecallCurve()
    >>> curve.update((torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1])))
    >>> curve.compute()[1].tolist()
    [1.0, 1.0, 0.5, 0.5, 0.0]
    """

    _score = staticmethod(precision_recall_curve)  # type: ignore[assignment]


class RocCurve(_BinaryCurve):
    """The ROC curve of the epoch's ``(N,)`` scores against 0/1 targets: ``(fpr, tpr, thresholds)`` float64
    tensors, equal to ``sklearn.metrics.roc_curve`` (which pytorch-ignite calls) without sklearn.

    >>> import torch
    >>> curve = RocCurve()
    >>> curve.update((torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1])))
    >>> curve.compute()[1].tolist()
    [0.0, 0.5, 0.5, 1.0, 1.0]
    """

    _score = staticmethod(roc_curve)  # type: ignore[assignment]
