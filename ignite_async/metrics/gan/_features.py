"""What FID and InceptionScore share: the feature extractor, its checks, and the optional InceptionV3 default.

pytorch-ignite's default extractor is torchvision's ImageNet InceptionV3, whose weights it downloads on first
use. Machines without network cannot do that, so the default is built only from weights already in torch's hub
cache; otherwise construction fails with an error that says how to get the weights or pass an extractor.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any

import torch

from ignite_async.metrics.metric import Metric

__all__ = ["InceptionModel"]

_HOW_TO_PASS = (
    "pass your own extractor instead, e.g. feature_extractor=my_model, num_features=<its output width> "
    "(a torch.nn.Module or callable mapping a batch to a (batch_size, num_features) tensor; pytorch-fid's "
    "InceptionV3 wrapped to return its pooled features also works: pip install pytorch-fid)"
)


def _inception_v3(device: torch.device) -> torch.nn.Module:
    """torchvision's ImageNet InceptionV3 from the hub cache, without downloading anything.

    :raises ModuleNotFoundError: torchvision is not installed.
    :raises FileNotFoundError: the weights are not in torch's hub cache.
    """
    try:
        models: Any = importlib.import_module("torchvision.models")
    except ImportError as e:
        raise ModuleNotFoundError(
            "The default feature extractor of FID/InceptionScore is torchvision's pretrained InceptionV3, and "
            f"torchvision is not installed (pip install torchvision, then fetch its weights once); or {_HOW_TO_PASS}"
        ) from e
    weights = models.Inception_V3_Weights.DEFAULT
    cached = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(weights.url))
    if not os.path.isfile(cached):
        # torchvision would download them here; a machine without network would hang or fail mid-run.
        raise FileNotFoundError(
            "The default feature extractor of FID/InceptionScore is torchvision's pretrained InceptionV3, whose "
            f"weights are not downloaded: {cached} is missing. Fetch them once on a machine with network "
            f"(torchvision.models.inception_v3(weights='DEFAULT')) and copy torch's hub cache; or {_HOW_TO_PASS}"
        )
    model: torch.nn.Module = models.inception_v3(weights=weights)
    return model.to(device)


class InceptionModel(torch.nn.Module):
    """torchvision's ImageNet InceptionV3 (weights from the hub cache) giving class probabilities or features.

    ``return_features=True`` gives the 2048 pooled features, ``False`` the 1000 softmax probabilities (what
    pytorch-ignite's FID and InceptionScore use by default). Inputs are ``(N, 3, H, W)`` images.

    :param return_features: features from the last pooling layer instead of class probabilities.
    :param device: where the model runs; inputs are moved there.
    :raises ModuleNotFoundError: torchvision is not installed.
    :raises FileNotFoundError: the weights are not in torch's hub cache (nothing is downloaded).

    >>> try:
    ...     InceptionModel(return_features=False)
    ... except (ModuleNotFoundError, FileNotFoundError) as e:
    ...     print("feature_extractor=" in str(e))
    ... else:
    ...     print(True)
    True
    """

    def __init__(self, return_features: bool, device: str | torch.device = "cpu") -> None:
        super().__init__()
        self._device = torch.device(device)
        self.model = _inception_v3(self._device)
        head: torch.nn.Module = torch.nn.Identity()
        if not return_features:
            head = torch.nn.Sequential(self.model.get_submodule("fc"), torch.nn.Softmax(dim=1))
        self.model.fc = head.to(self._device)
        self.model.eval()

    @torch.no_grad()
    def forward(self, data: torch.Tensor) -> torch.Tensor:
        """Probabilities (or features) of ``data``, ``(N, 3, H, W)``.

        :raises ValueError: ``data`` is not a batch of 3-channel images.
        """
        if data.dim() != 4:
            raise ValueError(f"Inputs should be a tensor of dim 4, got {data.dim()}")
        if data.shape[1] != 3:
            raise ValueError(f"Inputs should be a tensor with 3 channels, got {data.shape}")
        out: torch.Tensor = self.model(data.to(self._device))
        return out


Extractor = torch.nn.Module | Callable[[torch.Tensor], torch.Tensor]


class _BaseInceptionMetric(Metric):
    """Runs inputs through the extractor (no autograd, on ``device``) and checks the ``(N, num_features)`` result.

    With neither ``num_features`` nor ``feature_extractor``, the extractor is InceptionV3's 1000 class
    probabilities, as pytorch-ignite's FID and InceptionScore default to.
    """

    _eps: float  # each metric's guard against log(0) or a singular matrix, pytorch-ignite's value

    def __init__(
        self,
        num_features: int | None = None,
        feature_extractor: Extractor | None = None,
        output_transform: Callable[[Any], Any] = lambda x: x,
        device: str | torch.device = "cpu",
    ) -> None:
        if num_features is None and feature_extractor is None:
            num_features = 1000
            feature_extractor = InceptionModel(return_features=False, device=device)
        name = type(self).__name__
        if num_features is None:
            raise ValueError(
                f"{name}: num_features must be given with feature_extractor (the width of the extractor's output)"
            )
        if isinstance(num_features, bool) or not isinstance(num_features, int) or num_features <= 0:
            raise ValueError(f"{name}: num_features must be a positive int, got {num_features!r}")
        if feature_extractor is None:
            feature_extractor = torch.nn.Identity()
        if isinstance(feature_extractor, torch.nn.Module):
            # As pytorch-ignite does: the module is moved (in place) to the metric's device.
            feature_extractor = feature_extractor.to(device)
        elif not callable(feature_extractor):
            raise TypeError(
                f"{name}: feature_extractor must be a torch.nn.Module or a callable, got {type(feature_extractor)}"
            )
        self._num_features = num_features
        self._feature_extractor = feature_extractor
        # pytorch-ignite accumulates in float64, except on MPS, which has no float64.
        self._double_dtype = torch.float32 if torch.device(device).type == "mps" else torch.float64
        super().__init__(output_transform, device)

    def _extract_features(self, inputs: torch.Tensor) -> torch.Tensor:
        name = type(self).__name__
        if not isinstance(inputs, torch.Tensor):
            raise TypeError(f"{name}.update takes tensors, got {type(inputs)}")
        with torch.no_grad():
            features = self._feature_extractor(inputs.detach().to(self._device))
        if not isinstance(features, torch.Tensor):
            raise TypeError(f"{name}: feature_extractor must return a tensor, got {type(features)}")
        features = features.to(self._device, dtype=self._double_dtype)
        if features.dim() != 2:
            raise ValueError(f"{name}: feature_extractor output must be a tensor of dim 2, got: {features.dim()}")
        if features.shape[0] == 0:
            raise ValueError(f"{name}: Batch size should be greater than one, got: {features.shape[0]}")
        if features.shape[1] != self._num_features:
            raise ValueError(
                f"{name}: num_features returned by feature_extractor should be {self._num_features}, "
                f"got: {features.shape[1]}"
            )
        return features
