"""HSIC: pytorch-ignite 0.5.5's values, batches under four samples skipped or refused as it does."""

from __future__ import annotations

import math
import random
from typing import Any

import ignite.exceptions
import ignite.metrics as ig
import pytest
import torch

from ignite_async.metrics.hsic import HSIC
from ignite_async.metrics.metric import NotComputableError
from tests.metrics._oracle import check_attached, check_direct, check_state_round_trip

Batch = tuple[torch.Tensor, torch.Tensor]


def hsic_batches(seed: int, small: bool = True) -> list[Batch]:
    """``x`` of a random shape ``(n, ...)``, ``y`` partly a function of ``x`` (so HSIC is not only 0); with
    ``small``, batches of 1 to 3 samples (skipped by default) are mixed in."""
    rng = random.Random(seed)
    g = torch.Generator().manual_seed(seed)
    tail = rng.choice([(3,), (1,), (2, 3), (2, 1, 2)])
    features = rng.randint(1, 4)
    dtype = torch.float64 if seed % 3 == 2 else torch.float32
    sizes = [rng.randint(4, 12), rng.randint(13, 40), 4]
    if small:
        sizes[1:1] = [rng.randint(1, 3)]
    batches = []
    for n in sizes:
        x = torch.randn(n, *tail, generator=g, dtype=dtype)
        noise = torch.randn(n, features, generator=g, dtype=dtype)
        y = (seed % 2) * torch.sin(2 * x.flatten(1)[:, :1]) + 0.5 * noise
        batches.append((x, y))
    return batches


BUILD: dict[str, dict[str, Any]] = {
    "median heuristic": {},
    "sigmas": {"sigma_x": 0.7, "sigma_y": 2.0},
    "sigma_x only": {"sigma_x": 1.5},
    "sigma_y only": {"sigma_y": 0.3},
}


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("name", list(BUILD))
def test_values_equal_ignites(name: str, seed: int) -> None:
    check_direct(HSIC(**BUILD[name]), ig.HSIC(**BUILD[name]), hsic_batches(seed))


def test_values_are_not_all_zero() -> None:
    """The differential tests above compare something: dependent data gives a clearly positive HSIC."""
    metric = HSIC()
    for batch in hsic_batches(1, small=False):
        metric.update(batch)
    assert metric.compute() > 1e-3


def test_ignites_doc_example() -> None:
    x = torch.arange(50.0).reshape(10, 5)
    metric = HSIC()
    metric.update((x, torch.sin(x * torch.pi * 2 / 50)))
    assert metric.compute() == pytest.approx(0.09226646274328232, rel=1e-6)


@pytest.mark.anyio
@pytest.mark.parametrize("usage", ["epoch_wise", "running_epoch_wise"])
async def test_attached_like_ignite(usage: str) -> None:
    await check_attached(lambda ours: (HSIC if ours else ig.HSIC)(sigma_y=1.2), hsic_batches(3), usage)


@pytest.mark.anyio
async def test_attached_batch_wise_like_ignite() -> None:
    await check_attached(lambda ours: (HSIC if ours else ig.HSIC)(), hsic_batches(5, small=False), "batch_wise")


@pytest.mark.parametrize("name", list(BUILD))
def test_state_round_trip(name: str) -> None:
    check_state_round_trip(lambda: HSIC(**BUILD[name]), hsic_batches(4))


def test_small_batches_skipped_or_refused_like_ignite() -> None:
    tiny = (torch.randn(3, 2), torch.randn(3, 2))
    for metric, error in ((HSIC(), NotComputableError), (ig.HSIC(), ignite.exceptions.NotComputableError)):
        metric.update(tiny)
        with pytest.raises(error):
            metric.compute()
    with pytest.raises(ValueError, match=r"at least four samples, got 3.*ignore_invalid_batch=True"):
        HSIC(ignore_invalid_batch=False).update(tiny)
    with pytest.raises(ValueError, match="four samples"):
        ig.HSIC(ignore_invalid_batch=False).update(tiny)
    refusing = HSIC(ignore_invalid_batch=False)
    refusing.update((torch.randn(4, 2), torch.randn(4, 2)))  # four is enough
    assert refusing.compute() >= 0.0


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="feature dimension"):
        HSIC().update((torch.randn(6), torch.randn(6, 2)))
    with pytest.raises(ValueError, match="same batch size"):
        HSIC().update((torch.randn(6, 2), torch.randn(5, 2)))
    with pytest.raises(ValueError, match="sigma_x must be a positive bandwidth"):
        HSIC(sigma_x=0)
    with pytest.raises(ValueError, match="sigma_y"):
        HSIC(sigma_y=float("nan"))
    with pytest.raises(TypeError, match="tensors"):
        HSIC().update(([1.0] * 4, [2.0] * 4))
    with pytest.raises(NotComputableError):
        HSIC().compute()


def test_zero_median_distance_gives_nan_as_ignite() -> None:
    """With the median heuristic, a batch where most pairs of y coincide (a kernel variance of 0) gives nan in
    pytorch-ignite; ours gives the same rather than another number (a fixed sigma_y avoids it)."""
    x = torch.randn(8, 3, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([[0.0]] * 6 + [[1.0]] * 2)
    for metric in (HSIC(), ig.HSIC()):
        metric.update((x, y))
        assert math.isnan(metric.compute())
    fixed = HSIC(sigma_y=1.0)
    fixed.update((x, y))
    assert not math.isnan(fixed.compute())
