"""Inception Score of generated samples (pytorch-ignite's ``InceptionScore``)."""

from __future__ import annotations

from typing import Any

import torch

from ignite_async.metrics.gan._features import _BaseInceptionMetric
from ignite_async.metrics.metric import NotComputableError, sync_all_reduce

__all__ = ["InceptionScore"]


class InceptionScore(_BaseInceptionMetric):
    r"""``exp(mean KL(p(y|x) || p(y)))`` over the class probabilities that ``feature_extractor`` gives.

    ``update(y_pred)`` takes a batch (a tensor, or ``{"y_pred": batch}`` from an engine) and accumulates, in
    float64 on ``device``, the probabilities' sum and the sum of ``p log(p + 1e-16)``; ``compute()`` gives the
    score. The extractor must give ``(batch_size, num_features)`` probabilities.

    With ``num_features`` only, the extractor is the identity (the inputs are the probabilities). With neither,
    pytorch-ignite's default, torchvision's ImageNet InceptionV3, is built from weights already in torch's hub
    cache; nothing is downloaded.

    :param num_features: the number of classes the extractor gives probabilities for.
    :param feature_extractor: a ``torch.nn.Module`` (moved to ``device``) or callable giving the probabilities.
    :param output_transform: turns the engine's output into the batch.
    :param device: where the sums are accumulated.
    :raises ValueError: ``feature_extractor`` without ``num_features``, or ``num_features`` not positive.
    :raises ModuleNotFoundError: neither given and torchvision is not installed.
    :raises FileNotFoundError: neither given and InceptionV3's weights are not downloaded.

    >>> import torch
    >>> score = InceptionScore(num_features=2)
    >>> score.update(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    >>> round(score.compute(), 6)
    2.0
    >>> g = torch.Generator().manual_seed(0)
    >>> model = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Softmax(dim=1))
    >>> score = InceptionScore(num_features=4, feature_extractor=model)
    >>> score.update(torch.randn(16, 5, generator=g))
    >>> 1.0 <= score.compute() <= 4.0
    True
    """

    required_output_keys = ("y_pred",)
    _state_attrs = ("_num_examples", "_prob_total", "_total_kl_d")

    _eps = 1e-16

    def reset(self) -> None:
        self._num_examples = 0
        self._prob_total = torch.zeros(self._num_features, dtype=self._double_dtype, device=self._device)
        self._total_kl_d = torch.zeros(self._num_features, dtype=self._double_dtype, device=self._device)

    def update(self, output: Any) -> None:
        # A mapping output arrives as (y_pred,): the batch is its one item.
        if isinstance(output, (tuple, list)) and len(output) == 1:
            output = output[0]
        probabilities = self._extract_features(output)
        log_prob = torch.log(probabilities + self._eps)
        self._prob_total += probabilities.sum(0)
        self._total_kl_d += (probabilities * log_prob).sum(0)
        self._num_examples += probabilities.shape[0]

    @sync_all_reduce("_num_examples", "_prob_total", "_total_kl_d")
    def compute(self) -> float:
        if self._num_examples == 0:
            raise NotComputableError(f"{type(self).__name__} must have at least one example before it can be computed.")
        mean_probs = self._prob_total / self._num_examples
        excess_entropy = self._prob_total * torch.log(mean_probs + self._eps)
        avg_kl_d = torch.sum(self._total_kl_d - excess_entropy) / self._num_examples
        return float(torch.exp(avg_kl_d))
