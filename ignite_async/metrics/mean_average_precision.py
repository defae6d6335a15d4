"""Mean average precision of binary, multiclass and multilabel scores: the area under each class's
precision-recall curve, averaged over classes."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch

from ignite_async.distributed.comm import all_gather
from ignite_async.metrics._classification import ClassificationMetric
from ignite_async.metrics.metric import NotComputableError, check_pair

__all__ = ["MeanAveragePrecision"]

ClassMean = Literal["micro", "macro", "weighted"] | None


def fp_precision(device: torch.device) -> torch.dtype:
    """The floating type the average-precision metrics accumulate in: float64, float32 on MPS (which has none)."""
    return torch.float32 if device.type == "mps" else torch.float64


def setup_thresholds(
    thresholds: Sequence[float] | torch.Tensor, name: str, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """``thresholds`` as a sorted 1-d tensor of ``dtype`` on ``device``, each in [0, 1].

    A sequence is first made a default-dtype (float32) tensor, as pytorch-ignite does: its values (0.55 is
    float32's 0.55) decide which recalls and IoUs reach a threshold.

    :raises TypeError: if ``thresholds`` is neither a sequence nor a tensor.
    :raises ValueError: if it is not 1-d, empty, or a value lies outside [0, 1].
    """
    if isinstance(thresholds, Sequence) and not isinstance(thresholds, str):
        thresholds = torch.tensor(thresholds)
    if not isinstance(thresholds, torch.Tensor):
        raise TypeError(f"{name} should be a sequence of floats or a tensor, given {type(thresholds)}")
    if thresholds.ndim != 1:
        raise ValueError(
            f"{name} should be a one-dimensional tensor or a sequence of floats, given a "
            f"{thresholds.ndim}-dimensional tensor"
        )
    if thresholds.numel() == 0:
        raise ValueError(f"{name} should hold at least one value, given an empty one")
    thresholds = thresholds.sort().values
    if bool(thresholds[0] < 0) or bool(thresholds[-1] > 1):
        raise ValueError(f"{name} values should be between 0 and 1, given {thresholds.tolist()}")
    return thresholds.to(device, dtype=dtype)


def gather_last_dim(
    parts: list[torch.Tensor], leading: tuple[int, ...], dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """``parts`` concatenated along their last dimension, then every rank's concatenated in rank order.

    A rank without parts contributes an empty ``(*leading, 0)`` tensor, so every rank joins the collective.
    """
    joined = torch.cat(parts, dim=-1) if parts else torch.empty((*leading, 0), dtype=dtype, device=device)
    if not leading:
        gathered: torch.Tensor = all_gather(joined)
        return gathered
    # all_gather joins along dim 0: move the last dimension there and back.
    rows: torch.Tensor = all_gather(joined.movedim(-1, 0).contiguous())
    return rows.movedim(0, -1)


class MeanAveragePrecision(ClassificationMetric):
    r"""Mean over classes of the average precision :math:`\sum_k (r_k - r_{k-1}) P_k` (pytorch-ignite's).

    Data as for :class:`~ignite_async.metrics.Precision`, except that binary and multilabel ``y_pred`` are
    positive-class scores: binary ``(N, ...)`` (or ``(N, 1, ...)``), multiclass ``(N, C, ...)`` scores with ``y``
    of ``(N, ...)`` class indices, multilabel (``is_multilabel=True``) ``(N, L, ...)`` for both. Each
    distinct score is a threshold (tied scores make one point of the curve). Scores are kept (float64, on
    ``device``) until ``compute()``.

    :param rec_thresholds: recall levels at which precision is read (1-d, in [0, 1], any order); by default,
        every recall the data reaches.
    :param class_mean: ``"macro"`` (mean over classes), ``"weighted"`` (weighted by each class's positives),
        ``"micro"`` (classes pooled into one curve) or ``None`` (the per-class tensor; a class without positives
        gets 0). Ignored for binary data, whose value is a float.
    :param is_multilabel: the data is multilabel.
    :param skip_unrolling: give ``update`` lists as they are (see :class:`Metric`).
    :raises ValueError: for a ``class_mean`` or ``rec_thresholds`` out of its domain; at ``update``, for
        shapes that do not fit, binary/multilabel targets other than 0 and 1, or a class index ``>= C``.
    :raises TypeError: at ``update``, for integer ``y_pred``.
    :raises NotComputableError: (a ``RuntimeError``, as pytorch-ignite raises) at ``compute`` before any update.

    >>> import torch
    >>> metric = MeanAveragePrecision()
    >>> metric.update((torch.tensor([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4]]), torch.tensor([0, 0, 1])))
    >>> round(float(metric.compute()), 4)
    0.6667
    """

    _state_attrs = ("_y_pred", "_y_true", "_type", "_num_classes")

    def __init__(
        self,
        rec_thresholds: Sequence[float] | torch.Tensor | None = None,
        class_mean: ClassMean = "macro",
        is_multilabel: bool = False,
        output_transform: Callable[[Any], Any] = lambda x: x,
        device: str | torch.device = "cpu",
        skip_unrolling: bool = False,
    ) -> None:
        if class_mean is not None and class_mean not in ("micro", "macro", "weighted"):
            raise ValueError(
                f"MeanAveragePrecision: class_mean must be None, 'micro', 'macro' or 'weighted', got {class_mean!r}"
            )
        self.class_mean = class_mean
        self._fp = fp_precision(torch.device(device))
        self.rec_thresholds = (
            None
            if rec_thresholds is None
            else setup_thresholds(rec_thresholds, "rec_thresholds", torch.device(device), self._fp)
        )
        super().__init__(output_transform, is_multilabel, device, skip_unrolling)

    def reset(self) -> None:
        super().reset()
        self._y_pred: list[torch.Tensor] = []
        self._y_true: list[torch.Tensor] = []

    def update(self, output: Any) -> None:
        name = type(self).__name__
        y_pred, y = check_pair(self, output)
        shapes = (y_pred.shape, y.shape)
        if shapes != self._checked_shapes:
            self._check_shapes(y_pred, y)
            self._checked_shapes = shapes
        if not y_pred.is_floating_point():
            raise TypeError(f"{name}: y_pred must be float scores, got {y_pred.dtype}; convert it with .float()")
        on_cpu = y.device.type == "cpu"
        if self._type == "multiclass":
            if y.dtype != torch.long:
                warnings.warn("`y` should be of dtype long when entry type is multiclass", RuntimeWarning, stacklevel=2)
            classes = y_pred.shape[1]
            # Checked only on the CPU: reading a GPU tensor's maximum would wait for the device (compute checks it).
            if on_cpu and y.numel() and int(y.max()) >= classes:
                raise ValueError(
                    f"{name}: y holds class {int(y.max())} but y_pred has only {classes} classes; "
                    "y must hold class indices below y_pred.shape[1]"
                )
            yp = y_pred.transpose(1, 0).reshape(classes, -1)
            yt = y.reshape(-1).to(self._device, dtype=torch.long)
        else:
            if on_cpu and not torch.equal(y, y**2):
                raise ValueError(f"{name}: for {self._type} data, y must be 0s and 1s")
            if self._type == "multilabel":
                labels = y_pred.shape[1]
                yp = y_pred.transpose(1, 0).reshape(labels, -1)
                yt = y.transpose(1, 0).reshape(labels, -1).to(self._device, dtype=torch.uint8)
            else:
                yp = y_pred.reshape(1, -1)
                yt = y.reshape(1, -1).to(self._device, dtype=torch.uint8)
        self._y_pred.append(yp.to(self._device, dtype=self._fp))
        self._y_true.append(yt)

    def _recall_precision(
        self, y_true: torch.Tensor, y_pred: torch.Tensor, positives: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Recall and precision at each distinct score, highest score first (the scikit-learn curve)."""
        order = torch.argsort(y_pred, stable=True, descending=True)
        sorted_scores = y_pred[order]
        tp = y_true[order].cumsum(dim=0).to(self._fp)
        # The last of each run of tied scores closes one threshold (the appended value differs from any score).
        last_of_run = torch.nonzero(sorted_scores.diff(append=(sorted_scores[:1] + 1)), as_tuple=True)[0]
        tp = tp[last_of_run]
        predicted_positive = (last_of_run + 1).to(self._fp)
        recall = tp / positives if bool(positives > 0) else torch.ones_like(tp)
        precision = tp / predicted_positive
        return recall, precision

    def _average_precision(self, recall: torch.Tensor, precision: torch.Tensor) -> torch.Tensor:
        if self.rec_thresholds is not None:
            at = torch.searchsorted(recall, self.rec_thresholds.to(recall.dtype))
            beyond = at == recall.numel()
            precision = precision[at.where(~beyond, 0)].where(~beyond, 0)
            recall = self.rec_thresholds.to(recall.dtype)
        steps = recall.diff(prepend=torch.zeros(1, dtype=recall.dtype, device=recall.device))
        return torch.sum(steps * precision)

    def compute(self) -> torch.Tensor | float:
        name = type(self).__name__
        if self._num_classes is None or self._type is None:
            raise NotComputableError(f"{name} must have at least one example before it can be computed")
        classes = self._num_classes
        multiclass = self._type == "multiclass"
        y_true = gather_last_dim(
            self._y_true, () if multiclass else (classes,), torch.long if multiclass else torch.uint8, self._device
        )
        y_pred = gather_last_dim(self._y_pred, (classes,), self._fp, self._device)
        if multiclass:
            if y_true.numel() and int(y_true.max()) >= classes:
                raise ValueError(f"{name}: y held class {int(y_true.max())} but y_pred had only {classes} classes")
            y_true = torch.nn.functional.one_hot(y_true, num_classes=classes).T
        if self.class_mean == "micro":
            y_true = y_true.reshape(1, -1)
            y_pred = y_pred.reshape(1, -1)
        positives = y_true.sum(dim=-1)
        average_precisions = torch.zeros(positives.shape, dtype=self._fp, device=self._device)
        for c in range(positives.shape[0]):
            # A class without positives has precision 0 at every threshold: its AP stays 0.
            if bool(positives[c] > 0):
                recall, precision = self._recall_precision(y_true[c], y_pred[c], positives[c])
                average_precisions[c] = self._average_precision(recall, precision)
        if self._type == "binary":
            return float(average_precisions[0])
        if self.class_mean is None:
            return average_precisions
        if self.class_mean == "weighted":
            return torch.sum(positives * average_precisions) / positives.sum()
        return average_precisions.mean()
