"""Jaccard index and Dice coefficient per class, from a :class:`ConfusionMatrix`."""

from __future__ import annotations

import torch

from ignite_async.metrics.confusion_matrix import ConfusionMatrix, IoU
from ignite_async.metrics.metrics_lambda import MetricsLambda

__all__ = ["DiceCoefficient", "JaccardIndex"]


def _check_ignore_index(cm: ConfusionMatrix, ignore_index: int | None) -> None:
    if not isinstance(cm, ConfusionMatrix):
        raise TypeError(f"needs a ConfusionMatrix, got {type(cm).__name__}")
    if ignore_index is not None and not (
        isinstance(ignore_index, int) and not isinstance(ignore_index, bool) and 0 <= ignore_index < cm.num_classes
    ):
        raise ValueError(f"ignore_index must be a class index in [0, {cm.num_classes}), got {ignore_index!r}")


def DiceCoefficient(cm: ConfusionMatrix, ignore_index: int | None = None) -> MetricsLambda:
    """``2 |A and B| / (|A| + |B|)`` per class (float64), optionally without class ``ignore_index``.

    :raises TypeError: if ``cm`` is not a :class:`ConfusionMatrix`.
    :raises ValueError: if ``ignore_index`` is not one of its classes.

    >>> import torch
    >>> from ignite_async.metrics import ConfusionMatrix
    >>> dice = DiceCoefficient(ConfusionMatrix(num_classes=3), ignore_index=0)
    >>> y_pred = torch.tensor([[0.0, 1, 0], [0, 1, 0], [1, 0, 0], [0, 1, 0], [0, 1, 0]])
    >>> dice.update((y_pred, torch.tensor([0, 1, 0, 1, 2])))
    >>> [round(v, 4) for v in dice.compute().tolist()]
    [0.6667, 0.0]
    """
    _check_ignore_index(cm, ignore_index)

    def dice(m: torch.Tensor) -> torch.Tensor:
        m = m.to(torch.float64)
        values = 2.0 * m.diag() / (m.sum(dim=1) + m.sum(dim=0) + 1e-15)
        if ignore_index is None:
            return values
        return values[[i for i in range(len(values)) if i != ignore_index]]

    return MetricsLambda(dice, cm)


def JaccardIndex(cm: ConfusionMatrix, ignore_index: int | None = None) -> MetricsLambda:
    """``|A and B| / |A or B|`` per class (intersection over union): :func:`~ignite_async.metrics.IoU` by its
    other name.

    >>> import torch
    >>> from ignite_async.metrics import ConfusionMatrix
    >>> jaccard = JaccardIndex(ConfusionMatrix(num_classes=3), ignore_index=0)
    >>> y_pred = torch.tensor([[0.0, 1, 0], [0, 1, 0], [1, 0, 0], [0, 1, 0], [0, 1, 0]])
    >>> jaccard.update((y_pred, torch.tensor([0, 1, 0, 1, 2])))
    >>> [round(v, 4) for v in jaccard.compute().tolist()]
    [0.5, 0.0]
    """
    return IoU(cm, ignore_index)
