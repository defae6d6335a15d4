"""Entropy, KLDivergence and JSDivergence: pytorch-ignite 0.5.5's values."""

from __future__ import annotations

import random
from typing import Any

import ignite.metrics as ig
import pytest
import torch

from ignite_async.metrics.divergence import Entropy, JSDivergence, KLDivergence
from ignite_async.metrics.metric import NotComputableError
from tests.metrics._oracle import check_attached, check_direct, check_state_round_trip

OURS: dict[str, Any] = {"Entropy": Entropy, "KLDivergence": KLDivergence, "JSDivergence": JSDivergence}


def logit_batches(seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    rng = random.Random(seed)
    g = torch.Generator().manual_seed(seed)
    shape = (rng.randint(2, 6), *([rng.randint(1, 3)] * rng.randint(0, 2)))
    return [(3 * torch.randn(n, *shape, generator=g), 3 * torch.randn(n, *shape, generator=g)) for n in (4, 1, 7)]


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("name", list(OURS))
def test_values_equal_ignites(name: str, seed: int) -> None:
    check_direct(OURS[name](), getattr(ig, name)(), logit_batches(seed))


@pytest.mark.anyio
@pytest.mark.parametrize("name", list(OURS))
async def test_attached_like_ignite(name: str) -> None:
    await check_attached(lambda ours: OURS[name]() if ours else getattr(ig, name)(), logit_batches(2), "batch_wise")


def test_bad_input() -> None:
    with pytest.raises(ValueError, match=r"\(B, C\) or \(B, C, \.\.\.\)"):
        Entropy().update((torch.zeros(3), torch.zeros(3)))
    with pytest.raises(ValueError, match="same shape"):
        KLDivergence().update((torch.zeros(3, 2), torch.zeros(3, 3)))
    with pytest.raises(NotComputableError):
        JSDivergence().compute()


@pytest.mark.parametrize("name", list(OURS))
def test_state_round_trip(name: str) -> None:
    check_state_round_trip(OURS[name], logit_batches(3))
