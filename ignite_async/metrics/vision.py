"""Image quality: peak signal-to-noise ratio and structural similarity, per image, averaged."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from ignite_async.metrics.metric import Metric, NotComputableError, check_pair, sync_all_reduce

__all__ = ["PSNR", "SSIM", "CommonObjectDetectionMetrics", "ObjectDetectionAvgPrecisionRecall"]


def _same_kind(name: str, y_pred: torch.Tensor, y: torch.Tensor) -> None:
    if y_pred.dtype != y.dtype:
        raise TypeError(f"{name}: y_pred and y must have the same dtype, got {y_pred.dtype} and {y.dtype}")
    if y_pred.shape != y.shape:
        raise ValueError(
            f"{name}: y_pred and y must have the same shape, got {tuple(y_pred.shape)} and {tuple(y.shape)}"
        )


class PSNR(Metric):
    """The mean over images of ``10 log10(data_range² / MSE)`` (float64; each image's MSE over all but the
    first dimension).

    :param data_range: the span of the pixel values (1.0 for [0, 1] floats, 255 for bytes).
    :raises TypeError, ValueError: at ``update``, for different dtypes or shapes.

    >>> import torch
    >>> psnr = PSNR(data_range=1.0)
    >>> psnr.update((torch.full((1, 1, 2, 2), 0.1), torch.zeros(1, 1, 2, 2)))
    >>> round(psnr.compute(), 4)
    20.0
    """

    _state_attrs = ("_sum_of_batchwise_psnr", "_num_examples")

    def __init__(
        self,
        data_range: float,
        output_transform: Callable[[Any], Any] = lambda x: x,
        device: str | torch.device = "cpu",
        skip_unrolling: bool = False,
    ) -> None:
        if isinstance(data_range, bool) or not isinstance(data_range, (int, float)) or data_range <= 0:
            raise ValueError(f"PSNR: data_range must be a positive number, got {data_range!r}")
        self.data_range = data_range
        super().__init__(output_transform, device, skip_unrolling)

    def reset(self) -> None:
        self._sum_of_batchwise_psnr = torch.tensor(0.0, dtype=torch.float64, device=self._device)
        self._num_examples = 0

    def update(self, output: Any) -> None:
        y_pred, y = check_pair(self, output)
        _same_kind("PSNR", y_pred, y)
        if y.ndim < 1:
            raise ValueError("PSNR: y_pred and y must be (N, ...), got 0-d tensors")
        dims = tuple(range(1, y.ndim))
        mse = (y_pred.to(torch.float64) - y.to(torch.float64)).pow(2).mean(dim=dims)
        self._sum_of_batchwise_psnr += (10.0 * torch.log10(self.data_range**2 / (mse + 1e-10))).sum().to(self._device)
        self._num_examples += y.shape[0]

    @sync_all_reduce("_sum_of_batchwise_psnr", "_num_examples")
    def compute(self) -> float:
        if self._num_examples == 0:
            raise NotComputableError("PSNR must have at least one example before it can be computed")
        return float(self._sum_of_batchwise_psnr / self._num_examples)


def _per_dim(value: Any, ndims: int, label: str, kind: type) -> list[Any]:
    if isinstance(value, kind) and not isinstance(value, bool):
        return [value] * ndims
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != ndims:
            raise ValueError(f"SSIM: {label} must have {ndims} values (one per spatial dimension), got {len(value)}")
        return list(value)
    raise ValueError(f"SSIM: {label} must be a {kind.__name__} or a sequence of {ndims}, got {value!r}")


class SSIM(Metric):
    """The mean structural similarity of images ``(B, C, H, W)`` (or volumes ``(B, C, D, H, W)`` with
    ``ndims=3``), with a Gaussian (or uniform) window, reflect-padded so the output keeps the input's size.

    :param data_range: the span of the pixel values.
    :param kernel_size: odd window size, one or one per spatial dimension.
    :param sigma: the Gaussian window's standard deviation, one or one per spatial dimension.
    :param gaussian: a Gaussian window (else a uniform one over its middle 5 pixels).
    :raises ValueError: for bad window arguments or ``ndims``; at ``update``, for other shapes.

    >>> import torch
    >>> ssim = SSIM(data_range=1.0)
    >>> image = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    >>> ssim.update((image, image))
    >>> round(ssim.compute(), 4)
    1.0
    """

    _state_attrs = ("_sum_of_ssim", "_num_examples")

    def __init__(
        self,
        data_range: float,
        kernel_size: int | Sequence[int] = 11,
        sigma: float | Sequence[float] = 1.5,
        k1: float = 0.01,
        k2: float = 0.03,
        gaussian: bool = True,
        output_transform: Callable[[Any], Any] = lambda x: x,
        device: str | torch.device = "cpu",
        skip_unrolling: bool = False,
        ndims: int = 2,
    ) -> None:
        if ndims not in (2, 3):
            raise ValueError(f"SSIM: ndims must be 2 (images) or 3 (volumes), got {ndims!r}")
        self.kernel_size = _per_dim(kernel_size, ndims, "kernel_size", int)
        self.sigma = _per_dim(sigma, ndims, "sigma", float)
        if any(not isinstance(k, int) or k <= 0 or k % 2 == 0 for k in self.kernel_size):
            raise ValueError(f"SSIM: kernel_size must be odd positive integers, got {kernel_size!r}")
        if any(s <= 0 for s in self.sigma):
            raise ValueError(f"SSIM: sigma must be positive, got {sigma!r}")
        self.ndims = ndims
        self.gaussian = gaussian
        self.data_range = data_range
        self.c1 = (k1 * data_range) ** 2
        self.c2 = (k2 * data_range) ** 2
        # pytorch-ignite's padding: the first window size pads the second-to-last dimension, the second the
        # last, the third (volumes) the third-to-last; the window itself is laid over (..., first, second[, third]).
        half = [(k - 1) // 2 for k in self.kernel_size]
        self._padding = [half[1], half[1], half[0], half[0], *([half[2], half[2]] if ndims == 3 else [])]
        super().__init__(output_transform, device, skip_unrolling)
        windows = [self._window(k, s) for k, s in zip(self.kernel_size, self.sigma, strict=True)]
        kernel = windows[0]
        for w in windows[1:]:
            kernel = kernel.unsqueeze(-1) * w
        self._kernel_nd = kernel
        self._kernel: torch.Tensor | None = None

    def _window(self, size: int, sigma: float) -> torch.Tensor:
        if self.gaussian:
            x = torch.linspace(-(size - 1) * 0.5, (size - 1) * 0.5, steps=size, device=self._device)
            g = torch.exp(-0.5 * (x / sigma).pow(2))
            return g / g.sum()
        window = torch.zeros(size, device=self._device)
        window[max(size // 2 - 2, 0) : min(size // 2 + 3, size)] = 1 / 5.0
        return window

    def reset(self) -> None:
        self._sum_of_ssim = torch.tensor(0.0, dtype=torch.float64, device=self._device)
        self._num_examples = 0

    def update(self, output: Any) -> None:
        y_pred, y = check_pair(self, output)
        _same_kind("SSIM", y_pred, y)
        if y.ndim != self.ndims + 2:
            layout = "(B, C, H, W)" if self.ndims == 2 else "(B, C, D, H, W)"
            raise ValueError(f"SSIM: y_pred and y must be {layout} for ndims={self.ndims}, got {tuple(y.shape)}")
        if not y.is_floating_point():
            y, y_pred = y.float(), y_pred.float()
        channels = y_pred.shape[1]
        kernel = self._kernel
        if kernel is None or kernel.shape[0] != channels or kernel.dtype != y_pred.dtype:
            kernel = self._kernel_nd.expand(channels, 1, *self._kernel_nd.shape).to(y_pred.dtype)
        if kernel.device != y_pred.device:
            if kernel.device.type == "cpu":
                kernel = kernel.to(y_pred.device)
            else:
                warnings.warn(
                    f"SSIM: y_pred is on {y_pred.device} but earlier batches were on {kernel.device}; they are "
                    "copied there (keep every batch on one device to avoid the copy)",
                    UserWarning,
                    stacklevel=2,
                )
                y_pred, y = y_pred.to(kernel.device), y.to(kernel.device)
        self._kernel = kernel
        y_pred = F.pad(y_pred, self._padding, mode="reflect")
        y = F.pad(y, self._padding, mode="reflect")
        conv = F.conv3d if self.ndims == 3 else F.conv2d
        b = y_pred.shape[0]
        mu_p, mu_t, e_pp, e_tt, e_pt = conv(
            torch.cat([y_pred, y, y_pred * y_pred, y * y, y_pred * y]), kernel, groups=channels
        ).chunk(5)
        mu_pp, mu_tt, mu_pt = mu_p.pow(2), mu_t.pow(2), mu_p * mu_t
        numerator = (2 * mu_pt + self.c1) * (2 * (e_pt - mu_pt) + self.c2)
        denominator = (mu_pp + mu_tt + self.c1) * ((e_pp - mu_pp) + (e_tt - mu_tt) + self.c2)
        index = numerator / denominator
        double = torch.float32 if index.device.type == "mps" else torch.float64
        self._sum_of_ssim += torch.mean(index, list(range(1, 2 + self.ndims)), dtype=double).sum().to(self._device)
        self._num_examples += b

    @sync_all_reduce("_sum_of_ssim", "_num_examples")
    def compute(self) -> float:
        if self._num_examples == 0:
            raise NotComputableError("SSIM must have at least one example before it can be computed")
        return float(self._sum_of_ssim / self._num_examples)


# pytorch-ignite's ignite.metrics.vision path for the detection metrics (they live in their own module here).
from ignite_async.metrics.object_detection import CommonObjectDetectionMetrics, ObjectDetectionAvgPrecisionRecall  # noqa: E402
