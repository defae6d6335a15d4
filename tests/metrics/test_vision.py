"""PSNR and SSIM: pytorch-ignite 0.5.5's values."""

from __future__ import annotations

import random
from typing import Any

import ignite.metrics as ig
import pytest
import torch

from ignite_async.metrics.metric import NotComputableError
from ignite_async.metrics.vision import PSNR, SSIM
from tests.metrics._oracle import check_attached, check_direct, check_state_round_trip


def image_batches(seed: int, volumes: bool = False) -> list[tuple[torch.Tensor, torch.Tensor]]:
    rng = random.Random(seed)
    g = torch.Generator().manual_seed(seed)
    channels = rng.randint(1, 3)
    spatial = (rng.randint(7, 9), rng.randint(11, 14), rng.randint(11, 13)) if volumes else (rng.randint(11, 20), 16)
    batches = []
    for n in (rng.randint(1, 3), 2):
        y = torch.rand(n, channels, *spatial, generator=g)
        noisy = (y + 0.1 * torch.randn(y.shape, generator=g)).clamp(0, 1)
        batches.append((noisy, y))
    return batches


@pytest.mark.parametrize("seed", range(6))
def test_psnr_equals_ignites(seed: int) -> None:
    batches = image_batches(seed)
    if seed % 2:
        batches = [((p * 255).to(torch.uint8), (y * 255).to(torch.uint8)) for p, y in batches]
    data_range = 255 if seed % 2 else 1.0
    check_direct(PSNR(data_range), ig.PSNR(data_range), batches)


SSIM_CASES: list[dict[str, Any]] = [
    {},
    {"kernel_size": 7, "sigma": 1.0},
    {"kernel_size": [5, 9], "sigma": [0.8, 2.0]},
    {"gaussian": False, "kernel_size": 9},
    {"k1": 0.02, "k2": 0.05, "kernel_size": 3},
]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("case", range(len(SSIM_CASES)))
def test_ssim_equals_ignites(case: int, seed: int) -> None:
    kwargs = SSIM_CASES[case]
    check_direct(SSIM(1.0, **kwargs), ig.SSIM(1.0, **kwargs), image_batches(seed))


@pytest.mark.parametrize("kwargs", [{"kernel_size": 5}, {"kernel_size": [3, 5, 7], "sigma": [1.0, 0.7, 1.3]}])
def test_ssim_volumes_equal_ignites(kwargs: dict[str, Any]) -> None:
    check_direct(SSIM(1.0, ndims=3, **kwargs), ig.SSIM(1.0, ndims=3, **kwargs), image_batches(1, volumes=True))


def test_ssim_of_bytes_equals_ignites() -> None:
    batches = [((p * 255).to(torch.uint8), (y * 255).to(torch.uint8)) for p, y in image_batches(4)]
    check_direct(SSIM(255), ig.SSIM(255), batches)


@pytest.mark.anyio
async def test_attached_like_ignite() -> None:
    batches = image_batches(2)
    await check_attached(lambda ours: (PSNR if ours else ig.PSNR)(1.0), batches)
    await check_attached(lambda ours: (SSIM if ours else ig.SSIM)(1.0), batches, "batch_wise")


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="odd positive"):
        SSIM(1.0, kernel_size=4)
    with pytest.raises(ValueError, match="2 values"):
        SSIM(1.0, sigma=[1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="ndims must be 2"):
        SSIM(1.0, ndims=4)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        SSIM(1.0).update((torch.rand(2, 16, 16), torch.rand(2, 16, 16)))
    with pytest.raises(TypeError, match="same dtype"):
        PSNR(1.0).update((torch.rand(2, 4), torch.rand(2, 4, dtype=torch.float64)))
    with pytest.raises(ValueError, match="data_range must be a positive"):
        PSNR(0)
    with pytest.raises(NotComputableError):
        SSIM(1.0).compute()


def test_state_round_trip() -> None:
    check_state_round_trip(lambda: PSNR(1.0), image_batches(3))
    check_state_round_trip(lambda: SSIM(1.0, kernel_size=5), image_batches(3))
