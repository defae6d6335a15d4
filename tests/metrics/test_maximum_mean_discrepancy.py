"""MaximumMeanDiscrepancy: pytorch-ignite 0.5.5's values."""

from __future__ import annotations

import math
import random

import ignite.metrics as ig
import pytest
import torch

from ignite_async.metrics.maximum_mean_discrepancy import MaximumMeanDiscrepancy
from ignite_async.metrics.metric import NotComputableError
from tests.metrics._oracle import check_attached, check_direct, check_state_round_trip

Batch = tuple[torch.Tensor, torch.Tensor]


def sample_batches(seed: int) -> list[Batch]:
    """``x`` and a shifted, scaled ``y`` of one random shape ``(n, ...)``. The shift keeps the MMD away from 0,
    where its square root would magnify float32 rounding of pytorch-ignite's accumulators past 1e-6."""
    rng = random.Random(seed)
    g = torch.Generator().manual_seed(seed)
    tail = rng.choice([(3,), (1,), (2, 3), (2, 2, 2)])
    dtype = torch.float64 if seed % 3 == 2 else torch.float32
    shift = rng.uniform(0.5, 2.0)
    return [
        (
            torch.randn(n, *tail, generator=g, dtype=dtype),
            shift + rng.uniform(0.5, 1.5) * torch.randn(n, *tail, generator=g, dtype=dtype),
        )
        for n in (rng.randint(2, 9), rng.randint(10, 50), 2)
    ]


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("var", [1.0, 0.25, 4])
def test_values_equal_ignites(var: float, seed: int) -> None:
    check_direct(MaximumMeanDiscrepancy(var=var), ig.MaximumMeanDiscrepancy(var=var), sample_batches(seed))


def test_ignites_doc_example() -> None:
    x = torch.tensor(
        [
            [-0.80324818, -0.95768364, -0.03807209],
            [-0.11059691, -0.38230813, -0.4111988],
            [-0.8864329, -0.02890403, -0.60119252],
            [-0.68732452, -0.12854739, -0.72095073],
            [-0.62604613, -0.52368328, -0.24112842],
        ]
    )
    y = torch.tensor(
        [
            [0.0686768, 0.80502737, 0.53321717],
            [0.83849465, 0.59099726, 0.76385441],
            [0.68688272, 0.56833803, 0.98100778],
            [0.55267761, 0.13084654, 0.45382906],
            [0.0754253, 0.70317304, 0.4756805],
        ]
    )
    ours, theirs = MaximumMeanDiscrepancy(), ig.MaximumMeanDiscrepancy()
    check_direct(ours, theirs, [(x, y)])
    assert ours.compute() == pytest.approx(1.0726, abs=1e-4)


def test_same_samples_give_zero() -> None:
    x = torch.randn(7, 3, generator=torch.Generator().manual_seed(0))
    metric = MaximumMeanDiscrepancy()
    metric.update((x, x.clone()))
    assert metric.compute() == pytest.approx(0.0, abs=1e-3)


@pytest.mark.anyio
@pytest.mark.parametrize("usage", ["epoch_wise", "batch_wise", "running_epoch_wise"])
async def test_attached_like_ignite(usage: str) -> None:
    batches = sample_batches(1)
    await check_attached(
        lambda ours: (MaximumMeanDiscrepancy if ours else ig.MaximumMeanDiscrepancy)(0.5), batches, usage
    )


@pytest.mark.parametrize("var", [1.0, 2.5])
def test_state_round_trip(var: float) -> None:
    check_state_round_trip(lambda: MaximumMeanDiscrepancy(var=var), sample_batches(4))


def test_one_sample_batch_refused_where_ignite_gives_nan() -> None:
    one = (torch.randn(1, 3), torch.randn(1, 3))
    theirs = ig.MaximumMeanDiscrepancy()
    theirs.update(one)
    assert math.isnan(theirs.compute())
    with pytest.raises(ValueError, match=r"at least two samples, got 1.*drop_last=True"):
        MaximumMeanDiscrepancy().update(one)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="same shape"):
        MaximumMeanDiscrepancy().update((torch.randn(4, 3), torch.randn(4, 2)))
    with pytest.raises(ValueError, match=r"\(B, \.\.\.\)"):
        MaximumMeanDiscrepancy().update((torch.randn(4), torch.randn(4)))
    with pytest.raises(ValueError, match=r"\(B, \.\.\.\)"):
        MaximumMeanDiscrepancy().update((torch.tensor(1.0), torch.tensor(2.0)))
    for var in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match=r"var .* must be positive"):
            MaximumMeanDiscrepancy(var=var)
    with pytest.raises(ValueError, match=r"takes \(y_pred, y\)"):
        MaximumMeanDiscrepancy().update((torch.randn(4, 3),))
    with pytest.raises(NotComputableError):
        MaximumMeanDiscrepancy().compute()
