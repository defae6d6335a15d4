"""HitRate and NDCG: pytorch-ignite 0.5.5's values."""

from __future__ import annotations

import random
from typing import Any

import ignite.metrics as ig
import pytest
import torch

from ignite_async.metrics.metric import NotComputableError
from ignite_async.metrics.rec_sys import NDCG, HitRate
from tests.metrics._oracle import check_attached, check_direct, check_state_round_trip


def rec_batches(seed: int, graded: bool) -> list[tuple[torch.Tensor, torch.Tensor]]:
    rng = random.Random(seed)
    g = torch.Generator().manual_seed(seed)
    items = rng.randint(5, 12)
    batches = []
    for n in (rng.randint(1, 8), 6, 3):
        y = (
            torch.randint(0, 4, (n, items), generator=g).float()
            if graded
            else torch.randint(0, 2, (n, items), generator=g)
        )
        y[0] = 0  # a row without any relevant item
        if graded:
            y = y * (torch.rand(n, items, generator=g) < 0.4)
        batches.append((torch.rand(n, items, generator=g), y))
    return batches


CASES: list[tuple[str, dict[str, Any]]] = [
    ("HitRate", {"top_k": 1}),
    ("HitRate", {"top_k": [5, 1, 3]}),
    ("HitRate", {"top_k": [2, 4], "ignore_zero_hits": False}),
    ("NDCG", {"top_k": [1, 3, 5]}),
    ("NDCG", {"top_k": [2, 20], "gain_function": "linear_rank"}),
    ("NDCG", {"top_k": [3], "relevance_threshold": 2.0, "ignore_zero_hits": False}),
]
OURS: dict[str, Any] = {"HitRate": HitRate, "NDCG": NDCG}


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("case", range(len(CASES)), ids=[f"{c}-{kw}" for c, kw in CASES])
def test_values_equal_ignites(case: int, seed: int) -> None:
    name, kwargs = CASES[case]
    batches = rec_batches(seed, graded=name == "NDCG")
    check_direct(OURS[name](**kwargs), getattr(ig, name)(**kwargs), batches)


@pytest.mark.anyio
@pytest.mark.parametrize("name", list(OURS))
async def test_attached_like_ignite(name: str) -> None:
    batches = rec_batches(4, graded=name == "NDCG")
    await check_attached(lambda ours: (OURS[name] if ours else getattr(ig, name))(top_k=[1, 3]), batches)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="positive"):
        HitRate(top_k=[0, 2])
    with pytest.raises(ValueError, match="non-empty list"):
        NDCG(top_k=[])
    with pytest.raises(ValueError, match="gain_function"):
        NDCG(top_k=[1], gain_function="log")
    with pytest.raises(ValueError, match=r"both be \(N, items\)"):
        HitRate().update((torch.rand(2, 3), torch.zeros(2, 4)))
    with pytest.raises(ValueError, match="more than the 3 items"):
        HitRate(top_k=4).update((torch.rand(2, 3), torch.zeros(2, 3)))
    no_hits = HitRate()
    no_hits.update((torch.rand(2, 3), torch.zeros(2, 3)))
    with pytest.raises(NotComputableError):
        no_hits.compute()


@pytest.mark.parametrize("name", list(OURS))
def test_state_round_trip(name: str) -> None:
    check_state_round_trip(lambda: OURS[name](top_k=[1, 4]), rec_batches(1, graded=name == "NDCG"))
