"""F-beta score, built from Precision and Recall as pytorch-ignite builds it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ignite_async.metrics.metrics_lambda import MetricsLambda
from ignite_async.metrics.precision_recall import Precision, Recall

__all__ = ["Fbeta"]


def Fbeta(
    beta: float,
    average: bool = True,
    precision: Precision | None = None,
    recall: Recall | None = None,
    output_transform: Callable[[Any], Any] | None = None,
    device: str | torch.device | None = None,
) -> MetricsLambda:
    """``(1 + beta²) P R / (beta² P + R)`` per class, averaged over classes when ``average`` is true.

    ``precision`` and ``recall``, when given, must have ``average=False``; otherwise they are made from
    ``output_transform`` and ``device``.

    >>> import torch
    >>> f1 = Fbeta(beta=1.0)
    >>> f1.update((torch.tensor([1, 0, 1, 0, 1, 1]), torch.tensor([1, 0, 1, 1, 0, 1])))
    >>> round(f1.compute(), 4)
    0.75
    """
    if not (isinstance(beta, (int, float)) and beta > 0):
        raise ValueError(f"beta must be a positive number, got {beta!r}")
    for given, label in ((precision, "precision"), (recall, "recall")):
        if given is None:
            continue
        if output_transform is not None or device is not None:
            raise ValueError(f"{label} is given: output_transform and device are its own, give neither")
        if given._average is not False:
            raise ValueError(f"{label} must have average=False, got average={given._average!r}")
    if precision is None:
        precision = Precision(
            output_transform or (lambda x: x), average=False, device=recall._device if recall else device or "cpu"
        )
    if recall is None:
        recall = Recall(output_transform or (lambda x: x), average=False, device=precision._device)
    b2 = beta**2

    def fbeta(p: torch.Tensor, r: torch.Tensor) -> Any:
        f = (1.0 + b2) * p * r / (b2 * p + r + 1e-15)
        return f.mean().item() if average else f

    return MetricsLambda(fbeta, precision, recall)
