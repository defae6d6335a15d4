"""Mutual information between inputs and predicted classes: entropy of the mean prediction minus mean entropy."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ignite_async.metrics.divergence import Entropy, _prediction_rows
from ignite_async.metrics.metric import NotComputableError, sync_all_reduce

__all__ = ["MutualInformation"]


class MutualInformation(Entropy):
    """``I(X; Y) = H(mean of p_i) - mean of H(p_i)`` in nats, for the predicted distributions
    ``p_i = softmax(y_pred_i)`` (Hu et al. 2017): high when the predictions are confident and spread over the
    classes. ``y`` is not used.

    ``y_pred`` are ``(B, C)`` logits, or ``(B, C, ...)`` (each position a prediction, as for
    :class:`~ignite_async.metrics.divergence.Entropy`, whose mean entropy it also accumulates). A value below 0
    (rounding) counts as 0.

    :param output_transform: turns the engine's output into ``(y_pred, y)`` (or ``y_pred`` alone).
    :param device: where the sums are kept.
    :param skip_unrolling: ``True``: an attached metric gets lists of outputs as they are, not one pair at a
        time (see :class:`~ignite_async.metrics.metric.Metric`).
    :param metrics_result_mode: as :class:`~ignite_async.metrics.metric.Metric` (the result is a number).
    :raises ValueError: at ``update``, for ``y_pred`` without a class dimension, or with another class count
        than the batches before.
    :raises TypeError: at ``update``, for an output that is neither ``(y_pred, y)`` nor a ``y_pred`` tensor.
    :raises NotComputableError: from ``compute()`` before any update.

    >>> import torch
    >>> mi = MutualInformation()
    >>> mi.update((torch.tensor([[10.0, -10.0], [-10.0, 10.0]]), torch.tensor([0, 1])))
    >>> round(mi.compute(), 4)  # two confident predictions of different classes: log(2)
    0.6931
    """

    # The marginal joins Entropy's accumulators (its inferred two-name tuple type is why mypy needs the ignore).
    _state_attrs = (*Entropy._state_attrs, "_sum_of_probabilities")  # type: ignore[assignment]

    def reset(self) -> None:
        super().reset()
        # The class count is known at the first update; a 0-d zero broadcasts to it.
        self._sum_of_probabilities = torch.tensor(0.0, dtype=torch.float64, device=self._device)

    def update(self, output: Any) -> None:
        rows = _prediction_rows(output, "MutualInformation")
        classes = rows.shape[1]
        if self._sum_of_probabilities.ndim == 1 and self._sum_of_probabilities.shape[0] != classes:
            raise ValueError(
                f"MutualInformation: y_pred has {classes} classes, the batches before had "
                f"{self._sum_of_probabilities.shape[0]}; reset() between data sets of different class counts"
            )
        prob = F.softmax(rows, dim=1)
        self._sum += (-(prob * F.log_softmax(rows, dim=1)).sum()).to(self._device)
        self._num_examples += rows.shape[0]
        self._sum_of_probabilities = self._sum_of_probabilities + prob.sum(dim=0).to(self._device, torch.float64)

    @sync_all_reduce("_sum", "_num_examples", "_sum_of_probabilities")
    def compute(self) -> float:
        if self._num_examples == 0:
            raise NotComputableError("MutualInformation must have at least one example before it can be computed")
        marginal = self._sum_of_probabilities / self._num_examples
        # xlogy: a class no prediction gives any probability (underflow) adds 0 log 0 = 0, not nan.
        marginal_entropy = -torch.xlogy(marginal, marginal).sum()
        return float((marginal_entropy - self._sum / self._num_examples).clamp(min=0.0))
