"""Input checks shared by the classification metrics: binary, multiclass or multilabel, as pytorch-ignite."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from typing import Any

import torch

from ignite_async.metrics import metric as metric_module
from ignite_async.metrics.metric import Metric, check_pair

_last_argmax: tuple[tuple[int, float | None, int], weakref.ref[torch.Tensor], int, torch.Tensor] | None = None


def predicted_classes(y_pred: torch.Tensor) -> torch.Tensor:
    """``argmax(y_pred, dim=1)``, computed once for all the metrics that update on the same output.

    Accuracy, ConfusionMatrix, Precision and Recall each need it, and on small batches it costs as much as
    the rest of their update. It is shared only among metrics attached to one engine, within one iteration,
    for the same tensor unchanged (its identity and version counter): pass the output's own tensor, not a
    fresh ``detach()`` of it. A direct ``update()`` call always computes its own.
    """
    global _last_argmax
    scope = metric_module._update_scope
    try:
        version = y_pred._version
    except RuntimeError:  # an inference-mode tensor has no version counter: never reuse
        scope = None
    if scope is None:
        return torch.argmax(y_pred.detach(), dim=1)
    cached = _last_argmax
    if cached is not None and cached[0] == scope and cached[1]() is y_pred and cached[2] == version:
        return cached[3]
    classes = torch.argmax(y_pred.detach(), dim=1)
    _last_argmax = (scope, weakref.ref(y_pred), version, classes)
    return classes


class ClassificationMetric(Metric):
    """Decides the data type of each update the way pytorch-ignite does, and keeps it fixed until ``reset``.

    - binary: ``y_pred`` and ``y`` of one shape ``(N, ...)``, or ``y_pred`` of ``(N, 1, ...)``, 0s and 1s;
    - multiclass: ``y_pred`` of ``(N, C, ...)`` scores with ``C > 1``, ``y`` of ``(N, ...)`` class indices;
    - multilabel (``is_multilabel=True``): both ``(N, C, ...)`` with ``C > 1``, 0s and 1s.

    Values are checked only for CPU tensors: checking a GPU tensor would wait for the device.
    """

    def __init__(
        self,
        output_transform: Callable[[Any], Any] = lambda x: x,
        is_multilabel: bool = False,
        device: str | torch.device = "cpu",
        skip_unrolling: bool = False,
    ) -> None:
        self._is_multilabel = is_multilabel
        super().__init__(output_transform, device, skip_unrolling)

    def reset(self) -> None:
        self._type: str | None = None
        self._num_classes: int | None = None
        self._checked_shapes: tuple[torch.Size, torch.Size] | None = None

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self._checked_shapes = None  # the loaded type and class count must be checked against anew

    def _check(self, output: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """``(y_pred, y)`` detached, after fixing ``self._type`` and ``self._num_classes``."""
        y_pred, y = check_pair(self, output)
        shapes = (y_pred.shape, y.shape)
        if shapes != self._checked_shapes:  # batches mostly repeat their shapes: check each new pair once
            self._check_shapes(y_pred, y)
            self._checked_shapes = shapes
        if self._type != "multiclass" and y.device.type == "cpu" and y_pred.device.type == "cpu":
            for label, t in (("y", y), ("y_pred", y_pred)):
                if not torch.equal(t, t**2):
                    raise ValueError(f"{type(self).__name__}: for {self._type} data, {label} must be 0s and 1s")
        return y_pred, y

    def _check_shapes(self, y_pred: torch.Tensor, y: torch.Tensor) -> None:
        name = type(self).__name__
        shapes = f"{tuple(y_pred.shape)} and {tuple(y.shape)}"
        if y.ndim + 1 == y_pred.ndim:
            if y_pred.shape[0] != y.shape[0] or y_pred.shape[2:] != y.shape[1:]:
                raise ValueError(f"{name}: y_pred must be (N, C, ...) for y of (N, ...), got {shapes}")
            classes = y_pred.shape[1]
            kind = "binary" if classes == 1 else "multiclass"
        elif y.ndim == y_pred.ndim:
            if y.shape != y_pred.shape:
                raise ValueError(f"{name}: y_pred and y must have the same shape, got {shapes}")
            kind = "multilabel" if self._is_multilabel else "binary"
            classes = y_pred.shape[1] if self._is_multilabel and y.ndim > 1 else 1
        else:
            raise ValueError(
                f"{name}: y_pred must have the shape of y (binary, multilabel) or one more dimension "
                f"(multiclass), got {shapes}"
            )
        if self._is_multilabel and (kind != "multilabel" or y.ndim < 2 or y.shape[1] < 2):
            raise ValueError(f"{name}: multilabel y_pred and y must both be (N, C, ...) with C > 1, got {shapes}")
        if self._type is not None and kind != self._type:
            raise RuntimeError(f"{name}: the data type changed from {self._type} to {kind} between updates")
        if self._num_classes is not None and classes != self._num_classes:
            raise ValueError(f"{name}: the number of classes changed from {self._num_classes} to {classes}")
        self._type, self._num_classes = kind, classes
