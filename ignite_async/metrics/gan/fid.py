"""Frechet Inception Distance between the features of two sets of samples (pytorch-ignite's ``FID``)."""

from __future__ import annotations

import warnings
from typing import Any

import torch

from ignite_async.metrics.gan._features import _BaseInceptionMetric
from ignite_async.metrics.metric import NotComputableError, check_pair, sync_all_reduce

__all__ = ["FID", "fid_score"]


def _trace_sqrt_product(sigma1: torch.Tensor, sigma2: torch.Tensor) -> torch.Tensor:
    """``trace(sqrtm(sigma1 @ sigma2))`` without scipy.

    The trace of the principal square root of a matrix is the sum of the principal square roots of its
    eigenvalues, so the eigenvalues of the product are all that is needed (what scipy's Schur-based ``sqrtm``
    gives, to rounding). The product of two covariances has real non-negative eigenvalues; rounding may leave
    tiny negative or complex ones, whose complex roots contribute ~0 to the real part, as scipy's do.
    """
    roots = torch.linalg.eigvals(sigma1 @ sigma2).sqrt()
    return torch.real(roots.sum())


def fid_score(
    mu1: torch.Tensor, mu2: torch.Tensor, sigma1: torch.Tensor, sigma2: torch.Tensor, eps: float = 1e-6
) -> float:
    """``|mu1 - mu2|^2 + tr(sigma1) + tr(sigma2) - 2 tr(sqrt(sigma1 sigma2))``, computed in torch.

    Where the square root is not finite, ``tr(sqrt(...))`` falls back to ``sum(sqrt(diag(sigma1) diag(sigma2)))``
    as in pytorch-ignite (``eps`` cancels out there, kept for its signature).

    :param mu1: mean of the first set's features, ``(F,)``.
    :param mu2: mean of the second set's features, ``(F,)``.
    :param sigma1: covariance of the first set's features, ``(F, F)``.
    :param sigma2: covariance of the second set's features, ``(F, F)``.
    :param eps: the fallback's regulariser.

    >>> import torch
    >>> round(fid_score(torch.zeros(2), torch.ones(2), torch.eye(2), 4 * torch.eye(2)), 6)
    4.0
    """
    mu1, mu2 = mu1.detach(), mu2.detach()
    sigma1, sigma2 = sigma1.detach(), sigma2.detach()
    diff = mu1 - mu2
    if bool(torch.isfinite(sigma1).all()) and bool(torch.isfinite(sigma2).all()):
        tr_covmean = _trace_sqrt_product(sigma1, sigma2)
    else:
        tr_covmean = torch.tensor(float("nan"), dtype=sigma1.dtype, device=sigma1.device)
    if not bool(torch.isfinite(tr_covmean)):
        d1, d2 = torch.diagonal(sigma1), torch.diagonal(sigma2)
        tr_covmean = torch.sqrt(((d1 * eps) * (d2 * eps)) / (eps * eps)).sum()
    return float(diff.dot(diff) + torch.trace(sigma1) + torch.trace(sigma2) - 2 * tr_covmean)


class FID(_BaseInceptionMetric):
    r"""Frechet Inception Distance between the features of ``y_pred`` (generated) and ``y`` (real) samples.

    .. math:: \text{FID} = |\mu_1 - \mu_2|^2 + \text{Tr}(\Sigma_1 + \Sigma_2 - 2\sqrt{\Sigma_1 \Sigma_2})

    ``update((y_pred, y))`` runs both batches through ``feature_extractor`` (which must give
    ``(batch_size, num_features)``, the same shape for both) and accumulates the features' sums and sums of outer
    products in float64 on ``device``; ``compute()`` turns them into means and unbiased covariances. The matrix
    square root is taken through the eigenvalues of the covariances' product (``torch.linalg.eigvals``), which
    gives scipy's ``sqrtm`` trace that pytorch-ignite uses, without scipy.

    With ``num_features`` only, the extractor is the identity (the inputs are the features). With neither,
    pytorch-ignite's default, torchvision's ImageNet InceptionV3 (1000 class probabilities), is built from
    weights already in torch's hub cache; nothing is downloaded.

    :param num_features: the width of the extractor's output.
    :param feature_extractor: a ``torch.nn.Module`` (moved to ``device``) or callable giving the features.
    :param output_transform: turns the engine's output into ``(y_pred, y)``.
    :param device: where features are accumulated.
    :raises ValueError: ``feature_extractor`` without ``num_features``, or ``num_features`` not positive.
    :raises ModuleNotFoundError: neither given and torchvision is not installed.
    :raises FileNotFoundError: neither given and InceptionV3's weights are not downloaded.

    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> extractor = torch.nn.Linear(6, 3)
    >>> fid = FID(num_features=3, feature_extractor=extractor)
    >>> fid.update((torch.randn(8, 6, generator=g), torch.randn(8, 6, generator=g) + 1))
    >>> fid.compute() > 0
    True
    >>> same = FID(num_features=2)
    >>> same.update((torch.tensor([[0.0, 1.0], [1.0, 0.0]]), torch.tensor([[0.0, 1.0], [1.0, 0.0]])))
    >>> abs(same.compute()) < 1e-6  # identical sets: 0 up to rounding (pytorch-ignite: -2.1e-08)
    True
    """

    _state_attrs = ("_num_examples", "_train_total", "_test_total", "_train_sigma", "_test_sigma")

    _eps = 1e-6

    def reset(self) -> None:
        f, dtype, device = self._num_features, self._double_dtype, self._device
        self._train_sigma = torch.zeros((f, f), dtype=dtype, device=device)
        self._train_total = torch.zeros(f, dtype=dtype, device=device)
        self._test_sigma = torch.zeros((f, f), dtype=dtype, device=device)
        self._test_total = torch.zeros(f, dtype=dtype, device=device)
        self._num_examples = 0

    def update(self, output: Any) -> None:
        train, test = check_pair(self, output)
        train_features = self._extract_features(train)
        test_features = self._extract_features(test)
        if train_features.shape != test_features.shape:
            raise ValueError(
                f"{type(self).__name__}: y_pred and y must give as many features of as many samples, got "
                f"{tuple(train_features.shape)} != {tuple(test_features.shape)}"
            )
        # A batch's sum of outer products is one matrix product (pytorch-ignite adds them sample by sample).
        self._train_total += train_features.sum(0)
        self._train_sigma += train_features.T @ train_features
        self._test_total += test_features.sum(0)
        self._test_sigma += test_features.T @ test_features
        self._num_examples += train_features.shape[0]

    def _covariance(self, sigma: torch.Tensor, total: torch.Tensor) -> torch.Tensor:
        return (sigma - torch.outer(total, total) / self._num_examples) / (self._num_examples - 1)

    @sync_all_reduce("_num_examples", "_train_total", "_test_total", "_train_sigma", "_test_sigma")
    def compute(self) -> float:
        if self._num_examples < 2:
            # A covariance needs two samples; pytorch-ignite fails later, inside scipy, on a NaN matrix.
            raise NotComputableError(
                f"{type(self).__name__} must have at least two examples before it can be computed, "
                f"got {self._num_examples}"
            )
        fid = fid_score(
            mu1=self._train_total / self._num_examples,
            mu2=self._test_total / self._num_examples,
            sigma1=self._covariance(self._train_sigma, self._train_total),
            sigma2=self._covariance(self._test_sigma, self._test_total),
            eps=self._eps,
        )
        if fid != fid or fid in (float("inf"), float("-inf")):
            warnings.warn("The product of covariance of train and test features is out of bounds.", stacklevel=2)
        return fid
