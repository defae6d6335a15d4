"""CosineSimilarity and MeanPairwiseDistance: pytorch-ignite 0.5.5's values."""

from __future__ import annotations

import random
from typing import Any

import ignite.metrics as ig
import pytest
import torch

from ignite_async.metrics.distance import CosineSimilarity, MeanPairwiseDistance
from ignite_async.metrics.metric import NotComputableError
from tests.metrics._oracle import check_attached, check_direct, check_state_round_trip


def vector_batches(seed: int, flat: bool) -> list[tuple[torch.Tensor, torch.Tensor]]:
    rng = random.Random(seed)
    g = torch.Generator().manual_seed(seed)
    tail = (rng.randint(1, 6),) if flat else rng.choice([(2, 3), (1, 4, 2)])
    return [(torch.randn(n, *tail, generator=g), torch.randn(n, *tail, generator=g)) for n in (rng.randint(1, 9), 5, 1)]


BUILD: dict[str, Any] = {
    "cosine": lambda lib: lib.CosineSimilarity(),
    "cosine eps": lambda lib: lib.CosineSimilarity(eps=0.5),
    "distance": lambda lib: lib.MeanPairwiseDistance(),
    "distance p=1": lambda lib: lib.MeanPairwiseDistance(p=1, eps=0.0),
    "distance p=3": lambda lib: lib.MeanPairwiseDistance(p=3, eps=1e-3),
}
OURS = type("ours", (), {"CosineSimilarity": CosineSimilarity, "MeanPairwiseDistance": MeanPairwiseDistance})


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("name", list(BUILD))
def test_values_equal_ignites(name: str, seed: int) -> None:
    batches = vector_batches(seed, flat=name.startswith("distance") or seed % 2 == 0)
    check_direct(BUILD[name](OURS), BUILD[name](ig), batches)


@pytest.mark.anyio
@pytest.mark.parametrize("name", ["cosine", "distance"])
async def test_attached_like_ignite(name: str) -> None:
    await check_attached(lambda ours: BUILD[name](OURS if ours else ig), vector_batches(1, flat=True))


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="as many samples"):
        CosineSimilarity().update((torch.zeros(3, 2), torch.zeros(2, 2)))
    with pytest.raises(NotComputableError):
        MeanPairwiseDistance().compute()


@pytest.mark.parametrize("name", list(BUILD))
def test_state_round_trip(name: str) -> None:
    check_state_round_trip(lambda: BUILD[name](OURS), vector_batches(2, flat=True))
