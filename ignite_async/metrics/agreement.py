"""Agreement between predicted and true classes: Cohen's kappa and Matthews' correlation coefficient.

Both are computed with torch alone (pytorch-ignite 0.5.5 calls scikit-learn for the correlation coefficient;
the values are the same).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

import torch

from ignite_async.metrics.confusion_matrix import ConfusionMatrix
from ignite_async.metrics.epoch_metric import EpochMetric
from ignite_async.metrics.metric import Metric, NotComputableError, check_pair

__all__ = ["CohenKappa", "MatthewsCorrCoef", "cohen_kappa_score", "matthews_corrcoef"]

Weights = Literal["linear", "quadratic"] | None


def _squeezed(t: torch.Tensor) -> torch.Tensor:
    return t.squeeze(-1) if t.ndim == 2 and t.shape[1] == 1 else t


def _kappa(conf: torch.Tensor, weights: Weights) -> float:
    """Kappa of a ``[true, predicted]`` count matrix (float64)."""
    n = conf.sum()
    if n == 0:
        raise NotComputableError("CohenKappa: the confusion matrix is empty (no target within the classes)")
    rows, cols = conf.sum(dim=1), conf.sum(dim=0)
    if weights is None:
        observed = conf.trace() / n
        expected = (rows * cols).sum() / (n * n)
    else:
        k = torch.arange(conf.shape[0], device=conf.device)
        distance = (k.unsqueeze(0) - k.unsqueeze(1)).abs().to(conf.dtype)
        w = distance if weights == "linear" else distance**2
        w = w / w.max()
        observed = 1 - (w * conf).sum() / n
        expected = 1 - (w * rows.unsqueeze(1) * cols.unsqueeze(0) / n).sum() / n
    # The denominator is kept away from 0 (all in one class) as in pytorch-ignite: the value is then 0.
    return float((observed - expected) / (1 - expected).clamp(min=1e-9))


def _class_indices(t: torch.Tensor, name: str) -> torch.Tensor:
    if t.is_floating_point() and not torch.equal(t, t.round()):
        raise ValueError(f"{name}: y_pred and y must be class indices (whole numbers), got fractional values")
    return t.long()


def cohen_kappa_score(y_pred: torch.Tensor, y: torch.Tensor, weights: Weights = None) -> float:
    """Cohen's kappa of class indices ``(N,)``; the classes are ``0 .. max``, as pytorch-ignite infers them.

    :param weights: ``None``, ``"linear"`` or ``"quadratic"`` (disagreement weighted by class distance).
    :raises ValueError: for 2-d inputs, negative or fractional class indices.

    >>> import torch
    >>> round(cohen_kappa_score(torch.tensor([0, 0, 2, 2, 0, 2]), torch.tensor([2, 0, 2, 2, 0, 1])), 4)
    0.4286
    """
    y_pred, y = _squeezed(y_pred), _squeezed(y)
    if y_pred.ndim > 1 or y.ndim > 1:
        raise ValueError("CohenKappa: y_pred and y must be class indices (N,) (multilabel data is not supported)")
    y_pred, y = _class_indices(y_pred, "CohenKappa"), _class_indices(y, "CohenKappa")
    if y_pred.numel() == 0:
        raise NotComputableError("CohenKappa must have at least one example before it can be computed")
    if min(int(y_pred.min()), int(y.min())) < 0:
        raise ValueError("CohenKappa: class indices must be >= 0")
    classes = max(int(y_pred.max()), int(y.max())) + 1
    conf = torch.bincount(y * classes + y_pred, minlength=classes * classes).reshape(classes, classes)
    return _kappa(conf.to(torch.float64), weights)


def matthews_corrcoef(y_pred: torch.Tensor, y: torch.Tensor) -> float:
    """Matthews' correlation coefficient (its multiclass form), equal to ``sklearn.metrics.matthews_corrcoef``.

    ``y_pred`` is ``(N,)`` labels or ``(N, C)`` scores (their argmax); ``y`` is ``(N,)`` labels or ``(N, C)``
    one-hot rows (their argmax). Labels may be any values; 0 when either side has a single label.

    :raises ValueError: for ``(N,)`` predictions against ``(N, C)`` targets, or fractional labels (sklearn
        refuses continuous values too).

    >>> import torch
    >>> round(matthews_corrcoef(torch.tensor([1, 0, 1, 1]), torch.tensor([1, 0, 0, 1])), 4)
    0.5774
    """
    if y_pred.ndim == 2:
        y_pred = torch.argmax(y_pred, dim=1)
        if y.ndim == 2:
            y = torch.argmax(y, dim=1)
    elif y.ndim == 2:
        raise ValueError("MatthewsCorrCoef: y_pred is (N,) labels while y is (N, C): give y as (N,) labels too")
    y_pred, y = _class_indices(y_pred, "MatthewsCorrCoef"), _class_indices(y, "MatthewsCorrCoef")
    if y_pred.shape != y.shape:
        raise ValueError(f"MatthewsCorrCoef: y_pred and y must have as many labels, got {y_pred.shape} and {y.shape}")
    # Labels as indices into their sorted union, whatever their values (sklearn's label encoding).
    _, codes = torch.unique(torch.cat([y, y_pred]), return_inverse=True)
    k = int(codes.max()) + 1 if codes.numel() else 1
    truth, predicted = codes[: y.numel()], codes[y.numel() :]
    conf = torch.bincount(truth * k + predicted, minlength=k * k).reshape(k, k).to(torch.float64)
    t_sum, p_sum = conf.sum(dim=1), conf.sum(dim=0)
    n = p_sum.sum()
    cov_tp = conf.trace() * n - t_sum @ p_sum
    cov_pp = n * n - p_sum @ p_sum
    cov_tt = n * n - t_sum @ t_sum
    if cov_pp * cov_tt == 0:
        return 0.0
    return float(cov_tp / torch.sqrt(cov_tt * cov_pp))


class _KappaEpochMetric(EpochMetric):
    def __init__(self, weights: Weights, output_transform: Callable[[Any], Any], check: bool, device: Any) -> None:
        super().__init__(lambda p, y: cohen_kappa_score(p, y, weights), output_transform, check, device)


class CohenKappa(Metric):
    """Cohen's kappa of predicted class indices ``(N,)`` against true ones ``(N,)`` (or ``(N, 1)``).

    Without ``num_classes``, the epoch's indices are kept and the classes are ``0 .. max`` of what was seen
    (as pytorch-ignite); with ``num_classes``, a confusion matrix is accumulated instead (targets outside
    ``[0, num_classes)`` are ignored, as :class:`ConfusionMatrix` does).

    :param weights: ``None``, ``"linear"`` or ``"quadratic"``.
    :param check_compute_fn: compute on the first batch and warn if that fails (without ``num_classes``).
    :param skip_unrolling: give ``update`` lists of tensors as they are (see :class:`Metric`).
    :param num_classes: the number of classes, for a running confusion matrix.
    :raises ValueError: for an unknown ``weights``, or 2-d inputs at ``update``.

    >>> import torch
    >>> kappa = CohenKappa()
    >>> kappa.update((torch.tensor([0, 0, 2, 2, 0, 2]), torch.tensor([2, 0, 2, 2, 0, 1])))
    >>> round(kappa.compute(), 4)
    0.4286
    """

    def __init__(
        self,
        output_transform: Callable[[Any], Any] = lambda x: x,
        weights: Weights = None,
        check_compute_fn: bool = False,
        device: str | torch.device = "cpu",
        skip_unrolling: bool = False,
        num_classes: int | None = None,
    ) -> None:
        if weights not in (None, "linear", "quadratic"):
            raise ValueError(f"CohenKappa: weights must be None, 'linear' or 'quadratic', got {weights!r}")
        self.weights = weights
        self._impl: EpochMetric | ConfusionMatrix
        if num_classes is None:
            self._impl = _KappaEpochMetric(weights, output_transform, check_compute_fn, device)
        else:
            self._impl = ConfusionMatrix(num_classes, output_transform=output_transform, device=device)
        self.num_classes = num_classes
        # The pairs are unrolled (or not) here; the inner metric is only ever updated with one pair.
        super().__init__(output_transform, device, skip_unrolling)

    def reset(self) -> None:
        self._impl.reset()

    def update(self, output: Any) -> None:
        y_pred, y = check_pair(self, output)
        y_pred, y = _squeezed(y_pred), _squeezed(y)
        if y_pred.ndim > 1 or y.ndim > 1:
            raise ValueError(
                f"CohenKappa: y_pred and y must be class indices (N,), got {tuple(y_pred.shape)} and {tuple(y.shape)}"
                " (multilabel data is not supported)"
            )
        if not isinstance(self._impl, ConfusionMatrix):
            self._impl.update((y_pred, y))
            return
        c = self._impl.num_classes
        if y_pred.device.type == "cpu" and y_pred.numel() and not 0 <= int(y_pred.min()) <= int(y_pred.max()) < c:
            raise ValueError(f"CohenKappa: predicted classes must be in [0, {c}) for num_classes={c}")
        one_hot = torch.nn.functional.one_hot(y_pred.long(), c).float()
        self._impl.update((one_hot, y.long()))

    def compute(self) -> float:
        if isinstance(self._impl, ConfusionMatrix):
            return _kappa(self._impl.compute().to(torch.float64), self.weights)
        result: float = self._impl.compute()
        return result

    def state_dict(self) -> dict[str, Any]:
        return self._impl.state_dict()

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        self._impl.load_state_dict(state_dict)


class MatthewsCorrCoef(EpochMetric):
    """Matthews' correlation coefficient over the epoch (see :func:`matthews_corrcoef`), without scikit-learn.

    ``background=True`` computes it in a worker thread while the next epoch runs (see :class:`EpochMetric`).

    >>> import torch
    >>> mcc = MatthewsCorrCoef()
    >>> mcc.update((torch.tensor([1, 0, 1, 1]), torch.tensor([1, 0, 0, 1])))
    >>> round(mcc.compute(), 4)
    0.5774
    """

    def __init__(
        self,
        output_transform: Callable[[Any], Any] = lambda x: x,
        check_compute_fn: bool = False,
        device: str | torch.device = "cpu",
        skip_unrolling: bool = False,
        background: bool = False,
    ) -> None:
        super().__init__(matthews_corrcoef, output_transform, check_compute_fn, device, skip_unrolling, background)
